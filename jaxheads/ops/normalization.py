"""Batch normalisation over NHWC (or any ``[..., C]``) activations, Keras semantics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxheads._checks import (
    cast_like,
    check_channels_last,
    check_dim,
    check_floating,
    check_min_rank,
    check_nonempty,
    check_rank,
    check_real,
    check_shape,
    fail,
)


def _check(op, x, **params):
    check_min_rank(op, "x", x, 2)
    check_floating(op, "x", x)
    # Only parameters that agree on C can say the input has its channels first.
    sizes = {np.shape(v)[0] for v in params.values() if v is not None and np.ndim(v) == 1}
    if len(sizes) == 1:
        check_channels_last(op, "x", x, sizes.pop(), "the size of its parameters")
    channels = x.shape[-1]
    for name, value in params.items():
        if value is not None:
            check_rank(op, name, value, 1, "[C]")
            check_dim(op, name, value, 0, channels, "the channel axis of x")


def _check_epsilon(op, epsilon, dtype):
    # A negative epsilon takes the root of a negative number wherever a channel is
    # constant (0 is allowed here for closed forms; the layer asks for > 0); a traced
    # value cannot be checked here.
    if not isinstance(epsilon, jax.Array):
        check_real(op, "epsilon", epsilon, low=0, dtype=dtype)


def batch_norm(x: jax.Array, scale, bias, mean, var, *, epsilon: float = 1e-3) -> jax.Array:
    """Inference-mode batch norm (Keras ``BatchNormalization(training=False)``).

    ``y = (x - mean) / sqrt(var + epsilon) * scale + bias`` over the last axis.

    Args:
      x: ``[..., C]``, e.g. ``[B, H, W, C]``.
      scale, bias, mean, var: ``[C]`` (Keras gamma, beta, moving_mean,
        moving_variance); ``scale``/``bias`` may be None (``scale=False`` /
        ``center=False``).
      epsilon: Keras' default 1e-3. Darknet uses 1e-6 (``.000001`` in its
        ``normalize_cpu``); pass that when running darknet weights.

    Returns:
      ``[..., C]``.
    """
    for name, value in (("mean", mean), ("var", var)):
        if value is None:
            fail("batch_norm", f"{name} of shape [C] (Keras moving_{name})", "None")
    _check("batch_norm", x, scale=scale, bias=bias, mean=mean, var=var)
    _check_epsilon("batch_norm", epsilon, x.dtype)
    scale, bias, mean, var = cast_like(x, scale, bias, mean, var)
    inv = lax.rsqrt(var + jnp.asarray(epsilon, x.dtype))
    if scale is not None:
        inv = inv * scale
    # Explicit broadcasts of the [C] vectors: implicit rank promotion is an
    # error in strict mode.
    y = (x - jnp.broadcast_to(mean, x.shape)) * jnp.broadcast_to(inv, x.shape)
    return y if bias is None else y + jnp.broadcast_to(bias, x.shape)


def batch_moments(x: jax.Array, *, axis_name=None) -> tuple[jax.Array, jax.Array]:
    """Mean and biased variance over every axis but the last, in float32.

    One pass over ``x``, shifted: with ``d = x - s`` for one sample ``s`` of the
    batch (``x[0, ..., 0, :]``), ``mean = s + E[d]`` and ``var = E[d²] - E[d]²``.
    Both sums fuse into one reduction, as Flax's fast variance does, but the
    shift keeps the subtraction from cancelling when ``|mean| >> std``: the
    error is that of the two-pass ``E[(x - mean)²]`` (Keras), not of the
    unshifted ``E[x²] - E[x]²``. The formula holds for any ``s``, so ``s`` carries
    no gradient.

    With ``axis_name`` (inside ``pmap``/``shard_map``) the moments are those of
    the global batch across replicas (the shift is averaged first so that every
    replica uses the same one), assuming equal per-replica batch sizes.

    >>> import jax.numpy as jnp
    >>> mean, var = batch_moments(jnp.array([[1e4 + 1.0], [1e4 + 3.0]]))
    >>> float(mean[0]), float(var[0])
    (10002.0, 1.0)
    """
    _check("batch_moments", x)
    check_nonempty("batch_moments", "x", x, range(x.ndim - 1), "batch (every axis but C)")
    axes = tuple(range(x.ndim - 1))
    x32 = x.astype(jnp.float32)
    shift = lax.stop_gradient(x32[(0,) * len(axes)])
    if axis_name is not None:
        shift = lax.pmean(shift, axis_name)
    # Explicit broadcast: implicit rank promotion is an error in strict mode.
    d = x32 - jnp.broadcast_to(shift, x32.shape)
    moments = jnp.mean(d, axis=axes), jnp.mean(jnp.square(d), axis=axes)
    if axis_name is not None:
        moments = lax.pmean(moments, axis_name)
    mean_d, square_d = moments
    return mean_d + shift, jnp.maximum(square_d - jnp.square(mean_d), 0.0)


def batch_norm_train(
    x: jax.Array, scale, bias, *, epsilon: float = 1e-3, axis_name=None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Training-mode batch norm (Keras ``BatchNormalization(training=True)``).

    Normalises with the statistics of the batch and returns them so that the
    caller updates the moving averages (`update_moving_stats`); nothing is hidden.

    Args:
      x: ``[..., C]``.
      scale, bias: ``[C]`` or None.
      epsilon: added to the variance.
      axis_name: a mapped axis name for cross-replica (synchronised) statistics.

    Returns:
      ``(y, mean, var)``: ``y`` like ``x``; ``mean``/``var`` ``[C]`` float32
      batch moments (biased variance, as Keras uses for both).
    """
    _check("batch_norm_train", x, scale=scale, bias=bias)
    check_nonempty("batch_norm_train", "x", x, range(x.ndim - 1), "batch (every axis but C)")
    _check_epsilon("batch_norm_train", epsilon, jnp.float32)
    mean, var = batch_moments(x, axis_name=axis_name)
    y = batch_norm(
        x.astype(jnp.float32),
        None if scale is None else jnp.asarray(scale, jnp.float32),
        None if bias is None else jnp.asarray(bias, jnp.float32),
        mean,
        var,
        epsilon=epsilon,
    )
    return y.astype(x.dtype), mean, var


def update_moving_stats(moving_mean, moving_var, mean, var, *, momentum: float = 0.99):
    """Keras' moving-average update: ``m ← m·momentum + batch·(1 − momentum)``.

    Args:
      moving_mean, moving_var: ``[C]`` running statistics (Keras
        ``moving_mean`` / ``moving_variance``).
      mean, var: ``[C]`` batch moments, as returned by `batch_norm_train`.
      momentum: Keras' default 0.99; in ``[0, 1]``.

    Returns:
      ``(new_mean, new_var)`` in the dtypes of the running statistics.
    """
    op = "update_moving_stats"
    check_rank(op, "moving_mean", moving_mean, 1, "[C]")
    for name, value in (("moving_var", moving_var), ("mean", mean), ("var", var)):
        check_shape(op, name, value, moving_mean.shape)
    if (
        not isinstance(momentum, (int, float, np.integer, np.floating))
        or isinstance(momentum, bool)
        or not 0 <= momentum <= 1
    ):
        fail(op, "momentum in [0, 1]", repr(momentum))
    # A Python float stays weakly typed: float32 statistics stay float32.
    momentum = float(momentum)
    new_mean = moving_mean * momentum + mean.astype(moving_mean.dtype) * (1 - momentum)
    new_var = moving_var * momentum + var.astype(moving_var.dtype) * (1 - momentum)
    return new_mean, new_var
