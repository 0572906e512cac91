/* Prints darknet's detector-test detections (before drawing) as JSON, full precision. */
#include <stdio.h>
#include <stdlib.h>
#include "darknet.h"
int main(int argc, char **argv){
    network *net = load_network(argv[1], argv[2], 0);
    set_batch_network(net, 1);
    float thresh = atof(argv[3]), hier = atof(argv[4]), nms = atof(argv[5]);
    layer l = net->layers[net->n-1];
    printf("[");
    for (int i = 6; i < argc; ++i){
        image im = load_image_color(argv[i], 0, 0);
        image sized = letterbox_image(im, net->w, net->h);
        network_predict(net, sized.data);
        int nboxes = 0;
        detection *dets = get_network_boxes(net, im.w, im.h, thresh, hier, 0, 1, &nboxes);
        if (nms) do_nms_sort(dets, nboxes, l.classes, nms);
        printf("%s\n {\"file\": \"%s\", \"width\": %d, \"height\": %d, \"detections\": [", i > 6 ? "," : "", argv[i], im.w, im.h);
        int first = 1;
        for (int b = 0; b < nboxes; ++b) for (int j = 0; j < l.classes; ++j) if (dets[b].prob[j] > thresh){
            box bb = dets[b].bbox;
            printf("%s\n  {\"class_id\": %d, \"prob\": %.9g, \"bbox\": [%.9g, %.9g, %.9g, %.9g]}", first ? "" : ",", j, dets[b].prob[j], bb.x, bb.y, bb.w, bb.h);
            first = 0;
        }
        printf("]}");
        free_detections(dets, nboxes); free_image(im); free_image(sized);
    }
    printf("\n]\n");
    return 0;
}
