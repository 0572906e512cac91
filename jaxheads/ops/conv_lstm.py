"""Keras ``ConvLSTM2D`` as a pure function: convolutions inside an LSTM, scanned over time."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from jaxheads._checks import (
    cast_like,
    check_channels_last,
    check_dim,
    check_floating,
    check_rank,
    check_shape,
    fail,
    pair,
)
from jaxheads.ops._padding import Padding, check_window_fits, normalize_padding
from jaxheads.ops.conv import conv2d


def conv_lstm2d(
    x: jax.Array,
    kernel: jax.Array,
    recurrent_kernel: jax.Array,
    bias: jax.Array | None = None,
    *,
    strides=1,
    padding: Padding = "valid",
    dilation=1,
    return_sequences: bool = False,
    return_state: bool = False,
    initial_state: tuple[jax.Array, jax.Array] | None = None,
    go_backwards: bool = False,
    activation: Callable = jnp.tanh,
    recurrent_activation: Callable = jax.nn.sigmoid,
):
    """Keras ``ConvLSTM2D`` (``channels_last``), with Keras' weight layout.

    Gates are stacked on the last kernel axis in the order i, f, c, o::

        z = conv(x_t, kernel, strides, padding, dilation) + bias
            + conv(h, recurrent_kernel, stride 1, "same")
        i, f, o = recurrent_activation(z_i, z_f, z_o); g = activation(z_c)
        c = f·c + i·g;  h = o·activation(c)

    The input convolution runs once over all time steps; only the recurrent
    part is a ``lax.scan``.

    Args:
      x: ``[B, T, H, W, C]``.
      kernel: ``[kh, kw, C, 4F]``.
      recurrent_kernel: ``[rh, rw, F, 4F]``.
      bias: ``[4F]`` or None.
      strides, padding, dilation: of the input convolution, as in `conv2d`.
      return_sequences: return every step's ``h`` (``[B, T, h, w, F]``) instead
        of the last (``[B, h, w, F]``).
      return_state: also return the final ``(h, c)``.
      initial_state: ``(h0, c0)``, each ``[B, h, w, F]``; zeros by default.
      go_backwards: process the sequence in reverse (outputs stay reversed, as Keras).
      activation, recurrent_activation: Keras' defaults tanh and sigmoid.

    Returns:
      the output, or ``(output, h, c)`` with ``return_state``.
    """
    op = "conv_lstm2d"
    check_rank(op, "x", x, 5, "[B, T, H, W, C]")
    check_floating(op, "x", x)
    check_rank(op, "kernel", kernel, 4, "[kh, kw, C, 4*filters]")
    check_rank(op, "recurrent_kernel", recurrent_kernel, 4, "[kh, kw, filters, 4*filters]")
    if kernel.shape[3] % 4:
        fail(op, "kernel.shape[3] == 4*filters (gates i, f, c, o)", f"shape {kernel.shape}")
    filters = kernel.shape[3] // 4
    check_dim(op, "recurrent_kernel", recurrent_kernel, 2, filters, "filters")
    check_dim(op, "recurrent_kernel", recurrent_kernel, 3, 4 * filters, "4*filters")
    # Checked here, not left to `conv2d`, so that the error names this op.
    if x.shape[1]:  # one step shows the layout ([B, H, W, C] vs [B, C, H, W])
        check_channels_last(op, "x", x[:, 0], kernel.shape[2])
    check_dim(op, "kernel", kernel, 2, x.shape[4], "C of x")
    if bias is not None:
        check_shape(op, "bias", bias, (4 * filters,))
    dilation = pair(op, "dilation", dilation)
    pads = normalize_padding(op, padding)
    window = tuple((k - 1) * d + 1 for k, d in zip(kernel.shape[:2], dilation, strict=True))
    check_window_fits(op, x.shape[2:4], window, pads)
    b, t = x.shape[:2]
    if t == 0:
        fail(op, "at least one time step", f"x of shape {x.shape}")
    if initial_state is not None and (
        not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2
    ):
        got = (
            f"{len(initial_state)} arrays"
            if isinstance(initial_state, (tuple, list))
            else f"a {type(initial_state).__name__} of shape {jnp.shape(initial_state)}"
        )
        fail(op, "initial_state as a pair (h, c)", got)
    kernel, recurrent_kernel = cast_like(x, kernel, recurrent_kernel)
    z_in = conv2d(
        x.reshape(b * t, *x.shape[2:]),
        kernel,
        bias,
        strides=strides,
        padding=padding,
        dilation=dilation,
    )
    z_in = z_in.reshape(b, t, *z_in.shape[1:])
    state_shape = (b, *z_in.shape[2:4], filters)
    if initial_state is None:
        h0 = c0 = jnp.zeros(state_shape, x.dtype)
    else:
        h0, c0 = cast_like(x, *initial_state)
        check_shape(op, "initial_state[0]", h0, state_shape)
        check_shape(op, "initial_state[1]", c0, state_shape)
    z_in = jnp.swapaxes(z_in, 0, 1)  # time-major for the scan
    if go_backwards:
        z_in = z_in[::-1]

    def step(carry, z_x):
        h, c = carry
        z = z_x + conv2d(h, recurrent_kernel, padding="same")
        zi, zf, zc, zo = jnp.split(z, 4, axis=-1)
        c = recurrent_activation(zf) * c + recurrent_activation(zi) * activation(zc)
        h = recurrent_activation(zo) * activation(c)
        return (h, c), h

    (h, c), hs = lax.scan(step, (h0, c0), z_in)
    out = jnp.swapaxes(hs, 0, 1) if return_sequences else h
    return (out, h, c) if return_state else out
