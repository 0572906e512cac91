"""The references the mAP tests compare against, and the random data sets they use.

pycocotools' COCOeval, built in memory (with difficult objects as ignored ones when
asked), and a literal port of py-faster-rcnn's ``voc_eval.py`` that matches as the VOC
devkit's ``VOCevaldet.m`` does (IoU at least the threshold); `random_dataset` draws
ground truths of every COCO size and detections jittered from them.
"""

import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

# ------------------------------------------------- reference: py-faster-rcnn voc_eval.py
# A literal port of the algorithm, reading from memory instead of XML files and the
# per-class detection text files. `plus_one=1.0` is the original; 0.0 removes the
# devkit's +1 pixel convention. Other changes: a stable argsort (the original uses
# quicksort, which leaves the order of tied scores undefined), and the match rule of
# the devkit's VOCevaldet.m, which voc_eval.py does not follow: an overlap counts only
# for boxes that intersect (`if iw>0 & ih>0`) and a match needs
# `ovmax>=VOCopts.minoverlap` (voc_eval.py: `ovmax > ovthresh`).


def reference_voc_ap(rec, prec, use_07_metric=False):
    if use_07_metric:
        # 11 point metric
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            if np.sum(rec >= t) == 0:
                p = 0
            else:
                p = np.max(prec[rec >= t])
            ap = ap + p / 11.0
    else:
        # first append sentinel values at the end
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))
        # compute the precision envelope
        for i in range(mpre.size - 1, 0, -1):
            mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
        # to calculate area under PR curve, look for points where X axis (recall) changes
        i = np.where(mrec[1:] != mrec[:-1])[0]
        # and sum (\Delta recall) * prec
        ap = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
    return ap


def reference_voc_eval(recs, detlines, classname, ovthresh=0.5, use_07_metric=False, plus_one=1.0):
    """recs: {imagename: [{"name", "bbox", "difficult"}]}; detlines: [(image, score, bbox)].

    voc_eval.py with VOCevaldet.m's match: IoU >= ovthresh, of boxes that intersect.
    Returns (rec, prec, ap), or None when the class has no non-difficult gt (the
    original divides by zero there).
    """
    imagenames = list(recs)
    # extract gt objects for this class
    class_recs = {}
    npos = 0
    for imagename in imagenames:
        R = [obj for obj in recs[imagename] if obj["name"] == classname]
        bbox = np.array([x["bbox"] for x in R])
        difficult = np.array([x["difficult"] for x in R]).astype(bool)
        det = [False] * len(R)
        npos = npos + sum(~difficult)
        class_recs[imagename] = {"bbox": bbox, "difficult": difficult, "det": det}
    if npos == 0:
        return None

    image_ids = [x[0] for x in detlines]
    confidence = np.array([float(x[1]) for x in detlines])
    BB = np.array([[float(z) for z in x[2]] for x in detlines]).reshape(-1, 4)

    # sort by confidence
    sorted_ind = np.argsort(-confidence, kind="stable")
    BB = BB[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]

    # go down dets and mark TPs and FPs
    nd = len(image_ids)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for d in range(nd):
        R = class_recs[image_ids[d]]
        bb = BB[d, :].astype(float)
        ovmax = -np.inf
        BBGT = R["bbox"].astype(float)

        if BBGT.size > 0:
            # compute overlaps
            # intersection
            ixmin = np.maximum(BBGT[:, 0], bb[0])
            iymin = np.maximum(BBGT[:, 1], bb[1])
            ixmax = np.minimum(BBGT[:, 2], bb[2])
            iymax = np.minimum(BBGT[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + plus_one, 0.0)
            ih = np.maximum(iymax - iymin + plus_one, 0.0)
            inters = iw * ih

            # union
            uni = (
                (bb[2] - bb[0] + plus_one) * (bb[3] - bb[1] + plus_one)
                + (BBGT[:, 2] - BBGT[:, 0] + plus_one) * (BBGT[:, 3] - BBGT[:, 1] + plus_one)
                - inters
            )

            overlaps = inters / uni
            # VOCevaldet.m: `if iw>0 & ih>0`, the overlap of intersecting boxes only.
            overlaps = np.where((iw > 0) & (ih > 0), overlaps, -np.inf)
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)

        # VOCevaldet.m: `if ovmax>=VOCopts.minoverlap` (voc_eval.py: `ovmax > ovthresh`).
        if ovmax >= ovthresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.0
                    R["det"][jmax] = 1
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0

    # compute precision recall
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    rec = tp / float(npos)
    # avoid divide by zero in case the first detection matches a difficult ground truth
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = reference_voc_ap(rec, prec, use_07_metric)
    return rec, prec, ap


def voc_reference(preds, gts, num_classes, **kwargs):
    """Runs `reference_voc_eval` for every class: {class: (rec, prec, ap) or None}."""
    recs = {
        i: [
            {"name": int(c), "bbox": list(b), "difficult": bool(d)}
            for b, c, d in zip(g["boxes"], g["labels"], g["difficult"], strict=True)
        ]
        for i, g in enumerate(gts)
    }
    out = {}
    for k in range(num_classes):
        detlines = [
            (i, s, b)
            for i, p in enumerate(preds)
            for b, s, c in zip(p["boxes"], p["scores"], p["labels"], strict=True)
            if c == k
        ]
        out[k] = reference_voc_eval(recs, detlines, k, **kwargs)
    return out


