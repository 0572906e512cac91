"""PASCAL VOC average precision (the devkit's ``VOCevaldet``), 2007 11-point or 2010+."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxheads._checks import fail
from jaxheads.metrics._common import (
    _OP,
    _Boxes,
    _mean_defined,
    _name_classes,
    _paired_iou,
    _pairs,
    _prepare,
    _segment_starts,
)


def evaluate_voc(
    predictions: Sequence[Mapping[str, Any]],
    ground_truths: Sequence[Mapping[str, Any]],
    *,
    num_classes: int | None = None,
    iou_threshold: float = 0.5,
    pixel_convention: bool = False,
    use_07_metric: bool = True,
) -> dict[str, Any]:
    """PASCAL VOC average precision (the devkit's ``VOCevaldet.m``).

    Matching: the detections of a class are taken in descending score order (ties in
    input order, image by image); each is compared with the gt of highest IoU among
    *all* gts of its image and class (the first one on ties). As in the devkit, a
    detection whose best gt is already taken is a false positive even if another, free
    gt overlaps it enough. At or above the threshold it is a true positive if that gt is
    free, a duplicate (false positive) if not, and neither if that gt is difficult.

    Args:
      predictions: one dict per image with ``"boxes"``: [N, 4] xyxy, ``"scores"``: [N]
        and ``"labels"``: [N] non-negative ints. An image without detections may give
        empty arrays (``[]`` is read as [0, 4] boxes).
      ground_truths: one dict per image, aligned with ``predictions``, with ``"boxes"``:
        [M, 4] xyxy, ``"labels"``: [M] and optionally ``"difficult"``: [M] bool (default
        all False).
      num_classes: if given, the classes are ``0 .. num_classes - 1`` and a larger label
        is an error; otherwise the classes are the labels that occur in either input.
      iou_threshold: a detection matches when its IoU is at least this, as in the devkit
        (``ovmax>=VOCopts.minoverlap``), and overlaps its gt (IoU > 0, so at threshold 0
        a detection that touches no gt is still a false positive).
      pixel_convention: if True, a box spans ``x_max - x_min + 1`` pixels, as in the
        devkit; if False (default) IoU is continuous.
      use_07_metric: the VOC2007 devkit's 11-point AP; False: the area under the
        monotone precision envelope at every recall point (VOC2010+).

    Returns:
      A dict with these keys

      * ``"mAP"``: mean AP over the classes with at least one non-difficult ground
        truth; NaN if there is none.
      * ``"per_class_ap"``: ``{class: AP}`` for every class; NaN for a class without
        (non-difficult) ground truths, which is left out of the mean. A class with
        ground truths but no detections has AP 0.
      * ``"recall"`` and ``"per_class_recall"``: the recall after the last detection of
        each class, and its mean over classes.
      * ``"pr_curves"``: ``{class: (recall [D], precision [D])}``, the raw ``voc_eval``
        curves (one point per detection of the class, in score order, before the
        envelope), for the classes with non-difficult ground truths.

    Raises:
      ValueError: inputs of different lengths, a missing field, boxes not [N, 4], fields
        of one image with different lengths, non-finite boxes, NaN scores, negative or
        out-of-range labels, an ``"area"`` field; the message names the image and field.
    """
    if not isinstance(iou_threshold, (int, float, np.number)) or not (
        0.0 <= float(iou_threshold) <= 1.0
    ):
        fail(_OP, "iou_threshold in [0, 1]", repr(iou_threshold))
    dets, det_class, gts, gt_class, classes = _prepare(predictions, ground_truths, num_classes)
    if gts.area is not None:
        fail(_OP, "no 'area' in ground_truths with a VOC protocol", "an 'area' field")
    result = _evaluate_voc(
        dets,
        det_class,
        gts,
        gt_class,
        len(classes),
        float(iou_threshold),
        bool(pixel_convention),
        use_07_metric=bool(use_07_metric),
    )
    return _name_classes(result, classes)


def _evaluate_voc(
    dets: _Boxes,
    det_class: np.ndarray,
    gts: _Boxes,
    gt_class: np.ndarray,
    num_classes: int,
    iou_threshold: float,
    pixel_convention: bool,
    *,
    use_07_metric: bool,
) -> dict[str, Any]:
    num_images = int(max(dets.image.max(initial=-1), gts.image.max(initial=-1))) + 1
    det_group = dets.image + det_class * num_images
    gt_group = gts.image + gt_class * num_images
    # The devkit's order (and voc_eval's): per class, descending score; ties keep input
    # order.
    order = np.lexsort((-dets.scores, det_class))
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)

    det_index, gt_index = _pairs(det_group, gt_group)
    iou = _paired_iou(dets.boxes[det_index], gts.boxes[gt_index], pixel_convention)
    best_iou = np.full(det_group.size, -np.inf)
    best_gt = np.zeros(det_group.size, dtype=np.int64)
    if iou.size:
        starts = _segment_starts(det_index)
        best_iou[det_index[starts]] = np.maximum.reduceat(iou, starts)
        # The first gt that reaches the maximum: the devkit's `if ov>ovmax`, voc_eval's
        # np.argmax.
        at_max = np.flatnonzero(iou == best_iou[det_index])
        first = at_max[_segment_starts(det_index[at_max])]
        best_gt[det_index[first]] = gt_index[first]

    # VOCevaldet.m takes the overlap of intersecting boxes only (`if iw>0 & ih>0`) and
    # matches at `ovmax>=VOCopts.minoverlap`; py-faster-rcnn's voc_eval.py has
    # `ovmax > ovthresh`, which loses exact ties, common on integer pixel boxes.
    hit = (best_iou >= iou_threshold) & (best_iou > 0.0)
    on_difficult = hit & gts.difficult[best_gt] if gts.difficult.size else np.zeros_like(hit)
    candidate = np.flatnonzero(hit & ~on_difficult)
    by_gt = candidate[np.lexsort((rank[candidate], best_gt[candidate]))]
    tp = np.zeros(det_group.size, dtype=bool)
    tp[by_gt[_segment_starts(best_gt[by_gt])]] = True
    fp = ~tp & ~on_difficult

    num_pos = np.bincount(gt_class[~gts.difficult], minlength=num_classes)
    class_starts = np.searchsorted(det_class[order], np.arange(num_classes + 1))
    ap = np.full(num_classes, np.nan)
    recall = np.full(num_classes, np.nan)
    curves = {}
    for k in range(num_classes):
        if num_pos[k] == 0:
            continue
        ranked = order[class_starts[k] : class_starts[k + 1]]
        tp_sum = np.cumsum(tp[ranked]).astype(np.float64)
        fp_sum = np.cumsum(fp[ranked]).astype(np.float64)
        rec = tp_sum / float(num_pos[k])
        prec = tp_sum / np.maximum(tp_sum + fp_sum, np.finfo(np.float64).eps)
        ap[k] = _voc_ap(rec, prec, use_07_metric)
        recall[k] = rec[-1] if rec.size else 0.0
        curves[k] = (rec, prec)
    return {
        "mAP": _mean_defined(ap),
        "per_class_ap": ap,
        "recall": _mean_defined(recall),
        "per_class_recall": recall,
        "pr_curves": curves,
    }


def _voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool) -> float:
    """py-faster-rcnn's ``voc_ap`` on recall/precision curves [D] (recall nondecreasing)."""
    if use_07_metric:
        if rec.size == 0:
            return 0.0
        # Max precision at recall >= t; recall only grows, so that set is a suffix.
        envelope = np.maximum.accumulate(prec[::-1])[::-1]
        first = np.searchsorted(rec, np.arange(0.0, 1.1, 0.1), side="left")
        inside = first < rec.size
        return float(np.sum(np.where(inside, envelope[np.minimum(first, rec.size - 1)], 0.0)) / 11)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.maximum.accumulate(np.concatenate([[0.0], prec, [0.0]])[::-1])[::-1]
    change = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[change + 1] - mrec[change]) * mpre[change + 1]))
