"""Layers as init/apply pairs of pure functions (see `jaxheads.layers.base`)."""

from jaxheads.layers.base import Context, Layer, abstract_init, count, leaf, stateless
from jaxheads.layers.combinators import INPUT, Node, graph, serial
from jaxheads.layers.core import (
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

__all__ = [
    "INPUT", "Activation", "AveragePooling2D", "BatchNormalization", "Concatenate", "Context",
    "Conv2D", "ConvLSTM2D", "DarknetReorg", "Dense", "Dropout", "Flatten",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Layer", "LeakyReLU", "LocallyConnected2D",
    "MaxPooling2D", "Node", "Reshape", "SpaceToDepth", "abstract_init", "count", "graph",
    "leaf", "serial", "stateless",
]
