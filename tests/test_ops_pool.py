"""Tests for `jaxheads.ops.pooling`: global average/max, max and average pooling.

Parity is against Keras 3 ``GlobalAveragePooling2D``, ``GlobalMaxPooling2D``,
``MaxPooling2D`` and ``AveragePooling2D`` over seeded random shapes, pool
sizes, strides and paddings. Relative error is
``max|ours - keras| / max(max|keras|, 1e-6)``, bounded by 1e-5 (averages are
float32 sums that XLA may order differently; maxima are exact).
"""

import functools

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from jax import lax
from op_properties import keras_numerics, property_tests, raises, rel_err

from jaxheads.ops import avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d

SEEDS = range(6)
RTOL = 1e-5


def keras_apply(layer, x):
    with keras_numerics():
        return np.asarray(layer(x))


def _map(rng, min_hw=1):
    h, w = (int(v) for v in rng.integers(min_hw, 13, size=2))
    return rng.standard_normal((int(rng.integers(1, 4)), h, w, int(rng.integers(1, 9))))


# ------------------------------------------------------------------ Keras parity


@functools.cache
def _global_case(seed):
    x = _map(np.random.default_rng(seed)).astype(np.float32)
    keepdims = bool(seed % 2)
    refs = {
        "avg": keras_apply(keras.layers.GlobalAveragePooling2D(keepdims=keepdims), x),
        "max": keras_apply(keras.layers.GlobalMaxPooling2D(keepdims=keepdims), x),
    }
    return x, keepdims, refs


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_global_pool_matches_keras(kind, seed, maybe_jit):
    x, keepdims, refs = _global_case(seed)
    op = {"avg": global_avg_pool2d, "max": global_max_pool2d}[kind]
    y = maybe_jit(functools.partial(op, keepdims=keepdims))(x)
    assert rel_err(y, refs[kind]) <= RTOL


def _pool_config(seed):
    rng = np.random.default_rng(seed)
    pool = tuple(int(p) for p in rng.integers(1, 5, size=2))
    strides = None if seed % 3 == 0 else tuple(int(s) for s in rng.integers(1, 4, size=2))
    padding = str(rng.choice(["same", "valid"]))
    x = _map(rng, min_hw=max(pool)).astype(np.float32)
    return x, dict(pool_size=pool, strides=strides, padding=padding)


# Darknet's yolov2-tiny [maxpool] size=2 stride=1 keeps the map size: "same".
DARKNET_STRIDE1 = "darknet-2x2-s1-same"
POOL_CASES = [*SEEDS, DARKNET_STRIDE1]


@functools.cache
def _pool_case(seed):
    if seed == DARKNET_STRIDE1:
        x = np.random.default_rng(99).standard_normal((2, 13, 13, 4)).astype(np.float32)
        cfg = dict(pool_size=2, strides=1, padding="same")
    else:
        x, cfg = _pool_config(seed)
    refs = {
        "max": keras_apply(keras.layers.MaxPooling2D(**cfg), x),
        "avg": keras_apply(keras.layers.AveragePooling2D(**cfg), x),
    }
    return x, cfg, refs


@pytest.mark.parametrize("seed", POOL_CASES)
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_pool_matches_keras(kind, seed, maybe_jit):
    x, cfg, refs = _pool_case(seed)
    op = {"avg": avg_pool2d, "max": max_pool2d}[kind]
    y = maybe_jit(functools.partial(op, **cfg))(x)
    assert y.dtype == jnp.float32
    assert rel_err(y, refs[kind]) <= RTOL, cfg


def test_darknet_stride1_maxpool_keeps_size():
    x, _, refs = _pool_case(DARKNET_STRIDE1)
    assert refs["max"].shape == x.shape


# ------------------------------------------------------------ closed-form values


def test_max_pool_2x2_stride1_same_pads_bottom_right(maybe_jit):
    x = jnp.arange(16, dtype=jnp.float32).reshape(1, 4, 4, 1)
    same = np.asarray(maybe_jit(lambda v: max_pool2d(v, 2, 1, "same"))(x))[0, :, :, 0]
    # Each output is the bottom-right of its window, clipped at the last row/column.
    expected = np.arange(16).reshape(4, 4)[[1, 2, 3, 3]][:, [1, 2, 3, 3]]
    np.testing.assert_array_equal(same, expected.astype(np.float32))
    # Symmetric int padding (1 on every side) grows the map instead.
    assert maybe_jit(lambda v: max_pool2d(v, 2, 1, 1))(x).shape == (1, 5, 5, 1)


