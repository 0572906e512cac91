"""Decoding raw head outputs to boxes and per-class scores.

Layouts (shared with `jaxheads.losses`):

* YOLOv1: ``[B, S, S, nb·5 + C]``; per cell, for each of the ``nb`` boxes
  ``(x, y, w, h, conf)``, then ``C`` class scores. ``x, y`` are offsets inside
  the cell; ``w, h`` are the square roots of the width/height relative to the
  image when ``sqrt`` (darknet's ``sqrt=1``).
* YOLOv2: ``[B, H, W, A·(5 + C)]``; channel ``a·(5 + C) + e`` with entries
  ``(tx, ty, tw, th, to, class logits…)`` — darknet's region layout, NHWC.

Boxes come out as xyxy normalised to the image (``[0, 1]`` inside it), one row
per predictor, with ``scores [B, N, C]`` = objectness × class probability,
darknet's detection score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxheads._checks import check_floating, check_rank, check_shape, fail
from jaxheads.boxes import cxcywh_to_xyxy


def _cell_grid(h: int, w: int, dtype):
    cy, cx = jnp.meshgrid(jnp.arange(h, dtype=dtype), jnp.arange(w, dtype=dtype), indexing="ij")
    return cx[None, :, :, None], cy[None, :, :, None]  # [1, H, W, 1]


def decode_yolov1(
    pred: jax.Array,
    *,
    num_boxes: int = 2,
    num_classes: int = 20,
    sqrt: bool = True,
    softmax_classes: bool = False,
):
    """Decodes a YOLOv1 output.

    Args:
      pred: ``[B, S, S, num_boxes·5 + num_classes]``.
      num_boxes, num_classes: ``nb`` and ``C``.
      sqrt: ``w, h`` are predicted as square roots (the paper; darknet ``sqrt=1``).
      softmax_classes: apply a softmax to the class scores (darknet ``softmax=1``);
        otherwise they are used as given (the paper's sum-squared training).

    Returns:
      ``(boxes [B, S·S·nb, 4] xyxy, scores [B, S·S·nb, C])``, cell-major then box.
    """
    op = "decode_yolov1"
    check_rank(op, "pred", pred, 4, "[B, S, S, nb*5 + C]")
    check_floating(op, "pred", pred)
    b, s, s2, ch = pred.shape
    if s != s2 or ch != num_boxes * 5 + num_classes:
        fail(
            op,
            f"pred of shape [B, S, S, {num_boxes * 5 + num_classes}] "
            f"(num_boxes={num_boxes}, num_classes={num_classes})",
            f"shape {pred.shape}",
        )
    boxes = pred[..., : num_boxes * 5].reshape(b, s, s, num_boxes, 5)
    classes = pred[..., num_boxes * 5 :]
    if softmax_classes:
        classes = jax.nn.softmax(classes, axis=-1)
    cx, cy = _cell_grid(s, s, pred.dtype)
    x = (boxes[..., 0] + cx) / s
    y = (boxes[..., 1] + cy) / s
    w, h = boxes[..., 2], boxes[..., 3]
    if sqrt:
        w, h = w * w, h * h
    xyxy = cxcywh_to_xyxy(jnp.stack([x, y, w, h], axis=-1))
    scores = boxes[..., 4:5] * classes[..., None, :]
    return xyxy.reshape(b, -1, 4), scores.reshape(b, -1, num_classes)


def _bounded_centre(t, cell, prior):
    return jax.nn.sigmoid(t) + cell


def _bounded_target(truth, cell, prior):
    return truth - cell


class RegionCentre(NamedTuple):
    """Where a region head's ``tx`` (or ``ty``) puts a box centre: what YOLOv2 variants change.

    Each function works per axis, in grid cells, and broadcasts.

    Attributes:
      centre: ``(t, cell, prior) -> centre``: the decoded centre, e.g. ``σ(t) + cell``.
      predicted: ``t -> value`` the loss's coordinate term regresses (``σ(t)``).
      target: ``(truth_centre, cell, prior) -> target`` of that value (``truth - cell``).
      warmup: the value ``predicted`` is pulled to during the loss's warm-up (0.5:
        the cell centre).
    """

    centre: Callable
    predicted: Callable
    target: Callable
    warmup: float


#: Darknet's region layer: the centre stays in its cell, σ(t) of the way across.
BOUNDED = RegionCentre(_bounded_centre, jax.nn.sigmoid, _bounded_target, 0.5)


def _unbounded_centre(t, cell, prior):
    return cell + 0.5 + t * prior


def _unbounded_target(truth, cell, prior):
    return (truth - cell - 0.5) / prior


def _identity(t):
    return t


#: The region-proposal-network offset YOLOv2's paper started from (its Table 2 before
#: "location prediction"): ``x = (cx + 0.5 + tx·pw) / W``, an offset from the cell centre in
#: prior widths, so a box may land anywhere in the image. The raw ``tx`` is regressed on
#: ``(x·W − cx − 0.5) / pw`` and the warm-up pulls it to 0, the cell centre: with ``tx = 0``
#: it is `BOUNDED`'s centre. Darknet has no such layer.
UNBOUNDED = RegionCentre(_unbounded_centre, _identity, _unbounded_target, 0.0)


def decode_yolov2(
    pred: jax.Array, anchors, *, num_classes: int = 20, centre: RegionCentre = BOUNDED
):
    """Decodes a YOLOv2 region output (darknet ``[region]``).

    ``bx = (σ(tx) + cx) / W``, ``by = (σ(ty) + cy) / H``, ``bw = pw·e^tw / W``,
    ``bh = ph·e^th / H``, objectness ``σ(to)``, class softmax.

    Args:
      pred: ``[B, H, W, A·(5 + C)]``.
      anchors: ``[A, 2]`` prior widths/heights in grid cells.
      num_classes: ``C``.
      centre: the centre parameterisation (`BOUNDED`: darknet's ``σ(t) + c``).

    Returns:
      ``(boxes [B, H·W·A, 4] xyxy, scores [B, H·W·A, C])``, cell-major then anchor.
    """
    op = "decode_yolov2"
    check_rank(op, "pred", pred, 4, "[B, H, W, A*(5 + C)]")
    check_floating(op, "pred", pred)
    anchors = jnp.asarray(anchors, pred.dtype)
    check_rank(op, "anchors", anchors, 2, "[A, 2]")
    check_shape(op, "anchors", anchors, (None, 2))
    a = anchors.shape[0]
    b, h, w, ch = pred.shape
    if ch != a * (5 + num_classes):
        fail(
            op,
            f"pred channels == A*(5 + C) = {a * (5 + num_classes)} (A={a}, C={num_classes})",
            f"shape {pred.shape}",
        )
    p = pred.reshape(b, h, w, a, 5 + num_classes)
    cx, cy = _cell_grid(h, w, pred.dtype)
    pw, ph = anchors[:, 0].reshape(1, 1, 1, a), anchors[:, 1].reshape(1, 1, 1, a)
    x = centre.centre(p[..., 0], cx, pw) / w
    y = centre.centre(p[..., 1], cy, ph) / h
    bw = pw * jnp.exp(p[..., 2]) / w
    bh = ph * jnp.exp(p[..., 3]) / h
    xyxy = cxcywh_to_xyxy(jnp.stack([x, y, bw, bh], axis=-1))
    scores = jax.nn.sigmoid(p[..., 4:5]) * jax.nn.softmax(p[..., 5:], axis=-1)
    return xyxy.reshape(b, -1, 4), scores.reshape(b, -1, num_classes)
