"""The layer protocol: a layer is a pair of pure functions.

``init(key, input_shape) -> (output_shape, params, state)``
    Creates parameters for an input of ``input_shape`` (a tuple with the batch
    size first, ``None`` allowed there; a tuple of such shapes for layers with
    several inputs) and infers the output shape without running anything.
``apply(params, state, x, *, train=False, key=None, axis_name=None) -> (y, state)``
    Computes the output. ``params`` are trainable (Flax leaf names ``kernel``,
    ``bias``, ``scale``); ``state`` holds what changes without gradients (batch
    norm's running ``mean`` and ``var``) and is passed in and returned, never
    hidden. ``key`` feeds dropout; ``axis_name`` names a mapped device axis for
    cross-replica batch statistics.

Layers without params or state use empty dicts.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Shape = tuple
Params = dict[str, Any]


class Context(NamedTuple):
    """What a forward pass may depend on besides params, state and inputs."""

    train: bool = False
    key: jax.Array | None = None
    axis_name: Any = None


class Layer(NamedTuple):
    """A layer: two pure functions plus what a summary needs to describe it.

    Attributes:
      init: ``(key, input_shape) -> (output_shape, params, state)``.
      apply: ``(params, state, x, *, train, key, axis_name) -> (y, state)``.
      name: the layer's name, its key in a parent's params.
      kind: the type shown by `jaxheads.summary` (Keras' class name where one exists).
      nodes: for combinators, the `Node`s inside, else ``()``.
      config: the options the layer computes with, as ``(option, value)`` pairs
        (Keras' names, normalised: ``kernel_size`` a pair, ``padding`` ``"SAME"``,
        ``"VALID"`` or explicit pairs): what rebuilding it elsewhere needs
        (`jaxheads.interop.to_keras`); ``()`` for layers that record none. A tuple,
        so that a layer stays hashable.
    """

    init: Callable
    apply: Callable
    name: str
    kind: str
    nodes: tuple = ()
    config: tuple = ()


def snake_case(kind: str) -> str:
    """Keras' default layer-name stem: ``"MaxPooling2D" -> "max_pooling2d"``."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", kind).lower()


def is_multi(shape) -> bool:
    """True when ``shape`` is a tuple of shapes (a multi-input layer's input)."""
    return (
        isinstance(shape, (tuple, list)) and len(shape) > 0 and isinstance(shape[0], (tuple, list))
    )


def abstract_input(shape, dtype=jnp.float32):
    """A ShapeDtypeStruct (or a list of them) for a shape with ``None`` batch."""
    if is_multi(shape):
        return [abstract_input(s, dtype) for s in shape]
    return jax.ShapeDtypeStruct(tuple(1 if d is None else d for d in shape), dtype)


def _restore_batch(out, batch):
    shape = tuple(out.shape)
    return (batch, *shape[1:]) if shape else shape


def _batch_of(shape):
    return shape[0][0] if is_multi(shape) else shape[0]


def leaf(
    kind: str,
    make_params: Callable,
    forward: Callable,
    *,
    name: str | None,
    config: dict[str, Any] | None = None,
) -> Layer:
    """Builds a `Layer` from a parameter maker and a forward function.

    Args:
      kind: the type name shown in summaries.
      make_params: ``(key, input_shape) -> (params, state)``.
      forward: ``(params, state, x, ctx: Context) -> (y, new_state)``.
      name: the layer name; defaults to ``snake_case(kind)``.
      config: the options to record as `Layer.config`.

    The output shape is inferred by tracing ``forward`` abstractly
    (`jax.eval_shape`), so init and apply can never disagree on it.
    """

    def init(key, input_shape):
        params, state = make_params(key, input_shape)
        out = jax.eval_shape(
            lambda p, s, x: forward(p, s, x, Context())[0],
            params,
            state,
            abstract_input(input_shape),
        )
        batch = _batch_of(input_shape)
        if isinstance(out, (tuple, list)):
            return tuple(_restore_batch(o, batch) for o in out), params, state
        return _restore_batch(out, batch), params, state

    def apply(params, state, x, *, train=False, key=None, axis_name=None):
        return forward(params, state, x, Context(train, key, axis_name))

    return Layer(init, apply, name or snake_case(kind), kind, (), tuple((config or {}).items()))


def stateless(
    kind: str,
    fn: Callable,
    *,
    name: str | None,
    make_params: Callable | None = None,
    config: dict[str, Any] | None = None,
) -> Layer:
    """A layer whose forward is ``fn(params, x, ctx) -> y`` and that keeps no state."""

    def make(key, input_shape):
        return (make_params(key, input_shape) if make_params else {}), {}

    def forward(params, state, x, ctx):
        return fn(params, x, ctx), state

    return leaf(kind, make, forward, name=name, config=config)


def from_attributes(
    make_layer: Callable[..., Layer], owner: Any, renames: Mapping[str, str] | None = None
) -> Layer:
    """Calls the layer constructor ``make_layer`` with ``owner``'s attributes as its arguments.

    Each parameter of ``make_layer``'s signature takes the attribute of the same
    name (or the one ``renames`` maps it to); a parameter ``owner`` lacks keeps
    its default. ``name`` is never read: a Flax module's own name is its scope,
    not the pure layer's. This is how the Flax wrappers forward hyperparameters
    without listing them twice.

    >>> class Hyper:
    ...     features, use_bias = 8, False
    >>> from jaxheads.layers import Dense
    >>> dict(from_attributes(Dense, Hyper()).config)["use_bias"]
    False
    """
    renames = renames or {}
    args, kwargs = [], {}
    for param in inspect.signature(make_layer).parameters.values():
        if param.name == "name" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        attribute = renames.get(param.name, param.name)
        if hasattr(owner, attribute):
            value = getattr(owner, attribute)
        elif param.default is not param.empty:
            value = param.default
        else:
            raise TypeError(
                f"{type(owner).__name__} has no attribute {attribute!r} "
                f"for {make_layer.__name__}'s {param.name!r}"
            )
        if param.kind is param.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[param.name] = value
    return make_layer(*args, **kwargs)


def abstract_init(layer: Layer, input_shape, key: jax.Array | None = None):
    """``layer.init`` run abstractly: returns (output_shape, params, state) as shapes.

    Nothing is allocated, so it is safe for models with hundreds of millions
    of parameters.
    """
    box = {}

    def run(k):
        shape, params, state = layer.init(k, input_shape)
        box["shape"] = shape
        return params, state

    params, state = jax.eval_shape(run, jax.random.key(0) if key is None else key)
    return box["shape"], params, state


def count(tree) -> int:
    """Number of scalars in a pytree of arrays or ShapeDtypeStructs."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))
