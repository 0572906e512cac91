"""The YOLOv1 loss (the paper's, darknet's ``[detection]`` layer) and darknet's flat layout.

See `jaxheads.losses` for the ground-truth format and how two truths in one cell resolve.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxheads._checks import check_floating, check_positive_int, check_rank, fail
from jaxheads.boxes import cxcywh_iou
from jaxheads.losses._common import (
    _cell_index,
    _check_ground_truth,
    _compute_dtype,
    _scalars,
    _scatter_to_slots,
    _slot_winners,
    _truths_cxcywh,
)

# ---------------------------------------------------------------------------
# Layout conversion for the YOLOv1 [connected] output.
# ---------------------------------------------------------------------------


def _check_layout_sizes(op: str, side: int, num_boxes: int, num_classes: int) -> None:
    check_positive_int(op, "side", side)
    check_positive_int(op, "num_boxes", num_boxes)
    check_positive_int(op, "num_classes", num_classes)


def yolov1_from_darknet_layout(
    raw: jax.Array, side: int, num_boxes: int, num_classes: int
) -> jax.Array:
    """Darknet's flat YOLOv1 output to the per-cell layout used by `yolov1_loss`.

    ``forward_detection_layer`` reads its ``[connected]`` input as three
    blocks: ``S·S·C`` class scores (cell-major, class-minor), then ``S·S·nb``
    confidences (cell-major, box-minor), then ``S·S·nb·4`` coordinates
    (``((cell·nb + box)·4 + k``). Cells are row-major: ``cell = row·S + col``.

    Args:
      raw: ``[B, S·S·(C + 5·nb)]`` darknet order.
      side: the grid size ``S``.
      num_boxes: boxes per cell ``nb``.
      num_classes: classes ``C``.

    Returns:
      ``[B, S, S, nb·5 + C]``: per cell, ``(x, y, w, h, conf)`` for each box,
      then the ``C`` class scores.

    >>> import jax.numpy as jnp
    >>> yolov1_from_darknet_layout(jnp.zeros((2, 7 * 7 * 30)), 7, 2, 20).shape
    (2, 7, 7, 30)
    """
    op = "yolov1_from_darknet_layout"
    _check_layout_sizes(op, side, num_boxes, num_classes)
    check_rank(op, "raw", raw, 2, "[B, S*S*(C + 5*nb)]")
    s, nb, c = side, num_boxes, num_classes
    if raw.shape[1] != s * s * (c + 5 * nb):
        fail(op, f"raw.shape[1] == S*S*(C + 5*nb) = {s * s * (c + 5 * nb)}", f"shape {raw.shape}")
    b = raw.shape[0]
    classes = raw[:, : s * s * c].reshape(b, s, s, c)
    conf = raw[:, s * s * c : s * s * (c + nb)].reshape(b, s, s, nb, 1)
    coords = raw[:, s * s * (c + nb) :].reshape(b, s, s, nb, 4)
    boxes = jnp.concatenate([coords, conf], axis=-1).reshape(b, s, s, nb * 5)
    return jnp.concatenate([boxes, classes], axis=-1)


def yolov1_to_darknet_layout(pred: jax.Array, num_boxes: int, num_classes: int) -> jax.Array:
    """Inverse of `yolov1_from_darknet_layout`: ``[B, S, S, nb·5 + C] -> [B, S·S·(C + 5·nb)]``.

    Args:
      pred: ``[B, S, S, nb·5 + C]`` per-cell layout.
      num_boxes: boxes per cell ``nb``.
      num_classes: classes ``C``.

    Returns:
      ``[B, S·S·(C + 5·nb)]`` in darknet's ``[detection]`` input order.
    """
    op = "yolov1_to_darknet_layout"
    b, s, nb, c = _check_yolov1_pred(op, pred, num_boxes, num_classes)
    boxes = pred[..., : nb * 5].reshape(b, s * s, nb, 5)
    classes = pred[..., nb * 5 :].reshape(b, s * s * c)
    conf = boxes[..., 4].reshape(b, s * s * nb)
    coords = boxes[..., :4].reshape(b, s * s * nb * 4)
    return jnp.concatenate([classes, conf, coords], axis=-1)


def _check_yolov1_pred(op: str, pred, num_boxes: int, num_classes: int):
    check_positive_int(op, "num_boxes", num_boxes)
    check_positive_int(op, "num_classes", num_classes)
    check_rank(op, "pred", pred, 4, "[B, S, S, nb*5 + C]")
    check_floating(op, "pred", pred)
    b, s, s2, ch = pred.shape
    if s != s2:
        fail(op, "a square S x S grid in pred [B, S, S, nb*5 + C]", f"shape {pred.shape}")
    if ch != num_boxes * 5 + num_classes:
        fail(
            op,
            f"pred.shape[-1] == nb*5 + C = {num_boxes * 5 + num_classes} "
            f"(nb={num_boxes}, C={num_classes})",
            f"shape {pred.shape}",
        )
    return b, s, num_boxes, num_classes


# ---------------------------------------------------------------------------
# YOLOv1.
# ---------------------------------------------------------------------------


def _yolov1_image(pred, gt_boxes, gt_labels, gt_mask, scales, *, num_boxes, rescore, sqrt):
    """One image: pred [S, S, nb*5 + C], truths [M, ...], scales a dict of scalars."""
    s, nb = pred.shape[0], num_boxes
    c = pred.shape[-1] - 5 * nb
    dtype = pred.dtype
    boxes = pred[..., : nb * 5].reshape(s, s, nb, 5)
    class_scores = pred[..., nb * 5 :]

    # fill_truth_region: one truth per cell, the first one wins; x, y become
    # offsets inside the cell, w, h stay relative to the image.
    cx, cy, w, h = jnp.moveaxis(_truths_cxcywh(gt_boxes, gt_mask), -1, 0)
    col, row = _cell_index(cx, s), _cell_index(cy, s)
    cell = row * s + col
    winner = _slot_winners(cell, gt_mask, last=False)
    truth = jnp.stack(
        [cx * s - col.astype(dtype), cy * s - row.astype(dtype), w, h], axis=-1
    )  # [M, 4]
    onehot = jax.nn.one_hot(gt_labels, c, dtype=dtype)  # zeros for ids outside [0, C)
    cell_truth = _scatter_to_slots(truth, cell, winner, s * s).reshape(s, s, 1, 4)
    cell_onehot = _scatter_to_slots(onehot, cell, winner, s * s).reshape(s, s, c)
    has_object = _scatter_to_slots(winner, cell, winner, s * s).reshape(s, s)

    # The responsible predictor: highest IoU with the truth, or, when every
    # IoU is 0, the lowest RMSE. Both boxes are in cell units / S (darknet
    # drops the cell index from both) with the predicted sqrt-sizes squared.
    coords = jax.lax.stop_gradient(boxes[..., :4])
    pw, ph = (
        (coords[..., 2] ** 2, coords[..., 3] ** 2) if sqrt else (coords[..., 2], coords[..., 3])
    )
    pred_box = jnp.stack([coords[..., 0] / s, coords[..., 1] / s, pw, ph], axis=-1)
    truth_box = jnp.concatenate([cell_truth[..., :2] / s, cell_truth[..., 2:]], axis=-1)
    ious = cxcywh_iou(pred_box, truth_box)  # [S, S, nb]
    rmse = jnp.sqrt(jnp.sum((pred_box - truth_box) ** 2, axis=-1))
    best = jnp.where(
        jnp.any(ious > 0, axis=-1), jnp.argmax(ious, axis=-1), jnp.argmin(rmse, axis=-1)
    )
    responsible = (jnp.arange(nb)[None, None, :] == best[..., None]) & has_object[..., None]

    conf = boxes[..., 4]
    obj_target = ious if rescore else jnp.ones_like(ious)
    conf_loss = jnp.where(
        responsible, scales["obj"] * (obj_target - conf) ** 2, scales["noobj"] * conf**2
    )
    wh_target = jnp.sqrt(jnp.maximum(cell_truth[..., 2:], 0)) if sqrt else cell_truth[..., 2:]
    coord_target = jnp.concatenate([cell_truth[..., :2], wh_target], axis=-1)
    coord_sq = jnp.sum((coord_target - boxes[..., :4]) ** 2, axis=-1)
    coord_loss = jnp.where(responsible, scales["coord"] * coord_sq, 0)
    class_sq = jnp.sum((cell_onehot - class_scores) ** 2, axis=-1)
    class_loss = jnp.where(has_object, scales["class"] * class_sq, 0)
    return jnp.sum(conf_loss) + jnp.sum(coord_loss) + jnp.sum(class_loss)


# Jitted inside so that eager calls compile once instead of op by op; under an
# outer jit this is inlined. Scales are traced, so they may be scheduled.
@functools.partial(jax.jit, static_argnames=("num_boxes", "rescore", "sqrt"))
def _yolov1_batch(pred, gt_boxes, gt_labels, gt_mask, scales, *, num_boxes, rescore, sqrt):
    image = functools.partial(_yolov1_image, num_boxes=num_boxes, rescore=rescore, sqrt=sqrt)
    return jax.vmap(image, in_axes=(0, 0, 0, 0, None))(pred, gt_boxes, gt_labels, gt_mask, scales)


def yolov1_loss(
    pred: jax.Array,
    gt_boxes: jax.Array,
    gt_labels: jax.Array,
    gt_mask: jax.Array,
    *,
    num_boxes: int,
    num_classes: int,
    lambda_coord: float = 5.0,
    lambda_noobj: float = 0.5,
    lambda_obj: float = 1.0,
    lambda_class: float = 1.0,
    rescore: bool = True,
    sqrt: bool = True,
) -> jax.Array:
    """YOLOv1 sum-squared loss per image, as darknet's ``[detection]`` layer trains it.

    Each valid truth is assigned to the cell holding its centre
    (``col = floor(cx·S)``, clipped into the grid), the first valid truth per
    cell winning as in darknet's data loader. In a cell with an object, the
    responsible predictor is the one with the highest IoU with the truth; if
    every IoU is 0, darknet falls back to the lowest RMSE between
    ``(x/S, y/S, w, h)`` tuples (ties go to the lower box index). Then::

        L = λ_coord Σ_resp [(x−x̂)² + (y−ŷ)² + (√w−ŵ)² + (√h−ĥ)²]
          + λ_obj   Σ_resp (t − ĉ)²          t = IoU (rescore, stop_gradient) or 1
          + λ_noobj Σ_other ĉ²                every predictor not responsible
          + λ_class Σ_cells with object Σ_c (p_c − p̂_c)²

    with ``x, y`` the truth's offsets in its cell and ``w, h`` its size relative
    to the image (``ŵ, ĥ`` predict ``√w, √h`` when ``sqrt``, else ``w, h``).
    There is no ½, so ``jax.grad`` of the loss w.r.t. ``pred`` equals
    ``-2 · delta`` of darknet's ``forward_detection_layer`` (whose
    ``delta = scale·(truth − output)``), for darknet's linear outputs
    (``softmax=0``, ``forced=0``).

    Args:
      pred: ``[B, S, S, nb·5 + C]``, per cell ``(x, y, w, h, conf)`` for each
        of the ``nb`` boxes, then ``C`` class scores; all linear. Use
        `yolov1_from_darknet_layout` for a darknet ``[connected]`` output.
      gt_boxes: ``[B, M, 4]`` xyxy in ``[0, 1]`` of the image.
      gt_labels: ``[B, M]`` integer class ids (an id outside ``[0, C)`` gives
        an all-zero class target, as in darknet).
      gt_mask: ``[B, M]`` bool, true for valid truths.
      num_boxes: ``nb``, boxes per cell (darknet ``num``).
      num_classes: ``C`` (darknet ``classes``).
      lambda_coord: darknet ``coord_scale``.
      lambda_noobj: darknet ``noobject_scale``.
      lambda_obj: darknet ``object_scale``.
      lambda_class: darknet ``class_scale``.
      rescore: objectness target is the (stop-gradient) IoU instead of 1.
      sqrt: ``w, h`` channels predict square roots (darknet ``sqrt=1``).

    Returns:
      ``[B]`` loss per image (float32, or float64 for float64 ``pred``).
    """
    op = "yolov1_loss"
    batch, _, _, _ = _check_yolov1_pred(op, pred, num_boxes, num_classes)
    _check_ground_truth(op, batch, gt_boxes, gt_labels, gt_mask)
    dtype = _compute_dtype(pred)
    scales = _scalars(
        dtype, coord=lambda_coord, noobj=lambda_noobj, obj=lambda_obj, **{"class": lambda_class}
    )
    return _yolov1_batch(
        jnp.asarray(pred).astype(dtype),
        jnp.asarray(gt_boxes).astype(dtype),
        jnp.asarray(gt_labels),
        jnp.asarray(gt_mask),
        scales,
        num_boxes=num_boxes,
        rescore=bool(rescore),
        sqrt=bool(sqrt),
    )