def test_max_pool_padding_never_wins():
    x = -jnp.ones((1, 3, 3, 1))
    y = max_pool2d(x, 3, 1, ((1, 1), (1, 1)))
    np.testing.assert_array_equal(np.asarray(y), -np.ones((1, 3, 3, 1), np.float32))


def test_avg_pool_explicit_padding_averages_real_inputs_only():
    x = jnp.arange(9, dtype=jnp.float32).reshape(1, 3, 3, 1)
    y = np.asarray(avg_pool2d(x, 2, 2, ((1, 0), (1, 0))))[0, :, :, 0]
    # Windows: {0}, {1, 2}, {3, 6}, {4, 5, 7, 8}.
    np.testing.assert_array_equal(y, [[0.0, 1.5], [4.5, 6.0]])


def test_global_pools_constant():
    x = jnp.full((2, 5, 3, 4), 2.5)
    # The mean of 15 equal values is a float32 sum divided by 15: within one ulp.
    np.testing.assert_allclose(np.asarray(global_avg_pool2d(x)), np.full((2, 4), 2.5), rtol=1e-6)
    np.testing.assert_array_equal(
        np.asarray(global_max_pool2d(x, keepdims=True)), np.full((2, 1, 1, 4), 2.5)
    )


# ------------------------------------------------------ transformation properties


def _cases():
    x = np.random.default_rng(1).standard_normal((2, 7, 6, 3)).astype(np.float32)
    return {
        "global_avg_pool2d": (global_avg_pool2d, (x,)),
        "global_max_pool2d_keepdims": (functools.partial(global_max_pool2d, keepdims=True), (x,)),
        "max_pool2d_2x2_s1_same": (
            functools.partial(max_pool2d, pool_size=2, strides=1, padding="same"),
            (x,),
        ),
        "max_pool2d_3x3_s2_valid": (functools.partial(max_pool2d, pool_size=3, strides=2), (x,)),
        "avg_pool2d_3x2_s2_same": (
            functools.partial(avg_pool2d, pool_size=(3, 2), strides=2, padding="same"),
            (x,),
        ),
        "avg_pool2d_explicit": (functools.partial(avg_pool2d, padding=((1, 0), (0, 1))), (x,)),
    }


(
    test_vmap_equals_loop,
    test_gradients_are_finite,
    test_second_call_does_not_recompile,
    test_bfloat16_in_bfloat16_out,
) = property_tests(_cases)

# ------------------------------------------------------------------- bad inputs


X = np.zeros((2, 4, 5, 3), np.float32)
ALL = [global_avg_pool2d, global_max_pool2d, max_pool2d, avg_pool2d]


@pytest.mark.parametrize("op", ALL, ids=lambda f: f.__name__)
def test_rejects_wrong_rank(op):
    with raises(op.__name__, "x of rank 4 [B, H, W, C]", "shape (4, 5, 3) (rank 3)"):
        op(X[0])


@pytest.mark.parametrize("op", ALL, ids=lambda f: f.__name__)
def test_rejects_integer_input(op):
    with raises(op.__name__, "floating dtype", "int32"):
        op(X.astype(np.int32))


@pytest.mark.parametrize("op", [max_pool2d, avg_pool2d], ids=lambda f: f.__name__)
def test_rejects_pool_larger_than_input_with_valid_padding(op):
    with raises(op.__name__, "pool_size height <= the padded input height (4)", "(5, 2)"):
        op(X, (5, 2))
    # "same" pads as needed, so the same window is accepted.
    assert op(X, (5, 2), padding="same").shape == (2, 1, 3, 3)


@pytest.mark.parametrize("op", [max_pool2d, avg_pool2d], ids=lambda f: f.__name__)
def test_rejects_bad_padding(op):
    with raises(op.__name__, 'padding "same", "valid"', "'causal'"):
        op(X, 2, padding="causal")


@pytest.mark.parametrize("op", [max_pool2d, avg_pool2d], ids=lambda f: f.__name__)
def test_rejects_bad_pool_size_and_strides(op):
    with raises(op.__name__, "pool_size to be a positive int", "(0, 0)"):
        op(X, 0)
    with raises(op.__name__, "strides to be a positive int", "(2, 2, 2)"):
        op(X, 2, (2, 2, 2))


