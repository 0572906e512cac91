"""Dense (last-axis contraction) and flatten, with Keras semantics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads._checks import cast_like, check_dim, check_floating, check_min_rank, check_rank


def dense(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None) -> jax.Array:
    """Keras ``Dense``: contracts the last axis of ``x`` only.

    On a ``[B, 7, 7, 1024]`` map this is a per-cell 1×1 convolution with
    ``1024·out + out`` parameters, not a dense layer over the flattened map.

    Args:
      x: ``[..., in]`` floating input, any rank >= 1.
      kernel: ``[in, out]``.
      bias: ``[out]`` or None.

    Returns:
      ``[..., out]`` in the dtype of ``x``.

    >>> import jax.numpy as jnp
    >>> dense(jnp.ones((2, 7, 7, 3)), jnp.ones((3, 5))).shape
    (2, 7, 7, 5)
    """
    check_min_rank("dense", "x", x, 1)
    check_floating("dense", "x", x)
    check_rank("dense", "kernel", kernel, 2, "[in, out]")
    check_dim("dense", "kernel", kernel, 0, np.shape(x)[-1], "the last axis of x")
    if bias is not None:
        check_rank("dense", "bias", bias, 1, "[out]")
        check_dim("dense", "bias", bias, 0, np.shape(kernel)[1], "kernel.shape[1]")
    kernel, bias = cast_like(x, kernel, bias)
    y = jnp.matmul(x, kernel)
    if bias is not None:
        # Explicit broadcast: implicit rank promotion is an error in strict mode.
        y = y + jnp.broadcast_to(bias, y.shape)
    return y


def flatten(x: jax.Array) -> jax.Array:
    """Keras ``Flatten``: ``[B, d1, d2, ...] -> [B, d1·d2·…]`` in row-major order.

    For NHWC maps the order is H, then W, then C (Keras ``channels_last``). A
    rank-1 input ``[B]`` becomes ``[B, 1]`` as in Keras.

    >>> import jax.numpy as jnp
    >>> flatten(jnp.zeros((100, 28, 28, 3))).shape
    (100, 2352)
    """
    check_min_rank("flatten", "x", x, 1)
    shape = np.shape(x)
    # The size is spelled out: -1 is ambiguous for an empty batch.
    return jnp.reshape(x, (shape[0], int(np.prod(shape[1:]))))
