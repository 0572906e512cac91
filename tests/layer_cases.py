"""One row per leaf layer, shared by the layer and NNX tests.

Each row is ``(id, kind, args, kwargs, input_shape)``: ``getattr(jaxheads.layers, kind)``
and ``getattr(jaxheads.nnx, kind)`` are both built from ``args`` and ``kwargs``.
"""

import jax

from jaxheads import layers as L

ROWS = [
    ("dense", "Dense", (5,), {}, (2, 3, 3, 4)),
    ("dense_nobias", "Dense", (5,), {"use_bias": False}, (2, 4)),
    ("flatten", "Flatten", (), {}, (2, 3, 3, 4)),
    ("reshape", "Reshape", ((9, 4),), {}, (2, 3, 3, 4)),
    ("gap", "GlobalAveragePooling2D", (), {}, (2, 5, 5, 3)),
    ("gmp", "GlobalMaxPooling2D", (), {"keepdims": True}, (2, 5, 5, 3)),
    ("conv", "Conv2D", (6, 3), {"strides": 2, "padding": "same"}, (2, 9, 9, 4)),
    ("conv_darknet_pad", "Conv2D", (6, 3), {"strides": 2, "padding": 1}, (2, 8, 8, 4)),
    ("maxpool", "MaxPooling2D", (2, 1, "same"), {}, (2, 5, 5, 3)),
    ("avgpool", "AveragePooling2D", (3, 2, "same"), {}, (2, 7, 7, 3)),
    ("batchnorm", "BatchNormalization", (), {}, (4, 3, 3, 5)),
    ("leaky", "LeakyReLU", (0.1,), {}, (2, 3, 3, 4)),
    ("activation", "Activation", (jax.nn.relu,), {}, (2, 3, 3, 4)),
    ("dropout", "Dropout", (0.5,), {}, (2, 3, 3, 4)),
    ("space_to_depth", "SpaceToDepth", (2,), {}, (2, 4, 4, 4)),
    ("reorg", "DarknetReorg", (2,), {}, (2, 4, 4, 4)),
    ("local", "LocallyConnected2D", (3, 3), {"padding": 1}, (2, 5, 5, 2)),
    (
        "conv_lstm",
        "ConvLSTM2D",
        (3, 3),
        {"padding": "same", "return_sequences": True},
        (2, 3, 5, 5, 2),
    ),
]


def _maker(kind, args, kwargs):
    return lambda: getattr(L, kind)(*args, **kwargs)


CASES = [(rid, _maker(kind, args, kwargs), shape) for rid, kind, args, kwargs, shape in ROWS]

# Darknet's own layers, with no NNX or Linen module: the pure-layer tests only.
CASES += [
    ("identity", L.Identity, (2, 3, 3, 4)),
    ("flat_softmax", lambda: L.FlatSoftmax(0.5), (2, 3, 3, 4)),
    ("darknet_crop", lambda: L.DarknetCrop(3, 2), (2, 6, 5, 3)),
]
