"""Tests for `jaxheads.losses`: parity with darknet's deltas, closed forms, edge cases.

The parity oracles are loop-based numpy re-statements of what darknet computes, in
``darknet_loss_oracles.py``, written to be read side by side with the C.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from darknet_loss_oracles import cxcywh, darknet_detection_delta, darknet_region_delta, logistic

from jaxheads.losses import (
    region_loss,
    yolov1_from_darknet_layout,
    yolov1_loss,
    yolov1_to_darknet_layout,
)

# ---------------------------------------------------------------------------
# Test data.
# ---------------------------------------------------------------------------

# Several truths per image: two sharing a centre cell (and, in the region
# layer, an anchor), one touching the right border, masked entries holding
# garbage (NaN included) that must be ignored.
_FIXED_BOXES = np.array(
    [
        [
            [0.10, 0.12, 0.35, 0.40],
            [0.12, 0.15, 0.33, 0.41],  # same centre cell as the first, similar shape
            [0.90, 0.70, 1.00, 0.99],  # on the right border, centre (0.95, 0.845)
            [np.nan, 0.2, 0.3, np.nan],  # masked garbage
            [0.40, 0.45, 0.80, 0.62],
            [0.0, 0.0, 0.0, 0.0],  # masked padding
            [0.55, 0.05, 0.70, 0.30],
        ],
        [
            [0.30, 0.30, 0.90, 0.95],
            [0.02, 0.60, 0.20, 0.98],
            [0.61, 0.10, 0.72, 0.22],
            [0.64, 0.12, 0.70, 0.20],  # same centre cell as the previous one
            [0.1, 0.1, 0.2, 0.2],  # masked
            [0.05, 0.05, 0.30, 0.25],
            [0.0, 0.0, 0.0, 0.0],  # masked padding
        ],
    ],
    np.float32,
)
_FIXED_MASK = np.array([[1, 1, 1, 0, 1, 0, 1], [1, 1, 1, 1, 0, 1, 0]], bool)


def _ground_truth(classes, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=_FIXED_MASK.shape).astype(np.int32)
    return _FIXED_BOXES, labels, _FIXED_MASK


def _yolov1_raw(side, n, classes, gt_boxes, gt_mask, seed):
    """Random darknet-order outputs; some predictors placed on truths so IoUs are > 0."""
    rng = np.random.default_rng(seed)
    batch = gt_boxes.shape[0]
    locations = side * side
    raw = rng.normal(0.0, 0.5, size=(batch, locations * (classes + 5 * n)))
    # Coordinates: tiny boxes up-left of their cell (IoU 0: the RMSE fallback)...
    coords = raw[:, locations * (classes + n) :].reshape(batch, locations, n, 4)
    coords[..., :2] = rng.uniform(-1.0, -0.5, size=coords[..., :2].shape)
    coords[..., 2:] = rng.uniform(-0.08, 0.08, size=coords[..., 2:].shape)
    # ... except the last predictor of a truth's cell, put close to that truth
    # (IoU > 0): for the first truth only in even images, for every truth in odd ones.
    for b in range(batch):
        for box, valid in zip(gt_boxes[b], gt_mask[b], strict=True):
            if not valid:
                continue
            x, y, w, h = cxcywh(box)
            col, row = int(x * side), int(y * side)
            jitter = rng.uniform(-0.05, 0.05, size=4)
            coords[b, row * side + col, n - 1] = (
                x * side - col + jitter[0],
                y * side - row + jitter[1],
                math.sqrt(w) + jitter[2],
                math.sqrt(h) + jitter[3],
            )
            if b % 2 == 0:
                break
    raw[:, locations * (classes + n) :] = coords.reshape(batch, -1)
    return raw.astype(np.float32)


def _region_raw(h, w, anchors, classes, gt_boxes, gt_mask, seed):
    """Random NCHW region input; one anchor of each truth's cell placed near the truth."""
    rng = np.random.default_rng(seed)
    batch = gt_boxes.shape[0]
    num = len(anchors)
    raw = rng.normal(0.0, 1.0, size=(batch, num, 5 + classes, h, w))
    raw[:, :, 2:4] *= 0.5
    for b in range(batch):
        for box, valid in zip(gt_boxes[b], gt_mask[b], strict=True):
            if not valid:
                continue
            x, y, bw, bh = cxcywh(box)
            i, j = int(x * w), int(y * h)
            n = rng.integers(num)
            sx = np.clip(x * w - i + rng.uniform(-0.05, 0.05), 0.02, 0.98)
            sy = np.clip(y * h - j + rng.uniform(-0.05, 0.05), 0.02, 0.98)
            raw[b, n, 0, j, i] = math.log(sx / (1 - sx))
            raw[b, n, 1, j, i] = math.log(sy / (1 - sy))
            raw[b, n, 2, j, i] = math.log(bw * w / anchors[n][0]) + rng.uniform(-0.1, 0.1)
            raw[b, n, 3, j, i] = math.log(bh * h / anchors[n][1]) + rng.uniform(-0.1, 0.1)
    return raw.reshape(batch, -1, h, w).astype(np.float32)


