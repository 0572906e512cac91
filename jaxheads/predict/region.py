"""Darknet's ``get_network_boxes``: raw ``[region]`` / ``[detection]`` output to boxes
and per-class probabilities, in darknet's order.

The array part (`region_outputs`, `detection_outputs`) is JAX and runs inside the
jitted network call; the thresholding (`class_probabilities`) is NumPy on the host.
Boxes are ``(cx, cy, w, h)`` relative to the network input, as darknet's ``box``.

* ``[region]`` (YOLOv2, ``get_region_detections``): detection ``n·H·W + i`` is anchor
  ``n`` of cell ``i = row·W + col``; ``x = (col + σ(tx)) / W``, ``y = (row + σ(ty)) / H``,
  ``w = e^tw·pw / W``, ``h = e^th·ph / H``; objectness ``σ(to)``; classes a softmax
  (``softmax=1``) or logistic.
* ``[detection]`` (YOLOv1, ``get_detection_detections``): detection ``i·n + b`` is box
  ``b`` of cell ``i``; ``x = (px + col) / S``, ``w = pw²`` with ``sqrt=1``; objectness
  the raw confidence; classes a softmax with ``softmax=1``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads._checks import check_rank, fail

__all__ = ["class_probabilities", "detection_outputs", "region_outputs"]


def region_outputs(raw: jax.Array, anchors, *, num_classes: int, softmax: bool = True):
    """A ``[region]`` layer's detections.

    Args:
      raw: ``[B, H, W, A·(5 + C)]``, darknet's region input in NHWC
        (channel ``a·(5 + C) + e``).
      anchors: ``[A, 2]`` priors (w, h) in grid cells.
      num_classes: ``C``.
      softmax: classes by softmax (darknet ``softmax=1``), else by logistic.

    Returns:
      ``(boxes [B, A·H·W, 4], objectness [B, A·H·W], classes [B, A·H·W, C])``,
      anchor-major as darknet numbers them.
    """
    check_rank("region_outputs", "raw", raw, 4, "[B, H, W, A*(5 + C)]")
    anchors = jnp.asarray(anchors, raw.dtype)
    b, h, w, ch = raw.shape
    a = anchors.shape[0]
    if ch != a * (5 + num_classes):
        fail(
            "region_outputs",
            f"raw with A*(5 + C) = {a * (5 + num_classes)} channels",
            f"shape {raw.shape}",
        )
    p = jnp.transpose(raw.reshape(b, h, w, a, 5 + num_classes), (0, 3, 1, 2, 4))
    cy, cx = jnp.meshgrid(
        jnp.arange(h, dtype=raw.dtype), jnp.arange(w, dtype=raw.dtype), indexing="ij"
    )
    cx, cy = cx[None, None], cy[None, None]  # [1, 1, H, W]
    x = (cx + jax.nn.sigmoid(p[..., 0])) / w
    y = (cy + jax.nn.sigmoid(p[..., 1])) / h
    bw = jnp.exp(p[..., 2]) * anchors[None, :, 0, None, None] / w
    bh = jnp.exp(p[..., 3]) * anchors[None, :, 1, None, None] / h
    boxes = jnp.stack([x, y, bw, bh], axis=-1).reshape(b, a * h * w, 4)
    objectness = jax.nn.sigmoid(p[..., 4]).reshape(b, a * h * w)
    logits = p[..., 5:]
    classes = jax.nn.softmax(logits, axis=-1) if softmax else jax.nn.sigmoid(logits)
    return boxes, objectness, classes.reshape(b, a * h * w, num_classes)


def detection_outputs(
    raw: jax.Array, *, side: int, num: int, num_classes: int, sqrt: bool, softmax: bool
):
    """A ``[detection]`` layer's detections.

    Args:
      raw: ``[B, S·S·(C + 5·num)]`` (after ``[connected]``) or a map ``[B, h, w, c]``,
        read as darknet reads its memory (C, H, W order).
      side, num, num_classes: darknet's ``side``, ``num`` and ``classes``.
      sqrt, softmax: darknet's flags.

    Returns:
      ``(boxes [B, S·S·num, 4], objectness [B, S·S·num], classes [B, S·S·num, C])``,
      cell-major as darknet numbers them (classes repeated for a cell's boxes).
    """
    if raw.ndim == 4:
        raw = jnp.transpose(raw, (0, 3, 1, 2)).reshape(raw.shape[0], -1)
    check_rank("detection_outputs", "raw", raw, 2, "[B, S*S*(C + 5*num)]")
    cells = side * side
    if raw.shape[1] != cells * (num_classes + 5 * num):
        fail(
            "detection_outputs",
            f"S*S*(C + 5*num) = {cells * (num_classes + 5 * num)} values",
            f"shape {raw.shape}",
        )
    b = raw.shape[0]
    classes = raw[:, : cells * num_classes].reshape(b, cells, num_classes)
    if softmax:
        classes = jax.nn.softmax(classes, axis=-1)
    conf = raw[:, cells * num_classes : cells * (num_classes + num)].reshape(b, cells, num)
    coords = raw[:, cells * (num_classes + num) :].reshape(b, cells, num, 4)
    row, col = jnp.divmod(jnp.arange(cells), side)
    x = (coords[..., 0] + col[None, :, None].astype(raw.dtype)) / side
    y = (coords[..., 1] + row[None, :, None].astype(raw.dtype)) / side
    bw, bh = coords[..., 2], coords[..., 3]
    if sqrt:
        bw, bh = bw * bw, bh * bh
    boxes = jnp.stack([x, y, bw, bh], axis=-1).reshape(b, cells * num, 4)
    classes = jnp.broadcast_to(classes[:, :, None, :], (b, cells, num, num_classes))
    return boxes, conf.reshape(b, cells * num), classes.reshape(b, cells * num, num_classes)


def class_probabilities(
    objectness: np.ndarray | None, classes: np.ndarray, thresh: float, *, gate: bool = True
) -> np.ndarray:
    """Darknet's per-class probabilities: ``objectness·class`` where above ``thresh``, else 0.

    With ``gate`` (``get_region_detections``) a detection whose objectness is not above
    ``thresh`` gets no class at all; ``[detection]`` layers have no such gate.

    Args:
      objectness: ``[N]``, or None when ``classes`` already holds the final scores.
      classes: ``[N, C]`` class probabilities (or final scores).
      thresh: darknet's ``thresh``.
      gate: apply the objectness gate.

    Returns:
      ``[N, C]`` float32.
    """
    classes = np.asarray(classes, np.float32)
    t = np.float32(thresh)
    if objectness is None:
        prob = classes
    else:
        objectness = np.asarray(objectness, np.float32)
        prob = objectness[:, None] * classes
        if gate:
            prob = np.where((objectness > t)[:, None], prob, np.float32(0))
    return np.where(prob > t, prob, np.float32(0))
