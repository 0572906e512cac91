"""What both protocols share: the checked, flattened inputs and box areas and IoUs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxheads._checks import fail

_OP = "evaluate_detections"


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


def _mean_defined(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(np.mean(defined)) if defined.size else float("nan")