_ANCHORS = np.array([[0.6, 0.8], [1.5, 1.2], [3.0, 3.5]], np.float32)


# ---------------------------------------------------------------------------
# Layout.
# ---------------------------------------------------------------------------


def test_yolov1_layout_matches_darknet_indices():
    side, n, classes = 3, 2, 4
    raw = np.arange(2 * side * side * (classes + 5 * n), dtype=np.float32).reshape(2, -1)
    pred = np.asarray(yolov1_from_darknet_layout(jnp.asarray(raw), side, n, classes))
    assert pred.shape == (2, side, side, n * 5 + classes)
    locations = side * side
    for b in range(2):
        for row in range(side):
            for col in range(side):
                i = row * side + col
                for k in range(classes):
                    assert pred[b, row, col, n * 5 + k] == raw[b, i * classes + k]
                for j in range(n):
                    assert pred[b, row, col, j * 5 + 4] == raw[b, locations * classes + i * n + j]
                    for k in range(4):
                        flat = locations * (classes + n) + (i * n + j) * 4 + k
                        assert pred[b, row, col, j * 5 + k] == raw[b, flat]
    back = yolov1_to_darknet_layout(jnp.asarray(pred), n, classes)
    np.testing.assert_array_equal(np.asarray(back), raw)


# ---------------------------------------------------------------------------
# Parity with darknet's deltas.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed, rescore, sqrt, n",
    [(0, True, True, 2), (1, False, True, 3), (2, True, False, 2), (3, True, True, 1)],
)
def test_yolov1_gradient_is_minus_twice_darknet_delta(seed, rescore, sqrt, n):
    side, classes = 4, 3
    gt_boxes, gt_labels, gt_mask = _ground_truth(classes, seed)
    raw = _yolov1_raw(side, n, classes, gt_boxes, gt_mask, seed)
    scales = dict(lambda_coord=5.0, lambda_noobj=0.5, lambda_obj=1.5, lambda_class=0.7)

    def total(r):
        pred = yolov1_from_darknet_layout(r, side, n, classes)
        loss = yolov1_loss(
            pred,
            gt_boxes,
            gt_labels,
            gt_mask,
            num_boxes=n,
            num_classes=classes,
            rescore=rescore,
            sqrt=sqrt,
            **scales,
        )
        return jnp.sum(loss)

    grad = jax.jit(jax.grad(total))(jnp.asarray(raw))
    delta, stats = darknet_detection_delta(
        raw,
        gt_boxes,
        gt_labels,
        gt_mask,
        side,
        n,
        classes,
        coord_scale=5.0,
        noobject_scale=0.5,
        object_scale=1.5,
        class_scale=0.7,
        rescore=rescore,
        sqrt=sqrt,
    )
    assert np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_allclose(np.asarray(grad), -2 * delta, rtol=1e-5, atol=1e-5)
    if n > 1:  # both ways of choosing the responsible box were exercised
        assert stats["by_iou"] > 0 and stats["by_rmse"] > 0, stats


