"""Greedy non-maximum suppression with static shapes, for `jit` and `vmap`.

`nms` keeps the classic greedy semantics of darknet's ``do_nms_sort``,
torchvision's ``nms`` and TensorFlow's ``non_max_suppression``: visit boxes in
descending score order and keep a box unless it overlaps an already kept box
with IoU strictly greater than ``iou_threshold``. The result has a fixed size,
``max_outputs``, so that it can live inside a jitted model:

  * ``indices``: [max_outputs] int32, indices into the input of the kept boxes,
    best score first. Unused slots hold ``0`` (as TensorFlow's
    ``non_max_suppression_padded`` does), which is always a valid gather index,
    so ``boxes[indices]`` never reads out of bounds; it is not a kept box.
  * ``valid``: [max_outputs] bool, which slots hold a kept box. It is the only
    source of truth: kept boxes fill a prefix of the slots, and ``valid.sum()``
    is the number of detections.

The loop runs once per *kept* box rather than once per input box: each step
picks the best surviving candidate, computes its IoU with every box (one
[N] row, never the [N, N] matrix) and suppresses the overlapping ones. It stops
as soon as ``max_outputs`` boxes are kept or no candidate survives, so the cost
is O(N log N) for the sort plus O(min(max_outputs, N) * N), in O(N) memory.

The batched form is `nms_batched`, which is ``jax.vmap`` of `nms`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxheads._checks import check_floating, check_positive_int, check_shape, fail
from jaxheads.boxes import iou

_PAD_INDEX = 0


def _check_threshold(op: str, name: str, value, low: float, high: float) -> None:
    """Checks a threshold's range when it is concrete; a traced value is trusted."""
    if isinstance(value, (str, bytes, bool)) or value is None:
        fail(op, f"{name} to be a number", repr(value))
    if np.ndim(value) != 0:
        fail(op, f"{name} to be a scalar", f"shape {np.shape(value)}")
    try:
        concrete = float(value)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return
    except (TypeError, ValueError):
        fail(op, f"{name} to be a number", repr(value))
    if not low <= concrete <= high:  # also rejects NaN
        fail(op, f"{name} in [{low}, {high}]", repr(value))


def _check_inputs(op: str, boxes, scores, labels, iou_threshold, max_outputs, score_threshold):
    check_shape(op, "boxes", boxes, (None, 4))
    check_floating(op, "boxes", boxes)
    n = np.shape(boxes)[0]
    check_shape(op, "scores", scores, (n,))
    check_floating(op, "scores", scores)
    if labels is not None:
        check_shape(op, "labels", labels, (n,))
        if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
            fail(op, "labels with an integer dtype", f"dtype {jnp.result_type(labels)}")
    check_positive_int(op, "max_outputs", max_outputs)
    _check_threshold(op, "iou_threshold", iou_threshold, 0.0, 1.0)
    _check_threshold(op, "score_threshold", score_threshold, -np.inf, np.inf)


