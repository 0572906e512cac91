"""One row per leaf layer: (id, constructor, input shape). Shared by layer and NNX tests."""

import jax

from jaxheads import layers as L

CASES = [
    ("dense", lambda: L.Dense(5), (2, 3, 3, 4)),
    ("dense_nobias", lambda: L.Dense(5, use_bias=False), (2, 4)),
    ("flatten", lambda: L.Flatten(), (2, 3, 3, 4)),
    ("reshape", lambda: L.Reshape((9, 4)), (2, 3, 3, 4)),
    ("gap", lambda: L.GlobalAveragePooling2D(), (2, 5, 5, 3)),
    ("gmp", lambda: L.GlobalMaxPooling2D(keepdims=True), (2, 5, 5, 3)),
    ("conv", lambda: L.Conv2D(6, 3, strides=2, padding="same"), (2, 9, 9, 4)),
    ("conv_darknet_pad", lambda: L.Conv2D(6, 3, strides=2, padding=1), (2, 8, 8, 4)),
    ("maxpool", lambda: L.MaxPooling2D(2, 1, "same"), (2, 5, 5, 3)),
    ("avgpool", lambda: L.AveragePooling2D(3, 2, "same"), (2, 7, 7, 3)),
    ("batchnorm", lambda: L.BatchNormalization(), (4, 3, 3, 5)),
    ("leaky", lambda: L.LeakyReLU(0.1), (2, 3, 3, 4)),
    ("activation", lambda: L.Activation(jax.nn.relu), (2, 3, 3, 4)),
    ("dropout", lambda: L.Dropout(0.5), (2, 3, 3, 4)),
    ("space_to_depth", lambda: L.SpaceToDepth(2), (2, 4, 4, 4)),
    ("reorg", lambda: L.DarknetReorg(2), (2, 4, 4, 4)),
    ("local", lambda: L.LocallyConnected2D(3, 3, padding=1), (2, 5, 5, 2)),
    ("conv_lstm", lambda: L.ConvLSTM2D(3, 3, padding="same", return_sequences=True),
     (2, 3, 5, 5, 2)),
]