@pytest.mark.parametrize(
    "seed, seen, rescore, bias_match, thresh",
    [
        (0, 0, True, True, 0.6),
        (1, 12800, True, True, 0.6),
        (2, 500, False, False, 0.5),
        (3, 10**6, True, False, 0.3),
    ],
)
def test_region_gradient_is_minus_darknet_delta(seed, seen, rescore, bias_match, thresh):
    h, w, classes = 3, 4, 3
    gt_boxes, gt_labels, gt_mask = _ground_truth(classes, seed)
    raw = _region_raw(h, w, _ANCHORS, classes, gt_boxes, gt_mask, seed)
    scales = dict(object_scale=5.0, noobject_scale=1.2, class_scale=0.8, coord_scale=1.3)

    def total(r):
        pred = jnp.transpose(r, (0, 2, 3, 1))
        loss = region_loss(
            pred,
            gt_boxes,
            gt_labels,
            gt_mask,
            _ANCHORS,
            seen=seen,
            thresh=thresh,
            rescore=rescore,
            bias_match=bias_match,
            **scales,
        )
        return jnp.sum(loss)

    grad = jax.jit(jax.grad(total))(jnp.asarray(raw))
    delta, stats = darknet_region_delta(
        raw,
        gt_boxes,
        gt_labels,
        gt_mask,
        _ANCHORS,
        seen,
        thresh=thresh,
        rescore=rescore,
        bias_match=bias_match,
        **scales,
    )
    assert np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_allclose(np.asarray(grad), -delta, rtol=1e-5, atol=1e-5)
    # The data reaches the ignore branch (IoU > thresh) and, with anchors chosen by
    # their shapes, a slot shared by two truths.
    assert stats["ignored"] > 0, stats
    assert stats["overwritten"] > 0 or not bias_match, stats


def test_region_warmup_follows_traced_seen():
    h, w, classes = 3, 4, 3
    gt_boxes, gt_labels, gt_mask = _ground_truth(classes, 0)
    raw = _region_raw(h, w, _ANCHORS, classes, gt_boxes, gt_mask, 0)
    pred = jnp.transpose(jnp.asarray(raw), (0, 2, 3, 1))
    traces = []

    @jax.jit
    def grad_fn(p, seen):
        traces.append(None)

        def total(q):
            return jnp.sum(region_loss(q, gt_boxes, gt_labels, gt_mask, _ANCHORS, seen=seen))

        return jax.grad(total)(p)

    for seen in (12799, 12800):
        got = np.asarray(grad_fn(pred, jnp.asarray(seen, jnp.int32)))
        delta, _ = darknet_region_delta(raw, gt_boxes, gt_labels, gt_mask, _ANCHORS, seen)
        want = -np.transpose(delta, (0, 2, 3, 1))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert len(traces) == 1  # seen is traced: no recompilation


# ---------------------------------------------------------------------------
# Closed forms.
# ---------------------------------------------------------------------------


def _v1_tiny_case():
    # S=2, nb=1, C=2. One truth: centre (0.25, 0.2), size 0.25 x 0.16, class 0,
    # in cell (row 0, col 0) at offsets (0.5, 0.4), sqrt-size (0.5, 0.4).
    gt_boxes = np.array([[[0.125, 0.12, 0.375, 0.28]]], np.float32)
    pred = np.zeros((1, 2, 2, 5 + 2), np.float32)
    pred[0, :, :, 4] = 0.2  # confidence of the three empty cells
    pred[0, 0, 0] = [0.5, 0.5, 0.5, 0.5, 0.8, 0.6, 0.1]
    return jnp.asarray(pred), gt_boxes, np.zeros((1, 1), np.int32), np.ones((1, 1), bool)


def test_yolov1_hand_computed_no_rescore(maybe_jit):
    # coord: 5 * [(0.5-0.5)^2 + (0.4-0.5)^2 + (0.5-0.5)^2 + (0.4-0.5)^2] = 5 * 0.02 = 0.1
    # obj:   1 * (1 - 0.8)^2                                               = 0.04
    # class: (1 - 0.6)^2 + (0 - 0.1)^2                                     = 0.17
    # noobj: 0.5 * 3 * 0.2^2                                               = 0.06
    # total                                                                = 0.37
    pred, boxes, labels, mask = _v1_tiny_case()
    fn = maybe_jit(
        lambda p: yolov1_loss(p, boxes, labels, mask, num_boxes=1, num_classes=2, rescore=False)
    )
    np.testing.assert_allclose(np.asarray(fn(pred)), [0.37], rtol=1e-6)


def test_yolov1_hand_computed_rescore():
    # Predicted box (cell frame, /S): centre (0.25, 0.25), size 0.25 x 0.25 -> y in [0.125, 0.375];
    # truth: centre (0.25, 0.2), size 0.25 x 0.16 -> y in [0.12, 0.28]; same x range.
    # IoU = 0.25 * (0.28 - 0.125) / (0.0625 + 0.04 - 0.03875) = 0.03875 / 0.06375 = 31/51.
    # obj = (31/51 - 0.8)^2 = 0.0369243...; total = 0.1 + 0.0369243 + 0.17 + 0.06.
    pred, boxes, labels, mask = _v1_tiny_case()
    got = yolov1_loss(pred, boxes, labels, mask, num_boxes=1, num_classes=2)
    np.testing.assert_allclose(np.asarray(got), [0.33 + (31 / 51 - 0.8) ** 2], rtol=1e-6)