def nms(
    boxes: jax.Array,
    scores: jax.Array,
    *,
    iou_threshold: float | jax.Array = 0.45,
    max_outputs: int = 100,
    score_threshold: float | jax.Array = -np.inf,
    labels: jax.Array | None = None,
    per_class: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """Greedy non-maximum suppression with a fixed-size output.

    Candidates are the boxes with ``score > score_threshold`` (strictly, as in
    TensorFlow and darknet, so a score of ``-inf`` or NaN is never kept). They are
    visited in descending score order, ties broken by the lower input index. A
    candidate is kept unless a kept box of the same class (any kept box when
    class-agnostic) has IoU ``> iou_threshold`` with it.

    Per-class suppression compares labels in the IoU test itself, so it is exact
    for any coordinates (unlike the trick of offsetting each class's boxes).

    Args:
      boxes: [N, 4] xyxy boxes, floating. Degenerate boxes have IoU 0 with every
        box: they are kept if their score allows and suppress nothing.
      scores: [N] floating scores.
      iou_threshold: suppress when IoU is strictly greater than this, in [0, 1].
        May be a traced scalar (then its range is not checked).
      max_outputs: static number of output slots, >= 1; may exceed N.
      score_threshold: keep only boxes with a score strictly greater than this.
        May be a traced scalar.
      labels: optional [N] integer class of each box.
      per_class: with ``labels``, boxes of different classes never suppress each
        other. Ignored (class-agnostic NMS) when ``labels`` is None or this is
        False.

    Returns:
      ``(indices, valid)``: ``indices`` [max_outputs] int32 are the input indices
      of the kept boxes in descending score order, ``valid`` [max_outputs] bool
      marks the slots that hold one. Slots past the last kept box hold index 0
      and ``valid`` False.

    Raises:
      ValueError: at trace time, for shapes or dtypes other than the above,
        ``max_outputs < 1`` or a concrete ``iou_threshold`` outside [0, 1].

    Gradients do not flow through the selection (its outputs are integer and
    boolean), and differentiating a loss that gathers ``boxes[indices]`` gives
    finite gradients.

    >>> import jax.numpy as jnp
    >>> boxes = jnp.array([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]])
    >>> scores = jnp.array([0.9, 0.8, 0.7])
    >>> indices, valid = nms(boxes, scores, iou_threshold=0.5, max_outputs=4)
    >>> indices.tolist(), valid.tolist()
    ([0, 2, 0, 0], [True, True, False, False])
    """
    op = "nms"
    _check_inputs(op, boxes, scores, labels, iou_threshold, max_outputs, score_threshold)
    boxes = lax.stop_gradient(jnp.asarray(boxes))
    scores = lax.stop_gradient(jnp.asarray(scores))
    n = boxes.shape[0]
    if n == 0:
        return jnp.full((max_outputs,), _PAD_INDEX, jnp.int32), jnp.zeros((max_outputs,), bool)

    order = jnp.argsort(scores, descending=True, stable=True).astype(jnp.int32)
    sorted_boxes = boxes[order]
    score_threshold = jnp.asarray(score_threshold).astype(scores.dtype)
    alive = scores[order] > score_threshold
    iou_threshold = jnp.asarray(iou_threshold).astype(boxes.dtype)
    sorted_labels = None if labels is None or not per_class else jnp.asarray(labels)[order]
    positions = jnp.arange(n, dtype=jnp.int32)

    def suppressed_by(i):
        """[N] bool: the sorted boxes that the sorted box ``i`` suppresses, itself included."""
        overlap = iou(sorted_boxes[i][None, :], sorted_boxes) > iou_threshold
        if sorted_labels is not None:
            overlap = overlap & (sorted_labels == sorted_labels[i])
        return overlap | (positions == i)

    def cond(carry):
        k, alive, _, _ = carry
        return (k < max_outputs) & jnp.any(alive)

    def body(carry):
        k, alive, indices, valid = carry
        best = jnp.argmax(alive).astype(jnp.int32)  # first surviving position
        indices = indices.at[k].set(order[best])
        valid = valid.at[k].set(True)
        return k + 1, alive & ~suppressed_by(best), indices, valid

    init = (
        jnp.int32(0),
        alive,
        jnp.full((max_outputs,), _PAD_INDEX, jnp.int32),
        jnp.zeros((max_outputs,), bool),
    )
    _, _, indices, valid = lax.while_loop(cond, body, init)
    return indices, valid


def nms_batched(
    boxes: jax.Array,
    scores: jax.Array,
    *,
    iou_threshold: float = 0.45,
    max_outputs: int = 100,
    score_threshold: float = -np.inf,
    labels: jax.Array | None = None,
    per_class: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """`nms` on each image of a batch: ``jax.vmap`` over the leading axis.

    Args:
      boxes: [B, N, 4] xyxy boxes.
      scores: [B, N] scores.
      iou_threshold: as in `nms`, shared by the batch.
      max_outputs: as in `nms`.
      score_threshold: as in `nms`, shared by the batch.
      labels: optional [B, N] integer classes.
      per_class: as in `nms`.

    Returns:
      ``(indices, valid)``, both [B, max_outputs]; ``indices[b]`` index into
      ``boxes[b]``.
    """
    op = "nms_batched"
    check_shape(op, "boxes", boxes, (None, None, 4))
    batch, n = np.shape(boxes)[:2]
    check_shape(op, "scores", scores, (batch, n))
    if labels is not None:
        check_shape(op, "labels", labels, (batch, n))
    single = functools.partial(
        nms,
        iou_threshold=iou_threshold,
        max_outputs=max_outputs,
        score_threshold=score_threshold,
        per_class=per_class,
    )
    if labels is None:
        return jax.vmap(single)(boxes, scores)
    return jax.vmap(lambda b, s, c: single(b, s, labels=c))(boxes, scores, labels)
