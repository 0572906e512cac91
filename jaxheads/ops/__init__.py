"""Pure array functions (NHWC activations, HWIO kernels, Keras weight layouts).

Every op checks ranks, shapes and dtypes at trace time and raises `ValueError`
naming itself, what it expected and what it received.
"""

from jaxheads.ops.activation import DARKNET_ACTIVATIONS, dropout, flat_softmax, leaky_relu
from jaxheads.ops.conv import conv2d
from jaxheads.ops.conv_lstm import conv_lstm2d
from jaxheads.ops.crop import center_crop
from jaxheads.ops.dense import dense, flatten
from jaxheads.ops.local import locally_connected2d
from jaxheads.ops.normalization import (
    batch_moments,
    batch_norm,
    batch_norm_train,
    update_moving_stats,
)
from jaxheads.ops.pooling import avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d
from jaxheads.ops.reorg import darknet_reorg, space_to_depth

__all__ = [
    "DARKNET_ACTIVATIONS",
    "avg_pool2d",
    "batch_moments",
    "batch_norm",
    "batch_norm_train",
    "center_crop",
    "conv2d",
    "conv_lstm2d",
    "darknet_reorg",
    "dense",
    "dropout",
    "flat_softmax",
    "flatten",
    "global_avg_pool2d",
    "global_max_pool2d",
    "leaky_relu",
    "locally_connected2d",
    "max_pool2d",
    "space_to_depth",
    "update_moving_stats",
]