def test_yolov1_rmse_fallback_picks_the_closer_box():
    # S=1, nb=2: neither box overlaps the truth centred at (0.5, 0.5); box 1's corner is
    # closer in (x, y, w, h), so box 1 is responsible and box 0 only gets the no-object term.
    pred = np.zeros((1, 1, 1, 2 * 5 + 1), np.float32)
    pred[0, 0, 0, 0:5] = [0.05, 0.05, 0.1, 0.1, 0.3]
    pred[0, 0, 0, 5:10] = [0.2, 0.2, 0.1, 0.1, 0.3]
    boxes = np.array([[[0.4, 0.4, 0.6, 0.6]]], np.float32)
    args = (boxes, np.zeros((1, 1), np.int32), np.ones((1, 1), bool))
    grad = jax.grad(lambda p: yolov1_loss(p, *args, num_boxes=2, num_classes=1).sum())(
        jnp.asarray(pred)
    )
    grad = np.asarray(grad)[0, 0, 0]
    np.testing.assert_allclose(grad[0:4], 0)
    np.testing.assert_allclose(grad[4], 2 * 0.5 * 0.3, rtol=1e-6)  # no-object on box 0
    assert np.all(grad[5:9] != 0)
    np.testing.assert_allclose(grad[9], -2 * (0 - 0.3), rtol=1e-6)  # rescore target IoU = 0


@pytest.mark.parametrize("rescore", [False, True])
def test_yolov1_perfect_prediction_has_zero_loss(rescore):
    side, n, classes = 3, 2, 3
    boxes = np.array(
        [[[0.05, 0.1, 0.3, 0.3], [0.4, 0.35, 0.6, 0.65], [0.7, 0.68, 0.95, 0.99], [0, 0, 0, 0]]],
        np.float32,
    )
    labels = np.array([[2, 0, 1, 0]], np.int32)
    mask = np.array([[True, True, True, False]])
    pred = np.zeros((1, side, side, n * 5 + classes), np.float32)
    for box, label in zip(boxes[0, :3], labels[0, :3], strict=True):
        x, y, w, h = cxcywh(box)
        col, row = int(x * side), int(y * side)
        pred[0, row, col, 5:10] = [x * side - col, y * side - row, math.sqrt(w), math.sqrt(h), 1]
        pred[0, row, col, 10 + label] = 1
    loss = yolov1_loss(
        jnp.asarray(pred), boxes, labels, mask, num_boxes=n, num_classes=classes, rescore=rescore
    )
    np.testing.assert_allclose(np.asarray(loss), [0.0], atol=1e-10)


def test_region_hand_computed(maybe_jit):
    # H=W=2, A=1 anchor (1, 1) cell, C=2; all outputs 0 except tw of cell (1, 1) = log 2.
    # Each prediction: σ = 0.5 -> centred in its cell, size 0.5 x 0.5 of the image.
    # Truth: xyxy (0, 0.125, 0.5, 0.375) = centre (0.25, 0.25), size 0.5 x 0.25, class 1.
    #   cell (0, 0): x* = y* = 0.5, w* = log(0.5*2/1) = 0, h* = log(0.25*2/1) = -log 2.
    #   coord: ½ * 1 * (2 - 0.125) * (log 2)^2     = 0.9375 * 0.480453 = 0.450425
    #   IoU of [0,0.5]^2 with [0,0.5]x[0.125,0.375] = 0.125 / 0.25 = 0.5 -> obj: ½*5*(0.5-0.5)^2 = 0
    #   class: cross-entropy of logits (0, 0)      = log 2            = 0.693147
    # Other three cells: IoU 0 <= 0.6 -> ½ * 1 * 0.5^2 each          = 0.375
    # Warm-up (seen < 12800): only cell (1, 1) is off its prior:
    #   ½ * 0.01 * (log 2)^2                                          = 0.0024023
    pred = np.zeros((1, 2, 2, 1 * (5 + 2)), np.float32)
    pred[0, 1, 1, 2] = math.log(2)
    boxes = np.array([[[0.0, 0.125, 0.5, 0.375]]], np.float32)
    labels, mask = np.ones((1, 1), np.int32), np.ones((1, 1), bool)
    anchors = np.array([[1.0, 1.0]], np.float32)
    fn = maybe_jit(lambda p, s: region_loss(p, boxes, labels, mask, anchors, seen=s))
    log2 = math.log(2)
    cold = 0.9375 * log2**2 + log2 + 0.375
    np.testing.assert_allclose(np.asarray(fn(jnp.asarray(pred), 12800)), [cold], rtol=1e-6)
    warm = cold + 0.005 * log2**2
    np.testing.assert_allclose(np.asarray(fn(jnp.asarray(pred), 0)), [warm], rtol=1e-6)


