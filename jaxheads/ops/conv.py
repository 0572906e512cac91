"""2-D convolution (NHWC activations, HWIO kernels), with Keras semantics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxheads._checks import cast_like, check_dim, check_floating, check_rank, fail, pair
from jaxheads.ops._padding import (
    Padding,
    check_window_fits,
    normalize_padding,
    trim_unread_padding,
)

NHWC = ("NHWC", "HWIO", "NHWC")


def explicit_padding(pads):
    return pads if isinstance(pads, str) else list(pads)


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None = None,
    *,
    strides=1,
    padding: Padding = "same",
    dilation=1,
    groups: int = 1,
) -> jax.Array:
    """Keras ``Conv2D`` (``channels_last``).

    Args:
      x: ``[B, H, W, C_in]``.
      kernel: ``[kh, kw, C_in / groups, C_out]`` (HWIO, the Keras layout).
      bias: ``[C_out]`` or None.
      strides: int or (sh, sw).
      padding: ``"same"`` (TensorFlow's rule), ``"valid"``, an int (darknet's
        symmetric ``pad``), or ``((top, bottom), (left, right))``.
      dilation: int or (dh, dw) (Keras ``dilation_rate``).
      groups: feature groups (Keras ``groups``).

    Returns:
      ``[B, H', W', C_out]`` in the dtype of ``x``.

    >>> import jax.numpy as jnp
    >>> conv2d(jnp.ones((1, 13, 13, 8)), jnp.ones((3, 3, 8, 4)), strides=2).shape
    (1, 7, 7, 4)
    """
    op = "conv2d"
    check_rank(op, "x", x, 4, "[B, H, W, C]")
    check_floating(op, "x", x)
    check_rank(op, "kernel", kernel, 4, "[kh, kw, C_in, C_out] (HWIO)")
    strides = pair(op, "strides", strides)
    dilation = pair(op, "dilation", dilation)
    if (
        not isinstance(groups, (int, np.integer))
        or isinstance(groups, bool)
        or groups < 1
        or x.shape[3] % groups
    ):
        fail(op, f"groups: a positive integer dividing C_in={x.shape[3]}", repr(groups))
    groups = int(groups)
    check_dim(op, "kernel", kernel, 2, x.shape[3] // groups, "C_in / groups of x")
    if kernel.shape[3] % groups:
        fail(op, f"kernel C_out divisible by groups={groups}", f"kernel shape {kernel.shape}")
    pads = normalize_padding(op, padding)
    window = tuple((k - 1) * d + 1 for k, d in zip(kernel.shape[:2], dilation, strict=True))
    check_window_fits(
        op, x.shape[1:3], window, pads, what="kernel" if dilation == (1, 1) else "dilated kernel"
    )
    if bias is not None:
        check_rank(op, "bias", bias, 1, "[C_out]")
        check_dim(op, "bias", bias, 0, kernel.shape[3], "kernel C_out")
    pads = trim_unread_padding(x.shape[1:3], window, strides, pads)
    kernel, bias = cast_like(x, kernel, bias)
    y = lax.conv_general_dilated(
        x,
        kernel,
        strides,
        explicit_padding(pads),
        rhs_dilation=dilation,
        dimension_numbers=NHWC,
        feature_group_count=groups,
    )
    if bias is not None:
        # Explicit broadcast: implicit rank promotion is an error in strict mode.
        y = y + jnp.broadcast_to(bias, y.shape)
    return y
