"""YOLOv2 dimension clusters: anchor shapes by k-means on box widths and heights.

YOLOv2 (Redmon & Farhadi, 2017, section "Dimension Clusters") runs k-means on
the training boxes' (width, height) with the distance ``1 - IoU(box, centroid)``
of boxes that share a centre, so that the clusters do not favour large boxes as
a Euclidean distance would. Centroids are updated as the mean of their members,
as in the paper and in darknet's / AlexeyAB's ``calc_anchors``. The quality
measure is the mean, over boxes, of the best IoU with any anchor: the "Avg IOU"
of the paper's Table 1 (61.0 for 5 clusters on VOC 2007, against 60.9 for the 9
hand-picked Faster R-CNN anchors).

These run once, offline, on a dataset's boxes: plain NumPy driving
`jaxheads.boxes.shape_iou`, not meant for `jit`. Units are whatever the boxes
use (pixels, or fractions of the image as in darknet, or grid cells): the IoU
is scale-free, and the anchors come back in the same unit.
"""

from __future__ import annotations

import numpy as np

from jaxheads._checks import check_positive_int, fail
from jaxheads.boxes import shape_iou


def _as_wh(op: str, name: str, wh) -> np.ndarray:
    """Validates [N, 2] positive finite widths and heights; returns float64 NumPy."""
    wh = np.asarray(wh)
    if wh.ndim != 2 or wh.shape[1] != 2:
        fail(op, f"{name} of shape (*, 2) (width, height)", f"shape {wh.shape}")
    if not (np.issubdtype(wh.dtype, np.floating) or np.issubdtype(wh.dtype, np.integer)):
        fail(op, f"{name} with a real dtype", f"dtype {wh.dtype}")
    wh = wh.astype(np.float64)
    if wh.shape[0] == 0:
        fail(op, f"at least one row in {name}", "shape (0, 2)")
    if not np.all(np.isfinite(wh)):
        fail(op, f"finite {name}", "a NaN or infinite value")
    if not np.all(wh > 0):
        fail(op, f"positive widths and heights in {name}", f"minimum {wh.min()!r}")
    return wh


def _ious(wh: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """[N, 2], [K, 2] -> [N, K] IoU of centre-aligned boxes."""
    return np.asarray(shape_iou(wh[:, None, :], centroids[None, :, :]), dtype=np.float64)


def _kmeans_pp_init(wh: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding under the 1 - IoU distance; returns [k] row indices."""
    n = wh.shape[0]
    chosen = [int(rng.integers(n))]
    distance = 1.0 - _ious(wh, wh[chosen])[:, 0]
    for _ in range(1, k):
        weights = np.square(np.maximum(distance, 0.0))
        weights[chosen] = 0.0
        total = weights.sum()
        if total > 0:
            nxt = int(rng.choice(n, p=weights / total))
        else:
            # Distinct shapes whose IoU rounds to 1: any shape not yet chosen will do.
            fresh = ~(wh[:, None, :] == wh[chosen][None, :, :]).all(-1).any(-1)
            nxt = int(rng.choice(np.flatnonzero(fresh)))
        chosen.append(nxt)
        distance = np.minimum(distance, 1.0 - _ious(wh, wh[nxt : nxt + 1])[:, 0])
    return np.asarray(chosen)


def kmeans_anchors(wh, k: int, *, seed: int = 0, max_iters: int = 300) -> np.ndarray:
    """YOLOv2 dimension clusters: k-means on (width, height) with distance 1 - IoU.

    Seeding is k-means++ (the first centroid a uniformly drawn box, each next one
    a box drawn with probability proportional to its squared distance to the
    nearest centroid so far) from ``numpy.random.default_rng(seed)``, so a seed
    gives the same anchors on every run and platform. Each iteration assigns
    every box to the centroid of highest IoU (ties to the lower index) and moves
    each centroid to the mean width and height of its boxes. A cluster left
    empty is re-seeded at the box farthest from every centroid (lowest best IoU),
    one empty cluster after another.
    Iteration stops when the assignment no longer changes, or after
    ``max_iters`` iterations.

    Args:
      wh: [N, 2] widths and heights (NumPy or JAX, any real dtype, any unit),
        all positive and finite.
      k: number of anchors; at most the number of distinct (w, h) rows.
      seed: seed of the k-means++ seeding.
      max_iters: maximum number of assignment/update iterations, >= 1.

    Returns:
      [k, 2] float64 anchor widths and heights, in the unit of ``wh``, sorted by
      area ascending (darknet's ``anchors =`` order).

    Raises:
      ValueError: for a ``wh`` not [N, 2], a non-positive or non-finite width or
        height, ``k < 1``, ``k`` above the number of distinct boxes, or
        ``max_iters < 1``.
    """
    op = "kmeans_anchors"
    wh = _as_wh(op, "wh", wh)
    check_positive_int(op, "k", k)
    check_positive_int(op, "max_iters", max_iters)
    distinct = np.unique(wh, axis=0).shape[0]
    if k > distinct:
        fail(op, f"k <= the number of distinct boxes ({distinct})", f"k={k}")

    rng = np.random.default_rng(seed)
    centroids = wh[_kmeans_pp_init(wh, k, rng)]
    assignment = None
    for _ in range(max_iters):
        new_assignment = np.argmax(_ious(wh, centroids), axis=1)
        if assignment is not None and np.array_equal(new_assignment, assignment):
            break
        assignment = new_assignment
        counts = np.bincount(assignment, minlength=k)
        sums = np.zeros((k, 2))
        np.add.at(sums, assignment, wh)
        filled = counts > 0
        centroids = centroids.copy()
        centroids[filled] = sums[filled] / counts[filled, None]
        if not filled.all():
            # Farthest-first: each empty cluster takes the box least covered by all
            # centroids so far, the ones just re-seeded included. With k <= distinct
            # boxes such a box lies off every centroid, so it is no cluster's only member.
            distance = 1.0 - _ious(wh, centroids[filled]).max(axis=1)
            for cluster in np.flatnonzero(~filled):
                farthest = int(np.argmax(distance))
                centroids[cluster] = wh[farthest]
                distance = np.minimum(distance, 1.0 - _ious(wh, wh[farthest : farthest + 1])[:, 0])
            assignment = None  # re-seeded centroids: the next assignment must run
    return centroids[np.argsort(centroids[:, 0] * centroids[:, 1], kind="stable")]


def mean_best_iou(wh, anchors) -> float:
    """Mean over boxes of the best IoU with any anchor (YOLOv2 Table 1, "Avg IOU").

    Boxes and anchors are compared as if they shared a centre, so only widths
    and heights matter; both must be in the same unit.

    Args:
      wh: [N, 2] positive box widths and heights.
      anchors: [K, 2] positive anchor widths and heights.

    Returns:
      The mean best IoU, a Python float in [0, 1].

    Raises:
      ValueError: for inputs not [N, 2] / [K, 2] or non-positive sizes.
    """
    op = "mean_best_iou"
    wh = _as_wh(op, "wh", wh)
    anchors = _as_wh(op, "anchors", anchors)
    return float(_ious(wh, anchors).max(axis=1).mean())
