"""Flax NNX modules over the pure layers: they hold params and call `apply`, no math of their own.

`LayerModule` wraps any `jaxheads.layers.Layer`, a whole model included; the
named classes (`Dense`, `Conv2D`, ...) are thin constructors over it. Params
are `nnx.Param`, running statistics `nnx.BatchStat` (so
``nnx.state(module, nnx.Param)`` is what an optimiser updates). ``module.train()``
and ``module.eval()`` switch dropout and batch norm, as for Flax's own modules.

>>> from flax import nnx as fnnx
>>> m = Dense(4096, input_shape=(None, 7, 7, 1024), rngs=fnnx.Rngs(0))
>>> m.output_shape
(None, 7, 7, 4096)
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from flax import nnx

from jaxheads import layers
from jaxheads.layers.base import Layer


def _is_variable(v) -> bool:
    return isinstance(v, nnx.Variable)


def _values(tree):
    return jax.tree.map(lambda v: v[...], tree, is_leaf=_is_variable)


class LayerModule(nnx.Module):
    """An NNX module holding the params and state of a pure `Layer`.

    Args:
      layer: the layer (or model) to wrap.
      input_shape: the input shape, batch first (``None`` allowed there).
      rngs: ``params`` initialises the weights; ``dropout`` (or the default
        stream) feeds dropout in training mode.
      deterministic: start in evaluation mode (`eval`); ``train()`` flips it.
      axis_name: a mapped device axis for cross-replica batch statistics.
    """

    def __init__(self, layer: Layer, input_shape, *, rngs: nnx.Rngs,
                 deterministic: bool = True, axis_name=None):
        self.layer = nnx.static(layer)
        self.input_shape = tuple(input_shape)
        output_shape, params, state = layer.init(rngs.params(), self.input_shape)
        self.output_shape = output_shape
        self.params = nnx.data(jax.tree.map(nnx.Param, params))
        self.state = nnx.data(jax.tree.map(nnx.BatchStat, state))
        self.deterministic = deterministic
        self.axis_name = axis_name
        self.rngs = rngs["dropout"].fork()

    def __call__(self, x, *, key: jax.Array | None = None):
        """Applies the layer; in training mode updates the running statistics in place."""
        train = not self.deterministic
        if train and key is None:
            key = self.rngs()
        y, new_state = self.layer.apply(_values(self.params), _values(self.state), x,
                                        train=train, key=key, axis_name=self.axis_name)
        if train:
            jax.tree.map(lambda var, value: var.set_value(value), self.state, new_state,
                         is_leaf=_is_variable)
        return y

    def pure(self):
        """Returns ``(layer, params, state)`` as plain arrays, for the functional API."""
        return self.layer, _values(self.params), _values(self.state)


def _module(constructor: Callable) -> type[LayerModule]:
    """An NNX class whose ``__init__(*hyper, input_shape, rngs, **hyper)`` builds the layer."""

    def __init__(self, *args, input_shape, rngs: nnx.Rngs, deterministic: bool = True,
                 axis_name=None, **kwargs):
        LayerModule.__init__(self, constructor(*args, **kwargs), input_shape, rngs=rngs,
                             deterministic=deterministic, axis_name=axis_name)

    doc = (f"NNX module over `jaxheads.layers.{constructor.__name__}`; takes its "
           f"hyperparameters plus ``input_shape`` and ``rngs``.\n\n{constructor.__doc__}")
    return type(constructor.__name__, (LayerModule,),
                {"__init__": __init__, "__doc__": doc, "__module__": __name__})


Activation = _module(layers.Activation)
AveragePooling2D = _module(layers.AveragePooling2D)
BatchNormalization = _module(layers.BatchNormalization)
Concatenate = _module(layers.Concatenate)
Conv2D = _module(layers.Conv2D)
ConvLSTM2D = _module(layers.ConvLSTM2D)
DarknetReorg = _module(layers.DarknetReorg)
Dense = _module(layers.Dense)
Dropout = _module(layers.Dropout)
Flatten = _module(layers.Flatten)
GlobalAveragePooling2D = _module(layers.GlobalAveragePooling2D)
GlobalMaxPooling2D = _module(layers.GlobalMaxPooling2D)
LeakyReLU = _module(layers.LeakyReLU)
LocallyConnected2D = _module(layers.LocallyConnected2D)
MaxPooling2D = _module(layers.MaxPooling2D)
Reshape = _module(layers.Reshape)
SpaceToDepth = _module(layers.SpaceToDepth)

WRAPPED = {name: globals()[name] for name in layers.__all__ if name in globals()
           and isinstance(globals()[name], type) and issubclass(globals()[name], LayerModule)
           and name != "LayerModule"}
