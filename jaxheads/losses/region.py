"""The YOLOv2 loss of darknet's ``[region]`` layer (``region_layer.c``).

See `jaxheads.losses` for the ground-truth format and how two truths in one slot resolve.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxheads._checks import check_floating, check_rank, fail, shape_of
from jaxheads.boxes import cxcywh_iou, shape_iou
from jaxheads.decode import BOUNDED, RegionCentre
from jaxheads.losses._common import (
    _cell_index,
    _check_ground_truth,
    _compute_dtype,
    _scalars,
    _scatter_to_slots,
    _slot_winners,
    _truths_cxcywh,
)

# region_layer.c pulls every prediction toward its prior with this fixed scale
# while ``net.seen < 12800``.
_WARMUP_COORD_SCALE = 0.01


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
