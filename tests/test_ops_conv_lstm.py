"""Tests for `conv_lstm2d` against Keras 3 ``ConvLSTM2D`` (JAX backend).

Keras is the external reference: the same weights go into
``keras.layers.ConvLSTM2D(...).set_weights([kernel, recurrent_kernel, bias])``
and both must agree to a relative error of 1e-4 (float32; the two run the same
convolutions, but Keras per gate and per step, so sums are ordered differently).
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from compilations import compilations

from jaxheads.ops import conv_lstm2d

KERAS_RTOL, KERAS_ATOL = 1e-4, 1e-6
# set_weights overwrites them anyway. Keras' default orthogonal initializer
# costs seconds per layer and relies on implicit rank promotion, which this
# suite's strict mode rejects.
_NO_INIT = dict(kernel_initializer="zeros", recurrent_initializer="zeros")


def _weights(rng, kernel_size, channels, filters, scale=0.4):
    kh, kw = kernel_size
    kernel = scale * rng.standard_normal((kh, kw, channels, 4 * filters))
    recurrent = scale * rng.standard_normal((kh, kw, filters, 4 * filters))
    bias = scale * rng.standard_normal((4 * filters,))
    return [w.astype(np.float32) for w in (kernel, recurrent, bias)]


def _keras(x, weights, filters, kernel_size, initial_state=None, **kwargs):
    layer = keras.layers.ConvLSTM2D(filters, kernel_size, **_NO_INIT, **kwargs)
    layer.build(x.shape)
    layer.set_weights(weights)
    if initial_state is None:
        out = layer(x)
    else:
        out = layer(x, initial_state=list(initial_state))
    return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else np.asarray(out)


# (shape [B, T, H, W, C], filters, kernel_size, layer options) — small, mixed settings.
KERAS_CASES = [
    (
        (2, 3, 6, 5, 2),
        3,
        (3, 3),
        dict(padding="valid", return_sequences=True, return_state=True),
    ),
    (
        (1, 4, 7, 8, 3),
        4,
        (3, 2),
        dict(padding="same", strides=2, go_backwards=True, return_state=True),
    ),
    (
        (2, 2, 8, 6, 1),
        2,
        (3, 3),
        dict(padding="same", dilation_rate=2, return_sequences=True, go_backwards=True),
    ),
    ((2, 3, 5, 7, 2), 4, (2, 2), dict(padding="valid", strides=(2, 1), use_bias=False)),
]


def _ours(x, weights, **keras_options):
    """`conv_lstm2d` called with a Keras layer's options."""
    kwargs = dict(keras_options)
    kwargs.pop("use_bias", None)  # ours: bias=None
    if "dilation_rate" in kwargs:
        kwargs["dilation"] = kwargs.pop("dilation_rate")
    return conv_lstm2d(jnp.asarray(x), *weights, **kwargs)


@pytest.mark.parametrize("case", range(len(KERAS_CASES)))
def test_matches_keras(case):
    shape, filters, kernel_size, options = KERAS_CASES[case]
    rng = np.random.default_rng(case)
    x = rng.standard_normal(shape).astype(np.float32)
    weights = _weights(rng, kernel_size, shape[-1], filters)
    use_bias = options.get("use_bias", True)
    expected = _keras(x, weights if use_bias else weights[:2], filters, kernel_size, **options)
    actual = _ours(x, weights if use_bias else [*weights[:2], None], **options)
    if options.get("return_state"):
        assert len(actual) == len(expected) == 3  # output, h, c
    else:
        actual, expected = [actual], [expected]
    for a, e in zip(actual, expected, strict=True):
        assert a.shape == e.shape and a.dtype == jnp.float32
        np.testing.assert_allclose(a, e, rtol=KERAS_RTOL, atol=KERAS_ATOL)


def test_initial_state_matches_keras():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 6, 6, 2)).astype(np.float32)
    weights = _weights(rng, (3, 3), 2, 3)
    h0, c0 = (rng.standard_normal((2, 6, 6, 3)).astype(np.float32) for _ in range(2))
    options = dict(padding="same", return_sequences=True, return_state=True)
    expected = _keras(x, weights, 3, (3, 3), initial_state=(h0, c0), **options)
    actual = _ours(x, weights, initial_state=(h0, c0), **options)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=KERAS_RTOL, atol=KERAS_ATOL)
    # The state really is used: zeros give a different answer.
    zero_state = _ours(x, weights, **options)
    assert not np.allclose(zero_state[0], actual[0], rtol=1e-3)


