"""Detection average precision: PASCAL VOC (2007 and 2010+) and COCO, in vectorised numpy.

`evaluate_voc` and `evaluate_coco` score a data set of per-image predictions against
per-image ground truths, each with its protocol's options and keys;
`evaluate_detections` picks one by name. It is host-side bookkeeping (sorting, greedy
matching, cumulative sums), so it is written in float64 numpy rather than JAX: the
matching is sequential and ragged, and parity with the reference tools (the VOC
devkit's ``voc_eval`` and pycocotools' ``COCOeval``) needs float64. Inputs may be
numpy arrays, JAX arrays or nested lists.

Boxes are ``xyxy`` (see `jaxheads.boxes`). As there, a degenerate box (zero width or
height) has area 0 and an inverted box (``x_max < x_min`` or ``y_max < y_min``) has
IoU 0 with everything, in both pixel conventions. Its area is 0, except a detection's
under COCO, which is pycocotools' signed ``w·h``.

Protocols:
  * ``"voc07"``: matching of py-faster-rcnn's ``voc_eval``; AP is the 11-point
    interpolated AP of the VOC2007 devkit (thresholds ``np.arange(0, 1.1, 0.1)``, the
    devkit port's values, so ``0.30000000000000004`` and not ``0.3``).
  * ``"voc2010"``: the same matching; AP is the area under the monotone precision
    envelope at every recall point (``voc_ap(use_07_metric=False)``).
  * ``"coco"``: pycocotools ``COCOeval`` for ``iouType="bbox"``: IoU thresholds
    ``.50:.05:.95``, 101 recall points, at most 100 detections per image *and class*
    (pycocotools cuts per image and category), area ranges ``[0, 32**2, 96**2, 1e5**2]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxheads._checks import fail

__all__ = ["evaluate_coco", "evaluate_detections", "evaluate_voc"]

_OP = "evaluate_detections"
_PROTOCOLS = ("voc07", "voc2010", "coco")

# pycocotools `Params.setDetParams`: linspace, not arange, whose points drift.
_COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
_COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
_COCO_AREA_RANGES = np.array([[0.0, 1e5**2], [0.0, 32.0**2], [32.0**2, 96.0**2], [96.0**2, 1e5**2]])
_COCO_MAX_DETS = (1, 10, 100)


class _Boxes(NamedTuple):
    """Every image's boxes concatenated (image-major, input order within an image).

    Attributes:
      boxes: [N, 4] float64 xyxy.
      labels: [N] int64 class labels as given.
      image: [N] int64 index of the image each box belongs to.
      scores: [N] float64 (predictions) or None (ground truths).
      difficult: [N] bool (ground truths) or None (predictions).
      area: [N] float64 area given with the ground truths, or None.
    """

    boxes: np.ndarray
    labels: np.ndarray
    image: np.ndarray
    scores: np.ndarray | None
    difficult: np.ndarray | None
    area: np.ndarray | None


def evaluate_detections(
    predictions: Sequence[Mapping[str, Any]],
    ground_truths: Sequence[Mapping[str, Any]],
    *,
    protocol: str = "voc07",
    num_classes: int | None = None,
    iou_threshold: float | None = None,
    pixel_convention: bool = False,
) -> dict[str, Any]:
    """Average precision of a detector over a data set: `evaluate_voc` or `evaluate_coco`.

    Args:
      predictions, ground_truths, num_classes: see `evaluate_voc` and `evaluate_coco`.
      protocol: ``"voc07"`` (`evaluate_voc` with ``use_07_metric=True``), ``"voc2010"``
        (``use_07_metric=False``) or ``"coco"`` (`evaluate_coco`).
      iou_threshold, pixel_convention: VOC only (see `evaluate_voc`); an error with COCO.

    Returns:
      The protocol's dict (the keys each function documents).

    Example:
      >>> box = [[0.0, 0.0, 10.0, 10.0]]
      >>> pred = [{"boxes": box, "scores": [0.9], "labels": [0]}]
      >>> gt = [{"boxes": box, "labels": [0]}]
      >>> evaluate_detections(pred, gt, protocol="voc07")["mAP"]
      1.0
      >>> round(evaluate_detections(pred, gt, protocol="coco")["mAP"], 6)  # eps as pycocotools
      1.0
    """
    if protocol not in _PROTOCOLS:
        fail(_OP, f"protocol in {_PROTOCOLS}", repr(protocol))
    if protocol == "coco":
        if iou_threshold is not None:
            fail(_OP, "no iou_threshold with protocol 'coco' (it uses .50:.05:.95)", iou_threshold)
        if pixel_convention:
            fail(_OP, "pixel_convention=False with protocol 'coco'", pixel_convention)
        return evaluate_coco(predictions, ground_truths, num_classes=num_classes)
    return evaluate_voc(
        predictions,
        ground_truths,
        num_classes=num_classes,
        iou_threshold=0.5 if iou_threshold is None else iou_threshold,
        pixel_convention=pixel_convention,
        use_07_metric=protocol == "voc07",
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
    """PASCAL VOC average precision (the devkit's ``voc_eval``).

    Matching: the detections of a class are taken in descending score order (ties in
    input order, image by image); each is compared with the gt of highest IoU among
    *all* gts of its image and class (the first one on ties). As in ``voc_eval``, a
    detection whose best gt is already taken is a false positive even if another, free
    gt overlaps it enough. Above the threshold it is a true positive if that gt is free,
    a duplicate (false positive) if not, and neither if that gt is difficult.

    Args:
      predictions: one dict per image with ``"boxes"``: [N, 4] xyxy, ``"scores"``: [N]
        and ``"labels"``: [N] non-negative ints. An image without detections may give
        empty arrays (``[]`` is read as [0, 4] boxes).
      ground_truths: one dict per image, aligned with ``predictions``, with ``"boxes"``:
        [M, 4] xyxy, ``"labels"``: [M] and optionally ``"difficult"``: [M] bool (default
        all False).
      num_classes: if given, the classes are ``0 .. num_classes - 1`` and a larger label
        is an error; otherwise the classes are the labels that occur in either input.
      iou_threshold: a detection matches when its IoU is strictly greater, as in
        ``voc_eval``.
      pixel_convention: if True, a box spans ``x_max - x_min + 1`` pixels, as in the
        devkit; if False (default) IoU is continuous.
      use_07_metric: the VOC2007 devkit's 11-point AP; False: the area under the
        monotone precision envelope at every recall point (VOC2010+).

    Returns:
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


def _prepare(predictions, ground_truths, num_classes):
    """Checked, flattened inputs: ``(dets, det_class, gts, gt_class, classes)``."""
    if num_classes is not None:
        if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool):
            fail(_OP, "num_classes to be a positive integer or None", repr(num_classes))
        if num_classes < 1:
            fail(_OP, "num_classes to be a positive integer or None", repr(num_classes))
    for name, value in (("predictions", predictions), ("ground_truths", ground_truths)):
        if isinstance(value, Mapping) or not isinstance(value, Sequence):
            fail(_OP, f"{name} to be a list of dicts (one per image)", type(value).__name__)
    if len(predictions) != len(ground_truths):
        fail(
            _OP,
            "predictions and ground_truths of the same length (one entry per image)",
            f"{len(predictions)} predictions and {len(ground_truths)} ground truths",
        )
    dets = _flatten("predictions", predictions)
    gts = _flatten("ground_truths", ground_truths)
    if num_classes is None:
        classes = np.unique(np.concatenate([dets.labels, gts.labels]))
    else:
        classes = np.arange(int(num_classes), dtype=np.int64)
        for name, flat in (("predictions", dets), ("ground_truths", gts)):
            bad = np.flatnonzero(flat.labels >= num_classes)
            if bad.size:
                i = bad[0]
                fail(
                    _OP,
                    f"{name}[{flat.image[i]}]['labels'] < num_classes={num_classes}",
                    f"label {flat.labels[i]}",
                )
    det_class = np.searchsorted(classes, dets.labels)
    gt_class = np.searchsorted(classes, gts.labels)
    return dets, det_class, gts, gt_class, classes


