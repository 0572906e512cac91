"""The locally connected layer (darknet ``[local]``, Keras 2 ``LocallyConnected2D``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxheads._checks import cast_like, check_floating, check_rank, fail, pair
from jaxheads.ops._padding import Padding, check_window_fits, normalize_padding
from jaxheads.ops.conv import NHWC, explicit_padding


def local_output_size(size: int, kernel: int, stride: int, padding) -> int:
    """Output length of a windowed op along one axis (for "same"/"valid"/(lo, hi))."""
    if padding == "SAME":
        return -(-size // stride)
    lo, hi = (0, 0) if padding == "VALID" else padding
    return (size + lo + hi - kernel) // stride + 1


def locally_connected2d(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None,
    *,
    kernel_size,
    strides=1,
    padding: Padding = "valid",
) -> jax.Array:
    """A locally connected layer: a convolution whose weights differ at each output cell.

    Darknet's ``[local]`` and Keras 2's ``LocallyConnected2D``: output cell
    ``(i, j)`` is ``patch(i, j) @ kernel[i, j] + bias[i, j]``.

    Args:
      x: ``[B, H, W, C_in]``.
      kernel: ``[out_h, out_w, C_in·kh·kw, C_out]``; the unfolded patch axis is
        channel-major ``(C_in, kh, kw)``, as in ``lax.conv_general_dilated_local``,
        flax ``ConvLocal`` and darknet's im2col.
      bias: ``[out_h, out_w, C_out]`` or None.
      kernel_size: int or (kh, kw).
      strides: int or (sh, sw).
      padding: ``"valid"``, ``"same"``, an int (darknet ``pad``) or explicit pairs.

    Returns:
      ``[B, out_h, out_w, C_out]``.
    """
    op = "locally_connected2d"
    check_rank(op, "x", x, 4, "[B, H, W, C]")
    check_floating(op, "x", x)
    kh, kw = pair(op, "kernel_size", kernel_size)
    strides = pair(op, "strides", strides)
    pads = normalize_padding(op, padding)
    check_window_fits(op, x.shape[1:3], (kh, kw), pads)
    out_h, out_w = (
        local_output_size(
            x.shape[1 + a], (kh, kw)[a], strides[a], pads if isinstance(pads, str) else pads[a]
        )
        for a in (0, 1)
    )
    check_rank(op, "kernel", kernel, 4, "[out_h, out_w, C_in*kh*kw, C_out]")
    expected = (out_h, out_w, x.shape[3] * kh * kw)
    if tuple(np.shape(kernel)[:3]) != expected:
        fail(
            op,
            f"kernel of shape {(*expected, '*')} for this input "
            f"(output {out_h}x{out_w}, C_in*kh*kw = {expected[2]})",
            f"shape {kernel.shape}",
        )
    if bias is not None:
        check_rank(op, "bias", bias, 3, "[out_h, out_w, C_out]")
        if tuple(np.shape(bias)) != (out_h, out_w, kernel.shape[3]):
            fail(op, f"bias of shape {(out_h, out_w, kernel.shape[3])}", f"shape {bias.shape}")
    kernel, bias = cast_like(x, kernel, bias)
    patches = lax.conv_general_dilated_patches(
        x, (kh, kw), strides, explicit_padding(pads), dimension_numbers=NHWC
    )
    y = jnp.einsum("bhwp,hwpo->bhwo", patches, kernel)
    if bias is not None:
        # Explicit broadcast over the batch: implicit rank promotion is an error in strict mode.
        y = y + bias[None]
    return y