# ------------------------------------------------------------ reference: pycocotools


class DifficultAsIgnoreCOCOeval(COCOeval):
    """COCOeval with difficult gts as ignored, non-crowd gts (pycocotools' `_ignore`).

    Plain COCOeval overwrites an annotation's "ignore" with its "iscrowd", so the flag
    is set after `_prepare`.
    """

    def _prepare(self):
        super()._prepare()
        for anns in self._gts.values():
            for ann in anns:
                ann["ignore"] = bool(ann["ignore"]) or ann["difficult"]


def _xywh(box):
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def coco_reference(preds, gts, num_classes, *, ignore_difficult):
    """pycocotools on the same data: image ids 1..N, gt area w * h, prints swallowed."""
    annotations = []
    for i, g in enumerate(gts):
        for b, c, d in zip(g["boxes"], g["labels"], g["difficult"], strict=True):
            x, y, w, h = _xywh(b)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(c),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "difficult": bool(d),
                }
            )
    results = [
        {"image_id": i + 1, "category_id": int(c), "bbox": _xywh(b), "score": float(s)}
        for i, p in enumerate(preds)
        for b, s, c in zip(p["boxes"], p["scores"], p["labels"], strict=True)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": [{"id": i + 1} for i in range(len(gts))],
            "annotations": annotations,
            "categories": [{"id": k} for k in range(num_classes)],
        }
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        cls = DifficultAsIgnoreCOCOeval if ignore_difficult else COCOeval
        evaluator = cls(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


# ------------------------------------------------------------------------- data


def random_dataset(rng, num_images, num_classes, *, difficult_rate=0.15, crowded=()):
    """Gts of all sizes (COCO small/medium/large), detections jittered from them.

    About a tenth of the images have no gt, a tenth no detection. Images in `crowded`
    get 101-140 extra detections of one class, to exercise the 100-per-image cut.
    """
    preds, gts = [], []
    for i in range(num_images):
        m = 0 if rng.random() < 0.1 else int(rng.integers(1, 7))
        xy = rng.uniform(0, 300, (m, 2))
        wh = np.exp(rng.uniform(np.log(4), np.log(160), (m, 2)))
        gt_boxes = np.concatenate([xy, xy + wh], axis=1)
        gt_labels = rng.integers(0, num_classes, m)
        # Some objects overlap the previous one (same class), so a detection often has
        # several gts above the threshold, some of them difficult or of another size.
        near = np.flatnonzero(rng.random(m) < 0.3)
        near = near[near > 0]
        gt_boxes[near] = gt_boxes[near - 1] + rng.normal(0.0, 0.1, (near.size, 4)) * np.tile(
            wh[near - 1], 2
        )
        gt_boxes = np.concatenate(
            [
                np.minimum(gt_boxes[:, :2], gt_boxes[:, 2:]),
                np.maximum(gt_boxes[:, :2], gt_boxes[:, 2:]),
            ],
            1,
        )
        wh = gt_boxes[:, 2:] - gt_boxes[:, :2]
        gt_labels[near] = gt_labels[near - 1]
        difficult = rng.random(m) < difficult_rate
        gts.append({"boxes": gt_boxes, "labels": gt_labels, "difficult": difficult})

        copies = rng.integers(0, 3, m)  # 0, 1 or 2 (a duplicate) detections per gt
        source = np.repeat(np.arange(m), copies)
        jitter = rng.normal(0.0, 0.12, (source.size, 4)) * np.tile(wh[source], 2)
        det_boxes = gt_boxes[source] + jitter
        det_labels = np.where(
            rng.random(source.size) < 0.9,
            gt_labels[source],
            rng.integers(0, num_classes, source.size),
        )
        n_random = int(rng.integers(0, 4)) + (int(rng.integers(101, 141)) if i in crowded else 0)
        xy = rng.uniform(0, 300, (n_random, 2))
        random_boxes = np.concatenate([xy, xy + rng.uniform(4, 120, (n_random, 2))], axis=1)
        random_labels = (
            np.full(n_random, 0) if i in crowded else rng.integers(0, num_classes, n_random)
        )
        if i in crowded and m:  # crowd them onto a gt, so the cut changes matches
            random_boxes = gt_boxes[:1] + rng.normal(0.0, 0.2, (n_random, 4)) * np.tile(wh[:1], 2)
            random_labels = np.full(n_random, gt_labels[0])
        boxes = np.concatenate([det_boxes, random_boxes]).reshape(-1, 4)
        # Jitter can invert a box, whose area pycocotools takes as w * h (< 0 if one side
        # is negative) where ours is 0: keep the parity data to proper boxes.
        boxes = np.concatenate(
            [np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1
        )
        labels = np.concatenate([det_labels, random_labels]).astype(np.int64)
        if rng.random() < 0.1 and i not in crowded:
            boxes, labels = boxes[:0], labels[:0]
        preds.append({"boxes": boxes, "scores": rng.random(len(labels)), "labels": labels})
    return preds, gts
