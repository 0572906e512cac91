"""COCO average precision: pycocotools' ``COCOeval`` for ``iouType="bbox"``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxheads.metrics._common import (
    _area,
    _Boxes,
    _name_classes,
    _paired_iou,
    _pairs,
    _prepare,
    _segment_starts,
)

# pycocotools `Params.setDetParams`: linspace, not arange, whose points drift.
_COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


_COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)


_COCO_AREA_RANGES = np.array([[0.0, 1e5**2], [0.0, 32.0**2], [32.0**2, 96.0**2], [96.0**2, 1e5**2]])


_COCO_MAX_DETS = (1, 10, 100)


def evaluate_coco(
    predictions: Sequence[Mapping[str, Any]],
    ground_truths: Sequence[Mapping[str, Any]],
    *,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """COCO average precision: pycocotools' ``COCOeval`` for ``iouType="bbox"``.

    Matching: at most 100 detections per image *and class* are kept (pycocotools'
    cut), then, per image and class in score order, each detection takes the free gt
    of highest IoU >= the threshold (the last one on ties), non-ignored gts first. A
    difficult gt is an *ignored* non-crowd gt (pycocotools' ``_ignore`` flag): it can be
    matched once, and the detection matched to it counts neither way. A detection's
    area is pycocotools' ``w·h``: a box inverted along one axis has a negative area,
    outside every area range, so it never counts (it matches nothing: IoU 0).

    Args:
      predictions: as `evaluate_voc`.
      ground_truths: as `evaluate_voc`, and optionally ``"area"``: [M] (default the box
        area ``w * h``; COCO json files carry mask areas here).
      num_classes: as `evaluate_voc`.

    Returns:
      * ``"mAP"``, ``"mAP50"``, ``"mAP75"``, ``"mAP_small"``, ``"mAP_medium"``,
        ``"mAP_large"``: ``COCOeval.stats[0:6]`` (NaN where undefined).
      * ``"recall"``: average recall at 100 detections (``stats[8]``).
      * ``"per_class_ap"``, ``"per_class_recall"``: ``{class: value}`` (means over the IoU
        thresholds; NaN for a class without ground truths).
      * ``"coco_stats"``: [12] float64, exactly pycocotools' ``COCOeval.stats``
        (including its -1 for undefined entries).

    Raises:
      ValueError: as `evaluate_voc`, an ``"area"`` field aside.
    """
    dets, det_class, gts, gt_class, classes = _prepare(predictions, ground_truths, num_classes)
    result = _evaluate_coco(dets, det_class, gts, gt_class, len(classes))
    return _name_classes(result, classes)


def _evaluate_coco(
    dets: _Boxes, det_class: np.ndarray, gts: _Boxes, gt_class: np.ndarray, num_classes: int
) -> dict[str, Any]:
    num_t, num_a = len(_COCO_IOU_THRESHOLDS), len(_COCO_AREA_RANGES)
    max_dets = _COCO_MAX_DETS[-1]
    num_images = int(max(dets.image.max(initial=-1), gts.image.max(initial=-1))) + 1

    # Per image and class: descending score, ties in input order; keep the first 100.
    group = dets.image + det_class * num_images
    order = np.lexsort((-dets.scores, group))
    rank = np.arange(order.size) - np.searchsorted(group[order], group[order], side="left")
    keep = order[rank < max_dets]
    rank = rank[rank < max_dets]
    boxes, scores, det_class, group = (
        dets.boxes[keep],
        dets.scores[keep],
        det_class[keep],
        group[keep],
    )

    gt_area = _area(gts.boxes) if gts.area is None else gts.area
    lo, hi = _COCO_AREA_RANGES[:, :1], _COCO_AREA_RANGES[:, 1:]
    gt_ignored = gts.difficult[None, :] | (gt_area[None, :] < lo) | (gt_area[None, :] > hi)
    # pycocotools' area of a result box, w·h of its xywh: negative for a box inverted along
    # one axis (outside every area range: never a false positive), positive along both.
    det_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    det_outside = (det_area[None, :] < lo) | (det_area[None, :] > hi)  # [A, D]

    matched = _coco_match(
        boxes, group, rank, gts.boxes, gts.image + gt_class * num_images, gt_ignored
    )
    is_matched = matched >= 0  # [T, A, D]
    # Index -1 (unmatched) reads the appended False column.
    padded = np.concatenate([gt_ignored, np.zeros((num_a, 1), dtype=bool)], axis=1)
    det_ignored = np.where(
        is_matched, padded[np.arange(num_a)[None, :, None], matched], det_outside[None, :, :]
    )
    tp = is_matched & ~det_ignored
    fp = ~is_matched & ~det_ignored

    num_pos = np.stack([np.bincount(gt_class[~ig], minlength=num_classes) for ig in gt_ignored])
    precision = -np.ones((num_t, len(_COCO_RECALL_THRESHOLDS), num_classes, num_a))
    recall = -np.ones((num_t, num_classes, num_a, len(_COCO_MAX_DETS)))
    # Across images: descending score, ties by image, then by the per-image order.
    by_class = np.lexsort((-scores, det_class))
    class_starts = np.searchsorted(det_class[by_class], np.arange(num_classes + 1))
    for k in range(num_classes):
        ranked = by_class[class_starts[k] : class_starts[k + 1]]
        npig = num_pos[:, k].astype(np.float64)  # [A]
        defined = npig > 0
        if not defined.any():
            continue
        tp_k, fp_k = tp[:, :, ranked], fp[:, :, ranked]  # [T, A, n]
        for m, limit in enumerate(_COCO_MAX_DETS):
            found = (tp_k & (rank[ranked] < limit)).sum(axis=-1)
            recall[:, k, defined, m] = found[:, defined] / npig[defined]
        precision[:, :, k, defined] = 0.0
        if ranked.size == 0:
            continue
        tp_sum = np.cumsum(tp_k, axis=-1).astype(np.float64)
        fp_sum = np.cumsum(fp_k, axis=-1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            rc = tp_sum / npig[None, :, None]
        pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
        pr = np.maximum.accumulate(pr[..., ::-1], axis=-1)[..., ::-1]
        for a in np.flatnonzero(defined):
            for t in range(num_t):
                at = np.searchsorted(rc[t, a], _COCO_RECALL_THRESHOLDS, side="left")
                inside = at < ranked.size
                precision[t, inside, k, a] = pr[t, a, at[inside]]

    stats = _coco_stats(precision, recall)
    per_class_ap = np.where(num_pos[0] > 0, precision[:, :, :, 0].mean(axis=(0, 1)), np.nan)
    per_class_recall = np.where(num_pos[0] > 0, recall[:, :, 0, -1].mean(axis=0), np.nan)
    named = {
        "mAP": stats[0],
        "mAP50": stats[1],
        "mAP75": stats[2],
        "mAP_small": stats[3],
        "mAP_medium": stats[4],
        "mAP_large": stats[5],
        "recall": stats[8],
    }
    result: dict[str, Any] = {k: float("nan") if v == -1 else float(v) for k, v in named.items()}
    result.update(per_class_ap=per_class_ap, per_class_recall=per_class_recall, coco_stats=stats)
    return result


def _coco_match(
    det_boxes: np.ndarray,
    det_group: np.ndarray,
    det_rank: np.ndarray,
    gt_boxes: np.ndarray,
    gt_group: np.ndarray,
    gt_ignored: np.ndarray,
) -> np.ndarray:
    """pycocotools' greedy matching, for all images, thresholds and area ranges at once.

    Args:
      det_boxes: [D, 4] xyxy, at most 100 per image and class.
      det_group: [D] image-and-class key of each detection.
      det_rank: [D] rank of each detection in its group (0 = highest score).
      gt_boxes: [G, 4] xyxy.
      gt_group: [G] image-and-class key of each gt.
      gt_ignored: [A, G] bool, the ignore flag of each gt for each area range.

    Returns:
      [T, A, D] int64 index of the gt each detection is matched to, or -1.

    The loop runs over ranks (at most 100): at rank r every group's r-th detection
    picks its gt, all groups, thresholds and area ranges at once.
    """
    num_t, num_a = len(_COCO_IOU_THRESHOLDS), gt_ignored.shape[0]
    matched = np.full((num_t, num_a, det_group.size), -1, dtype=np.int64)
    det_index, gt_index = _pairs(det_group, gt_group)
    if det_index.size == 0:
        return matched
    iou = _paired_iou(det_boxes[det_index], gt_boxes[gt_index], pixel_convention=False)
    # Within a detection, ascending (IoU, gt order): a higher position is a better match,
    # and on equal IoU the later gt wins, as pycocotools' `if iou < best: continue`.
    order = np.lexsort((gt_index, iou, det_index, det_rank[det_index]))
    det_index, gt_index, iou = det_index[order], gt_index[order], iou[order]
    det_starts = _segment_starts(det_index)
    per_det = np.diff(np.append(det_starts, det_index.size))
    position = np.arange(det_index.size) - np.repeat(det_starts, per_det)
    stride = int(per_det.max()) + 1
    # pycocotools starts from min(t, 1 - 1e-10) and matches IoU >= that.
    thresholds = np.minimum(_COCO_IOU_THRESHOLDS, 1 - 1e-10)[:, None, None]
    preferred = ~gt_ignored  # non-ignored gts win over ignored ones

    taken = np.zeros((num_t, num_a, gt_boxes.shape[0]), dtype=bool)
    pair_rank = det_rank[det_index]
    rank_bounds = np.searchsorted(pair_rank, np.arange(int(pair_rank.max()) + 2))
    start_bounds = np.searchsorted(det_starts, rank_bounds)
    for r in range(rank_bounds.size - 1):
        lo, hi = rank_bounds[r], rank_bounds[r + 1]
        if lo == hi:
            continue
        gt_r = gt_index[lo:hi]
        candidate = (iou[lo:hi] >= thresholds) & ~taken[:, :, gt_r]
        key = np.where(candidate, position[lo:hi] + stride * preferred[:, gt_r], -1)
        starts = det_starts[start_bounds[r] : start_bounds[r + 1]]
        best = np.maximum.reduceat(key, starts - lo, axis=-1)  # [T, A, detections at rank r]
        t, a, d = np.nonzero(best >= 0)
        pair = starts[d] + best[t, a, d] % stride
        taken[t, a, gt_index[pair]] = True
        matched[t, a, det_index[pair]] = gt_index[pair]
    return matched


def _coco_stats(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """pycocotools ``summarize`` for bbox: [T, R, K, A] precision, [T, K, A, M] recall."""

    def mean(s: np.ndarray) -> float:
        s = s[s > -1]
        return float(np.mean(s)) if s.size else -1.0

    stats = [
        mean(precision[..., 0]),
        mean(precision[0, ..., 0]),
        mean(precision[5, ..., 0]),
        *(mean(precision[..., a]) for a in (1, 2, 3)),
        *(mean(recall[:, :, 0, m]) for m in range(3)),
        *(mean(recall[:, :, a, 2]) for a in (1, 2, 3)),
    ]
    return np.asarray(stats, dtype=np.float64)
