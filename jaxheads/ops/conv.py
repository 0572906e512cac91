"""2-D convolution (NHWC activations, HWIO kernels), with Keras semantics.

On CPU, a convolution with at least `PATCHES_MIN_CHANNELS` input channels (and no
feature groups) is computed as one matrix product of the input's patches
("im2col"): XLA:CPU's own convolution runs such layers, forward and backward,
1.1–5× slower than its matrix product does (1×1 convolutions 1.6–5×, 3×3 ones on
small maps 1.3–1.7×), while with fewer channels the patches' narrow rows make the
product the slower one. The choice is made per layer from static shapes and per
platform when the program is lowered (`jax.lax.platform_dependent`): GPUs and TPUs
always run XLA's convolution. Both compute the same sums in a different order.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxheads._checks import (
    cast_like,
    check_channels_last,
    check_dim,
    check_floating,
    check_rank,
    check_static,
    fail,
    pair,
)
from jaxheads.ops._padding import (
    Padding,
    check_window_fits,
    normalize_padding,
    pad_map,
    trim_unread_padding,
)

NHWC = ("NHWC", "HWIO", "NHWC")

# Fewer input channels than this keep XLA's convolution on CPU too (see the module
# docstring; measured layer by layer in docs/benchmarks.md).
PATCHES_MIN_CHANNELS = 32


def explicit_padding(pads):
    return pads if isinstance(pads, str) else list(pads)


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None = None,
    *,
    strides=1,
    padding: Padding = "valid",
    dilation=1,
    groups: int = 1,
) -> jax.Array:
    """Keras ``Conv2D`` (``channels_last``).

    Args:
      x: ``[B, H, W, C_in]``.
      kernel: ``[kh, kw, C_in / groups, C_out]`` (HWIO, the Keras layout).
      bias: ``[C_out]`` or None.
      strides: int or (sh, sw).
      padding: ``"valid"`` (Keras' default), ``"same"`` (TensorFlow's rule), an
        int (darknet's symmetric ``pad``), or ``((top, bottom), (left, right))``.
      dilation: int or (dh, dw) (Keras ``dilation_rate``).
      groups: feature groups (Keras ``groups``).

    Returns:
      ``[B, H', W', C_out]`` in the dtype of ``x``.

    ``strides``, ``padding``, ``dilation`` and ``groups`` fix the output shape, so
    they are static Python values: under `jax.jit`, bind them with
    ``functools.partial`` or ``static_argnames`` (an array raises `ValueError`).

    >>> import jax.numpy as jnp
    >>> conv2d(jnp.ones((1, 13, 13, 8)), jnp.ones((3, 3, 8, 4)), strides=2, padding="same").shape
    (1, 7, 7, 4)
    """
    op = "conv2d"
    check_rank(op, "x", x, 4, "[B, H, W, C]")
    check_floating(op, "x", x)
    check_rank(op, "kernel", kernel, 4, "[kh, kw, C_in, C_out] (HWIO)")
    strides = pair(op, "strides", strides)
    dilation = pair(op, "dilation", dilation)
    check_static(op, "groups", groups)
    if (
        not isinstance(groups, (int, np.integer))
        or isinstance(groups, bool)
        or groups < 1
        or x.shape[3] % groups
    ):
        fail(op, f"groups: a positive integer dividing C_in={x.shape[3]}", repr(groups))
    groups = int(groups)
    check_channels_last(op, "x", x, kernel.shape[2] * groups)
    check_dim(op, "kernel", kernel, 2, x.shape[3] // groups, "C_in / groups of x")
    if kernel.shape[3] % groups:
        fail(op, f"kernel C_out divisible by groups={groups}", f"kernel shape {kernel.shape}")
    pads = normalize_padding(op, padding)
    window = tuple((k - 1) * d + 1 for k, d in zip(kernel.shape[:2], dilation, strict=True))
    check_window_fits(
        op, x.shape[1:3], window, pads, what="kernel" if dilation == (1, 1) else "dilated kernel"
    )
    if not isinstance(pads, str):
        # Padding past the input and the window only adds outputs that read padding
        # alone; far past it, XLA aborts the process allocating the padded map. The bound
        # is generous for any real layer (and for lax's own tests of odd paddings).
        limit = 2 * max(*x.shape[1:3], *window) + 8
        if max(p for side in pads for p in side) > limit:
            fail(
                op,
                f"padding of at most {limit} pixels a side (twice the larger of the input "
                "size and the window, plus 8)",
                repr(padding),
            )
    if bias is not None:
        check_rank(op, "bias", bias, 1, "[C_out]")
        check_dim(op, "bias", bias, 0, kernel.shape[3], "kernel C_out")
    pads = trim_unread_padding(x.shape[1:3], window, strides, pads)
    kernel, bias = cast_like(x, kernel, bias)

    def xla_conv(x, kernel):
        return lax.conv_general_dilated(
            x,
            kernel,
            strides,
            explicit_padding(pads),
            rhs_dilation=dilation,
            dimension_numbers=NHWC,
            feature_group_count=groups,
        )

    if groups == 1 and x.shape[3] >= PATCHES_MIN_CHANNELS:
        patches = functools.partial(patch_conv2d, strides=strides, padding=pads, dilation=dilation)
        y = lax.platform_dependent(x, kernel, cpu=patches, default=xla_conv)
    else:
        y = xla_conv(x, kernel)
    if bias is not None:
        # Explicit broadcast: implicit rank promotion is an error in strict mode.
        y = y + jnp.broadcast_to(bias, y.shape)
    return y


def patch_conv2d(x: jax.Array, kernel: jax.Array, *, strides, padding, dilation) -> jax.Array:
    """The convolution as one matrix product of the input's patches (im2col).

    The patch matrix ``[B, H', W', kh·kw·C_in]`` concatenates, for each kernel tap
    (row-major), the strided view of the padded input that the tap reads; the
    kernel reshaped to ``[kh·kw·C_in, C_out]`` (HWIO order) contracts it. Its
    gradient is slices and pads, and two more products. The patch matrix holds
    ``kh·kw`` times the input (kept for the backward pass under ``grad``): 50 MB
    for a 3×3 layer on one 208×208×32 map, where XLA's convolution keeps none.

    Args:
      x: ``[B, H, W, C_in]``.
      kernel: ``[kh, kw, C_in, C_out]`` (no feature groups).
      strides: ``(sh, sw)``.
      padding: ``"SAME"``, ``"VALID"`` or ``((top, bottom), (left, right))``.
      dilation: ``(dh, dw)``.

    Returns:
      ``[B, H', W', C_out]``, what ``lax.conv_general_dilated`` gives up to the
      order of the sums.
    """
    b, c = x.shape[0], x.shape[3]
    kh, kw = kernel.shape[:2]
    window = ((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1)
    x = pad_map(x, window, strides, padding, 0)
    out_h = (x.shape[1] - window[0]) // strides[0] + 1
    out_w = (x.shape[2] - window[1]) // strides[1] + 1
    taps = [
        lax.slice(
            x,
            (0, i * dilation[0], j * dilation[1], 0),
            (
                b,
                i * dilation[0] + (out_h - 1) * strides[0] + 1,
                j * dilation[1] + (out_w - 1) * strides[1] + 1,
                c,
            ),
            (1, *strides, 1),
        )
        for i in range(kh)
        for j in range(kw)
    ]
    patches = taps[0] if len(taps) == 1 else lax.concatenate(taps, 3)
    matrix = kernel.reshape(kh * kw * c, kernel.shape[3])
    return lax.dot_general(patches, matrix, (((3,), (0,)), ((), ())))
