"""Heads: shapes, jit/vmap/grad, closed forms, decoding, parameter counts (Keras elsewhere)."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compilations import compilations
from flax import nnx
from numpy_init import numpy_init as _init

from jaxheads import heads
from jaxheads import layers as L
from jaxheads.nnx import LayerModule
from jaxheads.summary import summary

ANCHORS = ((1.0, 1.0), (2.0, 1.5))
PASSTHROUGH = ((2, 3, 3, 8), (2, 6, 6, 8))

# Only the per-cell case keeps dropout: its random mask is compiled anew for every shape,
# which would dominate these tests' run time on CPU.
CASES = [
    (
        "yolov1_fc",
        lambda: heads.yolov1_fc(side=3, num_classes=3, hidden=16, dropout=0.0),
        (2, 3, 3, 8),
    ),
    (
        "yolov1_percell",
        lambda: heads.yolov1_percell(side=3, num_classes=3, hidden=16),
        (2, 3, 3, 8),
    ),
    (
        "yolov1_local",
        lambda: heads.yolov1_local(side=3, num_classes=3, filters=4, dropout=0.0),
        (2, 3, 3, 8),
    ),
    ("gap", lambda: heads.gap(side=3, num_classes=3), (2, 3, 3, 8)),
    ("yolov2", lambda: heads.yolov2(anchors=ANCHORS, num_classes=3, width=8), (2, 3, 3, 8)),
    (
        "yolov2_final_conv_only",
        lambda: heads.yolov2(anchors=ANCHORS, num_classes=3, extra_convs=False),
        (2, 3, 3, 8),
    ),
    (
        "yolov2_passthrough_darknet",
        lambda: heads.yolov2(
            anchors=ANCHORS, num_classes=3, width=8, passthrough=True, passthrough_channels=4
        ),
        PASSTHROUGH,
    ),
]
# reorg="space_to_depth" differs from the darknet case only in the reorg layer (itself
# tested in test_layers); its own test is the Keras parity test (test_heads_keras).
IDS = [c[0] for c in CASES]
PARAMS = [c[1:] for c in CASES]


def _is_multi(shape):
    return isinstance(shape[0], tuple)


def _unbatched(shape):
    return tuple((None, *s[1:]) for s in shape) if _is_multi(shape) else (None, *shape[1:])


def _random(shape, seed=0):
    if _is_multi(shape):
        return [_random(s, seed + i) for i, s in enumerate(shape)]
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _expected_output(head, shape):
    coarse = shape[0] if _is_multi(shape) else shape
    h, w = coarse[1:3]
    per_cell = (
        head.num_boxes * (5 + head.num_classes)
        if head.kind == "yolov2"
        else (head.num_boxes * 5 + head.num_classes)
    )
    return (None, h, w, per_cell), h * w * head.num_boxes


@pytest.mark.parametrize("make,shape", PARAMS, ids=IDS)
def test_init_shape_matches_apply_and_decode(make, shape, maybe_jit):
    head = make()
    out_shape, params, state = _init(head.layer, _unbatched(shape))
    expected, n = _expected_output(head, shape)
    assert out_shape == expected
    y, new_state = maybe_jit(head.layer.apply)(params, state, _random(shape))
    assert (None, *y.shape[1:]) == out_shape and y.shape[0] == 2
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    boxes, scores = maybe_jit(head.decode)(y)
    assert boxes.shape == (2, n, 4) and scores.shape == (2, n, head.num_classes)
    assert bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize("make,shape", PARAMS, ids=IDS)
def test_jit_matches_eager_and_vmap_matches_loop(make, shape):
    head = make()
    _, params, state = _init(head.layer, _unbatched(shape), seed=1)
    # Three stacked batches: vmap adds an axis in front of the batch axis.
    xs = jax.tree.map(lambda *a: jnp.stack(a), *[_random(shape, seed=10 * i) for i in range(3)])

    def f(x):
        return head.layer.apply(params, state, x)[0]

    eager = [f(jax.tree.map(lambda a, i=i: a[i], xs)) for i in range(3)]
    np.testing.assert_allclose(jax.vmap(f)(xs), np.stack(eager), rtol=1e-5, atol=1e-5)
    first = jax.tree.map(lambda a: a[0], xs)
    np.testing.assert_allclose(jax.jit(f)(first), eager[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make,shape", PARAMS, ids=IDS)
def test_gradients_are_finite_and_no_recompile(make, shape):
    head = make()
    _, params, state = _init(head.layer, _unbatched(shape))

    @jax.jit
    def loss(p, x, key):
        y, new_state = head.layer.apply(p, state, x, train=True, key=key)
        return jnp.sum(y**2), new_state

    x = _random(shape)
    grad, new_state = jax.grad(loss, has_aux=True)(params, x, jax.random.key(3))
    assert jax.tree.structure(grad) == jax.tree.structure(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grad))
    assert any(bool(jnp.any(g != 0)) for g in jax.tree.leaves(grad))
    x2, keys = jax.tree.map(lambda a: a + 1, x), (jax.random.key(4), jax.random.key(5))
    with compilations("loss") as compiled:
        loss(params, x, keys[0])
        loss(params, x2, keys[1])
    assert len(compiled) == 1


def test_nnx_module_wraps_a_head():
    head = heads.yolov2(
        anchors=ANCHORS, num_classes=3, passthrough=True, passthrough_channels=4, extra_convs=False
    )
    shape = PASSTHROUGH
    module = LayerModule(head.layer, _unbatched(shape), rngs=nnx.Rngs(0))
    module.eval()  # training mode, Flax's default, would use batch statistics
    x = _random(shape, seed=5)
    _, params, state = module.pure()
    np.testing.assert_array_equal(module(x), head.layer.apply(params, state, x)[0])


# --- closed forms with constant weights -----------------------------------------------------


def _constant(tree):
    """Kernels, batch-norm scales and variances of one; biases and means of zero."""

    def value(path, leaf):
        ones = path[-1].key in ("kernel", "scale", "var")
        return jnp.ones_like(leaf) if ones else jnp.zeros_like(leaf)

    return jax.tree_util.tree_map_with_path(value, tree)


def _box_sum(a):
    """Sum over each cell's 3×3 neighbourhood with zero padding ([H, W] numpy array)."""
    p = np.pad(a, 1)
    h, w = a.shape
    return sum(p[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3))


