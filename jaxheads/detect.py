"""From decoded predictions to final detections: top-k candidates and per-class NMS.

Everything has static shapes, so detection runs inside `jit` with the model.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxheads._checks import check_floating, check_rank, fail
from jaxheads.nms import nms


class Detections(NamedTuple):
    """Padded detections; ``valid`` marks the real ones (a prefix, best first).

    Attributes:
      boxes: ``[B, K, 4]`` xyxy, normalised like the decoder's output.
      scores: ``[B, K]``.
      labels: ``[B, K]`` int32 class indices.
      valid: ``[B, K]`` bool.
    """

    boxes: jax.Array
    scores: jax.Array
    labels: jax.Array
    valid: jax.Array


def postprocess(
    boxes: jax.Array,
    scores: jax.Array,
    *,
    score_threshold: float = 0.005,
    iou_threshold: float = 0.45,
    max_detections: int = 100,
    pre_nms_top_k: int = 1000,
    per_class: bool = True,
    multi_label: bool = True,
) -> Detections:
    """Selects detections from every predictor's box and per-class scores.

    Args:
      boxes: ``[B, N, 4]`` xyxy boxes, one per predictor.
      scores: ``[B, N, C]`` per-class scores (objectness × class probability).
      score_threshold: candidates must score at least this (darknet's
        validation uses .005; its demo .24).
      iou_threshold: NMS overlap threshold (darknet's .45).
      max_detections: ``K``, detections kept per image.
      pre_nms_top_k: candidates entering NMS per image.
      per_class: boxes of different classes never suppress each other.
      multi_label: every (box, class) pair is a candidate, as darknet's
        validation writes one line per class for each box; otherwise only each
        box's best class.

    Returns:
      `Detections` with ``K = max_detections``.
    """
    op = "postprocess"
    check_rank(op, "boxes", boxes, 3, "[B, N, 4]")
    check_rank(op, "scores", scores, 3, "[B, N, C]")
    check_floating(op, "scores", scores)
    if boxes.shape[:2] != scores.shape[:2] or boxes.shape[2] != 4:
        fail(
            op,
            "boxes [B, N, 4] and scores [B, N, C] with the same B and N",
            f"boxes {boxes.shape}, scores {scores.shape}",
        )
    n, c = scores.shape[1:]
    # top_k ranks NaN above every number: a NaN score would push real detections out.
    scores = jnp.where(jnp.isnan(scores), -jnp.inf, scores)

    def one(b, s):
        if multi_label:
            flat = s.reshape(-1)
            k = min(pre_nms_top_k, n * c)
            top, idx = lax.top_k(flat, k)
            cand_boxes, labels = b[idx // c], (idx % c).astype(jnp.int32)
        else:
            best = jnp.max(s, axis=-1)
            k = min(pre_nms_top_k, n)
            top, idx = lax.top_k(best, k)
            cand_boxes, labels = b[idx], jnp.argmax(s[idx], axis=-1).astype(jnp.int32)
        keep, valid = nms(
            cand_boxes,
            top,
            iou_threshold=iou_threshold,
            max_outputs=max_detections,
            score_threshold=score_threshold,
            labels=labels,
            per_class=per_class,
        )
        zero = jnp.zeros((), top.dtype)
        return Detections(
            jnp.where(valid[:, None], cand_boxes[keep], zero),
            jnp.where(valid, top[keep], zero),
            jnp.where(valid, labels[keep], -1),
            valid,
        )

    return jax.vmap(one)(boxes, scores)


def to_numpy_list(detections: Detections, *, scale=None) -> list[dict[str, np.ndarray]]:
    """Per-image dicts ``{"boxes", "scores", "labels"}`` of the valid detections.

    The format `jaxheads.metrics.evaluate_detections` takes. ``scale``
    (``(width, height)``) converts normalised boxes to pixels.
    """
    boxes, scores, labels, valid = (np.asarray(a) for a in detections)
    if scale is not None:
        w, h = scale
        boxes = boxes * np.array([w, h, w, h], dtype=boxes.dtype)
    return [
        {"boxes": boxes[i][valid[i]], "scores": scores[i][valid[i]], "labels": labels[i][valid[i]]}
        for i in range(valid.shape[0])
    ]
