"""Crops of NHWC maps."""

from __future__ import annotations

import jax

from jaxheads._checks import check_positive_int, check_rank, fail


def center_crop(x: jax.Array, height: int, width: int) -> jax.Array:
    """The centre ``height × width`` window: ``[B, H, W, C] -> [B, height, width, C]``.

    The window starts at ``((H − height) // 2, (W − width) // 2)``, as darknet's
    ``forward_crop_layer`` places it at inference.

    >>> import jax.numpy as jnp
    >>> center_crop(jnp.zeros((1, 9, 8, 3)), 4, 4).shape
    (1, 4, 4, 3)
    """
    op = "center_crop"
    check_rank(op, "x", x, 4, "[B, H, W, C]")
    check_positive_int(op, "height", height)
    check_positive_int(op, "width", width)
    h, w = x.shape[1:3]
    if height > h or width > w:
        fail(op, f"an input at least {height}x{width}", f"shape {x.shape}")
    dh, dw = (h - height) // 2, (w - width) // 2
    return x[:, dh : dh + height, dw : dw + width, :]