def _name_classes(result: dict[str, Any], classes: np.ndarray) -> dict[str, Any]:
    """Turns per-class arrays indexed 0..K-1 into ``{label: value}`` dicts."""
    out = dict(result)
    names = [int(c) for c in classes]
    for key in ("per_class_ap", "per_class_recall"):
        out[key] = {name: float(v) for name, v in zip(names, result[key], strict=True)}
    if "pr_curves" in result:
        out["pr_curves"] = {names[k]: curve for k, curve in result["pr_curves"].items()}
    return out


# --------------------------------------------------------------------------- inputs


def _as_array(which: str, i: int, record: Mapping[str, Any], key: str) -> np.ndarray:
    if key not in record:
        fail(_OP, f"{which}[{i}] to have a {key!r} entry", f"keys {sorted(map(str, record))}")
    try:
        array = np.asarray(record[key])
    except (TypeError, ValueError) as error:
        fail(
            _OP, f"{which}[{i}][{key!r}] to be an array", f"{type(record[key]).__name__} ({error})"
        )
    # dtype.kind, not np.issubdtype: this runs once per field and image.
    if array.dtype.kind not in ("iufb" if key == "difficult" else "iuf") and array.size:
        fail(_OP, f"{which}[{i}][{key!r}] with a numeric dtype", f"dtype {array.dtype}")
    return array