# ---------------------------------------------------------------------------
# No valid truth, vmap, jit.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("m", [0, 3])
def test_no_valid_truth_gives_pure_no_object_loss(maybe_jit, m):
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 1, size=(2, m, 4)).astype(np.float32)
    labels, mask = np.zeros((2, m), np.int32), np.zeros((2, m), bool)

    pred1 = jnp.asarray(rng.normal(size=(2, 3, 3, 2 * 5 + 2)), jnp.float32)
    v1 = maybe_jit(lambda p: yolov1_loss(p, boxes, labels, mask, num_boxes=2, num_classes=2))
    conf = np.asarray(pred1)[..., [4, 9]]
    np.testing.assert_allclose(np.asarray(v1(pred1)), 0.5 * (conf**2).sum((1, 2, 3)), rtol=1e-6)

    pred2 = jnp.asarray(rng.normal(size=(2, 3, 4, 3 * (5 + 2))), jnp.float32)
    v2 = maybe_jit(lambda p: region_loss(p, boxes, labels, mask, _ANCHORS, seen=10**5))
    obj = logistic(np.asarray(pred2, np.float64).reshape(2, 3, 4, 3, 7)[..., 4])
    np.testing.assert_allclose(np.asarray(v2(pred2)), 0.5 * (obj**2).sum((1, 2, 3)), rtol=1e-5)
    grads = jax.jit(jax.grad(lambda p: v2(p).sum()))(pred2)
    assert np.all(np.isfinite(np.asarray(grads)))


def test_vmap_over_images_equals_the_batch():
    classes = 3
    gt_boxes, gt_labels, gt_mask = _ground_truth(classes, 0)
    raw = _region_raw(3, 4, _ANCHORS, classes, gt_boxes, gt_mask, 0)
    pred = jnp.transpose(jnp.asarray(raw), (0, 2, 3, 1))

    def one(p, b, lab, m):
        return region_loss(p[None], b[None], lab[None], m[None], _ANCHORS, seen=0)[0]

    batched = region_loss(pred, gt_boxes, gt_labels, gt_mask, _ANCHORS, seen=0)
    mapped = jax.jit(jax.vmap(one))(pred, gt_boxes, gt_labels, gt_mask)
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(batched), rtol=1e-6)

    v1_raw = _yolov1_raw(4, 2, classes, gt_boxes, gt_mask, 0)
    v1_pred = yolov1_from_darknet_layout(jnp.asarray(v1_raw), 4, 2, classes)
    kw = dict(num_boxes=2, num_classes=classes)
    batched = yolov1_loss(v1_pred, gt_boxes, gt_labels, gt_mask, **kw)
    mapped = jax.vmap(lambda p, b, lab, m: yolov1_loss(p[None], b[None], lab[None], m[None], **kw))(
        v1_pred, gt_boxes, gt_labels, gt_mask
    )
    np.testing.assert_allclose(np.asarray(mapped)[:, 0], np.asarray(batched), rtol=1e-6)


def test_bfloat16_predictions_give_a_float32_loss():
    gt_boxes, gt_labels, gt_mask = _ground_truth(2, 0)
    pred = jnp.zeros((2, 3, 3, 2 * 5 + 2), jnp.bfloat16)
    loss = jax.jit(yolov1_loss, static_argnames=("num_boxes", "num_classes"))(
        pred, gt_boxes, gt_labels, gt_mask, num_boxes=2, num_classes=2
    )
    assert loss.dtype == jnp.float32 and loss.shape == (2,)


# ---------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------

_B, _M = 2, 4
_GOOD_GT = (
    np.zeros((_B, _M, 4), np.float32),
    np.zeros((_B, _M), np.int32),
    np.zeros((_B, _M), bool),
)


