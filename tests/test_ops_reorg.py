"""Tests for `space_to_depth` (TensorFlow order) and `darknet_reorg` (darknet order).

The oracles are loops written from the references, not from the ops:

* `_space_to_depth_loop` states TensorFlow's definition of ``tf.nn.space_to_depth``
  element by element;
* `_reorg_cpu` is a line-by-line port of ``reorg_cpu`` in pjreddie darknet's
  ``src/blas.c``, run the way ``forward_reorg_layer`` runs it: on NCHW memory,
  with the *input's* w, h, c and ``forward=0``.

Both ops only move elements, so every comparison is exact.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compilations import compilations

from jaxheads.ops import darknet_reorg, space_to_depth

# ---------------------------------------------------------------------------
# Oracles


def _space_to_depth_loop(x: np.ndarray, block: int) -> np.ndarray:
    """TensorFlow's definition: out[b, i, j, (dy·bs + dx)·C + c] = x[b, i·bs + dy, j·bs + dx, c]."""
    n, h, w, c = x.shape
    out = np.zeros((n, h // block, w // block, block * block * c), x.dtype)
    for b in range(n):
        for i in range(h // block):
            for j in range(w // block):
                for dy in range(block):
                    for dx in range(block):
                        for ch in range(c):
                            depth = (dy * block + dx) * c + ch
                            out[b, i, j, depth] = x[b, i * block + dy, j * block + dx, ch]
    return out


def _reorg_cpu(x, w, h, c, batch, stride, forward, out) -> None:
    """darknet ``src/blas.c`` ``reorg_cpu``, ported loop for loop (flat buffers)."""
    out_c = c // (stride * stride)
    for b in range(batch):
        for k in range(c):
            for j in range(h):
                for i in range(w):
                    in_index = i + w * (j + h * (k + c * b))
                    c2 = k % out_c
                    offset = k // out_c
                    w2 = i * stride + offset % stride
                    h2 = j * stride + offset // stride
                    out_index = w2 + w * stride * (h2 + h * stride * (c2 + out_c * b))
                    if forward:
                        out[out_index] = x[in_index]
                    else:
                        out[in_index] = x[out_index]


def _darknet_reorg_oracle(x: np.ndarray, stride: int) -> np.ndarray:
    """darknet's ``forward_reorg_layer`` on an NHWC array.

    ``reorg_cpu(net.input, l.w, l.h, l.c, l.batch, l.stride, 0, l.output)``: the
    input's own w, h, c on its NCHW memory; the output buffer is then read as
    ``[B, C·s², H/s, W/s]`` NCHW.
    """
    n, h, w, c = x.shape
    memory = np.transpose(x, (0, 3, 1, 2)).ravel()
    output = np.full_like(memory, np.nan)
    _reorg_cpu(memory, w, h, c, n, stride, 0, output)
    assert not np.isnan(output).any()  # reorg_cpu with forward=0 writes every element
    return output.reshape(n, c * stride * stride, h // stride, w // stride).transpose(0, 2, 3, 1)


def _random(rng: np.random.Generator, shape, dtype=np.float32) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


# Random shapes (B, H, W, C, s) drawn once per seed; C is a multiple of s² so
# that both ops accept it.
def _draw_shape(seed: int) -> tuple[int, int, int, int, int]:
    rng = np.random.default_rng(seed)
    s = int(rng.choice([2, 3]))
    b = int(rng.integers(1, 4))
    h = s * int(rng.integers(1, 4))
    w = s * int(rng.integers(1, 4))
    c = s * s * int(rng.integers(1, 4))
    return b, h, w, c, s


SEEDS = list(range(6))
OPS = {"space_to_depth": space_to_depth, "darknet_reorg": darknet_reorg}
ORACLES = {"space_to_depth": _space_to_depth_loop, "darknet_reorg": _darknet_reorg_oracle}


# ---------------------------------------------------------------------------
# space_to_depth: TensorFlow's documented examples and definition


def test_space_to_depth_tf_doc_example_1x2x2x1():
    x = np.array([[[[1], [2]], [[3], [4]]]], np.float32)
    expected = np.array([[[[1, 2, 3, 4]]]], np.float32)
    np.testing.assert_array_equal(_space_to_depth_loop(x, 2), expected)
    np.testing.assert_array_equal(space_to_depth(jnp.asarray(x), 2), expected)


def test_space_to_depth_tf_doc_example_1x2x2x3():
    x = np.array([[[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]]], np.float32)
    expected = np.array([[[[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]]], np.float32)
    np.testing.assert_array_equal(_space_to_depth_loop(x, 2), expected)
    np.testing.assert_array_equal(space_to_depth(jnp.asarray(x), 2), expected)


def test_space_to_depth_tf_doc_example_1x4x4x1():
    x = np.array(
        [
            [
                [[1], [2], [5], [6]],
                [[3], [4], [7], [8]],
                [[9], [10], [13], [14]],
                [[11], [12], [15], [16]],
            ]
        ],
        np.float32,
    )
    expected = np.array(
        [[[[1, 2, 3, 4], [5, 6, 7, 8]], [[9, 10, 11, 12], [13, 14, 15, 16]]]], np.float32
    )
    np.testing.assert_array_equal(_space_to_depth_loop(x, 2), expected)
    np.testing.assert_array_equal(space_to_depth(jnp.asarray(x), 2), expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_space_to_depth_matches_definition(seed):
    b, h, w, c, s = _draw_shape(seed)
    # Odd channel counts too: space_to_depth has no constraint on C.
    c = c + 1
    x = _random(np.random.default_rng(100 + seed), (b, h, w, c))
    y = space_to_depth(jnp.asarray(x), s)
    assert y.shape == (b, h // s, w // s, s * s * c)
    np.testing.assert_array_equal(y, _space_to_depth_loop(x, s))


def test_space_to_depth_non_square_block_grid():
    x = _random(np.random.default_rng(1), (2, 4, 10, 3))
    np.testing.assert_array_equal(space_to_depth(jnp.asarray(x), 2), _space_to_depth_loop(x, 2))


# ---------------------------------------------------------------------------
# darknet_reorg: darknet's reorg_cpu


def test_darknet_reorg_hand_worked_example():
    # One 2x2 image with 4 channels; NCHW memory holds 0..15 in order, which
    # darknet reads as a single 4x4 image [[0..3], [4..7], [8..11], [12..15]]
    # and splits into its four stride-2 phases (dy, dx) = (0,0), (0,1), (1,0), (1,1).
    x_nchw = np.arange(16, dtype=np.float32).reshape(1, 4, 2, 2)
    x = x_nchw.transpose(0, 2, 3, 1)
    expected = np.array([0, 2, 8, 10, 1, 3, 9, 11, 4, 6, 12, 14, 5, 7, 13, 15], np.float32)
    np.testing.assert_array_equal(_darknet_reorg_oracle(x, 2), expected.reshape(1, 1, 1, 16))
    np.testing.assert_array_equal(darknet_reorg(jnp.asarray(x), 2), expected.reshape(1, 1, 1, 16))
    # TensorFlow's order on the same input, for contrast: channel (dy·2 + dx)·4 + c.
    tf_order = np.array([0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15], np.float32)
    np.testing.assert_array_equal(space_to_depth(jnp.asarray(x), 2), tf_order.reshape(1, 1, 1, 16))


@pytest.mark.parametrize("seed", SEEDS)
def test_darknet_reorg_matches_reorg_cpu(seed):
    b, h, w, c, s = _draw_shape(seed)
    x = _random(np.random.default_rng(200 + seed), (b, h, w, c))
    y = darknet_reorg(jnp.asarray(x), s)
    assert y.shape == (b, h // s, w // s, s * s * c)
    np.testing.assert_array_equal(y, _darknet_reorg_oracle(x, s))


def test_darknet_reorg_yolov2_passthrough_shape():
    # yolo-voc.cfg: [reorg] stride=2 on the 26x26x64 map, in front of a 13x13 route.
    x = _random(np.random.default_rng(3), (1, 26, 26, 64))
    y = darknet_reorg(jnp.asarray(x), 2)
    assert y.shape == (1, 13, 13, 256)
    np.testing.assert_array_equal(y, _darknet_reorg_oracle(x, 2))


def _source_positions(op, shape, stride):
    """For each output element, the (y, x, c) of the input element it came from."""
    n, h, w, c = shape
    # Every input element holds its own flat NHWC index (exact in float32 here).
    index = np.arange(n * h * w * c, dtype=np.float32).reshape(shape)
    source = np.asarray(op(jnp.asarray(index), stride)).astype(np.int64)
    _, y, x, ch = np.unravel_index(source, shape)
    return y, x, ch


@pytest.mark.parametrize("stride", [2, 3])
def test_space_to_depth_takes_each_channel_from_one_phase_of_its_own_block(stride):
    shape = (1, 2 * stride, 3 * stride, 2 * stride * stride)
    y, x, ch = _source_positions(space_to_depth, shape, stride)
    rows = np.arange(shape[1] // stride)[:, None, None]
    cols = np.arange(shape[2] // stride)[None, :, None]
    assert (y[0] // stride == rows).all() and (x[0] // stride == cols).all()
    # (dy, dx, c) is the same at every cell for a given output channel.
    for phase in (y[0] % stride, x[0] % stride, ch[0]):
        assert (phase == phase[:1, :1, :]).all()


@pytest.mark.parametrize("stride", [2, 3])
def test_darknet_reorg_is_not_a_channel_permutation_of_space_to_depth(stride):
    s = stride
    shape = (1, 2 * s, 3 * s, 2 * s * s)
    rng = np.random.default_rng(4)
    x = jnp.asarray(_random(rng, shape))
    dark, tf = np.asarray(darknet_reorg(x, s)), np.asarray(space_to_depth(x, s))
    assert not np.array_equal(dark, tf)
    # Same multiset of values (both only move elements) ...
    np.testing.assert_array_equal(np.sort(dark.ravel()), np.sort(tf.ravel()))
    # ... but some darknet channel equals no space_to_depth channel at all, so
    # no reordering of space_to_depth's channels can reproduce darknet.
    tf_channels = [tf[..., k] for k in range(tf.shape[-1])]
    unmatched = [
        k
        for k in range(dark.shape[-1])
        if not any(np.array_equal(dark[..., k], t) for t in tf_channels)
    ]
    assert unmatched
    # Why: in darknet an output channel gathers values from different phases,
    # different input channels, even from outside the output cell's own block.
    y, xx, ch = _source_positions(darknet_reorg, shape, s)
    rows = np.arange(shape[1] // s)[:, None, None]
    cols = np.arange(shape[2] // s)[None, :, None]
    assert not ((y[0] // s == rows).all() and (xx[0] // s == cols).all())
    # The source's (dy, dx, c), which space_to_depth keeps fixed per channel.
    phase = np.stack([y[0] % s, xx[0] % s, ch[0]], axis=-1)  # [H/s, W/s, C·s², 3]
    varies = [k for k in range(dark.shape[-1]) if not (phase[:, :, k] == phase[:1, :1, k]).all()]
    assert varies


# ---------------------------------------------------------------------------
# Transformations: jit, vmap, grad, recompilation, bfloat16


@pytest.mark.parametrize("name", list(OPS))
def test_jit_and_nojit_agree_with_oracle(name, maybe_jit):
    op = maybe_jit(OPS[name], static_argnums=1)
    x = _random(np.random.default_rng(5), (2, 6, 4, 8))
    np.testing.assert_array_equal(op(jnp.asarray(x), 2), ORACLES[name](x, 2))


@pytest.mark.parametrize("name", list(OPS))
def test_vmap_equals_loop(name):
    op = functools.partial(OPS[name], **{"block_size" if name == "space_to_depth" else "stride": 3})
    xs = jnp.asarray(_random(np.random.default_rng(6), (3, 2, 6, 3, 9)))
    batched = jax.vmap(op)(xs)
    looped = jnp.stack([op(x) for x in xs])
    np.testing.assert_array_equal(batched, looped)


@pytest.mark.parametrize("name", list(OPS))
def test_gradient_is_the_inverse_permutation(name):
    # d/dx sum(op(x) · g) = op⁻¹(g); with g = op(x) that is x itself.
    op = functools.partial(OPS[name], **{"block_size" if name == "space_to_depth" else "stride": 2})
    x = jnp.asarray(_random(np.random.default_rng(7), (2, 4, 6, 8)))
    grad = jax.grad(lambda v: jnp.sum(op(v) ** 2))(x)
    assert np.isfinite(np.asarray(grad)).all()
    np.testing.assert_array_equal(grad, 2 * x)


@pytest.mark.parametrize("name", list(OPS))
def test_no_recompilation_on_second_call(name):
    # A fresh function: jit's cache is shared by every `jax.jit` of the same callable.
    op = jax.jit(lambda x: OPS[name](x, 2))
    rng = np.random.default_rng(8)
    with compilations("<lambda>") as compiled:
        op(jnp.asarray(_random(rng, (1, 4, 4, 4))))
        op(jnp.asarray(_random(rng, (1, 4, 4, 4))))
    assert len(compiled) == 1


@pytest.mark.parametrize("name", list(OPS))
def test_bfloat16(name):
    x = _random(np.random.default_rng(9), (2, 4, 6, 8))
    y = OPS[name](jnp.asarray(x, jnp.bfloat16), 2)
    assert y.dtype == jnp.bfloat16
    # Pure data movement: exactly the float32 result rounded to bfloat16.
    expected = jnp.asarray(OPS[name](jnp.asarray(x), 2), jnp.bfloat16)
    np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(expected, np.float32))


# ---------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("shape", [(4, 4, 4), (1, 1, 4, 4, 4)])
def test_wrong_rank(name, shape):
    with pytest.raises(ValueError, match=rf"^{name}: .*rank 4.*got shape {re.escape(str(shape))}"):
        OPS[name](jnp.zeros(shape), 2)


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_])
def test_non_float_dtype(name, dtype):
    with pytest.raises(ValueError, match=rf"^{name}: .*floating.*got dtype"):
        OPS[name](jnp.zeros((1, 4, 4, 4), dtype), 2)


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("shape,block", [((1, 5, 4, 4), 2), ((1, 4, 6, 4), 4), ((2, 3, 3, 4), 2)])
def test_spatial_size_not_divisible(name, shape, block):
    with pytest.raises(ValueError, match=rf"^{name}: .*divisible.*{re.escape(str(shape))}"):
        OPS[name](jnp.zeros(shape), block)


@pytest.mark.parametrize("channels,stride", [(6, 2), (2, 2), (12, 3)])
def test_darknet_reorg_channels_not_divisible_by_stride_squared(channels, stride):
    shape = (1, 2 * stride, 2 * stride, channels)
    with pytest.raises(
        ValueError, match=rf"^darknet_reorg: .*C divisible by stride\*\*2.*{re.escape(str(shape))}"
    ):
        darknet_reorg(jnp.zeros(shape), stride)


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("block", [0, -2, 2.0, True])
def test_bad_block_size(name, block):
    with pytest.raises(ValueError, match=rf"^{name}: .*positive integer"):
        OPS[name](jnp.zeros((1, 4, 4, 4)), block)
