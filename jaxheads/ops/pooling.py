"""Pooling over NHWC maps: global, max and average, with Keras semantics."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxheads._checks import check_floating, check_rank, pair
from jaxheads.ops._padding import (
    Padding,
    check_window_fits,
    normalize_padding,
    trim_unread_padding,
)


def _check_map(op: str, x) -> None:
    check_rank(op, "x", x, 4, "[B, H, W, C]")
    check_floating(op, "x", x)


def global_avg_pool2d(x: jax.Array, *, keepdims: bool = False) -> jax.Array:
    """Keras ``GlobalAveragePooling2D``: mean over H and W.

    Args:
      x: ``[B, H, W, C]``.
      keepdims: keep the spatial axes as size 1.

    Returns:
      ``[B, C]``, or ``[B, 1, 1, C]`` with ``keepdims``.

    >>> import jax.numpy as jnp
    >>> global_avg_pool2d(jnp.ones((16, 16, 16, 64))).shape
    (16, 64)
    """
    _check_map("global_avg_pool2d", x)
    return jnp.mean(x, axis=(1, 2), keepdims=keepdims)


def global_max_pool2d(x: jax.Array, *, keepdims: bool = False) -> jax.Array:
    """Keras ``GlobalMaxPooling2D``: max over H and W; ``[B, H, W, C] -> [B, C]``."""
    _check_map("global_max_pool2d", x)
    return jnp.max(x, axis=(1, 2), keepdims=keepdims)


def _window(op: str, x, pool_size, strides, padding):
    _check_map(op, x)
    window = pair(op, "pool_size", pool_size)
    strides = window if strides is None else pair(op, "strides", strides)
    pads = normalize_padding(op, padding)
    check_window_fits(op, x.shape[1:3], window, pads, what="pool_size")
    pads = trim_unread_padding(x.shape[1:3], window, strides, pads)
    return (
        (1, *window, 1),
        (1, *strides, 1),
        (pads if isinstance(pads, str) else ((0, 0), *pads, (0, 0))),
    )


def max_pool2d(x: jax.Array, pool_size=2, strides=None, padding: Padding = "valid") -> jax.Array:
    """Keras ``MaxPooling2D`` on ``[B, H, W, C]``.

    Args:
      x: ``[B, H, W, C]``.
      pool_size: int or (h, w).
      strides: int or (h, w); defaults to ``pool_size`` as in Keras.
      padding: ``"valid"``, ``"same"`` (TensorFlow's rule: the odd pixel goes to
        the bottom/right), or explicit. Padded positions never win the max.
        Darknet's 2×2 stride-1 ``[maxpool]`` (yolov2-tiny) is
        ``max_pool2d(x, 2, 1, "same")``: it pads one row/column at the bottom/right.

    Returns:
      ``[B, H', W', C]``.
    """
    dims, strides, pads = _window("max_pool2d", x, pool_size, strides, padding)
    (kh, kw), (h, w) = dims[1:3], x.shape[1:3]
    if strides == dims and (pads == "VALID" or (pads == "SAME" and h % kh == w % kw == 0)):
        # Non-overlapping windows: a max over tiles (rows/columns no window reads cut off).
        # Same values and gradients, without XLA:CPU's reduce-window + scatter for the
        # gradient: 6.5x faster pools there (docs/benchmarks.md).
        return _tile_max(x[:, : h - h % kh, : w - w % kw], (kh, kw))
    # A NumPy constant stays concrete under jit, so XLA sees the max monoid (differentiable).
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, dims, strides, pads)


def _tiles(x: jax.Array, window: tuple[int, int]) -> jax.Array:
    b, h, w, c = x.shape
    return jnp.reshape(x, (b, h // window[0], window[0], w // window[1], window[1], c))


def _spread(y: jax.Array) -> jax.Array:
    """``[B, Ho, Wo, C]`` -> ``[B, Ho, 1, Wo, 1, C]``, to meet the tiles."""
    return y[:, :, None, :, None, :]


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _tile_max(x: jax.Array, window: tuple[int, int]) -> jax.Array:
    """Max over the non-overlapping ``window`` tiles of ``[B, kh·Ho, kw·Wo, C]``."""
    return jnp.max(_tiles(x, window), axis=(2, 4))


@_tile_max.defjvp
def _tile_max_jvp(window, primals, tangents):
    # jnp.max would split the tangent among tied maxima; reduce_window max (Keras) and
    # darknet give all of it to the first maximum in row-major order, and so does this.
    (x,), (t,) = primals, tangents
    tiles = _tiles(x, window)
    y = jnp.max(tiles, axis=(2, 4))
    size = window[0] * window[1]
    order = np.arange(size, dtype=np.int32).reshape(1, 1, window[0], 1, window[1], 1)
    first = jnp.min(jnp.where(tiles == _spread(y), order, size), axis=(2, 4))
    chosen = order == _spread(first)
    return y, jnp.sum(jnp.where(chosen, _tiles(t, window), 0), axis=(2, 4))


def avg_pool2d(x: jax.Array, pool_size=2, strides=None, padding: Padding = "valid") -> jax.Array:
    """Keras ``AveragePooling2D`` on ``[B, H, W, C]``.

    With ``"same"`` or explicit padding, each output averages only the real
    (unpadded) inputs in its window, as TensorFlow and Keras do.
    """
    dims, strides, pads = _window("avg_pool2d", x, pool_size, strides, padding)
    zero = np.array(0, x.dtype)
    total = lax.reduce_window(x, zero, lax.add, dims, strides, pads)
    if pads == "VALID":
        return total / (dims[1] * dims[2])
    ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
    count = lax.reduce_window(ones, zero, lax.add, dims, strides, pads)
    return total / count
