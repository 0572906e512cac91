"""Tests for `jaxheads.ops.dense`: `dense` and `flatten`.

Parity is against Keras 3 ``Dense`` / ``Flatten`` given the same weights, over
seeded random shapes. Relative error is ``max|ours - keras| / max(max|keras|, 1e-6)``;
the bound is 1e-5 because Keras and we contract with different XLA dot
layouts, so float32 sums round in a different order.
"""

import functools

import jax.numpy as jnp
import keras
import numpy as np
import pytest
from op_properties import keras_numerics, property_tests, raises, rel_err

from jaxheads.ops import dense, flatten

SEEDS = range(5)
RTOL = 1e-5


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


(
    test_vmap_equals_loop,
    test_gradients_are_finite,
    test_second_call_does_not_recompile,
    test_bfloat16_in_bfloat16_out,
) = property_tests(_cases)

# ------------------------------------------------------------------- bad inputs


def test_dense_rejects_integer_input():
    with raises("dense", "floating dtype", "int32"):
        dense(jnp.ones((2, 3), jnp.int32), jnp.ones((3, 4)))


def test_dense_rejects_kernel_rank():
    with raises("dense", "kernel of rank 2", "(3, 4, 1)"):
        dense(jnp.ones((2, 3)), jnp.ones((3, 4, 1)))


def test_dense_rejects_kernel_input_size():
    with raises("dense", "kernel.shape[0] == 3", "(4, 5)"):
        dense(jnp.ones((2, 7, 7, 3)), jnp.ones((4, 5)))


def test_dense_rejects_bias_size():
    with raises("dense", "bias.shape[0] == 5", "(4,)"):
        dense(jnp.ones((2, 3)), jnp.ones((3, 5)), jnp.ones(4))


def test_dense_rejects_scalar():
    with raises("dense", "x of rank >= 1", "shape ()"):
        dense(jnp.float32(1.0), jnp.ones((1, 5)))


def test_flatten_rejects_scalar():
    with raises("flatten", "x of rank >= 1", "shape ()"):
        flatten(jnp.float32(1.0))
