"""Tests for `locally_connected2d` (darknet ``[local]``, Keras 2 ``LocallyConnected2D``).

References:

* `_local_loop`: a float64 loop over output cells that cuts each patch out of
  the padded input, flattens it channel-major ``(c, ky, kx)`` (the row order of
  darknet's im2col, which ``forward_local_layer`` multiplies by each location's
  weights) and multiplies it by that cell's kernel;
* ``jax.lax.conv_general_dilated_local``, JAX's own unshared convolution: with
  ``rhs_spec == "HWIO"`` its ``I`` axis is ``C + "HW"``, i.e. the same
  ``(c, ky, kx)`` order as our kernel;
* Keras 3 has no ``LocallyConnected2D``; a locally connected layer whose
  kernel is the same at every cell is a convolution, so it must equal
  ``keras.layers.Conv2D`` with that kernel.

Tolerances: float32 results are compared with a float64 loop at rtol 1e-5,
atol 1e-6 rather than the house 1e-6, because each output sums up to
C·kh·kw = 27 float32 products in an order the loop does not reproduce.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from compilations import compilations
from jax import lax

from jaxheads.ops import locally_connected2d

RTOL, ATOL = 1e-5, 1e-6

# ---------------------------------------------------------------------------
# Oracle


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same": output ceil(size/stride), the odd pixel at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _explicit_pads(padding, x_shape, kernel_size, strides):
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        return tuple(_same_pads(x_shape[1 + a], kernel_size[a], strides[a]) for a in (0, 1))
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    return padding


def _local_loop(x, kernel, bias, kernel_size, strides, padding) -> np.ndarray:
    kh, kw = kernel_size
    sh, sw = strides
    (top, bottom), (left, right) = _explicit_pads(padding, x.shape, kernel_size, strides)
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (top, bottom), (left, right), (0, 0)))
    n, h, w, _ = x.shape
    out_h, out_w = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((n, out_h, out_w, kernel.shape[-1]))
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :]  # [B, kh, kw, C]
            rows = patch.transpose(0, 3, 1, 2).reshape(n, -1)  # (c, ky, kx) order
            out[:, i, j] = rows @ np.asarray(kernel[i, j], np.float64)
            if bias is not None:
                out[:, i, j] += np.asarray(bias[i, j], np.float64)
    return out


def _output_size(x_shape, kernel_size, strides, padding) -> tuple[int, int]:
    pads = _explicit_pads(padding, x_shape, kernel_size, strides)
    return tuple((x_shape[1 + a] + sum(pads[a]) - kernel_size[a]) // strides[a] + 1 for a in (0, 1))


def _case(seed: int):
    """A random (x, kernel, bias, kwargs) with small shapes and mixed settings."""
    rng = np.random.default_rng(seed)
    kernel_size = tuple(int(k) for k in rng.integers(1, 4, size=2))
    strides = tuple(int(s) for s in rng.integers(1, 3, size=2))
    padding = ["valid", "same", 1, ((0, 1), (2, 0))][seed % 4]
    b, c, f = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    h, w = (int(v) for v in rng.integers(3, 8, size=2))
    out_h, out_w = _output_size((b, h, w, c), kernel_size, strides, padding)
    x = rng.standard_normal((b, h, w, c)).astype(np.float32)
    kernel = rng.standard_normal((out_h, out_w, c * kernel_size[0] * kernel_size[1], f))
    bias = rng.standard_normal((out_h, out_w, f))
    kwargs = dict(kernel_size=kernel_size, strides=strides, padding=padding)
    return x, kernel.astype(np.float32), bias.astype(np.float32), kwargs


SEEDS = list(range(8))


# ---------------------------------------------------------------------------
# Values


def test_closed_form_with_constant_weights():
    # Ones everywhere, valid 2x2 windows on a 3x3 ones image with 2 channels:
    # every output is 2·2·2 = 8 products of 1 plus the bias at that cell.
    x = jnp.ones((1, 3, 3, 2))
    kernel = jnp.ones((2, 2, 8, 1))
    bias = jnp.arange(4.0).reshape(2, 2, 1)
    y = locally_connected2d(x, kernel, bias, kernel_size=2)
    np.testing.assert_array_equal(y, (8.0 + np.arange(4.0)).reshape(1, 2, 2, 1))


def test_patch_order_is_channel_major():
    # One output cell whose kernel is the identity: output unit r is patch row
    # r, which must be the input at (c, ky, kx) = unravel(r, (C, kh, kw)).
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 2, 3, 2)), jnp.float32)
    y = locally_connected2d(x, jnp.eye(12)[None, None], None, kernel_size=(2, 3))
    c, ky, kx = np.unravel_index(np.arange(12), (2, 2, 3))
    np.testing.assert_array_equal(y[0, 0, 0], x[0, ky, kx, c])


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_loop_and_lax_conv_general_dilated_local(seed):
    x, kernel, bias, kwargs = _case(seed)
    y = locally_connected2d(jnp.asarray(x), kernel, bias, **kwargs)
    expected = _local_loop(x, kernel, bias, **kwargs)
    assert y.shape == expected.shape and y.dtype == jnp.float32
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)
    # JAX's independent unshared convolution, given the same kernel unchanged.
    pads = _explicit_pads(kwargs["padding"], x.shape, kwargs["kernel_size"], kwargs["strides"])
    lax_local = lax.conv_general_dilated_local(
        jnp.asarray(x),
        jnp.asarray(kernel),
        window_strides=kwargs["strides"],
        padding=list(pads),
        filter_shape=kwargs["kernel_size"],
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=lax.Precision.HIGHEST,
    )
    np.testing.assert_allclose(y, lax_local + jnp.asarray(bias)[None], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "kernel_size,strides,padding",
    [((3, 2), (2, 1), "valid"), ((2, 3), (2, 2), "same")],
)
def test_shared_kernel_equals_keras_conv2d(kernel_size, strides, padding):
    rng = np.random.default_rng(1)
    c, f = 3, 2
    x = rng.standard_normal((2, 7, 6, c)).astype(np.float32)
    hwio = rng.standard_normal((*kernel_size, c, f)).astype(np.float32)
    bias = rng.standard_normal((f,)).astype(np.float32)
    # Zeros: set_weights overwrites them, and skipping Keras' random
    # initializer saves compiling it.
    conv = keras.layers.Conv2D(
        f, kernel_size, strides=strides, padding=padding, kernel_initializer="zeros"
    )
    conv.build(x.shape)
    conv.set_weights([hwio, bias])
    expected = np.asarray(conv(x))
    out_h, out_w = expected.shape[1:3]
    # HWIO -> one (c, ky, kx)-major matrix, repeated at every output cell.
    matrix = hwio.transpose(2, 0, 1, 3).reshape(-1, f)
    kernel = np.broadcast_to(matrix, (out_h, out_w, *matrix.shape))
    y = locally_connected2d(
        jnp.asarray(x),
        kernel,
        np.broadcast_to(bias, (out_h, out_w, f)),
        kernel_size=kernel_size,
        strides=strides,
        padding=padding,
    )
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)


def test_without_bias():
    x, kernel, _, kwargs = _case(3)
    y = locally_connected2d(jnp.asarray(x), kernel, None, **kwargs)
    np.testing.assert_allclose(y, _local_loop(x, kernel, None, **kwargs), rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------
# Transformations


def test_jit_and_nojit_agree_with_loop(maybe_jit):
    x, kernel, bias, kwargs = _case(5)
    op = maybe_jit(lambda x, k, b: locally_connected2d(x, k, b, **kwargs))
    y = op(jnp.asarray(x), jnp.asarray(kernel), jnp.asarray(bias))
    np.testing.assert_allclose(y, _local_loop(x, kernel, bias, **kwargs), rtol=RTOL, atol=ATOL)


def test_vmap_over_inputs_and_over_weights_equals_loop():
    x, kernel, bias, kwargs = _case(6)
    rng = np.random.default_rng(60)
    xs = jnp.asarray(rng.standard_normal((3, *x.shape)), jnp.float32)
    kernels = jnp.asarray(rng.standard_normal((3, *kernel.shape)), jnp.float32)

    def op(x, k):
        return locally_connected2d(x, k, bias, **kwargs)

    # Batching changes the einsum XLA runs and so the float32 summation order:
    # agreement is to rounding (RTOL, ATOL), not bit for bit.
    np.testing.assert_allclose(
        jax.vmap(op, in_axes=(0, None))(xs, kernel),
        jnp.stack([op(v, kernel) for v in xs]),
        rtol=RTOL,
        atol=ATOL,
    )
    np.testing.assert_allclose(
        jax.vmap(op, in_axes=(None, 0))(jnp.asarray(x), kernels),
        jnp.stack([op(jnp.asarray(x), k) for k in kernels]),
        rtol=RTOL,
        atol=ATOL,
    )


def test_gradients_are_finite_and_match_closed_form():
    x, kernel, bias, kwargs = _case(7)

    def loss(x, k, b):
        return jnp.sum(locally_connected2d(x, k, b, **kwargs))

    gx, gk, gb = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(jnp.asarray(x), kernel, bias)
    for g in (gx, gk, gb):
        assert np.isfinite(np.asarray(g)).all()
    # d sum / d bias[i, j, o] counts the batch; d sum / d kernel[i, j, p, o] sums
    # patch row p of cell (i, j) over the batch, whatever o is.
    np.testing.assert_array_equal(gb, np.full(bias.shape, x.shape[0], np.float32))
    ones = np.zeros_like(kernel)
    ones[..., 0] = 1.0
    patch_sums = _local_loop(x, ones, None, **kwargs)[..., 0].sum(0)  # [out_h, out_w]
    np.testing.assert_allclose(gk.sum(axis=(2, 3)), patch_sums * kernel.shape[3], rtol=RTOL)


def test_no_recompilation_on_second_call():
    x, kernel, bias, kwargs = _case(8)
    op = jax.jit(lambda x, k, b: locally_connected2d(x, k, b, **kwargs))
    x2 = jnp.asarray(x) + 1
    with compilations("<lambda>") as compiled:
        op(jnp.asarray(x), kernel, bias)
        op(x2, kernel * 2, bias)
    assert len(compiled) == 1


def test_bfloat16():
    x, kernel, bias, kwargs = _case(9)
    y = locally_connected2d(jnp.asarray(x, jnp.bfloat16), kernel, bias, **kwargs)
    assert y.dtype == jnp.bfloat16
    expected = _local_loop(x, kernel, bias, **kwargs)
    # bfloat16 keeps 8 significand bits: inputs, weights and the sum each round.
    scale = np.abs(expected).max()
    np.testing.assert_allclose(np.asarray(y, np.float32), expected, rtol=3e-2, atol=3e-2 * scale)


# ---------------------------------------------------------------------------
# Errors


def _call(x_shape=(1, 5, 5, 2), kernel_shape=(3, 3, 18, 4), bias_shape=(3, 3, 4), **kwargs):
    kwargs = {"kernel_size": 3, **kwargs}
    bias = None if bias_shape is None else jnp.zeros(bias_shape)
    return locally_connected2d(jnp.zeros(x_shape), jnp.zeros(kernel_shape), bias, **kwargs)


def test_valid_call_for_the_error_cases():
    assert _call().shape == (1, 3, 3, 4)


@pytest.mark.parametrize("shape", [(5, 5, 2), (1, 1, 5, 5, 2)])
def test_wrong_rank(shape):
    with pytest.raises(
        ValueError, match=rf"^locally_connected2d: .*rank 4.*got shape {re.escape(str(shape))}"
    ):
        _call(x_shape=shape)


def test_non_float_dtype():
    with pytest.raises(ValueError, match=r"^locally_connected2d: .*floating.*got dtype int32"):
        locally_connected2d(
            jnp.zeros((1, 5, 5, 2), jnp.int32), jnp.zeros((3, 3, 18, 4)), None, kernel_size=3
        )


def test_mismatched_channels():
    # Kernel built for 3 input channels (27 patch rows), input has 2.
    with pytest.raises(
        ValueError,
        match=r"^locally_connected2d: .*C_in\*kh\*kw = 18.*got shape \(3, 3, 27, 4\)",
    ):
        _call(kernel_shape=(3, 3, 27, 4))


@pytest.mark.parametrize("kernel_shape", [(4, 4, 18, 4), (3, 2, 18, 4), (3, 3, 18)])
def test_kernel_shape_not_matching_output(kernel_shape):
    with pytest.raises(
        ValueError, match=rf"^locally_connected2d: .*got shape {re.escape(str(kernel_shape))}"
    ):
        _call(kernel_shape=kernel_shape, bias_shape=None)


@pytest.mark.parametrize("bias_shape", [(3, 3, 3), (4,), (1, 3, 4)])
def test_bias_shape(bias_shape):
    with pytest.raises(
        ValueError, match=rf"^locally_connected2d: .*bias.*got shape {re.escape(str(bias_shape))}"
    ):
        _call(bias_shape=bias_shape)


def test_kernel_larger_than_input():
    with pytest.raises(ValueError, match=r"^locally_connected2d: .*kernel height <= .*\(2, 2\)"):
        locally_connected2d(jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 1, 9, 1)), None, kernel_size=3)


@pytest.mark.parametrize(
    "kwargs", [{"kernel_size": 0}, {"strides": (1, 0)}, {"padding": "full"}, {"padding": -1}]
)
def test_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError, match=r"^locally_connected2d: "):
        _call(**kwargs)
