"""Tests for `jaxheads.ops.dense`: `dense` and `flatten`.

Parity is against Keras 3 ``Dense`` / ``Flatten`` given the same weights, over
seeded random shapes. Relative error is ``max|ours - keras| / max(max|keras|, 1e-6)``;
the bound is 1e-5 because Keras and we contract with different XLA dot
layouts, so float32 sums round in a different order.
"""

import contextlib
import functools
import re

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxheads.ops import dense, flatten

SEEDS = range(5)
RTOL = 1e-5
BF16_RTOL = 2e-2  # bfloat16 keeps 8 significant bits (eps 2**-8); sums lose a few more.


@contextlib.contextmanager
def keras_numerics():
    """Keras' layers broadcast a rank-1 bias against rank-4 maps and mix dtypes.

    The strict promotion modes of tests/conftest.py are for our code, so they
    are relaxed around calls into Keras only.
    """
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        yield


def rel_err(ours, ref) -> float:
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.max(np.abs(ours - ref), initial=0.0) / max(np.max(np.abs(ref)), 1e-6))


# ------------------------------------------------------------------ Keras parity


@functools.cache
def _dense_case(seed):
    """Random rank 2-4 input, random in/out sizes, with and without bias; Keras output."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(1, 6, size=rng.integers(2, 5)))
    units = int(rng.integers(1, 9))
    use_bias = bool(seed % 3)
    x = rng.standard_normal(shape).astype(np.float32)
    kernel = rng.standard_normal((shape[-1], units)).astype(np.float32)
    bias = rng.standard_normal(units).astype(np.float32) if use_bias else None
    # The weights are overwritten below; Keras' default random initialiser
    # compiles anew for every kernel shape, seconds each on a busy CPU.
    layer = keras.layers.Dense(units, use_bias=use_bias, kernel_initializer="zeros")
    with keras_numerics():
        layer.build(shape)
        layer.set_weights([kernel] if bias is None else [kernel, bias])
        ref = np.asarray(layer(x))
    return x, kernel, bias, ref


@pytest.mark.parametrize("seed", SEEDS)
def test_dense_matches_keras(seed, maybe_jit):
    x, kernel, bias, ref = _dense_case(seed)
    y = maybe_jit(dense)(x, kernel, bias)
    assert y.dtype == jnp.float32
    assert rel_err(y, ref) <= RTOL


@functools.cache
def _flatten_case(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(1, 6, size=rng.integers(1, 6)))
    x = rng.standard_normal(shape).astype(np.float32)
    with keras_numerics():
        ref = np.asarray(keras.layers.Flatten()(x))
    return x, ref


@pytest.mark.parametrize("seed", SEEDS)
def test_flatten_matches_keras(seed, maybe_jit):
    x, ref = _flatten_case(seed)
    y = maybe_jit(flatten)(x)
    assert y.shape == ref.shape
    np.testing.assert_array_equal(np.asarray(y), ref)  # a reshape: exact


def test_flatten_rank1_is_a_column(maybe_jit):
    x = np.arange(5, dtype=np.float32)
    with keras_numerics():
        ref = np.asarray(keras.layers.Flatten()(x))
    assert ref.shape == (5, 1)
    np.testing.assert_array_equal(np.asarray(maybe_jit(flatten)(x)), ref)


def test_flatten_empty_batch():
    assert flatten(jnp.zeros((0, 7, 7, 3))).shape == (0, 147)


# ------------------------------------------------------------ closed-form values


def test_dense_constant_weights(maybe_jit):
    # ones·ones over 3 inputs, plus bias 0.5: every output is 3.5.
    y = maybe_jit(dense)(jnp.ones((2, 7, 7, 3)), jnp.ones((3, 5)), jnp.full((5,), 0.5))
    np.testing.assert_array_equal(np.asarray(y), np.full((2, 7, 7, 5), 3.5, np.float32))


def test_dense_is_per_cell():
    """Dense on a map contracts channels only: each cell equals dense of that cell."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 3, 4)).astype(np.float32)
    k = rng.standard_normal((4, 6)).astype(np.float32)
    y = np.asarray(dense(x, k))
    np.testing.assert_allclose(y[1, 2, 0], np.asarray(dense(x[1, 2, 0][None], k))[0], rtol=1e-6)


def test_flatten_order_is_hwc():
    x = jnp.arange(2 * 2 * 3 * 2, dtype=jnp.float32).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(np.asarray(flatten(x))[1], np.arange(12, 24))


# ------------------------------------------------------ transformation properties


def _cases():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 3, 4)).astype(np.float32)
    k = rng.standard_normal((4, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    return {"dense": (dense, (x, k, b)), "flatten": (flatten, (x,))}


CASES = sorted(_cases())


@pytest.mark.parametrize("name", CASES)
def test_vmap_equals_loop(name):
    fn, (x, *params) = _cases()[name]
    xs = np.stack([x, 0.5 * x + 0.1, -x])
    batched = jax.vmap(lambda xi: fn(xi, *params))(xs)
    looped = jnp.stack([fn(xi, *params) for xi in xs])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", CASES)
def test_gradients_are_finite(name, maybe_jit):
    fn, args = _cases()[name]
    grad = jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=tuple(range(len(args))))
    grads = maybe_jit(grad)(*args)
    for g, a in zip(grads, args, strict=True):
        assert g.shape == a.shape
        assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize("name", CASES)
def test_second_call_does_not_recompile(name):
    fn, args = _cases()[name]
    f = jax.jit(lambda *a: fn(*a))  # a fresh function, so a fresh compilation cache
    f(*args)
    f(*(a + 1 for a in args))
    assert f._cache_size() == 1


@pytest.mark.parametrize("name", CASES)
def test_bfloat16_in_bfloat16_out(name):
    fn, (x, *params) = _cases()[name]
    xb = jnp.asarray(x, jnp.bfloat16)
    y = fn(xb, *params)  # params stay float32: the op casts them to x's dtype
    assert y.dtype == jnp.bfloat16
    ref = fn(np.asarray(xb, np.float32), *params)
    assert rel_err(y, ref) <= BF16_RTOL


# ------------------------------------------------------------------- bad inputs


def _raises(*parts):
    return pytest.raises(ValueError, match=".*".join(re.escape(p) for p in parts))


def test_dense_rejects_integer_input():
    with _raises("dense", "floating dtype", "int32"):
        dense(jnp.ones((2, 3), jnp.int32), jnp.ones((3, 4)))


def test_dense_rejects_kernel_rank():
    with _raises("dense", "kernel of rank 2", "(3, 4, 1)"):
        dense(jnp.ones((2, 3)), jnp.ones((3, 4, 1)))


def test_dense_rejects_kernel_input_size():
    with _raises("dense", "kernel.shape[0] == 3", "(4, 5)"):
        dense(jnp.ones((2, 7, 7, 3)), jnp.ones((4, 5)))


def test_dense_rejects_bias_size():
    with _raises("dense", "bias.shape[0] == 5", "(4,)"):
        dense(jnp.ones((2, 3)), jnp.ones((3, 5)), jnp.ones(4))


def test_dense_rejects_scalar():
    with _raises("dense", "x of rank >= 1", "shape ()"):
        dense(jnp.float32(1.0), jnp.ones((1, 5)))


def test_flatten_rejects_scalar():
    with _raises("flatten", "x of rank >= 1", "shape ()"):
        flatten(jnp.float32(1.0))
