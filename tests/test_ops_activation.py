"""Tests for `jaxheads.ops.activation`: `leaky_relu`, `dropout`, darknet's activations and softmax.

`leaky_relu` is compared with Keras 3 ``LeakyReLU(negative_slope=...)``
(relative error ``max|ours - keras| / max(max|keras|, 1e-6)`` ≤ 1e-5; both
compute one float32 product, so it is 0 in practice). `dropout` is compared
with Keras ``Dropout`` as an identity at inference and by its statistics in
training: Keras draws its mask from its own RNG, so masks are not compared.
Darknet's activations are compared with the formulas of its ``activations.h``,
`flat_softmax` with NumPy.
"""

import functools

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from compilations import compilations
from op_properties import keras_numerics, property_tests, raises, rel_err

from jaxheads.ops import DARKNET_ACTIVATIONS, dropout, flat_softmax, leaky_relu

SEEDS = range(4)
RTOL = 1e-5
# XLA's RngBitGenerator key: compiles in a fraction of a second, where the default
# threefry key takes seconds per shape on a CPU. The Keras comparison uses threefry.
KEY = jax.random.key(0, impl="rbg")


def _random_input(rng):
    shape = tuple(int(s) for s in rng.integers(1, 9, size=rng.integers(1, 5)))
    return rng.standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------------- leaky_relu


@functools.cache
def _leaky_case(seed):
    rng = np.random.default_rng(seed)
    x = _random_input(rng)
    slope = float(rng.uniform(0.0, 1.0))
    with keras_numerics():
        ref = np.asarray(keras.layers.LeakyReLU(negative_slope=slope)(x))
    return x, slope, ref


@pytest.mark.parametrize("seed", SEEDS)
def test_leaky_relu_matches_keras(seed, maybe_jit):
    x, slope, ref = _leaky_case(seed)
    y = maybe_jit(functools.partial(leaky_relu, negative_slope=slope))(x)
    assert y.dtype == jnp.float32
    assert rel_err(y, ref) <= RTOL


def test_leaky_relu_closed_form_darknet_default(maybe_jit):
    y = maybe_jit(functools.partial(leaky_relu, negative_slope=0.1))(
        jnp.array([-2.0, -0.0, 0.0, 3.0])
    )  # darknet's 0.1
    np.testing.assert_allclose(np.asarray(y), [-0.2, 0.0, 0.0, 3.0], rtol=1e-6)


# ---------------------------------------------------------------------- dropout


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0])
def test_dropout_inference_is_identity_like_keras(rate, maybe_jit):
    x = _random_input(np.random.default_rng(3))
    with keras_numerics():
        ref = np.asarray(keras.layers.Dropout(rate)(x, training=False))
    np.testing.assert_array_equal(ref, x)
    y = maybe_jit(functools.partial(dropout, rate=rate, deterministic=True))(x)
    np.testing.assert_array_equal(np.asarray(y), x)


def test_dropout_rate_zero_needs_no_key():
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(np.asarray(dropout(x, 0.0)), x)


def test_dropout_rate_one_drops_everything():
    np.testing.assert_array_equal(np.asarray(dropout(jnp.ones((2, 3)), 1.0, key=KEY)), 0.0)


def _dropout_stats(y, x, rate):
    """Fraction dropped, and the largest deviation of kept units from x · (1 / (1 - rate)).

    The scale is 1 / (1 - rate) rounded once to x's dtype. (Keras writes x / (1 - rate):
    newer XLA compiles it into this same multiplication, jax 0.10.0's keeps the
    division; `_divided_err` compares with that.)
    """
    y, x = np.asarray(y), np.asarray(x)
    kept = y != 0
    scaled = x * np.asarray(1.0 / (1.0 - rate), x.dtype)
    return 1.0 - kept.mean(), float(np.max(np.abs(y[kept] - scaled[kept]), initial=0.0))


def _divided_err(y, x, rate):
    y, x = np.asarray(y), np.asarray(x)
    kept = y != 0
    divided = x / np.asarray(1.0 - rate, x.dtype)
    return float(np.max(np.abs(y[kept] - divided[kept]), initial=0.0))


@pytest.mark.parametrize("rate", [0.1, 0.7])
def test_dropout_training_statistics_match_keras(rate, maybe_jit):
    """Both drop ≈ rate of the units and scale the kept ones by exactly 1 / (1 - rate)."""
    x = np.random.default_rng(5).uniform(0.5, 1.5, (32, 32, 32)).astype(np.float32)  # no zeros
    with keras_numerics():
        keras_y = keras.layers.Dropout(rate, seed=1)(x, training=True)
    y = maybe_jit(functools.partial(dropout, rate=rate))(x, key=jax.random.key(0))
    assert y.dtype == jnp.float32
    # Five binomial standard deviations: a fixed key and seed, so never flaky.
    tol = 5 * np.sqrt(rate * (1 - rate) / x.size)
    for out in (y, keras_y):
        dropped, scale_err = _dropout_stats(out, x, rate)
        assert abs(dropped - rate) <= tol
        # Ours multiplies by the rounded scale; Keras' division is exact one way or the other.
        assert scale_err == 0.0 or (out is keras_y and _divided_err(out, x, rate) == 0.0)


