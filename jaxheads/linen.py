"""Flax Linen modules over the pure layers: they declare variables and call ``apply``, no math.

Linen's conventions: modules are dataclasses of hyperparameters whose shapes are
inferred on the first call; params live in the ``params`` collection and running
statistics in ``batch_stats``; `BatchNormalization` takes
``use_running_average`` and `Dropout` ``deterministic`` (an attribute, or a call
argument with ``nn.merge_param``), drawing keys from the ``dropout`` rng
collection, as ``nn.BatchNorm`` and ``nn.Dropout`` do. Variables are created by
the pure layer's own ``init``, so they are the ones `jaxheads.layers` creates.

>>> import jax, jax.numpy as jnp
>>> model = Conv2D(8, 3, padding="same")
>>> variables = model.init(jax.random.key(0), jnp.ones((1, 16, 16, 3)))
>>> jax.tree.map(jnp.shape, variables)
{'params': {'bias': (8,), 'kernel': (3, 3, 3, 8)}}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax

from jaxheads import layers
from jaxheads.layers.base import Layer, abstract_init, from_attributes
from jaxheads.layers.core import glorot_uniform
from jaxheads.ops._padding import Padding

Size = int | Sequence[int]


def _shape(x):
    if isinstance(x, (list, tuple)):
        return tuple(tuple(a.shape) for a in x)
    return tuple(x.shape)


def _declare(module: nn.Module, layer: Layer, x):
    """Declares ``layer``'s params in ``params`` and its state in ``batch_stats``.

    Returns ``(params, state_variables)``: the params as arrays, the state as
    Linen variables (so a training call can write the new statistics).
    """
    shape = _shape(x)
    _, param_shapes, state_shapes = abstract_init(layer, shape)
    params = {
        name: module.param(name, lambda key, n=name: layer.init(key, shape)[1][n])
        for name in param_shapes
    }
    state = {
        name: module.variable(
            "batch_stats", name, lambda n=name: layer.init(jax.random.key(0), shape)[2][n]
        )
        for name in state_shapes
    }
    return params, state


def _apply(
    module: nn.Module, layer: Layer, x, *, train: bool = False, rng_collection=None, axis_name=None
):
    """Runs ``layer`` on ``x`` with the module's variables; in training updates the statistics."""
    params, state = _declare(module, layer, x)
    key = module.make_rng(rng_collection) if train and rng_collection else None
    y, new_state = layer.apply(
        params, {n: v.value for n, v in state.items()}, x, train=train, key=key, axis_name=axis_name
    )
    if train and not module.is_initializing():
        for name, var in state.items():
            var.value = new_state[name]
    return y


class Dense(nn.Module):
    """`jaxheads.layers.Dense` (Keras ``Dense``): contracts the last axis.

    Attributes:
      features: the output's last axis.
      use_bias: add ``bias [features]``.
      kernel_init: initialiser of ``kernel [in, features]``.
    """

    features: int
    use_bias: bool = True
    kernel_init: Callable = glorot_uniform

    @nn.compact
    def __call__(self, x):
        return _apply(self, from_attributes(layers.Dense, self), x)


class Conv2D(nn.Module):
    """`jaxheads.layers.Conv2D` (Keras ``Conv2D``; ``padding`` defaults to ``"valid"``)."""

    filters: int
    kernel_size: Size
    strides: Size = 1
    padding: Padding = "valid"
    dilation_rate: Size = 1
    groups: int = 1
    use_bias: bool = True
    kernel_init: Callable = glorot_uniform

    @nn.compact
    def __call__(self, x):
        return _apply(self, from_attributes(layers.Conv2D, self), x)


class LocallyConnected2D(nn.Module):
    """`jaxheads.layers.LocallyConnected2D` (darknet ``[local]``): unshared weights per cell."""

    filters: int
    kernel_size: Size
    strides: Size = 1
    padding: Padding = "valid"
    use_bias: bool = True
    kernel_init: Callable = glorot_uniform

    @nn.compact
    def __call__(self, x):
        return _apply(self, from_attributes(layers.LocallyConnected2D, self), x)


class ConvLSTM2D(nn.Module):
    """`jaxheads.layers.ConvLSTM2D` (Keras ``ConvLSTM2D``) on ``[B, T, H, W, C]``."""

    filters: int
    kernel_size: Size
    strides: Size = 1
    padding: Padding = "valid"
    dilation_rate: Size = 1
    return_sequences: bool = False
    go_backwards: bool = False
    use_bias: bool = True
    unit_forget_bias: bool = True

    @nn.compact
    def __call__(self, x):
        return _apply(self, from_attributes(layers.ConvLSTM2D, self), x)


class BatchNormalization(nn.Module):
    """`jaxheads.layers.BatchNormalization` (Keras' momentum 0.99 and epsilon 1e-3).

    ``scale`` and ``bias`` are in ``params``, ``mean`` and ``var`` in
    ``batch_stats``. With ``use_running_average=False`` it normalises with the
    batch statistics and, outside ``init``, updates ``batch_stats`` (apply with
    ``mutable=["batch_stats"]``), as ``nn.BatchNorm``.
    """

    use_running_average: bool | None = None
    momentum: float = 0.99
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x, use_running_average: bool | None = None):
        running = nn.merge_param(
            "use_running_average", self.use_running_average, use_running_average
        )
        layer = from_attributes(layers.BatchNormalization, self)
        return _apply(self, layer, x, train=not running, axis_name=self.axis_name)