# ------------------------------------------------ gradients: strided views vs reduce_window


def _reduce_window_max(x, pool, strides, pads):
    return lax.reduce_window(
        x, -jnp.inf, lax.max, (1, *pool, 1), (1, *strides, 1), ((0, 0), *pads, (0, 0))
    )


@pytest.mark.parametrize(
    ("hw", "pool", "strides", "padding", "pads"),
    [
        ((8, 8), (2, 2), (2, 2), "valid", ((0, 0), (0, 0))),
        ((9, 7), (2, 2), (2, 2), "valid", ((0, 0), (0, 0))),  # the odd row/column is dropped
        ((6, 9), (3, 3), (3, 3), "same", ((0, 0), (0, 0))),
        ((8, 6), (2, 3), (2, 3), ((0, 1), (0, 2)), ((0, 1), (0, 2))),  # darknet's unread pads
        ((4, 4), (1, 1), (1, 1), "valid", ((0, 0), (0, 0))),
        ((5, 7), (2, 2), (1, 1), "same", ((0, 1), (0, 1))),  # yolov2-tiny's sixth pool
        ((9, 8), (3, 3), (2, 2), ((1, 1), (1, 1)), ((1, 1), (1, 1))),  # overlapping, strided
        ((7, 7), (5, 5), (1, 1), "same", ((2, 2), (2, 2))),  # an SPP pool
        ((6, 9), (3, 2), (1, 3), "valid", ((0, 0), (0, 0))),  # rectangular, mixed overlap
    ],
)
def test_max_pool_routes_ties_like_reduce_window(hw, pool, strides, padding, pads):
    # Small integers: most windows hold tied maxima; the whole gradient must go to the
    # first maximum in row-major order, as reduce_window's select-and-scatter (Keras) does.
    # Integer cotangents too, so that overlapping windows' sums are exact in any order.
    rng = np.random.default_rng(sum(hw) + sum(pool) + sum(strides))
    x = jnp.asarray(rng.integers(0, 3, (2, *hw, 3)), jnp.float32)

    def ours(x):
        return max_pool2d(x, pool, strides, padding)

    def ref(x):
        return _reduce_window_max(x, pool, strides, pads)

    y, vjp = jax.vjp(ours, x)
    y_ref, vjp_ref = jax.vjp(ref, x)
    np.testing.assert_array_equal(y, y_ref)
    cot = jnp.asarray(rng.integers(-4, 5, y.shape), jnp.float32)
    np.testing.assert_array_equal(vjp(cot)[0], vjp_ref(cot)[0])
    # Forward mode routes like select-and-scatter too: ours' forward Jacobian equals the
    # reference's reverse one. (jax's own reduce_window JVP may pick another of the tied
    # maxima when windows overlap.)
    np.testing.assert_array_equal(jax.jacfwd(ours)(x), jax.jacrev(ref)(x))
    grad = jax.jit(jax.grad(lambda x: jnp.sum(ours(x) ** 2)))(x)
    np.testing.assert_array_equal(grad, jax.grad(lambda x: jnp.sum(ref(x) ** 2))(x))


def test_max_pool_bfloat16_matches_reduce_window():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 7, 7, 4)), jnp.bfloat16)
    for pool, strides, pads in [(2, 2, ((0, 1), (0, 1))), (2, 1, ((0, 1), (0, 1)))]:
        y, vjp = jax.vjp(lambda x, p=pool, s=strides: max_pool2d(x, p, s, "same"), x)
        y_ref, vjp_ref = jax.vjp(
            lambda x, p=pool, s=strides, q=pads: _reduce_window_max(x, (p, p), (s, s), q), x
        )
        assert y.dtype == jnp.bfloat16
        np.testing.assert_array_equal(y, y_ref)
        cot = jnp.ones_like(y)
        np.testing.assert_array_equal(vjp(cot)[0], vjp_ref(cot)[0])


@pytest.mark.parametrize(
    ("pool", "strides", "padding"), [(2, 2, "valid"), (2, 1, "same"), (3, 2, 1)]
)
def test_max_pool_gradient_needs_no_scatter(pool, strides, padding):
    x = jnp.ones((2, 8, 8, 4))
    grad = jax.grad(lambda x: jnp.sum(max_pool2d(x, pool, strides, padding)))
    text = jax.jit(grad).lower(x).compile().as_text()
    assert " scatter(" not in text and "select-and-scatter" not in text
    assert "reduce-window" not in text
