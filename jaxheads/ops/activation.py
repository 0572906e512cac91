"""Activations and dropout: Keras' leaky ReLU, darknet's activations, darknet's softmax."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads._checks import check_floating, check_min_rank, check_real, check_static, fail


def leaky_relu(x: jax.Array, negative_slope: float = 0.2) -> jax.Array:
    """``x`` for ``x >= 0``, ``negative_slope · x`` otherwise.

    The default 0.2 is ``keras.ops.leaky_relu``'s (Keras' ``LeakyReLU`` layer
    uses 0.3, darknet's ``leaky`` activation 0.1: pass the slope you mean).
    """
    check_floating("leaky_relu", "x", x)
    if not isinstance(negative_slope, jax.Array):
        check_real("leaky_relu", "negative_slope", negative_slope, dtype=x.dtype)
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


def _loggy(x):
    return 2 * jax.nn.sigmoid(x) - 1


def _relie(x):
    return jnp.where(x > 0, x, 0.01 * x)


def _ramp(x):
    return jnp.where(x > 0, x, jnp.zeros_like(x)) + 0.1 * x


def _elu(x):
    return jnp.where(x >= 0, x, jnp.expm1(x))


def _selu(x):
    return 1.0507 * jnp.where(x >= 0, x, 1.6732 * jnp.expm1(x))


def _plse(x):
    return jnp.where(x < -4, 0.01 * (x + 4), jnp.where(x > 4, 0.01 * (x - 4) + 1, 0.125 * x + 0.5))


def _hardtan(x):
    return jnp.clip(x, -1, 1)


def _lhtan(x):
    return jnp.where(x < 0, 0.001 * x, jnp.where(x > 1, 0.001 * (x - 1) + 1, x))


#: Darknet's ``activation=`` names (``activations.h``) and their elementwise functions,
#: with darknet's own constants (its ``selu`` rounds to 1.0507 and 1.6732). ``linear``
#: is no function and ``leaky`` is `leaky_relu` with slope 0.1, so neither is listed.
DARKNET_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "logistic": jax.nn.sigmoid,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "loggy": _loggy,
    "relie": _relie,
    "ramp": _ramp,
    "elu": _elu,
    "selu": _selu,
    "plse": _plse,
    "hardtan": _hardtan,
    "lhtan": _lhtan,
}


def flat_softmax(x: jax.Array, temperature: float = 1.0) -> jax.Array:
    """One softmax over all values of each example (darknet's ``[softmax]``, ``groups=1``).

    Args:
      x: ``[B, ...]``.
      temperature: divides ``x`` first (darknet's ``temperature=``).

    Returns:
      an array like ``x`` whose values sum to 1 per example.

    >>> import jax.numpy as jnp
    >>> flat_softmax(jnp.zeros((2, 1, 1, 4)))[0, 0, 0]
    Array([0.25, 0.25, 0.25, 0.25], dtype=float32)
    """
    check_min_rank("flat_softmax", "x", x, 1)
    check_floating("flat_softmax", "x", x)
    if not isinstance(temperature, jax.Array):
        check_real("flat_softmax", "temperature", temperature, low=0, low_open=True, dtype=x.dtype)
    flat = jnp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))
    return jnp.reshape(jax.nn.softmax(flat / temperature, axis=-1), x.shape)