class Dropout(nn.Module):
    """`jaxheads.layers.Dropout` (``rate`` is the DROP probability), keyed as ``nn.Dropout``.

    Draws from the ``rng_collection`` rng collection (``rngs={"dropout": key}``
    in ``apply``) unless ``deterministic``.
    """

    rate: float
    deterministic: bool | None = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(self, x, deterministic: bool | None = None):
        off = nn.merge_param("deterministic", self.deterministic, deterministic)
        train = not off and self.rate > 0
        layer = from_attributes(layers.Dropout, self)
        return _apply(self, layer, x, train=train, rng_collection=self.rng_collection)


class LayerModule(nn.Module):
    """Any pure `Layer` (a whole model or head included) as one Linen module.

    Params go to ``params`` and running statistics to ``batch_stats``, keyed by
    the layer's node names; ``train`` switches batch norm and dropout together
    (keys from the ``dropout`` rng collection).
    """

    layer: Layer

    @nn.compact
    def __call__(self, x, train: bool = False):
        drops = _contains(self.layer, "Dropout")
        return _apply(self, self.layer, x, train=train, rng_collection="dropout" if drops else None)


def _contains(layer: Layer, kind: str) -> bool:
    return layer.kind == kind or any(_contains(node.layer, kind) for node in layer.nodes)


class LeakyReLU(nn.Module):
    """`jaxheads.layers.LeakyReLU`; ``negative_slope`` 0.3 is Keras' default (darknet's is 0.1)."""

    negative_slope: float = 0.3

    def __call__(self, x):
        return from_attributes(layers.LeakyReLU, self).apply({}, {}, x)[0]


class Activation(nn.Module):
    """`jaxheads.layers.Activation`: applies ``fn`` elementwise."""

    fn: Callable

    def __call__(self, x):
        return from_attributes(layers.Activation, self).apply({}, {}, x)[0]


class Flatten(nn.Module):
    """`jaxheads.layers.Flatten`: ``[B, ...] -> [B, prod(...)]``."""

    def __call__(self, x):
        return from_attributes(layers.Flatten, self).apply({}, {}, x)[0]


class Reshape(nn.Module):
    """`jaxheads.layers.Reshape`: ``[B, ...] -> [B, *target_shape]``."""

    target_shape: tuple[int, ...]

    def __call__(self, x):
        return from_attributes(layers.Reshape, self).apply({}, {}, x)[0]


class GlobalAveragePooling2D(nn.Module):
    """`jaxheads.layers.GlobalAveragePooling2D`: ``[B, H, W, C] -> [B, C]``."""

    keepdims: bool = False

    def __call__(self, x):
        return from_attributes(layers.GlobalAveragePooling2D, self).apply({}, {}, x)[0]


class GlobalMaxPooling2D(nn.Module):
    """`jaxheads.layers.GlobalMaxPooling2D`: ``[B, H, W, C] -> [B, C]``."""

    keepdims: bool = False

    def __call__(self, x):
        return from_attributes(layers.GlobalMaxPooling2D, self).apply({}, {}, x)[0]


class MaxPooling2D(nn.Module):
    """`jaxheads.layers.MaxPooling2D` (Keras' defaults: 2×2, strides = pool_size, valid)."""

    pool_size: Size = 2
    strides: Size | None = None
    padding: Padding = "valid"

    def __call__(self, x):
        return from_attributes(layers.MaxPooling2D, self).apply({}, {}, x)[0]


class AveragePooling2D(nn.Module):
    """`jaxheads.layers.AveragePooling2D` (Keras' defaults: strides = pool_size, valid)."""

    pool_size: Size
    strides: Size | None = None
    padding: Padding = "valid"

    def __call__(self, x):
        return from_attributes(layers.AveragePooling2D, self).apply({}, {}, x)[0]


class SpaceToDepth(nn.Module):
    """`jaxheads.layers.SpaceToDepth` (TensorFlow's order)."""

    block_size: int = 2

    def __call__(self, x):
        return from_attributes(layers.SpaceToDepth, self).apply({}, {}, x)[0]


class DarknetReorg(nn.Module):
    """`jaxheads.layers.DarknetReorg` (darknet's ``[reorg]`` order)."""

    stride: int = 2

    def __call__(self, x):
        return from_attributes(layers.DarknetReorg, self).apply({}, {}, x)[0]


class Concatenate(nn.Module):
    """`jaxheads.layers.Concatenate`: joins a list of arrays along ``axis``."""

    axis: int = -1

    def __call__(self, xs):
        return from_attributes(layers.Concatenate, self).apply({}, {}, xs)[0]


__all__ = [
    "Activation",
    "AveragePooling2D",
    "BatchNormalization",
    "Concatenate",
    "Conv2D",
    "ConvLSTM2D",
    "DarknetReorg",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "LayerModule",
    "LeakyReLU",
    "LocallyConnected2D",
    "MaxPooling2D",
    "Reshape",
    "SpaceToDepth",
]
