"""Darknet cfg sections as `jaxheads.layers`: each builder checks a section against its input.

A builder takes ``(section, input shape per example, node name)`` and returns
``(layer, batch_normalize)``; the layer's own init gives its output shape
(`jaxheads.darknet.build_model` asks it). Layer by layer (NHWC):

* ``[convolutional]``: ``pad=1`` pads ``size // 2`` on every side (an int
  padding), else ``padding=`` pixels; ``groups=`` supported.
* ``[maxpool]``: darknet pads ``padding`` (default ``size - 1``) pixels in
  total, ``padding // 2`` before and the rest after, and outputs
  ``(h + padding - size) // stride + 1``: explicit asymmetric padding.
* ``[avgpool]``: darknet's global average, ``[h, w, c] -> [1, 1, c]``.
* ``[local]``: `LocallyConnected2D` padded by ``pad`` pixels (darknet passes
  the flag itself to ``im2col``); darknet sizes the output as if ``pad`` were
  ``size // 2``, so only sizes where both agree (``size=3``, or ``pad=0``) build.
* ``[connected]``: `Flatten` (H, W, C order) then `Dense`. Darknet flattens in
  C, H, W order; `jaxheads.darknet.weights` permutes the kernel's input rows
  when reading and writing, so the graph computes exactly darknet's output.
* ``[dropout]``: `Dropout(probability)`, the identity at inference.
* ``[crop]``: `DarknetCrop`, darknet's inference crop.
* ``[route]``: `Identity` (one layer) or `Concatenate` in listed order.
* ``[reorg]``: `DarknetReorg(stride)`, darknet's own order.
* ``[softmax]``: `FlatSoftmax`, a softmax over all values of each example (``groups=1``).
* ``[cost]``: `Identity` (darknet's training loss; nothing at inference).
* ``[region]`` / ``[detection]``: not layers; they end the graph and describe its head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jaxheads import layers as L
from jaxheads._checks import fail
from jaxheads.darknet.cfg import Section
from jaxheads.layers.base import Layer
from jaxheads.ops import DARKNET_ACTIVATIONS

#: Darknet's batch-norm epsilon (``normalize_cpu`` in ``blas.c``: ``sqrt(var + .000001f)``).
DARKNET_BN_EPSILON = 1e-6
#: Darknet's ``leaky`` slope (``activations.h``).
LEAKY_SLOPE = 0.1


@dataclass(frozen=True)
class NetConfig:
    """The ``[net]`` hyperparameters, as written in the cfg (darknet's defaults otherwise).

    ``batch`` is the cfg's value; darknet itself divides it by ``subdivisions``.
    """

    width: int
    height: int
    channels: int
    batch: int = 1
    subdivisions: int = 1
    learning_rate: float = 0.001
    momentum: float = 0.9
    decay: float = 0.0001
    burn_in: int = 0
    policy: str = "constant"
    steps: tuple[int, ...] = ()
    scales: tuple[float, ...] = ()
    max_batches: int = 0


def net_config(s: Section) -> NetConfig:
    return NetConfig(
        width=s.get_int("width"),
        height=s.get_int("height"),
        channels=s.get_int("channels"),
        batch=s.get_int("batch", 1),
        subdivisions=s.get_int("subdivisions", 1),
        learning_rate=s.get_float("learning_rate", 0.001),
        momentum=s.get_float("momentum", 0.9),
        decay=s.get_float("decay", 0.0001),
        burn_in=s.get_int("burn_in", 0),
        policy=s.get_str("policy", "constant"),
        steps=s.get_list("steps", int, ()),
        scales=s.get_list("scales", float, ()),
        max_batches=s.get_int("max_batches", 0),
    )


def _activation(s: Section) -> Layer | None:
    """The layer for a section's ``activation=`` (darknet's default is ``logistic``)."""
    name = s.get_str("activation", "logistic")
    if name == "linear":
        return None
    if name == "leaky":
        return L.LeakyReLU(LEAKY_SLOPE)
    if name not in DARKNET_ACTIVATIONS:
        fail(
            "darknet cfg",
            f"an activation among linear, leaky, {', '.join(DARKNET_ACTIVATIONS)} in {s.where}",
            repr(name),
        )
    return L.Activation(DARKNET_ACTIVATIONS[name], name=name)


def _image(s: Section, shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        fail("darknet cfg", f"an image (H, W, C) input to {s.where}", f"a vector of {shape[0]}")
    return shape


def _reject(s: Section, *flags: str) -> None:
    for flag in flags:
        if s.get_int(flag, 0):
            fail("darknet cfg", f"no {flag}=1 in {s.where} (not supported)", f"{flag}=1")


def _check_padding(s: Section, padding: int, size: int, shape) -> None:
    """Padding beyond the input and the window only adds rows of padding alone to the
    output; far beyond, the padded map no longer fits in memory. Refused."""
    limit = max(shape[0], shape[1], size)
    if not 0 <= padding <= limit:
        fail(
            "darknet cfg",
            f"padding in [0, {limit}] (the larger of the input size and the window) in {s.where}",
            padding,
        )


def check_positive(s: Section, **values: int) -> None:
    for key, value in values.items():
        if value < 1:
            fail("darknet cfg", f"a positive {key} in {s.where}", f"{key}={value}")


def _chain(name: str, *leaves: Layer | None) -> Layer:
    leaves = tuple(leaf for leaf in leaves if leaf is not None)
    return leaves[0] if len(leaves) == 1 else L.serial(*leaves, name=name)


def _convolutional(s, shape, name):
    h, w, c = _image(s, shape)
    _reject(s, "binary", "xnor", "flipped")
    filters, size = s.get_int("filters"), s.get_int("size")
    stride, groups = s.get_int("stride", 1), s.get_int("groups", 1)
    padding = size // 2 if s.get_int("pad", 0) else s.get_int("padding", 0)
    bn = bool(s.get_int("batch_normalize", 0))
    check_positive(s, filters=filters, size=size, stride=stride, groups=groups)
    _check_padding(s, padding, size, shape)
    if c % groups or filters % groups:
        fail(
            "darknet cfg",
            f"positive filters/size/stride/groups, groups dividing {c} input "
            f"channels and the filters, in {s.where}",
            f"filters={filters} size={size} stride={stride} groups={groups}",
        )
    if min(h, w) + 2 * padding < size:
        fail(
            "darknet cfg",
            f"a {size}x{size} kernel that fits the padded input of {s.where}",
            f"input {shape} with padding {padding}",
        )
    conv = L.Conv2D(filters, size, strides=stride, padding=padding, groups=groups, use_bias=not bn)
    norm = L.BatchNormalization(epsilon=DARKNET_BN_EPSILON) if bn else None
    return _chain(name, conv, norm, _activation(s)), bn


def _maxpool(s, shape, name):
    h, w, _ = _image(s, shape)
    stride = s.get_int("stride", 1)
    size = s.get_int("size", stride)
    padding = s.get_int("padding", size - 1)
    check_positive(s, size=size, stride=stride)
    _check_padding(s, padding, size, shape)
    if min(h, w) + padding < size:
        fail(
            "darknet cfg",
            f"a window that fits the padded input of {s.where}",
            f"size={size} stride={stride} padding={padding} on input {shape}",
        )
    # Darknet's window starts at -padding/2 (C division) and its output size
    # leaves the remaining padding after the last row/column.
    pads = ((padding // 2, padding - padding // 2),) * 2
    return L.MaxPooling2D(size, stride, pads), False


def _avgpool(s, shape, name):
    _image(s, shape)
    return L.GlobalAveragePooling2D(keepdims=True), False


def _local(s, shape, name):
    h, w, c = _image(s, shape)
    filters, size = s.get_int("filters"), s.get_int("size")
    stride, pad = s.get_int("stride", 1), s.get_int("pad", 0)
    check_positive(s, filters=filters, size=size, stride=stride)
    _check_padding(s, pad, size, shape)
    # local_out_height() treats pad as a flag; im2col pads by its value.
    darknet_out = tuple((d - (1 if pad else size)) // stride + 1 for d in (h, w))
    padded_out = tuple((d + 2 * pad - size) // stride + 1 for d in (h, w))
    if darknet_out != padded_out or min(padded_out) < 1:
        fail(
            "darknet cfg",
            f"a [local] whose output size darknet computes consistently "
            f"(pad=0, or pad=1 with size=3) in {s.where}",
            f"size={size} pad={pad} stride={stride} on input {shape}",
        )
    layer = L.LocallyConnected2D(filters, size, strides=stride, padding=pad)
    return _chain(name, layer, _activation(s)), False


def _connected(s, shape, name):
    output = s.get_int("output")
    check_positive(s, output=output)
    bn = bool(s.get_int("batch_normalize", 0))
    flatten = L.Flatten() if len(shape) == 3 else None
    dense = L.Dense(output, use_bias=not bn)
    norm = L.BatchNormalization(epsilon=DARKNET_BN_EPSILON) if bn else None
    return _chain(name, flatten, dense, norm, _activation(s)), bn


def _dropout(s, shape, name):
    rate = s.get_float("probability", 0.5)
    if not 0 <= rate <= 1:
        fail("darknet cfg", f"probability in [0, 1] in {s.where}", rate)
    return L.Dropout(rate), False


def _crop(s, shape, name):
    h, w, _ = _image(s, shape)
    ch, cw = s.get_int("crop_height"), s.get_int("crop_width")
    if not (0 < ch <= h and 0 < cw <= w):
        fail("darknet cfg", f"a crop inside the {h}x{w} input of {s.where}", f"{ch}x{cw}")
    return L.DarknetCrop(ch, cw, adjust=not s.get_int("noadjust", 0)), False


def _reorg(s, shape, name):
    h, w, c = _image(s, shape)
    _reject(s, "reverse", "flatten", "extra")
    stride = s.get_int("stride", 1)
    if stride < 1 or h % stride or w % stride or c % (stride * stride):
        fail(
            "darknet cfg",
            f"H, W divisible by stride and C by stride**2 in {s.where}",
            f"stride={stride} on input {shape}",
        )
    return L.DarknetReorg(stride), False


def _softmax(s, shape, name):
    if s.get_int("groups", 1) != 1:
        fail(
            "darknet cfg",
            f"groups=1 in {s.where} (grouped softmax is not supported)",
            s.get_int("groups"),
        )
    temperature = s.get_float("temperature", 1.0)
    if not 0 < temperature < math.inf:
        fail("darknet cfg", f"a positive, finite temperature in {s.where}", temperature)
    return L.FlatSoftmax(temperature), False


def _cost(s, shape, name):
    # Darknet's [cost] computes the training loss from the truth; at inference it
    # passes its input through.
    return L.Identity(), False


#: Section type -> ``builder(section, input shape, node name) -> (layer, batch_normalize)``.
BUILDERS = {
    "convolutional": _convolutional,
    "maxpool": _maxpool,
    "avgpool": _avgpool,
    "local": _local,
    "connected": _connected,
    "dropout": _dropout,
    "crop": _crop,
    "reorg": _reorg,
    "softmax": _softmax,
    "cost": _cost,
}


def route(s: Section, shapes: list[tuple], names: list[str]):
    """A ``[route]``: ``(layer, its input node(s), their shapes)``.

    Resolves ``layers=`` (relative if negative) against the earlier layers'
    ``shapes`` and node ``names``, and checks that the routed shapes agree.
    """
    index = s.index
    sources = []
    for k in s.get_list("layers", int):
        source = index + k if k < 0 else k
        if not 0 <= source < index:
            fail(
                "darknet cfg",
                f"route layers naming earlier layers 0..{index - 1} in {s.where}",
                f"{k} (layer {source})",
            )
        sources.append(source)
    if not sources:
        fail("darknet cfg", f"at least one index in layers= of {s.where}", "none")
    picked = [shapes[i] for i in sources]
    if len({len(p) for p in picked}) != 1 or (
        len(picked[0]) == 3 and len({p[:2] for p in picked}) != 1
    ):
        fail(
            "darknet cfg",
            f"routed layers of one spatial size in {s.where}",
            ", ".join(f"layer {i}: {p}" for i, p in zip(sources, picked, strict=True)),
        )
    layer = L.Identity() if len(sources) == 1 else L.Concatenate()
    inputs = tuple(names[i] for i in sources)
    return layer, inputs[0] if len(inputs) == 1 else inputs, picked