def test_closed_form_with_zero_kernels():
    # With zero kernels every gate sees only its bias, the same at every pixel:
    # c_t = σ(b_f)·c_{t-1} + σ(b_i)·tanh(b_c),  h_t = σ(b_o)·tanh(c_t).
    bias = np.array([0.5, -1.0, 2.0, 0.3], np.float32)  # one filter: i, f, c, o
    x = jnp.ones((1, 3, 4, 4, 2))
    hs = conv_lstm2d(
        x, jnp.zeros((3, 3, 2, 4)), jnp.zeros((3, 3, 1, 4)), bias, return_sequences=True
    )

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    b_i, b_f, b_c, b_o = bias.astype(np.float64)
    c, expected = 0.0, []
    for _ in range(3):
        c = sigmoid(b_f) * c + sigmoid(b_i) * np.tanh(b_c)
        expected.append(sigmoid(b_o) * np.tanh(c))
    assert hs.shape == (1, 3, 2, 2, 1)  # "valid" 3x3 on 4x4
    np.testing.assert_allclose(
        hs, np.broadcast_to(np.array(expected)[None, :, None, None, None], hs.shape), rtol=1e-6
    )


def test_go_backwards_is_the_reversed_sequence():
    rng = np.random.default_rng(12)
    x = jnp.asarray(rng.standard_normal((1, 4, 5, 5, 2)), jnp.float32)
    weights = _weights(rng, (3, 3), 2, 2)
    kwargs = dict(padding="same", return_sequences=True)
    backwards = conv_lstm2d(x, *weights, go_backwards=True, **kwargs)
    reversed_input = conv_lstm2d(x[:, ::-1], *weights, **kwargs)
    np.testing.assert_array_equal(backwards, reversed_input)


# ---------------------------------------------------------------------------
# Transformations


def _small(seed=20):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 5, 4, 2)).astype(np.float32)
    return x, _weights(rng, (3, 3), 2, 2)


@functools.cache
def _small_keras_reference():
    x, weights = _small()
    return _keras(x, weights, 2, (3, 3), padding="same", return_state=True)


def test_jit_and_nojit_agree_with_keras(maybe_jit):
    x, weights = _small()
    op = maybe_jit(lambda x, k, r, b: conv_lstm2d(x, k, r, b, padding="same", return_state=True))
    actual = op(jnp.asarray(x), *weights)
    expected = _small_keras_reference()
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=KERAS_RTOL, atol=KERAS_ATOL)


def test_vmap_equals_loop():
    x, weights = _small()
    xs = jnp.asarray(np.random.default_rng(21).standard_normal((3, *x.shape)), jnp.float32)

    def op(x):
        return conv_lstm2d(x, *weights, padding="same", return_sequences=True)

    # vmap folds the extra axis into the convolutions' batch: rounding may
    # differ from the loop, hence 1e-5 rather than bit-exactness.
    np.testing.assert_allclose(
        jax.vmap(op)(xs), jnp.stack([op(v) for v in xs]), rtol=1e-5, atol=1e-6
    )


def test_gradients_are_finite():
    x, (kernel, recurrent, bias) = _small()
    h0 = jnp.full((2, 5, 4, 2), 0.1)
    c0 = jnp.full((2, 5, 4, 2), -0.2)

    def loss(x, kernel, recurrent, bias, h0, c0):
        out, h, c = conv_lstm2d(
            x,
            kernel,
            recurrent,
            bias,
            padding="same",
            return_sequences=True,
            return_state=True,
            initial_state=(h0, c0),
        )
        return jnp.sum(out**2) + jnp.sum(c)

    grads = jax.jit(jax.grad(loss, argnums=range(6)))(
        jnp.asarray(x), kernel, recurrent, bias, h0, c0
    )
    for g in grads:
        assert np.isfinite(np.asarray(g)).all()
        assert np.abs(np.asarray(g)).max() > 0


def test_no_recompilation_on_second_call():
    x, weights = _small()
    op = jax.jit(lambda x, k, r, b: conv_lstm2d(x, k, r, b, padding="same"))
    x2 = jnp.asarray(x) * 2
    with compilations("<lambda>") as compiled:
        op(jnp.asarray(x), *weights)
        op(x2, *weights)
    assert len(compiled) == 1