S, CIN, HIDDEN, FILTERS = 3, 2, 4, 5
# In-bounds cells of each 3×3 window on a 3×3 grid: corners 4, edges 6, centre 9; total 49.
NEIGHBOURS = _box_sum(np.ones((S, S))).sum()


@pytest.mark.parametrize(
    "make,value",
    [
        # ones in, ones weights: the hidden layer sums its fan-in, the output sums the hidden.
        (lambda: heads.yolov1_percell(side=S, hidden=HIDDEN), CIN * HIDDEN),
        (lambda: heads.yolov1_fc(side=S, hidden=HIDDEN), S * S * CIN * HIDDEN),
        (lambda: heads.gap(side=S), CIN),
        (lambda: heads.yolov1_local(side=S, filters=FILTERS), CIN * FILTERS * NEIGHBOURS),
    ],
    ids=["percell", "fc", "gap", "local"],
)
@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["pos", "neg"])
def test_yolov1_heads_closed_form(make, value, sign, maybe_jit):
    head = make()
    _, params, state = _init(head.layer, (None, S, S, CIN))
    y, _ = maybe_jit(head.layer.apply)(
        _constant(params), _constant(state), jnp.full((1, S, S, CIN), sign)
    )
    assert y.shape == (1, S, S, 30)
    # A negative input goes through the leaky ReLU's 0.1 slope; GAP has no activation.
    slope = 1.0 if sign > 0 or head.layer.name == "gap" else 0.1
    np.testing.assert_allclose(y, np.full(y.shape, sign * slope * value), rtol=1e-6)


