"""Box formats and overlap, as pure `jax.numpy` functions.

Formats (last axis of size 4):
  * ``xyxy``: (x_min, y_min, x_max, y_max)
  * ``xywh``: (x_min, y_min, width, height) — the COCO json format
  * ``cxcywh``: (center_x, center_y, width, height) — the YOLO / darknet format

All functions broadcast over leading axes and work under `jit` and `vmap`.
Degenerate boxes (zero or negative width/height) have area 0 and IoU 0 with
everything, never NaN.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxheads._checks import check_dim, check_floating, check_min_rank, fail


def _check_boxes(op: str, name: str, boxes) -> None:
    check_min_rank(op, name, boxes, 1)
    check_dim(op, name, boxes, -1, 4, "box coordinates")
    check_floating(op, name, boxes)


def xyxy_to_cxcywh(boxes):
    """[..., 4] xyxy -> [..., 4] cxcywh."""
    _check_boxes("xyxy_to_cxcywh", "boxes", boxes)
    x0, y0, x1, y1 = jnp.moveaxis(boxes, -1, 0)
    return jnp.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=-1)


def cxcywh_to_xyxy(boxes):
    """[..., 4] cxcywh -> [..., 4] xyxy."""
    _check_boxes("cxcywh_to_xyxy", "boxes", boxes)
    cx, cy, w, h = jnp.moveaxis(boxes, -1, 0)
    return jnp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def xyxy_to_xywh(boxes):
    """[..., 4] xyxy -> [..., 4] xywh."""
    _check_boxes("xyxy_to_xywh", "boxes", boxes)
    x0, y0, x1, y1 = jnp.moveaxis(boxes, -1, 0)
    return jnp.stack([x0, y0, x1 - x0, y1 - y0], axis=-1)


def xywh_to_xyxy(boxes):
    """[..., 4] xywh -> [..., 4] xyxy."""
    _check_boxes("xywh_to_xyxy", "boxes", boxes)
    x0, y0, w, h = jnp.moveaxis(boxes, -1, 0)
    return jnp.stack([x0, y0, x0 + w, y0 + h], axis=-1)


def box_area(boxes):
    """[..., 4] xyxy -> [...] area; degenerate boxes have area 0."""
    _check_boxes("box_area", "boxes", boxes)
    w = jnp.maximum(boxes[..., 2] - boxes[..., 0], 0)
    h = jnp.maximum(boxes[..., 3] - boxes[..., 1], 0)
    return w * h


def _intersection(a, b):
    lo = jnp.maximum(a[..., :2], b[..., :2])
    hi = jnp.minimum(a[..., 2:], b[..., 2:])
    wh = jnp.maximum(hi - lo, 0)
    return wh[..., 0] * wh[..., 1]


def _safe_ratio(num, den):
    positive = den > 0
    return jnp.where(positive, num / jnp.where(positive, den, 1), 0)


def _check_two(op: str, a, b, a_lead, b_lead) -> None:
    _check_boxes(op, "a", a)
    _check_boxes(op, "b", b)
    if jnp.result_type(a) != jnp.result_type(b):
        fail(op, "a and b of one dtype", f"{jnp.result_type(a)} and {jnp.result_type(b)}")
    try:
        np.broadcast_shapes(a_lead, b_lead)
    except ValueError:
        fail(op, "a and b whose leading axes broadcast", f"shapes {np.shape(a)} and {np.shape(b)}")


def iou(a, b):
    """Elementwise IoU of xyxy boxes: ``a`` and ``b`` broadcast to [...].

    Computed in at least float32 and returned in the inputs' dtype: the areas of
    float16 pixel boxes overflow (300 × 300 > 65504), their IoU does not.
    """
    _check_two("iou", a, b, np.shape(a)[:-1], np.shape(b)[:-1])
    dtype = jnp.result_type(a, b)
    narrow = jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32
    wide = jnp.float32 if narrow else dtype
    a, b = jnp.asarray(a, wide), jnp.asarray(b, wide)
    inter = _intersection(a, b)
    return _safe_ratio(inter, box_area(a) + box_area(b) - inter).astype(dtype)


def pairwise_iou(a, b):
    """IoU of every box in ``a`` [N, 4] with every box in ``b`` [M, 4] -> [N, M] (xyxy)."""
    check_min_rank("pairwise_iou", "a", a, 2)
    check_min_rank("pairwise_iou", "b", b, 2)
    _check_two("pairwise_iou", a, b, np.shape(a)[:-2], np.shape(b)[:-2])
    return iou(a[..., :, None, :], b[..., None, :, :])


def cxcywh_iou(a, b):
    """Elementwise IoU of cxcywh boxes (darknet's ``box_iou``), broadcasting."""
    return iou(cxcywh_to_xyxy(a), cxcywh_to_xyxy(b))


def shape_iou(wh_a, wh_b):
    """IoU of boxes that share a centre, from widths and heights [..., 2].

    The distance of the YOLOv2 dimension clusters and of darknet's best-anchor
    choice in the region layer. Like `iou`, a zero or negative width or height
    gives area 0 and IoU 0, never NaN.
    """
    for name, wh in (("wh_a", wh_a), ("wh_b", wh_b)):
        check_min_rank("shape_iou", name, wh, 1)
        check_dim("shape_iou", name, wh, -1, 2, "width, height")
    # Clamped so that a negative width times a negative height is not a positive area.
    wh_a = jnp.maximum(wh_a, 0)
    wh_b = jnp.maximum(wh_b, 0)
    inter = jnp.minimum(wh_a[..., 0], wh_b[..., 0]) * jnp.minimum(wh_a[..., 1], wh_b[..., 1])
    union = wh_a[..., 0] * wh_a[..., 1] + wh_b[..., 0] * wh_b[..., 1] - inter
    return _safe_ratio(inter, union)