def _flatten(which: str, records: Sequence[Mapping[str, Any]]) -> _Boxes:
    """Validates one input list and concatenates its images, image-major."""
    is_pred = which == "predictions"
    keys = ("labels", "scores") if is_pred else ("labels", "difficult", "area")
    columns: dict[str, list[np.ndarray]] = {key: [] for key in ("boxes", *keys)}
    counts = []
    with_area = None
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            fail(_OP, f"{which}[{i}] to be a dict", type(record).__name__)
        boxes = _as_array(which, i, record, "boxes")
        if boxes.size == 0 and boxes.ndim == 1:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            fail(_OP, f"{which}[{i}]['boxes'] of shape (N, 4) (xyxy)", f"shape {boxes.shape}")
        n = boxes.shape[0]
        counts.append(n)
        columns["boxes"].append(boxes)
        if not is_pred:
            if with_area is None:
                with_area = "area" in record
            elif with_area != ("area" in record):
                fail(_OP, f"'area' in all of {which} or in none", f"a mismatch at image {i}")
        for key in keys:
            if key == "difficult" and key not in record:
                columns[key].append(np.zeros(n, dtype=bool))
                continue
            if key == "area" and not with_area:
                continue
            array = _as_array(which, i, record, key)
            if array.shape != (n,) and not (array.size == n == 0 and array.ndim == 1):
                fail(_OP, f"{which}[{i}][{key!r}] of shape ({n},), one per box", array.shape)
            if key == "labels" and n and array.dtype.kind not in "iu":
                fail(_OP, f"{which}[{i}]['labels'] of an integer dtype", f"dtype {array.dtype}")
            columns[key].append(array)

    def joined(key: str, dtype: type, shape: tuple[int, ...] = ()) -> np.ndarray:
        if not columns[key]:
            return np.zeros((0, *shape), dtype=dtype)
        return np.concatenate(columns[key]).astype(dtype, copy=False)

    image = np.repeat(np.arange(len(counts), dtype=np.int64), np.asarray(counts, dtype=np.int64))
    boxes = joined("boxes", np.float64, (4,))
    labels = joined("labels", np.int64)
    _check_all(which, "boxes", image, ~np.isfinite(boxes).all(axis=1), "finite coordinates")
    _check_all(which, "labels", image, labels < 0, "non-negative labels")
    scores = difficult = area = None
    if is_pred:
        scores = joined("scores", np.float64)
        _check_all(which, "scores", image, np.isnan(scores), "no NaN")
    else:
        flags = joined("difficult", np.float64)
        _check_all(which, "difficult", image, (flags != 0) & (flags != 1), "bools (0 or 1)")
        difficult = flags == 1
        if with_area:
            area = joined("area", np.float64)
            _check_all(
                which, "area", image, ~(np.isfinite(area) & (area >= 0)), "finite areas >= 0"
            )
    return _Boxes(boxes, labels, image, scores, difficult, area)


