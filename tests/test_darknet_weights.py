"""Darknet ``.weights`` files: every weighted layer against darknet's own arithmetic.

Each test writes a ``.weights`` file by hand — header, then floats in the order
darknet's ``load_weights`` reads them — loads it with the cfg, and compares the
output with a NumPy computation done the way darknet does it: on NCHW buffers,
with darknet's ``im2col`` (channel-major patches), its connected layer's
``output = W[out, in] · input`` over the C, H, W-flattened input, and batch norm
``(x − mean) / sqrt(var + .000001)``. Float32 sums in a different order than
NumPy's float64 are why the tolerances are 1e-5, not 1e-6.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxheads import darknet

NET = "[net]\nheight={h}\nwidth={w}\nchannels={c}\n"
TOL = dict(rtol=1e-5, atol=1e-5)


def weights_bytes(arrays, *, major=0, minor=2, revision=0, seen=7) -> bytes:
    """A darknet .weights file: int32 header, seen (size_t when major*10+minor >= 2)."""
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    head = np.array([major, minor, revision], "<i4").tobytes()
    head += np.array([seen], "<u8" if wide else "<i4").tobytes()
    return head + b"".join(np.asarray(a, "<f4").tobytes() for a in arrays)


def _load(tmp_path, body, arrays, *, h, w, c, **header):
    cfg = tmp_path / "model.cfg"
    cfg.write_text(NET.format(h=h, w=w, c=c) + body)
    path = tmp_path / "model.weights"
    path.write_bytes(weights_bytes(arrays, **header))
    return darknet.load(cfg, path)


def _forward(net, x_chw):
    y = np.asarray(net(jnp.asarray(x_chw.transpose(1, 2, 0)[None])))[0]
    return y.transpose(2, 0, 1) if y.ndim == 3 else y


def _rng(seed=0):
    return np.random.default_rng(seed)


# --- darknet's arithmetic in NumPy (NCHW, float64) ----------------------------------------


def im2col(x, size, stride, pad):
    """darknet's ``im2col_cpu``: ``[C·size·size, out_h·out_w]``, rows channel-major."""
    c, h, w = x.shape
    oh, ow = (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1
    col = np.zeros((c * size * size, oh * ow))
    for row in range(c * size * size):
        w_off, h_off, c_im = row % size, (row // size) % size, row // size // size
        for y in range(oh):
            for x_ in range(ow):
                iy, ix = h_off + y * stride - pad, w_off + x_ * stride - pad
                if 0 <= iy < h and 0 <= ix < w:
                    col[row, y * ow + x_] = x[c_im, iy, ix]
    return col, oh, ow


def conv_reference(x, weights, size, stride, pad, groups=1):
    """``forward_convolutional_layer`` before the bias: per group, ``W · im2col``."""
    n = weights.shape[0]
    c = x.shape[0]
    outs = []
    for g in range(groups):
        col, oh, ow = im2col(x[g * c // groups : (g + 1) * c // groups], size, stride, pad)
        wg = weights[g * n // groups : (g + 1) * n // groups].reshape(n // groups, -1)
        outs.append((wg @ col).reshape(n // groups, oh, ow))
    return np.concatenate(outs, axis=0)


def batch_norm_reference(x, scales, mean, var, biases):
    shape = (-1,) + (1,) * (x.ndim - 1)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + 0.000001)
    return y * scales.reshape(shape) + biases.reshape(shape)


def leaky(x):
    return np.where(x > 0, x, 0.1 * x)


# --- one layer type at a time -------------------------------------------------------------


@pytest.mark.parametrize(
    "h,w,c,n,size,stride,pad,groups",
    [
        (4, 4, 2, 3, 3, 1, 1, 1),  # the brief's 4x4x2 with batch norm
        (5, 6, 2, 3, 3, 2, 1, 1),  # stride 2: darknet pads 1 on every side, unlike "same"
        (4, 4, 4, 6, 1, 1, 1, 2),  # pad=1 with size 1 means padding 0; two groups
    ],
)
def test_convolutional_with_batch_norm(tmp_path, h, w, c, n, size, stride, pad, groups):
    rng = _rng()
    biases, scales = rng.standard_normal(n), rng.uniform(0.5, 2, n)
    mean, var = rng.standard_normal(n), rng.uniform(0.1, 2, n)
    weights = rng.standard_normal((n, c // groups, size, size))
    body = (
        f"[convolutional]\nbatch_normalize=1\nfilters={n}\nsize={size}\nstride={stride}\n"
        f"pad={pad}\ngroups={groups}\nactivation=leaky\n"
    )
    net = _load(tmp_path, body, [biases, scales, mean, var, weights], h=h, w=w, c=c)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    padding = size // 2 if pad else 0
    expected = leaky(
        batch_norm_reference(
            conv_reference(x, weights, size, stride, padding, groups), scales, mean, var, biases
        )
    )
    np.testing.assert_allclose(_forward(net, x), expected, **TOL)


def test_convolutional_without_batch_norm_and_explicit_padding(tmp_path):
    rng = _rng(1)
    biases, weights = rng.standard_normal(4), rng.standard_normal((4, 3, 3, 3))
    body = "[convolutional]\nfilters=4\nsize=3\nstride=2\npadding=2\nactivation=logistic\n"
    net = _load(tmp_path, body, [biases, weights], h=5, w=4, c=3)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    z = conv_reference(x, weights, 3, 2, 2) + biases[:, None, None]
    np.testing.assert_allclose(_forward(net, x), 1 / (1 + np.exp(-z)), **TOL)
    assert net.params["0_convolutional"]["conv2d"]["kernel"].shape == (3, 3, 3, 4)


@pytest.mark.parametrize("h,w,size,stride,pad", [(4, 5, 3, 1, 1), (5, 5, 3, 2, 0), (4, 4, 2, 1, 0)])
def test_local_matches_darknets_per_location_gemm(tmp_path, h, w, size, stride, pad):
    rng = _rng(2)
    c, n = 2, 3
    oh = (h - (1 if pad else size)) // stride + 1  # local_out_height
    ow = (w - (1 if pad else size)) // stride + 1
    locations, k = oh * ow, c * size * size
    biases = rng.standard_normal(n * locations)  # l.outputs, laid out [n, oh, ow]
    weights = rng.standard_normal(locations * n * k)  # per location an [n, k] matrix
    body = f"[local]\nfilters={n}\nsize={size}\nstride={stride}\npad={pad}\nactivation=leaky\n"
    net = _load(tmp_path, body, [biases, weights], h=h, w=w, c=c)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    col, _, _ = im2col(x, size, stride, pad)
    out = biases.reshape(n, locations).copy()
    for j in range(locations):
        a = weights[j * k * n : (j + 1) * k * n].reshape(n, k)
        out[:, j] += a @ col[:, j]
    np.testing.assert_allclose(_forward(net, x), leaky(out.reshape(n, oh, ow)), **TOL)
    kernel = net.params["0_local"]["locally_connected2d"]["kernel"]
    assert kernel.shape == (oh, ow, k, n)


@pytest.mark.parametrize("major,minor,transpose", [(0, 2, False), (0, 1, False), (0, 1001, True)])
def test_connected_after_a_map_flattens_in_darknets_chw_order(tmp_path, major, minor, transpose):
    rng = _rng(3)
    h, w, c, out = 3, 2, 4, 5  # non-square, so an H/W mix-up cannot pass
    biases, weights = rng.standard_normal(out), rng.standard_normal((out, c * h * w))
    stored = weights.T if transpose else weights  # darknet's transpose flag: [in, out]
    body = "[maxpool]\nsize=1\nstride=1\n[connected]\noutput=5\nactivation=linear\n"
    net = _load(tmp_path, body, [biases, stored], h=h, w=w, c=c, major=major, minor=minor, seen=123)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    np.testing.assert_allclose(_forward(net, x), weights @ x.reshape(-1) + biases, **TOL)
    assert net.seen == 123


def test_connected_with_batch_norm_then_flat_connected(tmp_path):
    rng = _rng(4)
    h, w, c = 2, 3, 2
    b1, w1 = rng.standard_normal(6), rng.standard_normal((6, c * h * w))
    s1, m1, v1 = rng.uniform(0.5, 2, 6), rng.standard_normal(6), rng.uniform(0.1, 2, 6)
    b2, w2 = rng.standard_normal(3), rng.standard_normal((3, 6))
    body = (
        "[connected]\noutput=6\nbatch_normalize=1\nactivation=relu\n"
        "[dropout]\nprobability=.5\n[connected]\noutput=3\nactivation=linear\n"
    )
    # connected.c's order: biases, weights, then scales, rolling mean, rolling variance.
    net = _load(tmp_path, body, [b1, w1, s1, m1, v1, b2, w2], h=h, w=w, c=c)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    hidden = np.maximum(batch_norm_reference(w1 @ x.reshape(-1), s1, m1, v1, b1), 0)
    np.testing.assert_allclose(_forward(net, x), w2 @ hidden + b2, **TOL)


# --- round trips ----------------------------------------------------------------------------

ALL_WEIGHTED = """\
[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky
[convolutional]
filters=6
size=3
stride=2
pad=1
groups=2
activation=linear
[local]
size=3
stride=1
pad=1
filters=3
activation=leaky
[dropout]
probability=.5
[connected]
output=10
batch_normalize=1
activation=leaky
[connected]
output=7
activation=linear
"""


def _all_weighted_count():
    # conv: 4 biases + 3 x 4 BN vectors + 4*3*3*3 weights; grouped conv: 6 + 6*2*3*3;
    # local on 3x3x6 -> 3x3x3: 27 biases + 9 locations * 3 * 6*3*3; connected on 3x3x3:
    # 10 + 27*10 + 3*10; connected: 7 + 10*7.
    return (4 + 3 * 4 + 4 * 3 * 9) + (6 + 6 * 2 * 9) + (27 + 9 * 3 * 54) + (10 + 270 + 30) + 77


def test_round_trip_every_weighted_layer(tmp_path):
    cfg = tmp_path / "all.cfg"
    cfg.write_text(NET.format(h=6, w=6, c=3) + ALL_WEIGHTED)
    model = darknet.from_cfg(cfg)
    params, state = model.init(seed=1)
    assert darknet.float_count(model.layers, params, state) == _all_weighted_count()
    net = darknet.DarknetNet(model, params, state, seen=2**40 + 5)
    first, second = tmp_path / "a.weights", tmp_path / "b.weights"
    net.save_weights(first)
    assert os.path.getsize(first) == 20 + 4 * _all_weighted_count()
    assert darknet.read_header(first) == (0, 2, 0, 2**40 + 5)
    loaded = darknet.load(cfg, first)
    assert jax.tree.structure(loaded.params) == jax.tree.structure(params)
    assert jax.tree.structure(loaded.state) == jax.tree.structure(state)
    for a, b in zip(
        jax.tree.leaves((params, state)),
        jax.tree.leaves((loaded.params, loaded.state)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    x = jnp.asarray(_rng(5).random((2, 6, 6, 3), dtype=np.float32))
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(net(x)))
    loaded.save_weights(second)
    assert first.read_bytes() == second.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["a.weights", "all.cfg", "b.weights"]


def test_saved_file_is_in_darknets_order_and_layout(tmp_path):
    """The writer's bytes are the hand-built file's bytes."""
    rng = _rng(6)
    arrays = [
        rng.standard_normal(3),
        rng.uniform(0.5, 2, 3),
        rng.standard_normal(3),
        rng.uniform(0.1, 2, 3),
        rng.standard_normal((3, 2, 3, 3)),
        rng.standard_normal(4),
        rng.standard_normal((4, 3 * 2 * 2)),
    ]
    body = (
        "[convolutional]\nbatch_normalize=1\nfilters=3\nsize=3\nstride=2\npad=1\n"
        "activation=leaky\n[connected]\noutput=4\nactivation=linear\n"
    )
    net = _load(tmp_path, body, arrays, h=4, w=4, c=2, seen=99)
    out = tmp_path / "out.weights"
    net.save_weights(out)
    assert out.read_bytes() == weights_bytes(arrays, seen=99)


# --- bad files ------------------------------------------------------------------------------

BODY = "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"  # 2 + 2*3 = 8 floats


@pytest.mark.parametrize(
    "floats,extra,partial,match",
    [
        (
            7,
            b"",
            True,
            r"model\.weights to end at a layer boundary.*layer 0 \[convolutional\] "
            r"\(bias \(2,\), kernel \(1, 1, 3, 2\)\) needs 8 floats.*got 7 floats",
        ),
        (7, b"", False, r"model\.weights to hold 8 floats.*got 7 floats"),
        (9, b"", False, r"model\.weights to hold 8 floats.*got 9 floats"),
        (9, b"", True, r"model\.weights to hold 8 floats.*got 9 floats"),
        (8, b"\x00\x01", False, r"model\.weights to hold 8 floats.*got 34 bytes \(not a whole"),
    ],
)
def test_wrong_size_weights_raise(tmp_path, floats, extra, partial, match):
    cfg = tmp_path / "model.cfg"
    cfg.write_text(NET.format(h=2, w=2, c=3) + BODY)
    path = tmp_path / "model.weights"
    path.write_bytes(weights_bytes([np.zeros(floats)]) + extra)
    with pytest.raises(ValueError, match=match):
        darknet.load(cfg, path, partial=partial)


def test_truncated_header_raises(tmp_path):
    cfg = tmp_path / "model.cfg"
    cfg.write_text(NET.format(h=2, w=2, c=3) + BODY)
    path = tmp_path / "model.weights"
    path.write_bytes(np.array([0, 2], "<i4").tobytes())
    with pytest.raises(ValueError, match="12-byte darknet header"):
        darknet.load(cfg, path)
    path.write_bytes(np.array([0, 2, 0], "<i4").tobytes() + b"\0\0\0\0")
    with pytest.raises(ValueError, match="'seen' count"):
        darknet.load(cfg, path)


def test_failed_save_leaves_no_partial_file(tmp_path):
    cfg = tmp_path / "model.cfg"
    cfg.write_text(NET.format(h=2, w=2, c=3) + BODY)
    net = darknet.load(cfg)
    target = tmp_path / "out.weights"
    target.write_bytes(b"old")
    broken = darknet.DarknetNet(net.model, {}, {})
    with pytest.raises(KeyError):
        broken.save_weights(target)
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["model.cfg", "out.weights"]
