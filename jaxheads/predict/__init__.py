"""Detections out of image files: darknet's ``detector test`` pipeline.

>>> from jaxheads import Detector
>>> det = Detector.from_darknet("yolov2-tiny-voc", image_size=64)  # random weights
>>> import numpy as np
>>> [r.width for r in det.detect([np.zeros((30, 50, 3), np.uint8), np.zeros((9, 7), np.uint8)])]
[50, 7]

* `Detector` — ``from_darknet(cfg, weights)`` / ``from_workdir(path)``; ``detect(images)``
  returns one `ImageDetections` per image (boxes in the image's pixels).
* `jaxheads.predict.images` — reading files, PIL images and arrays as RGB in ``[0, 1]``.
* `jaxheads.predict.letterbox` — darknet's ``resize_image``, ``letterbox_image`` and
  ``correct_region_boxes``.
* `jaxheads.predict.region` — darknet's region/detection boxes and class probabilities.
* `jaxheads.predict.nms_sort` — darknet's ``do_nms_sort``.
* `jaxheads.predict.draw` — boxes and labels drawn with Pillow.
* `jaxheads.cli.detect` — ``jaxheads detect``, the command line over `Detector`.
"""

from jaxheads.predict.detections import ImageDetections
from jaxheads.predict.detector import Detector
from jaxheads.predict.draw import class_color, draw_detections
from jaxheads.predict.images import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    expand_image_paths,
    read_image,
    to_rgb_float,
)
from jaxheads.predict.letterbox import (
    correct_region_boxes,
    letterbox_image,
    letterbox_size,
    resize_image,
)
from jaxheads.predict.names import COCO_NAMES, VOC_NAMES, names_for, read_names
from jaxheads.predict.nms_sort import box_iou_matrix, do_nms_sort, surviving_detections
from jaxheads.predict.region import class_probabilities, detection_outputs, region_outputs

__all__ = [
    "COCO_NAMES",
    "DEFAULT_MAX_PIXELS",
    "VOC_NAMES",
    "Detector",
    "ImageDetections",
    "ImageError",
    "box_iou_matrix",
    "class_color",
    "class_probabilities",
    "correct_region_boxes",
    "detection_outputs",
    "do_nms_sort",
    "draw_detections",
    "expand_image_paths",
    "letterbox_image",
    "letterbox_size",
    "names_for",
    "read_image",
    "read_names",
    "region_outputs",
    "resize_image",
    "surviving_detections",
    "to_rgb_float",
]
