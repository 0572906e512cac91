"""Training losses of darknet's YOLOv1 ``[detection]`` and YOLOv2 ``[region]`` layers.

Darknet has no loss function: each layer writes ``delta = -dL/d(output)`` for a
loss it never states, and backpropagates that. The functions here are the
losses those deltas are the negative gradients of, so `jax.grad` reproduces
darknet's training signal exactly:

* `yolov1_loss` is the YOLO paper's sum-squared loss (no ½), so
  ``jax.grad(yolov1_loss) == -2 · delta`` of ``detection_layer.c``.
* `region_loss` uses ½·scale·(target − output)² terms and a cross-entropy for
  the classes, so ``jax.grad(region_loss) == -delta`` of ``region_layer.c``
  (after darknet's backward pass has applied the logistic gradient).

Ground truth arrives padded to a fixed count ``M`` per image:

* ``gt_boxes``: ``[B, M, 4]`` xyxy, normalised to ``[0, 1]`` of the image;
* ``gt_labels``: ``[B, M]`` integer class ids;
* ``gt_mask``: ``[B, M]`` bool, true for the real entries.

Targets are built inside the traced function (vmapped over images, vectorised
over truths, cells and anchors), so both losses work under `jit` and `vmap`
and with no valid truth at all. Masked entries are ignored whatever they hold.
The losses are computed in float32 (float64 for float64 predictions), whatever
the prediction dtype, so that cell assignment does not depend on bfloat16
rounding of the ground truth.

Two ways to put two truths in one place, both darknet's:

* YOLOv1: darknet's data loader (``fill_truth_region`` in ``data.c``) keeps the
  *first* box whose centre falls in a cell and drops later ones
  (``if (truth[index]) continue;``). `yolov1_loss` keeps the first valid truth in
  ``gt`` order. (Darknet shuffles the boxes of an image before that; shuffle
  ``gt`` yourself if you want the same randomness.)
* YOLOv2: ``forward_region_layer`` loops over truths and overwrites the deltas
  of the chosen (cell, anchor) slot, so the *last* truth mapped to a slot wins.
  `region_loss` keeps the last valid truth per slot.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxheads._checks import check_floating, check_positive_int, check_rank, fail, shape_of
from jaxheads.boxes import cxcywh_iou, shape_iou, xyxy_to_cxcywh
from jaxheads.decode import BOUNDED, RegionCentre

# region_layer.c pulls every prediction toward its prior with this fixed scale
# while ``net.seen < 12800``.
_WARMUP_COORD_SCALE = 0.01


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


# ---------------------------------------------------------------------------
# Shared checks and target-building helpers.
# ---------------------------------------------------------------------------


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


def _scalars(dtype, **values):
    return {k: jnp.asarray(v).astype(dtype) for k, v in values.items()}


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


# ---------------------------------------------------------------------------
# YOLOv2 region layer.
# ---------------------------------------------------------------------------


def _region_image(
    pred, gt_boxes, gt_labels, gt_mask, anchors, warm, scales, *, rescore, bias_match, centre
):
    """One image: pred [H, W, A*(5 + C)], truths [M, ...], scales a dict of scalars."""
    height, width, channels = pred.shape
    a = anchors.shape[0]
    c = channels // a - 5
    dtype = pred.dtype
    p = pred.reshape(height, width, a, 5 + c)
    sx, sy = centre.predicted(p[..., 0]), centre.predicted(p[..., 1])
    tw, th = p[..., 2], p[..., 3]
    obj = jax.nn.sigmoid(p[..., 4])
    logits = p[..., 5:]

    cols = jnp.arange(width, dtype=dtype)[None, :, None]
    rows = jnp.arange(height, dtype=dtype)[:, None, None]
    anchor_w, anchor_h = anchors[None, None, :, 0], anchors[None, None, :, 1]
    # get_region_box: the decoded prediction, normalised to the image.
    decoded = jax.lax.stop_gradient(
        jnp.stack(
            [
                centre.centre(p[..., 0], cols, anchor_w) / width,
                centre.centre(p[..., 1], rows, anchor_h) / height,
                anchor_w * jnp.exp(tw) / width,
                anchor_h * jnp.exp(th) / height,
            ],
            axis=-1,
        )
    )  # [H, W, A, 4]

    truths = _truths_cxcywh(gt_boxes, gt_mask)  # [M, 4]
    # No-object term only where no truth overlaps the prediction by more than thresh.
    ious = cxcywh_iou(decoded[:, :, :, None, :], truths[None, None, None, :, :])
    best_iou = jnp.max(jnp.where(gt_mask[None, None, None, :], ious, 0), axis=-1, initial=0)
    no_object = best_iou <= scales["thresh"]

    # Each truth goes to its centre cell and the anchor whose shape fits it best.
    col, row = _cell_index(truths[:, 0], width), _cell_index(truths[:, 1], height)
    if bias_match:
        anchor_wh = anchors / jnp.array([width, height], dtype)[None, :]
        shape_ious = shape_iou(anchor_wh[None, :, :], truths[:, None, 2:])
    else:
        shape_ious = shape_iou(decoded[row, col, :, 2:], truths[:, None, 2:])
    best_anchor = jnp.argmax(shape_ious, axis=-1)  # first on ties; 0 when all IoUs are 0
    slot = (row * width + col) * a + best_anchor
    winner = _slot_winners(slot, gt_mask, last=True)
    num_slots = height * width * a
    slot_truth = _scatter_to_slots(truths, slot, winner, num_slots).reshape(height, width, a, 4)
    slot_onehot = _scatter_to_slots(
        jax.nn.one_hot(gt_labels, c, dtype=dtype), slot, winner, num_slots
    ).reshape(height, width, a, c)
    has_truth = _scatter_to_slots(winner, slot, winner, num_slots).reshape(height, width, a)

    # delta_region_box targets, in σ space for x, y and raw space for w, h.
    safe_w = jnp.where(has_truth, slot_truth[..., 2], anchor_w / width)
    safe_h = jnp.where(has_truth, slot_truth[..., 3], anchor_h / height)
    target_x = centre.target(slot_truth[..., 0] * width, cols, anchor_w)
    target_y = centre.target(slot_truth[..., 1] * height, rows, anchor_h)
    target_w = jnp.log(safe_w * width / anchor_w)
    target_h = jnp.log(safe_h * height / anchor_h)
    box_scale = scales["coord"] * (2 - slot_truth[..., 2] * slot_truth[..., 3])
    box_sq = (
        (target_x - sx) ** 2 + (target_y - sy) ** 2 + (target_w - tw) ** 2 + (target_h - th) ** 2
    )
    warmup_sq = (centre.warmup - sx) ** 2 + (centre.warmup - sy) ** 2 + tw**2 + th**2
    coord_loss = jnp.where(
        has_truth,
        0.5 * box_scale * box_sq,
        jnp.where(warm, 0.5 * _WARMUP_COORD_SCALE * warmup_sq, 0),
    )

    obj_target = cxcywh_iou(decoded, slot_truth) if rescore else jnp.ones_like(obj)
    obj_loss = jnp.where(
        has_truth,
        0.5 * scales["obj"] * (obj_target - obj) ** 2,
        jnp.where(no_object, 0.5 * scales["noobj"] * obj**2, 0),
    )

    # darknet's softmax delta scale·(onehot − p) is minus the gradient of scale·CE.
    cross_entropy = jax.nn.logsumexp(logits, axis=-1) - jnp.sum(slot_onehot * logits, axis=-1)
    class_loss = jnp.where(has_truth, scales["class"] * cross_entropy, 0)
    return jnp.sum(coord_loss) + jnp.sum(obj_loss) + jnp.sum(class_loss)


@functools.partial(jax.jit, static_argnames=("rescore", "bias_match", "centre"))
def _region_batch(
    pred, gt_boxes, gt_labels, gt_mask, anchors, warm, scales, *, rescore, bias_match, centre
):
    image = functools.partial(_region_image, rescore=rescore, bias_match=bias_match, centre=centre)
    in_axes = (0, 0, 0, 0, None, None, None)
    return jax.vmap(image, in_axes=in_axes)(
        pred, gt_boxes, gt_labels, gt_mask, anchors, warm, scales
    )


def region_loss(
    pred: jax.Array,
    gt_boxes: jax.Array,
    gt_labels: jax.Array,
    gt_mask: jax.Array,
    anchors: ArrayLike,
    *,
    seen: ArrayLike,
    object_scale: float = 5.0,
    noobject_scale: float = 1.0,
    class_scale: float = 1.0,
    coord_scale: float = 1.0,
    thresh: float = 0.6,
    rescore: bool = True,
    bias_match: bool = True,
    warmup_images: int = 12800,
    centre: RegionCentre = BOUNDED,
) -> jax.Array:
    """YOLOv2 loss per image, as darknet's ``[region]`` layer (``region_layer.c``) trains it.

    For raw outputs ``(tx, ty, tw, th, to, z…)`` of anchor ``a = (pw, ph)`` in
    cell ``(cx, cy)`` of an ``H × W`` grid, the prediction decodes to
    ``((σ(tx) + cx)/W, (σ(ty) + cy)/H, pw·e^tw/W, ph·e^th/H)`` and the
    objectness is ``σ(to)``. The loss sums, per prediction:

    * slot with a truth (the truth's centre cell, the anchor of highest
      shape-only IoU with it when ``bias_match``, else with the predicted
      ``w, h``; the last valid truth per slot wins):
      ``½·k·[(x* − σ(tx))² + (y* − σ(ty))² + (w* − tw)² + (h* − th)²]`` with
      ``k = coord_scale·(2 − w·h)``, ``x* = x·W − cx``, ``w* = log(w·W/pw)``;
      ``½·object_scale·(t − σ(to))²`` with ``t`` the stop-gradient IoU of the
      decoded prediction with the truth (``rescore``) or 1; and
      ``class_scale·CE(softmax(z), label)``;
    * any other slot: ``½·noobject_scale·σ(to)²`` if its best IoU with every
      valid truth is ``<= thresh`` (else nothing), plus, while
      ``seen < warmup_images``, the prior pull
      ``½·0.01·[(0.5 − σ(tx))² + (0.5 − σ(ty))² + tw² + th²]``.

    ``jax.grad`` of the loss w.r.t. ``pred`` equals ``-delta`` of darknet's
    region layer with the logistic gradient applied to ``tx, ty, to`` (darknet
    writes ``delta = scale·(t − σ)`` on the activated output and multiplies by
    ``σ·(1 − σ)`` in ``backward_region_layer_gpu``) and the softmax delta
    ``class_scale·(onehot − p)`` passed straight to the logits.

    Differences from darknet, all outside its normal operating range: every
    valid truth counts (darknet reads at most 30 and stops at the first with
    ``x == 0``); centres at exactly 1.0 are clipped into the last cell.

    Args:
      pred: ``[B, H, W, A·(5 + C)]``, channel ``a·(5 + C) + entry`` with entries
        ``(tx, ty, tw, th, to, class logits…)`` (darknet's NCHW region input
        transposed to NHWC).
      gt_boxes: ``[B, M, 4]`` xyxy in ``[0, 1]`` of the image; valid boxes need
        positive width and height (``w* = log(w·W/pw)``).
      gt_labels: ``[B, M]`` integer class ids.
      gt_mask: ``[B, M]`` bool, true for valid truths.
      anchors: ``[A, 2]`` anchor ``(w, h)`` in grid cells (darknet ``anchors=``).
      seen: images seen so far (darknet ``net.seen``, which already counts the
        current batch); may be traced.
      object_scale: weight of the objectness term of slots with a truth.
      noobject_scale: weight of the no-object term.
      class_scale: weight of the class cross-entropy.
      coord_scale: weight of the coordinate term (times ``2 − w·h``).
      thresh: predictions whose best IoU with a truth is above this get no
        no-object loss.
      rescore: objectness target is the IoU instead of 1.
      bias_match: choose the anchor by the anchor shapes (else by predicted shapes).
      warmup_images: the prior warm-up runs while ``seen`` is below this
        (hard-coded 12800 in darknet).
      centre: the centre parameterisation (`jaxheads.decode.RegionCentre`); the
        default, `jaxheads.decode.BOUNDED`, is darknet's ``σ(tx)``. Another one
        changes the decoded centre, the coordinate term's value and target and the
        warm-up's pull; the slot assignment and the other terms stay.

    Returns:
      ``[B]`` loss per image (float32, or float64 for float64 ``pred``).
    """
    op = "region_loss"
    check_rank(op, "pred", pred, 4, "[B, H, W, A*(5 + C)]")
    check_floating(op, "pred", pred)
    check_rank(op, "anchors", anchors, 2, "[A, 2]")
    num_anchors, two = shape_of(anchors)
    if two != 2 or num_anchors < 1:
        fail(op, "anchors of shape (A, 2) with A >= 1", f"shape {shape_of(anchors)}")
    channels = pred.shape[-1]
    if channels % num_anchors or channels // num_anchors < 6:
        fail(
            op,
            f"pred.shape[-1] == A*(5 + C) with A={num_anchors} anchors and C >= 1",
            f"shape {pred.shape}",
        )
    _check_ground_truth(op, pred.shape[0], gt_boxes, gt_labels, gt_mask)
    if jnp.ndim(seen) != 0:
        fail(op, "a scalar seen", f"shape {shape_of(seen)}")

    dtype = _compute_dtype(pred)
    scales = _scalars(
        dtype,
        coord=coord_scale,
        noobj=noobject_scale,
        obj=object_scale,
        thresh=thresh,
        **{"class": class_scale},
    )
    return _region_batch(
        jnp.asarray(pred).astype(dtype),
        jnp.asarray(gt_boxes).astype(dtype),
        jnp.asarray(gt_labels),
        jnp.asarray(gt_mask),
        jnp.asarray(anchors).astype(dtype),
        jnp.asarray(seen) < warmup_images,
        scales,
        rescore=bool(rescore),
        bias_match=bool(bias_match),
        centre=centre,
    )