def test_yolov2_head_closed_form():
    width, pc, cf, a, c = 3, 4, 2, 2, 1
    head = heads.yolov2(
        anchors=ANCHORS, num_classes=c, width=width, passthrough=True, passthrough_channels=pc
    )
    _, params, state = _init(head.layer, ((None, S, S, CIN), (None, 6, 6, cf)))
    y, _ = head.layer.apply(
        _constant(params), _constant(state), [jnp.ones((1, S, S, CIN)), jnp.ones((1, 6, 6, cf))]
    )
    k = 1 / math.sqrt(1 + 1e-3)  # inference batch norm: mean 0, var 1, Keras' epsilon
    c1 = k * CIN * _box_sum(np.ones((S, S)))  # every conv1 channel
    c2 = k * width * _box_sum(c1)
    fine = k * cf  # the 1×1 passthrough conv on a constant map, reorganised: still constant
    count = _box_sum(np.ones((S, S)))
    c3 = k * (4 * pc * fine * count + width * _box_sum(c2))
    expected = np.broadcast_to((width * c3)[None, :, :, None], (1, S, S, a * (5 + c)))
    np.testing.assert_allclose(y, expected, rtol=1e-5)


# --- decoding -------------------------------------------------------------------------------


def test_yolov1_decode_recovers_a_known_box():
    head = heads.yolov1_percell(side=2, num_boxes=2, num_classes=3)
    raw = np.zeros((1, 2, 2, 13), np.float32)
    # Cell row 1, column 0, box 0: centre in the middle of the cell, w = 0.4, h = 0.2.
    raw[0, 1, 0, 0:5] = [0.5, 0.5, math.sqrt(0.4), math.sqrt(0.2), 0.9]
    raw[0, 1, 0, 10:13] = [0.0, 1.0, 0.0]
    boxes, scores = head.decode(jnp.asarray(raw))
    n = (1 * 2 + 0) * 2 + 0  # cell-major, then box
    np.testing.assert_allclose(boxes[0, n], [0.05, 0.65, 0.45, 0.85], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(scores[0, n], [0.0, 0.9, 0.0], rtol=1e-6)
    assert float(jnp.sum(scores)) == pytest.approx(0.9)


def test_yolov2_decode_recovers_a_known_box():
    head = heads.yolov2(anchors=((1.0, 1.0), (1.0, 2.0)), num_classes=2)
    raw = np.zeros((1, 2, 2, 14), np.float32)
    # Cell row 0, column 1, anchor (1, 2): σ(0) = ½ puts the centre at (1.5/2, 0.5/2);
    # tw = 0 keeps the width 1 cell = 0.5, th = log ½ halves the height to 1 cell = 0.5.
    raw[0, 0, 1, 7:14] = [0.0, 0.0, 0.0, math.log(0.5), 20.0, 0.0, math.log(3.0)]
    boxes, scores = head.decode(jnp.asarray(raw))
    n = (0 * 2 + 1) * 2 + 1  # cell-major, then anchor
    np.testing.assert_allclose(boxes[0, n], [0.5, 0.0, 1.0, 0.5], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(scores[0, n], [0.25, 0.75], rtol=1e-6)


def test_loss_kwargs_carry_the_head_config():
    v1 = heads.yolov1_fc(side=5, num_boxes=3, num_classes=4, sqrt=False)
    assert (v1.kind, v1.side, v1.passthrough) == ("yolov1", 5, False)
    assert v1.loss_kwargs() == {"num_boxes": 3, "num_classes": 4, "sqrt": False}
    v2 = heads.yolov2(passthrough=True)
    assert (v2.kind, v2.side, v2.num_boxes, v2.num_classes) == ("yolov2", None, 5, 20)
    np.testing.assert_allclose(v2.loss_kwargs()["anchors"], heads.VOC_ANCHORS, rtol=1e-7)


# --- parameter counts users quote -----------------------------------------------------------

PAPER_MAP = (None, 7, 7, 1024)


def _counts(layer, shape):
    _, params, state = L.abstract_init(layer, shape)
    per_node = {
        n: L.count(params.get(n, {})) + L.count(state.get(n, {})) for n in {*params, *state}
    }
    return per_node, L.count(params) + L.count(state)


def test_percell_head_counts():
    per_node, total = _counts(heads.yolov1_percell().layer, PAPER_MAP)
    assert per_node["dense"] == 1024 * 4096 + 4096 == 4_198_400
    assert per_node["dense_1"] == 4096 * 30 + 30 == 122_910
    assert total == 4_321_310


def test_fc_head_counts():
    per_node, total = _counts(heads.yolov1_fc().layer, PAPER_MAP)
    assert per_node["dense"] == 7 * 7 * 1024 * 4096 + 4096 == 205_524_992
    assert per_node["dense_1"] == 4096 * 1470 + 1470 == 6_022_590
    assert total == 211_547_582


def test_local_and_gap_head_counts():
    _, local = _counts(heads.yolov1_local().layer, PAPER_MAP)
    assert local == 7 * 7 * (3 * 3 * 1024 * 256 + 256) + 7 * 7 * 256 * 1470 + 1470
    _, gap = _counts(heads.gap().layer, PAPER_MAP)
    assert gap == 1024 * 1470 + 1470 == 1_506_750


# yolov2-voc.cfg (pjreddie darknet), layers 23-30, verbatim.
YOLOV2_VOC_23_30 = """
[convolutional]
batch_normalize=1
size=3
stride=1
pad=1
filters=1024
activation=leaky

[convolutional]
batch_normalize=1
size=3
stride=1
pad=1
filters=1024
activation=leaky

[route]
layers=-9

[convolutional]
batch_normalize=1
size=1
stride=1
pad=1
filters=64
activation=leaky

[reorg]
stride=2

[route]
layers=-1,-4

[convolutional]
batch_normalize=1
size=3
stride=1
pad=1
filters=1024
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=125
activation=linear
"""


def _darknet_conv_params(cfg, first, channels):
    """Parameters of each [convolutional] section, tracking channels through routes.

    ``channels`` maps earlier layer indices to their output channels. A
    batch-normalised darknet conv stores weights, scales, biases, rolling mean
    and variance (no conv bias); a plain one stores weights and biases.
    """
    channels, counts = dict(channels), []
    for index, (kind, body) in enumerate(re.findall(r"\[(\w+)\]([^\[]*)", cfg), start=first):
        opts = dict(line.split("=", 1) for line in body.split())
        if kind == "convolutional":
            filters, size = int(opts["filters"]), int(opts["size"])
            extra = 4 * filters if opts.get("batch_normalize") == "1" else filters
            counts.append(size * size * channels[index - 1] * filters + extra)
            channels[index] = filters
        elif kind == "route":
            channels[index] = sum(channels[index + int(i)] for i in opts["layers"].split(","))
        elif kind == "reorg":
            channels[index] = channels[index - 1] * int(opts["stride"]) ** 2
    return counts


def test_yolov2_head_matches_darknet_cfg_counts():
    # Darknet-19 in yolov2-voc.cfg: layer 16 is the 26×26×512 map, layer 22 the 13×13×1024.
    expected = _darknet_conv_params(YOLOV2_VOC_23_30, 23, {16: 512, 22: 1024})
    shape = ((None, 13, 13, 1024), (None, 26, 26, 512))
    per_node, total = _counts(heads.yolov2(passthrough=True).layer, shape)
    ours = [
        per_node[conv] + per_node.get(bn, 0)
        for conv, bn in [
            ("conv1", "bn1"),
            ("conv2", "bn2"),
            ("pass_conv", "pass_bn"),
            ("conv3", "bn3"),
            ("output", None),
        ]
    ]
    assert ours == expected
    assert total == sum(expected) == 30_844_285
    assert "Total params: 30,844,285" in summary(heads.yolov2(passthrough=True).layer, shape)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,shape,match",
    [
        (
            lambda: heads.yolov1_fc(side=3),
            (None, 4, 4, 8),
            r"yolov1_fc: expected a feature map \[B, 3, 3, C\] for side=3, "
            r"got shape \(None, 4, 4, 8\)",
        ),
        (
            lambda: heads.yolov1_percell(side=3),
            (None, 9, 8),
            r"yolov1_percell: expected a feature map \[B, 3, 3, C\] \(rank 4\)",
        ),
        (
            lambda: heads.yolov1_local(side=3),
            (None, 3, 3, 3, 8),
            r"yolov1_local: expected .*rank 4",
        ),
        (
            lambda: heads.gap(side=3),
            ((None, 3, 3, 8), (None, 6, 6, 8)),
            r"gap: expected one feature map",
        ),
        (
            lambda: heads.yolov2(passthrough=True),
            (None, 3, 3, 8),
            r"yolov2: expected \[coarse \[B, H, W, C\], fine \[B, 2H, 2W, C'\]\] "
            r"\(passthrough=True\)",
        ),
        (
            lambda: heads.yolov2(passthrough=True),
            ((None, 3, 3, 8), (None, 4, 4, 8)),
            r"yolov2: expected .* twice the coarse map's size",
        ),
        (
            lambda: heads.yolov2(),
            ((None, 3, 3, 8), (None, 6, 6, 8)),
            r"yolov2: expected one feature map",
        ),
        (lambda: heads.yolov2(), (None, 3, 8), r"yolov2: expected a feature map \[B, H, W, C\]"),
    ],
)
def test_bad_feature_maps_are_rejected_at_init(make, shape, match):
    with pytest.raises(ValueError, match=match):
        make().layer.init(jax.random.key(0), shape)


def test_bad_feature_maps_are_rejected_at_apply():
    head = heads.yolov1_percell(side=3, hidden=4)
    _, params, state = _init(head.layer, (None, 3, 3, 8))
    with pytest.raises(ValueError, match=r"yolov1_percell: expected a feature map \[B, 3, 3, C\]"):
        head.layer.apply(params, state, jnp.ones((1, 4, 4, 8)))
    head = heads.yolov2(
        anchors=ANCHORS, num_classes=1, width=4, passthrough=True, passthrough_channels=4
    )
    _, params, state = _init(head.layer, ((None, 2, 2, 3), (None, 4, 4, 3)))
    with pytest.raises(ValueError, match=r"yolov2: expected \[coarse"):
        head.layer.apply(params, state, jnp.ones((1, 2, 2, 3)))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: heads.yolov2(anchors=(1.0, 2.0)), r"yolov2: expected anchors of shape \(A, 2\)"),
        (
            lambda: heads.yolov2(anchors=((1.0, 2.0, 3.0),)),
            r"yolov2: expected anchors of shape \(A, 2\) with A >= 1, got shape \(1, 3\)",
        ),
        (lambda: heads.yolov2(anchors=((1.0, -2.0),)), r"yolov2: expected anchors with positive"),
        (lambda: heads.yolov2(reorg="tf"), r"yolov2: expected reorg in \['darknet', 'space_to_"),
        (lambda: heads.yolov2(num_classes=0), r"yolov2: expected num_classes to be a positive"),
        (lambda: heads.yolov1_fc(side=0), r"yolov1_fc: expected side to be a positive integer"),
        (lambda: heads.yolov1_percell(hidden=2.5), r"yolov1_percell: expected hidden to be a pos"),
        (lambda: heads.yolov1_local(dropout=1.0), r"yolov1_local: expected dropout .* in \[0, 1\)"),
    ],
)
def test_bad_configuration_is_rejected(make, match):
    with pytest.raises(ValueError, match=match):
        make()
