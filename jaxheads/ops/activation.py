"""Activations and dropout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads._checks import check_floating, check_real, check_static, fail


def leaky_relu(x: jax.Array, negative_slope: float = 0.2) -> jax.Array:
    """``x`` for ``x >= 0``, ``negative_slope · x`` otherwise.

    The default 0.2 is ``keras.ops.leaky_relu``'s (Keras' ``LeakyReLU`` layer
    uses 0.3, darknet's ``leaky`` activation 0.1: pass the slope you mean).
    """
    check_floating("leaky_relu", "x", x)
    if not isinstance(negative_slope, jax.Array):
        check_real("leaky_relu", "negative_slope", negative_slope)
    return jnp.where(x >= 0, x, x * jnp.asarray(negative_slope, x.dtype))


def dropout(
    x: jax.Array, rate: float, *, key: jax.Array | None = None, deterministic: bool = False
) -> jax.Array:
    """Inverted dropout (Keras ``Dropout``, darknet ``[dropout]``).

    Args:
      x: any shape, floating.
      rate: probability of DROPPING a unit, in ``[0, 1]``; kept units are
        scaled by ``1 / (1 - rate)`` so the expectation is unchanged.
      key: a PRNG key; required unless ``deterministic`` or ``rate == 0``.
      deterministic: return ``x`` unchanged (inference).

    Returns:
      an array like ``x``.
    """
    check_floating("dropout", "x", x)
    check_static("dropout", "rate", rate)
    check_static("dropout", "deterministic", deterministic)
    if (
        not isinstance(rate, (int, float, np.integer, np.floating))
        or isinstance(rate, bool)
        or not 0 <= rate <= 1
    ):
        fail("dropout", "rate (the drop probability) in [0, 1]", repr(rate))
    rate = float(rate)
    if deterministic or rate == 0:
        return x
    if key is None:
        fail("dropout", "a PRNG `key` when deterministic=False and rate > 0", "key=None")
    if rate == 1:
        return jnp.zeros_like(x)
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    # A multiplication by the rounded 1 / (1 - rate): XLA would turn a division
    # by a constant into this anyway, so the scale is stated rather than left
    # to the compiler.
    scale = jnp.asarray(1.0 / (1.0 - rate), x.dtype)
    return jnp.where(keep, x * scale, jnp.zeros((), x.dtype))