@pytest.mark.parametrize(
    "pred, gt, match",
    [
        (np.zeros((3, 3, 12), np.float32), _GOOD_GT, r"yolov1_loss: expected pred of rank 4"),
        (np.zeros((_B, 3, 3, 13), np.float32), _GOOD_GT, r"pred.shape\[-1\] == nb\*5 \+ C = 12"),
        (np.zeros((_B, 3, 4, 12), np.float32), _GOOD_GT, r"expected a square S x S grid"),
        (np.zeros((_B, 3, 3, 12), np.int32), _GOOD_GT, r"expected pred with a floating dtype"),
        (
            np.zeros((_B, 3, 3, 12), np.float32),
            (np.zeros((_B, _M, 5), np.float32),) + _GOOD_GT[1:],
            r"expected gt_boxes of shape \(2, M, 4\)",
        ),
        (
            np.zeros((_B, 3, 3, 12), np.float32),
            (np.zeros((3, _M, 4), np.float32),) + _GOOD_GT[1:],
            r"expected gt_boxes of shape \(2, M, 4\)",
        ),
        (
            np.zeros((_B, 3, 3, 12), np.float32),
            (_GOOD_GT[0], np.zeros((_B, _M + 1), np.int32), _GOOD_GT[2]),
            r"expected gt_labels of shape \(2, 4\)",
        ),
        (
            np.zeros((_B, 3, 3, 12), np.float32),
            (_GOOD_GT[0], _GOOD_GT[1], np.zeros((_B,), bool)),
            r"expected gt_mask of rank 2",
        ),
        (
            np.zeros((_B, 3, 3, 12), np.float32),
            (_GOOD_GT[0], _GOOD_GT[1].astype(np.float32), _GOOD_GT[2]),
            r"expected gt_labels with an integer dtype",
        ),
        (
            np.zeros((_B, 3, 3, 12), np.float32),
            (_GOOD_GT[0], _GOOD_GT[1], _GOOD_GT[2].astype(np.int32)),
            r"expected gt_mask with dtype bool",
        ),
    ],
)
def test_yolov1_bad_input(pred, gt, match):
    with pytest.raises(ValueError, match=match):
        yolov1_loss(pred, *gt, num_boxes=2, num_classes=2)


@pytest.mark.parametrize(
    "pred, anchors, gt, match",
    [
        (
            np.zeros((3, 4, 21), np.float32),
            _ANCHORS,
            _GOOD_GT,
            r"region_loss: expected pred of rank 4",
        ),
        (np.zeros((_B, 3, 4, 22), np.float32), _ANCHORS, _GOOD_GT, r"A\*\(5 \+ C\) with A=3"),
        (np.zeros((_B, 3, 4, 15), np.float32), _ANCHORS, _GOOD_GT, r"A\*\(5 \+ C\) with A=3"),
        (
            np.zeros((_B, 3, 4, 21), np.float32),
            np.zeros((3, 3)),
            _GOOD_GT,
            r"anchors of shape \(A, 2\)",
        ),
        (np.zeros((_B, 3, 4, 21), np.float32), np.zeros(6), _GOOD_GT, r"anchors of rank 2"),
        (
            np.zeros((_B, 3, 4, 21), np.float32),
            _ANCHORS,
            (np.zeros((_B, _M + 1, 4), np.float32),) + _GOOD_GT[1:],
            r"expected gt_labels of shape \(2, 5\)",
        ),
    ],
)
def test_region_bad_input(pred, anchors, gt, match):
    with pytest.raises(ValueError, match=match):
        region_loss(pred, *gt, anchors, seen=0)


def test_bad_layout_and_seen():
    with pytest.raises(ValueError, match=r"yolov1_from_darknet_layout: expected raw.shape\[1\]"):
        yolov1_from_darknet_layout(jnp.zeros((1, 100)), 3, 2, 2)
    with pytest.raises(ValueError, match=r"yolov1_to_darknet_layout: expected pred.shape\[-1\]"):
        yolov1_to_darknet_layout(jnp.zeros((1, 3, 3, 11)), 2, 2)
    with pytest.raises(ValueError, match=r"region_loss: expected a scalar seen"):
        region_loss(jnp.zeros((_B, 3, 4, 21)), *_GOOD_GT, _ANCHORS, seen=np.zeros(2))
