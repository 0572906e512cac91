"""Darknet's ``do_nms_sort`` (``src/box.c``) in float32 NumPy, and the boxes it leaves.

For each class ``k`` the detections are sorted by ``prob[:, k]`` (descending) and each
one still holding a non-zero ``prob[:, k]`` zeroes that class's probability in every
later detection whose IoU with it (darknet's ``box_iou`` on ``(cx, cy, w, h)``, in
float32) exceeds the threshold. Detections with objectness 0 take no part. Darknet
sorts with ``qsort``, whose order among equal probabilities is unspecified; here
ties keep darknet's detection order.

>>> boxes = np.array([[.5, .5, .2, .2], [.51, .5, .2, .2], [.2, .2, .1, .1]], np.float32)
>>> probs = np.array([[.9], [.8], [.7]], np.float32)
>>> do_nms_sort(boxes, probs, .45)[:, 0].tolist()
[0.8999999761581421, 0.0, 0.699999988079071]
"""

from __future__ import annotations

import numpy as np

from jaxheads._checks import fail

__all__ = ["box_iou_matrix", "do_nms_sort", "surviving_detections"]


def box_iou_matrix(boxes: np.ndarray) -> np.ndarray:
    """``[M, M]`` darknet ``box_iou`` between ``(cx, cy, w, h)`` boxes, in float32.

    ``overlap`` is ``min(right) - max(left)`` per axis; a negative overlap gives 0
    intersection; ``union = w₁h₁ + w₂h₂ - inter``; ``0 / 0`` gives NaN (never above a
    threshold), as in C.
    """
    b = np.asarray(boxes, np.float32)
    x, y, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    two = np.float32(2)
    left, right = x - w / two, x + w / two
    top, bottom = y - h / two, y + h / two
    ow = np.minimum(right[:, None], right[None, :]) - np.maximum(left[:, None], left[None, :])
    oh = np.minimum(bottom[:, None], bottom[None, :]) - np.maximum(top[:, None], top[None, :])
    inter = np.where((ow < 0) | (oh < 0), np.float32(0), ow * oh)
    area = w * h
    union = (area[:, None] + area[None, :]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def do_nms_sort(
    boxes: np.ndarray, probs: np.ndarray, thresh: float, objectness: np.ndarray | None = None
) -> np.ndarray:
    """Darknet's ``do_nms_sort``: per-class greedy suppression of ``probs``.

    Args:
      boxes: ``[N, 4]`` ``(cx, cy, w, h)`` (any consistent units).
      probs: ``[N, C]`` per-class probabilities, 0 where below darknet's ``thresh``.
      thresh: the IoU above which a lower-probability box is suppressed (darknet's
        ``nms``, .45).
      objectness: ``[N]``; detections where it is 0 are left out, as darknet moves them
        past ``total``. None keeps every detection.

    Returns:
      ``[N, C]`` float32: ``probs`` with the suppressed entries set to 0.
    """
    boxes = np.asarray(boxes, np.float32)
    probs = np.array(probs, np.float32)
    if (
        boxes.ndim != 2
        or boxes.shape[1] != 4
        or probs.ndim != 2
        or probs.shape[0] != boxes.shape[0]
    ):
        fail(
            "do_nms_sort",
            "boxes [N, 4] and probs [N, C] with the same N",
            f"boxes {boxes.shape}, probs {probs.shape}",
        )
    active = np.ones(len(boxes), bool) if objectness is None else np.asarray(objectness) != 0
    t = np.float32(thresh)
    for k in range(probs.shape[1]):
        # Only non-zero probabilities can suppress; zeroing a zero changes nothing.
        cand = np.flatnonzero(active & (probs[:, k] != 0))
        if cand.size < 2:
            continue
        cand = cand[np.argsort(-probs[cand, k], kind="stable")]
        over = box_iou_matrix(boxes[cand]) > t
        alive = np.ones(cand.size, bool)
        for i in range(cand.size):
            if alive[i]:
                alive[i + 1 :] &= ~over[i, i + 1 :]
        probs[cand[~alive], k] = 0
    return probs


def surviving_detections(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``(detection, class)`` pairs with a non-zero probability, best first.

    Darknet reports every class of every box whose probability is above ``thresh``
    (`jaxheads.predict.region.class_probabilities` left the others at 0).

    Returns:
      ``(detection indices [K], class ids [K], probabilities [K])``, ordered by
      probability (descending), then detection, then class.
    """
    probs = np.asarray(probs, np.float32)
    det, cls = np.nonzero(probs)
    score = probs[det, cls]
    order = np.lexsort((cls, det, -score))
    return det[order], cls[order].astype(np.int32), score[order]