def test_dropout_keys_give_different_masks():
    x = jnp.ones((64,))
    a, b = (dropout(x, 0.5, key=k) for k in jax.random.split(KEY))
    assert not np.array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(
        np.asarray(dropout(x, 0.5, key=KEY)), np.asarray(dropout(x, 0.5, key=KEY))
    )


# ------------------------------------------------------ transformation properties


def _cases():
    x = np.random.default_rng(1).standard_normal((2, 5, 5, 3)).astype(np.float32)
    return {
        "leaky_relu": (functools.partial(leaky_relu, negative_slope=0.3), (x,)),
        "dropout": (functools.partial(dropout, rate=0.4, key=KEY), (x,)),
        "dropout_deterministic": (functools.partial(dropout, rate=0.4, deterministic=True), (x,)),
    }


(
    test_vmap_equals_loop,
    test_gradients_are_finite,
    test_second_call_does_not_recompile,
    test_bfloat16_in_bfloat16_out,
) = property_tests(_cases)


def test_dropout_gradient_is_the_mask_scaled():
    x = jnp.ones((100,))
    g = np.asarray(jax.grad(lambda v: jnp.sum(dropout(v, 0.5, key=KEY)))(x))
    kept = np.asarray(dropout(x, 0.5, key=KEY)) != 0
    np.testing.assert_array_equal(g, np.where(kept, 2.0, 0.0))


def test_dropout_new_key_does_not_recompile():
    f = jax.jit(lambda v, k: dropout(v, 0.4, key=k))
    keys, ones = jax.random.split(KEY, 3), jnp.ones((4, 4))
    with compilations("<lambda>") as compiled:
        for k in keys:
            f(ones, k)
    assert len(compiled) == 1


def test_dropout_bfloat16_scales_kept_units_in_bfloat16():
    x = jnp.asarray(np.random.default_rng(2).uniform(0.5, 1.5, (4096,)), jnp.bfloat16)
    dropped, scale_err = _dropout_stats(dropout(x, 0.3, key=KEY), x, 0.3)
    assert scale_err == 0.0
    assert abs(dropped - 0.3) <= 5 * np.sqrt(0.21 / 4096)


# ------------------------------------------------------------------- bad inputs


def test_rejects_integer_input():
    x = np.ones((2, 3), np.int32)
    with raises("leaky_relu", "floating dtype", "int32"):
        leaky_relu(x)
    with raises("dropout", "floating dtype", "int32"):
        dropout(x, 0.5, key=KEY)


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan"), "0.5", True])
def test_dropout_rejects_rate_outside_unit_interval(rate):
    with raises("dropout", "rate (the drop probability) in [0, 1]", repr(rate)):
        dropout(jnp.ones(3), rate, key=KEY)


def test_dropout_rejects_missing_key():
    with raises("dropout", "a PRNG `key`", "key=None"):
        dropout(jnp.ones(3), 0.5)


# ------------------------------------------------------------------- darknet

# activations.h, written with NumPy.
ACTIVATION_REFERENCE = {
    "logistic": lambda x: 1 / (1 + np.exp(-x)),
    "loggy": lambda x: 2 / (1 + np.exp(-x)) - 1,
    "relu": lambda x: x * (x > 0),
    "elu": lambda x: (x >= 0) * x + (x < 0) * (np.exp(x) - 1),
    "selu": lambda x: (x >= 0) * 1.0507 * x + (x < 0) * 1.0507 * 1.6732 * (np.exp(x) - 1),
    "relie": lambda x: np.where(x > 0, x, 0.01 * x),
    "ramp": lambda x: x * (x > 0) + 0.1 * x,
    "tanh": lambda x: (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1),
    "plse": lambda x: np.where(
        x < -4, 0.01 * (x + 4), np.where(x > 4, 0.01 * (x - 4) + 1, 0.125 * x + 0.5)
    ),
    "hardtan": lambda x: np.clip(x, -1, 1),
    "lhtan": lambda x: np.where(x < 0, 0.001 * x, np.where(x > 1, 0.001 * (x - 1) + 1, x)),
}


def test_activations_match_darknet_formulas():
    x = np.linspace(-6, 6, 241, dtype=np.float32)
    assert set(DARKNET_ACTIVATIONS) == set(ACTIVATION_REFERENCE)
    for name, fn in DARKNET_ACTIVATIONS.items():
        np.testing.assert_allclose(
            np.asarray(fn(jnp.asarray(x))),
            ACTIVATION_REFERENCE[name](x),
            rtol=1e-5,
            atol=1e-6,
            err_msg=name,
        )


def test_flat_softmax_is_one_softmax_per_example(maybe_jit):
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 4)).astype(np.float32)
    y = maybe_jit(flat_softmax, static_argnames="temperature")(x, temperature=0.5)
    flat = x.reshape(2, -1) / 0.5
    want = np.exp(flat - flat.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(y, want.reshape(x.shape), rtol=1e-6, atol=1e-7)
