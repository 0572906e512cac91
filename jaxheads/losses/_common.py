"""What both losses share: checks of the ground truth and the scatter of truths to slots."""

from __future__ import annotations

import jax.numpy as jnp

from jaxheads._checks import check_floating, check_rank, fail, shape_of
from jaxheads.boxes import xyxy_to_cxcywh


def _check_ground_truth(op: str, batch: int, gt_boxes, gt_labels, gt_mask) -> None:
    check_rank(op, "gt_boxes", gt_boxes, 3, "[B, M, 4]")
    check_rank(op, "gt_labels", gt_labels, 2, "[B, M]")
    check_rank(op, "gt_mask", gt_mask, 2, "[B, M]")
    check_floating(op, "gt_boxes", gt_boxes)
    b, m, four = shape_of(gt_boxes)
    if four != 4 or b != batch:
        fail(op, f"gt_boxes of shape ({batch}, M, 4) to match pred", f"shape {shape_of(gt_boxes)}")
    for name, x in (("gt_labels", gt_labels), ("gt_mask", gt_mask)):
        if shape_of(x) != (b, m):
            fail(op, f"{name} of shape {(b, m)} to match gt_boxes", f"shape {shape_of(x)}")
    if not jnp.issubdtype(jnp.result_type(gt_labels), jnp.integer):
        fail(op, "gt_labels with an integer dtype", f"dtype {jnp.result_type(gt_labels)}")
    if jnp.result_type(gt_mask) != jnp.bool_:
        fail(op, "gt_mask with dtype bool", f"dtype {jnp.result_type(gt_mask)}")


def _compute_dtype(pred):
    """float64 for float64 predictions, float32 for everything narrower."""
    return jnp.float64 if pred.dtype == jnp.float64 else jnp.float32


def _truths_cxcywh(gt_boxes, gt_mask):
    """[M, 4] xyxy -> [M, 4] cxcywh with masked entries zeroed (NaN-safe)."""
    boxes = jnp.where(gt_mask[:, None], gt_boxes, jnp.zeros_like(gt_boxes))
    return xyxy_to_cxcywh(boxes)


def _cell_index(center, size: int):
    """Darknet's ``(int)(x * size)``, clipped into the grid (darknet does not clip)."""
    return jnp.clip(jnp.floor(center * size), 0, size - 1).astype(jnp.int32)


def _slot_winners(slot, valid, *, last: bool):
    """[M] bool: the one valid truth kept per slot, the last (or first) in order."""
    index = jnp.arange(slot.shape[0])
    shares = (slot[:, None] == slot[None, :]) & valid[None, :]
    overrides = index[None, :] > index[:, None] if last else index[None, :] < index[:, None]
    return valid & ~jnp.any(shares & overrides, axis=1)


def _scatter_to_slots(values, slot, winner, num_slots: int):
    """Writes ``values[m]`` ([M, ...]) to row ``slot[m]`` of a zero array for winners.

    Winners have distinct slots, so the scatter has no duplicate indices and is
    exact (no matmul, whose float32 precision is backend-dependent).
    """
    target = jnp.where(winner, slot, num_slots)
    out = jnp.zeros((num_slots,) + values.shape[1:], values.dtype)
    return out.at[target].set(values, mode="drop")


def _scalars(dtype, **values):
    return {k: jnp.asarray(v).astype(dtype) for k, v in values.items()}