def test_bfloat16():
    x, weights = _small()
    kwargs = dict(padding="same", return_sequences=True, return_state=True)
    low = conv_lstm2d(jnp.asarray(x, jnp.bfloat16), *weights, **kwargs)
    high = conv_lstm2d(jnp.asarray(x), *weights, **kwargs)
    for a, e in zip(low, high, strict=True):
        assert a.dtype == jnp.bfloat16
        # bfloat16 keeps 8 significand bits; h is in (-1, 1) and errors carry
        # through 3 steps of 18-term convolutions.
        np.testing.assert_allclose(np.asarray(a, np.float32), e, atol=5e-2)


# ---------------------------------------------------------------------------
# Errors


def _call(
    x_shape=(1, 2, 5, 5, 2),
    kernel_shape=(3, 3, 2, 8),
    recurrent_shape=(3, 3, 2, 8),
    bias_shape=(8,),
    **kwargs,
):
    bias = None if bias_shape is None else jnp.zeros(bias_shape)
    return conv_lstm2d(
        jnp.zeros(x_shape), jnp.zeros(kernel_shape), jnp.zeros(recurrent_shape), bias, **kwargs
    )


def test_valid_call_for_the_error_cases():
    assert _call().shape == (1, 3, 3, 2)


@pytest.mark.parametrize("shape", [(1, 5, 5, 2), (1, 1, 2, 5, 5, 2)])
def test_wrong_rank(shape):
    with pytest.raises(
        ValueError, match=rf"^conv_lstm2d: .*rank 5.*got shape {re.escape(str(shape))}"
    ):
        _call(x_shape=shape)


def test_non_float_dtype():
    with pytest.raises(ValueError, match=r"^conv_lstm2d: .*floating.*got dtype int32"):
        conv_lstm2d(
            jnp.zeros((1, 2, 5, 5, 2), jnp.int32), jnp.zeros((3, 3, 2, 8)), jnp.zeros((3, 3, 2, 8))
        )


def test_mismatched_channels():
    with pytest.raises(ValueError, match=r"^conv_lstm2d: .*kernel.*got shape \(3, 3, 3, 8\)"):
        _call(kernel_shape=(3, 3, 3, 8))


def test_kernel_not_four_gates():
    with pytest.raises(ValueError, match=r"^conv_lstm2d: .*4\*filters.*got shape \(3, 3, 2, 6\)"):
        _call(kernel_shape=(3, 3, 2, 6))


@pytest.mark.parametrize("recurrent_shape", [(3, 3, 3, 8), (3, 3, 2, 4), (3, 3, 8)])
def test_recurrent_kernel_shape(recurrent_shape):
    with pytest.raises(
        ValueError,
        match=rf"^conv_lstm2d: .*recurrent_kernel.*got shape {re.escape(str(recurrent_shape))}",
    ):
        _call(recurrent_shape=recurrent_shape)


@pytest.mark.parametrize("bias_shape", [(4,), (1, 8)])
def test_bias_shape(bias_shape):
    with pytest.raises(
        ValueError, match=rf"^conv_lstm2d: .*bias.*got shape {re.escape(str(bias_shape))}"
    ):
        _call(bias_shape=bias_shape)


def test_kernel_larger_than_input():
    with pytest.raises(ValueError, match=r"^conv_lstm2d: .*kernel height <= .*\(2, 5\)"):
        _call(x_shape=(1, 2, 2, 5, 2))


def test_no_time_steps():
    with pytest.raises(ValueError, match=r"^conv_lstm2d: .*time step.*\(1, 0, 5, 5, 2\)"):
        _call(x_shape=(1, 0, 5, 5, 2))


@pytest.mark.parametrize("state_shape", [(1, 5, 5, 2), (2, 3, 3, 2), (1, 3, 3, 3)])
def test_initial_state_shape(state_shape):
    state = (jnp.zeros((1, 3, 3, 2)), jnp.zeros(state_shape))
    with pytest.raises(
        ValueError,
        match=rf"^conv_lstm2d: .*initial_state\[1\] of shape \(1, 3, 3, 2\).*"
        rf"{re.escape(str(state_shape))}",
    ):
        _call(initial_state=state)


@pytest.mark.parametrize(
    "state",
    [(jnp.zeros((1, 3, 3, 2)),), jnp.zeros((2, 1, 3, 3, 2))],
    ids=["one array in a tuple", "a stacked array"],
)
def test_initial_state_not_a_pair(state):
    with pytest.raises(ValueError, match=r"^conv_lstm2d: .*initial_state as a pair \(h, c\)"):
        _call(initial_state=state)