def _check_all(which: str, key: str, image: np.ndarray, bad: np.ndarray, what: str) -> None:
    """Fails on the first flagged entry, naming its image."""
    if bad.any():
        i = int(np.argmax(bad))
        fail(_OP, f"{which}[{image[i]}][{key!r}] with {what}", f"{int(bad.sum())} bad entries")


# ----------------------------------------------------------------------- geometry


def _pairs(det_group: np.ndarray, gt_group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (detection, gt) index pair of the same image and class.

    Pairs come detection-major (ascending detection index) and, within a detection,
    with its gts in input order.
    """
    gt_order = np.argsort(gt_group, kind="stable")
    sorted_groups = gt_group[gt_order]
    start = np.searchsorted(sorted_groups, det_group, side="left")
    counts = np.searchsorted(sorted_groups, det_group, side="right") - start
    det_index = np.repeat(np.arange(det_group.size), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    gt_index = gt_order[np.repeat(start, counts) + np.arange(det_index.size) - first]
    return det_index, gt_index


def _widths(boxes: np.ndarray, extra: float) -> tuple[np.ndarray, np.ndarray]:
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    w = np.where(inverted, 0.0, np.maximum(boxes[:, 2] - boxes[:, 0] + extra, 0.0))
    h = np.where(inverted, 0.0, np.maximum(boxes[:, 3] - boxes[:, 1] + extra, 0.0))
    return w, h


def _area(boxes: np.ndarray, extra: float = 0.0) -> np.ndarray:
    w, h = _widths(boxes, extra)
    return w * h


def _paired_iou(det: np.ndarray, gt: np.ndarray, pixel_convention: bool) -> np.ndarray:
    """IoU of det[p] with gt[p], [P, 4] each -> [P]; det area first, as both references."""
    extra = 1.0 if pixel_convention else 0.0
    iw = np.maximum(np.minimum(det[:, 2], gt[:, 2]) - np.maximum(det[:, 0], gt[:, 0]) + extra, 0.0)
    ih = np.maximum(np.minimum(det[:, 3], gt[:, 3]) - np.maximum(det[:, 1], gt[:, 1]) + extra, 0.0)
    inter = iw * ih
    union = _area(det, extra) + _area(gt, extra) - inter
    positive = union > 0
    iou = np.where(positive, inter / np.where(positive, union, 1.0), 0.0)
    det_w, det_h = _widths(det, extra)
    gt_w, gt_h = _widths(gt, extra)
    valid = (det_w > 0) & (det_h > 0) & (gt_w > 0) & (gt_h > 0)
    return np.where(valid, iou, 0.0)


def _segment_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a sorted array."""
    if sorted_keys.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))


# ---------------------------------------------------------------------------- VOC


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
    # voc_eval's order: per class, descending score; ties keep input order.
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
        # np.argmax in voc_eval: the first gt that reaches the maximum.
        at_max = np.flatnonzero(iou == best_iou[det_index])
        first = at_max[_segment_starts(det_index[at_max])]
        best_gt[det_index[first]] = gt_index[first]

    hit = best_iou > iou_threshold
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


def _mean_defined(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(np.mean(defined)) if defined.size else float("nan")


# --------------------------------------------------------------------------- COCO


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
