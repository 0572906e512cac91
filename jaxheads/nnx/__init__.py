"""Flax NNX modules over the pure layers: they hold variables and call ``apply``, no math.

Each leaf layer has a named class with its hyperparameters in the signature
(`Dense`, `Conv2D`, `BatchNormalization`, ...); `LayerModule` wraps any
`jaxheads.layers.Layer`, a whole model or head included. They follow Flax's
manners:

* eager construction: layers with params take their input features first
  (``Conv2D(in_features, filters, kernel_size, *, rngs)``, as ``nnx.Conv``);
  pools, activations, flatten and the reorganisations take no shape at all;
* training mode by default: batch norm normalises with the batch statistics
  and updates its running ones, dropout is active, until ``.eval()``;
* params are `nnx.Param` and running statistics `nnx.BatchStat`, named as the
  pure layer's leaves (``kernel``, ``bias``, ``scale``, ``mean``, ``var``), so
  ``nnx.Optimizer(model, tx, wrt=nnx.Param)`` trains them;
* dropout draws from the ``dropout`` stream, or the ``default`` one when the
  `nnx.Rngs` has none; ``nnx.Rngs(params=0)`` builds every module.

>>> import jax.numpy as jnp
>>> from flax import nnx
>>> class Block(nnx.Module):
...     def __init__(self, rngs):
...         self.conv = Conv2D(3, 8, 3, padding="same", use_bias=False, rngs=rngs)
...         self.bn = nnx.BatchNorm(8, rngs=rngs)
...         self.pool = MaxPooling2D(2)
...     def __call__(self, x):
...         return self.pool(LeakyReLU(0.1)(self.bn(self.conv(x))))
>>> Block(nnx.Rngs(0))(jnp.ones((2, 8, 8, 3))).shape
(2, 4, 4, 8)
"""

from jaxheads.nnx._layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Concatenate,
    Conv2D,
    ConvLSTM2D,
    DarknetReorg,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    LeakyReLU,
    LocallyConnected2D,
    MaxPooling2D,
    Reshape,
    SpaceToDepth,
)
from jaxheads.nnx._module import LayerModule, LeafModule

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
    "LeafModule",
    "LeakyReLU",
    "LocallyConnected2D",
    "MaxPooling2D",
    "Reshape",
    "SpaceToDepth",
]
