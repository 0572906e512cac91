"""Pooling over NHWC maps: global, max and average, with Keras semantics."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxheads._checks import check_floating, check_nhwc, check_nonempty, check_static, pair
from jaxheads.ops._padding import (
    Padding,
    check_window_fits,
    normalize_padding,
    pad_map,
    trim_unread_padding,
)


def _check_map(op: str, x) -> None:
    check_nhwc(op, "x", x)
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
    check_nonempty("global_avg_pool2d", "x", x, (1, 2), "map (H, W >= 1)")
    check_static("global_avg_pool2d", "keepdims", keepdims)
    return jnp.mean(x, axis=(1, 2), keepdims=keepdims)


def global_max_pool2d(x: jax.Array, *, keepdims: bool = False) -> jax.Array:
    """Keras ``GlobalMaxPooling2D``: max over H and W; ``[B, H, W, C] -> [B, C]``."""
    _check_map("global_max_pool2d", x)
    check_nonempty("global_max_pool2d", "x", x, (1, 2), "map (H, W >= 1)")
    check_static("global_max_pool2d", "keepdims", keepdims)
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
    x = pad_map(x, dims[1:3], strides[1:3], pads if isinstance(pads, str) else pads[1:3], -np.inf)
    # A max over strided views, along W and then H: the same values and gradients as
    # reduce_window, whose gradient XLA:CPU runs as reduce-window + scatter; this one
    # is slices and elementwise maxima that fuse (docs/benchmarks.md has the timings).
    (kh, kw), (sh, sw), (h, w) = dims[1:3], strides[1:3], x.shape[1:3]
    x = _window_max(x, 2, kw, sw, (w - kw) // sw + 1)
    return _window_max(x, 1, kh, sh, (h - kh) // sh + 1)


def _views(x: jax.Array, axis: int, size: int, stride: int, count: int):
    """The ``size`` strided slices of ``x`` along ``axis``: window element d of each window."""
    for d in range(size):
        yield lax.slice_in_dim(x, d, d + stride * (count - 1) + 1, stride, axis)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3, 4))
def _window_max(x: jax.Array, axis: int, size: int, stride: int, count: int) -> jax.Array:
    """Max over ``count`` windows of ``size`` with ``stride`` along one axis."""
    return functools.reduce(jnp.maximum, _views(x, axis, size, stride, count))


@_window_max.defjvp
def _window_max_jvp(axis, size, stride, count, primals, tangents):
    # jnp.maximum would split the tangent between tied maxima; reduce_window's
    # select-and-scatter (Keras) and darknet give all of it to the first maximum of the
    # window. First along W, then first among the rows along H: row-major order.
    (x,), (t,) = primals, tangents
    y = _window_max(x, axis, size, stride, count)
    out = taken = None
    views = _views(x, axis, size, stride, count), _views(t, axis, size, stride, count)
    for view, tangent in zip(*views, strict=True):
        hit = view == y
        chosen = hit if taken is None else hit & ~taken
        taken = hit if taken is None else taken | hit
        term = jnp.where(chosen, tangent, jnp.zeros((), tangent.dtype))
        out = term if out is None else out + term
    return y, out


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
