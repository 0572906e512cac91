"""Darknet cfg sections to one `jaxheads.layers.graph`, and the `DarknetNet` that runs it.

Every darknet layer becomes ONE node named ``f"{index}_{type}"`` (``0_convolutional``,
``27_reorg``, ``28_route``), ``index`` being darknet's layer index (``[net]``
is not a layer), so ``[route] layers=-1,-4`` reads the nodes darknet reads.
A layer made of several steps is a nested `serial`: a batch-normalised
``[convolutional]`` is ``serial(Conv2D(use_bias=False), BatchNormalization(epsilon=1e-6),
LeakyReLU(0.1))`` — darknet's ``normalize_cpu`` adds ``.000001`` to the
variance — so ``summary(..., expand_nested=True)`` lists Keras-like rows while
the default lists darknet's layers.

Layer by layer (shapes per example, NHWC):

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
* ``[crop]``: darknet's inference crop: the centre ``crop_height × crop_width``
  window, then ``x·2 − 1`` unless ``noadjust=1``. Its training-time random
  crop, flip and colour jitter are augmentation and are not reproduced.
* ``[route]``: the identity (one layer) or `Concatenate` in listed order.
* ``[reorg]``: `DarknetReorg(stride)`, darknet's own order.
* ``[softmax]``: a softmax over all values of each example (``groups=1``).
* ``[cost]``: the identity (darknet's training loss; nothing at inference).
* ``[region]`` / ``[detection]``: not layers; they end the graph and their
  options become `Head` for decoding and losses.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads import layers as L
from jaxheads._checks import check_floating, check_rank, check_shape, fail
from jaxheads.darknet import weights as weights_io
from jaxheads.darknet.cfg import Section, read_cfg
from jaxheads.layers.base import Layer, stateless

#: Darknet's batch-norm epsilon (``normalize_cpu`` in ``blas.c``: ``sqrt(var + .000001f)``).
DARKNET_BN_EPSILON = 1e-6
#: Darknet's ``leaky`` slope (``activations.h``).
LEAKY_SLOPE = 0.1


# ---------------------------------------------------------------------------
# Activations (darknet's activations.h).
# ---------------------------------------------------------------------------


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


#: Darknet activation names and their functions; ``linear`` and ``leaky`` are handled apart.
ACTIVATIONS: dict[str, Callable] = {
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


def _activation(s: Section) -> Layer | None:
    """The layer for a section's ``activation=`` (darknet's default is ``logistic``)."""
    name = s.get_str("activation", "logistic")
    if name == "linear":
        return None
    if name == "leaky":
        return L.LeakyReLU(LEAKY_SLOPE)
    if name not in ACTIVATIONS:
        fail(
            "darknet cfg",
            f"an activation among linear, leaky, {', '.join(ACTIVATIONS)} in {s.where}",
            repr(name),
        )
    return L.Activation(ACTIVATIONS[name], name=name)


# ---------------------------------------------------------------------------
# Small layers that exist only for darknet.
# ---------------------------------------------------------------------------


def DarknetCrop(
    crop_height: int, crop_width: int, *, adjust: bool = True, name: str | None = None
) -> Layer:
    """Darknet's ``[crop]`` at inference: the centre window, then ``x·2 − 1`` (``adjust``).

    ``[B, H, W, C] -> [B, crop_height, crop_width, C]``; the window starts at
    ``((H − crop_height) // 2, (W − crop_width) // 2)`` as in ``forward_crop_layer``.
    """

    def fn(p, x, ctx):
        check_rank("DarknetCrop", "x", x, 4, "[B, H, W, C]")
        h, w = x.shape[1:3]
        if crop_height > h or crop_width > w:
            fail("DarknetCrop", f"an input at least {crop_height}x{crop_width}", f"shape {x.shape}")
        dh, dw = (h - crop_height) // 2, (w - crop_width) // 2
        y = x[:, dh : dh + crop_height, dw : dw + crop_width, :]
        return y * 2 - 1 if adjust else y

    return stateless("DarknetCrop", fn, name=name or "crop")


def Identity(*, name: str | None = None) -> Layer:
    """Keras ``Identity``: darknet's ``[route]`` of a single layer."""
    return stateless("Identity", lambda p, x, ctx: x, name=name)


def FlatSoftmax(temperature: float = 1.0, *, name: str | None = None) -> Layer:
    """Darknet's ``[softmax]`` (``groups=1``): one softmax over all values of an example."""

    def fn(p, x, ctx):
        flat = jnp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))
        return jnp.reshape(jax.nn.softmax(flat / temperature, axis=-1), x.shape)

    return stateless("Softmax", fn, name=name or "softmax")


# ---------------------------------------------------------------------------
# Descriptions of what was built.
# ---------------------------------------------------------------------------


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


@dataclass(frozen=True, eq=False)
class Head:
    """A ``[region]`` or ``[detection]`` section: how to decode and train the output.

    Attributes:
      kind: ``"region"`` (YOLOv2) or ``"detection"`` (YOLOv1).
      classes, num, coords: darknet's ``classes``, ``num`` (anchors / boxes per
        cell) and ``coords``.
      anchors: region only: ``[num, 2]`` prior (w, h) in grid cells, float32.
      side: detection only: the grid size ``S``.
      sqrt, softmax, rescore, bias_match, absolute, random: darknet's flags.
      jitter, thresh, object_scale, noobject_scale, class_scale, coord_scale:
        darknet's training settings.
      options: every option of the section as written.
    """

    kind: str
    classes: int
    num: int
    coords: int
    anchors: np.ndarray | None = None
    side: int | None = None
    sqrt: bool = False
    softmax: bool = False
    rescore: bool = False
    bias_match: bool = False
    absolute: bool = False
    random: bool = False
    jitter: float = 0.2
    thresh: float = 0.5
    object_scale: float = 1.0
    noobject_scale: float = 1.0
    class_scale: float = 1.0
    coord_scale: float = 1.0
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DarknetLayer:
    """What `jaxheads.darknet.weights` needs to know about one darknet layer.

    Attributes:
      index: darknet's layer index.
      type: the section type, e.g. ``"convolutional"``.
      name: the graph node, ``f"{index}_{type}"``.
      input_shape, output_shape: per example, as darknet sees them: ``(H, W, C)``
        for maps, ``(N,)`` for vectors (the first input's for a ``[route]``).
      batch_normalize: darknet's ``batch_normalize=1``.
      parts: ``{kind: key}`` of the leaf layers holding weights inside the
        node's params (``key`` None when the node is the leaf itself), e.g.
        ``{"Conv2D": "conv2d", "BatchNormalization": "batch_normalization"}``.
    """

    index: int
    type: str
    name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    batch_normalize: bool = False
    parts: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class DarknetModel:
    """A cfg built into a layer, without parameters.

    Attributes:
      layer: the `graph` (`jaxheads.layers.Layer`) of every darknet layer up to
        the ``[region]``/``[detection]`` section.
      input_shape: ``(None, height, width, channels)``.
      layers: one `DarknetLayer` per darknet layer, in order.
      head: the `Head`, or None when the cfg has no region/detection section.
      net: the `NetConfig`.
      sections: the sections it was built from (overrides applied).

    Its jitted forward and detection functions live here, so every
    `DarknetNet` sharing a model shares their compilations.
    """

    layer: Layer
    input_shape: tuple
    layers: tuple[DarknetLayer, ...]
    head: Head | None
    net: NetConfig
    sections: tuple[Section, ...]
    forward: Callable = field(init=False, repr=False)
    detect: Callable = field(init=False, repr=False)

    def __post_init__(self):
        from jaxheads.detect import postprocess

        layer, decode = self.layer, self.decode

        def forward(params, state, images):
            """``(params, state, images [B, H, W, C]) -> raw output`` in inference mode."""
            return layer.apply(params, state, images)[0]

        def detect(
            params, state, images, *, score_threshold=0.005, iou_threshold=0.45, max_detections=100
        ):
            """Forward, `decode` and `jaxheads.detect.postprocess` in one jitted function."""
            boxes, scores = decode(forward(params, state, images))
            return postprocess(
                boxes,
                scores,
                score_threshold=score_threshold,
                iou_threshold=iou_threshold,
                max_detections=max_detections,
            )

        object.__setattr__(self, "forward", jax.jit(forward))
        object.__setattr__(
            self,
            "detect",
            jax.jit(detect, static_argnames=("score_threshold", "iou_threshold", "max_detections")),
        )

    def decode(self, raw: jax.Array):
        """Raw output to ``(boxes [B, N, 4] xyxy in [0, 1], scores [B, N, C])``.

        ``[region]`` uses `jaxheads.decode.decode_yolov2` with the cfg's
        anchors (it always applies darknet's ``softmax=1``); ``[detection]``
        reorders darknet's flat output (`jaxheads.losses.yolov1_from_darknet_layout`)
        and uses `jaxheads.decode.decode_yolov1`.
        """
        from jaxheads.darknet.detector import detection_cells
        from jaxheads.decode import decode_yolov1, decode_yolov2

        head = self.head
        if head is None:
            fail("DarknetModel.decode", "a cfg ending in [region] or [detection]", "neither")
        if head.coords != 4:
            fail("DarknetModel.decode", f"coords=4 in the [{head.kind}] section", head.coords)
        if head.kind == "region":
            return decode_yolov2(raw, head.anchors, num_classes=head.classes)
        return decode_yolov1(
            detection_cells(raw, head),
            num_boxes=head.num,
            num_classes=head.classes,
            sqrt=head.sqrt,
            softmax_classes=head.softmax,
        )

    def init(self, seed: int = 0):
        """Darknet-style random ``(params, state)``, drawn with NumPy (no compilation).

        As darknet's ``make_*_layer``: convolution kernels ``N(0, 2 / fan_in)``,
        ``[connected]`` and ``[local]`` kernels ``U(-1, 1)·sqrt(2 / fan_in)``;
        biases 0; batch norm scale 1, bias 0, mean 0 and variance 1 (darknet
        starts the variance at 0, which its tiny epsilon turns into ×1000 gains).
        """
        _, params, state = L.abstract_init(self.layer, self.input_shape)
        rng = np.random.default_rng(seed)

        def fill(path, leaf):
            name = path[-1].key
            shape = tuple(leaf.shape)
            if name != "kernel":
                value = 1.0 if name in ("scale", "var") else 0.0
                return jnp.full(shape, value, jnp.float32)
            kind = path[0].key.split("_", 1)[1]
            fan_in = math.prod(shape[2:3] if kind == "local" else shape[:-1])
            if kind == "convolutional":
                values = rng.standard_normal(shape, dtype=np.float32)
            else:
                values = rng.random(shape, dtype=np.float32) * 2 - 1
            return jnp.asarray(values * np.float32(math.sqrt(2.0 / fan_in)))

        return (
            jax.tree_util.tree_map_with_path(fill, params),
            jax.tree_util.tree_map_with_path(fill, state),
        )


# ---------------------------------------------------------------------------
# Section builders: (section, input shape) -> (layer, output shape, batch_normalize).
# ---------------------------------------------------------------------------


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


def _check_positive(s: Section, **values: int) -> None:
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
    _check_positive(s, filters=filters, size=size, stride=stride, groups=groups)
    _check_padding(s, padding, size, shape)
    if c % groups or filters % groups:
        fail(
            "darknet cfg",
            f"positive filters/size/stride/groups, groups dividing {c} input "
            f"channels and the filters, in {s.where}",
            f"filters={filters} size={size} stride={stride} groups={groups}",
        )
    out_h, out_w = ((d + 2 * padding - size) // stride + 1 for d in (h, w))
    if min(h, w) + 2 * padding < size:
        fail(
            "darknet cfg",
            f"a {size}x{size} kernel that fits the padded input of {s.where}",
            f"input {shape} with padding {padding}",
        )
    conv = L.Conv2D(filters, size, strides=stride, padding=padding, groups=groups, use_bias=not bn)
    norm = L.BatchNormalization(epsilon=DARKNET_BN_EPSILON) if bn else None
    return _chain(name, conv, norm, _activation(s)), (out_h, out_w, filters), bn


def _maxpool(s, shape, name):
    h, w, c = _image(s, shape)
    stride = s.get_int("stride", 1)
    size = s.get_int("size", stride)
    padding = s.get_int("padding", size - 1)
    _check_positive(s, size=size, stride=stride)
    _check_padding(s, padding, size, shape)
    if min(h, w) + padding < size:
        fail(
            "darknet cfg",
            f"a window that fits the padded input of {s.where}",
            f"size={size} stride={stride} padding={padding} on input {shape}",
        )
    out_h, out_w = ((d + padding - size) // stride + 1 for d in (h, w))
    # Darknet's window starts at -padding/2 (C division) and its output size
    # leaves the remaining padding after the last row/column.
    pads = ((padding // 2, padding - padding // 2),) * 2
    return L.MaxPooling2D(size, stride, pads), (out_h, out_w, c), False


def _avgpool(s, shape, name):
    _, _, c = _image(s, shape)
    return L.GlobalAveragePooling2D(keepdims=True), (1, 1, c), False


def _local(s, shape, name):
    h, w, c = _image(s, shape)
    filters, size = s.get_int("filters"), s.get_int("size")
    stride, pad = s.get_int("stride", 1), s.get_int("pad", 0)
    _check_positive(s, filters=filters, size=size, stride=stride)
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
    return _chain(name, layer, _activation(s)), (*padded_out, filters), False


def _connected(s, shape, name):
    output = s.get_int("output")
    _check_positive(s, output=output)
    bn = bool(s.get_int("batch_normalize", 0))
    flatten = L.Flatten() if len(shape) == 3 else None
    dense = L.Dense(output, use_bias=not bn)
    norm = L.BatchNormalization(epsilon=DARKNET_BN_EPSILON) if bn else None
    return _chain(name, flatten, dense, norm, _activation(s)), (output,), bn


def _dropout(s, shape, name):
    rate = s.get_float("probability", 0.5)
    if not 0 <= rate <= 1:
        fail("darknet cfg", f"probability in [0, 1] in {s.where}", rate)
    return L.Dropout(rate), shape, False


def _crop(s, shape, name):
    h, w, c = _image(s, shape)
    ch, cw = s.get_int("crop_height"), s.get_int("crop_width")
    if not (0 < ch <= h and 0 < cw <= w):
        fail("darknet cfg", f"a crop inside the {h}x{w} input of {s.where}", f"{ch}x{cw}")
    layer = DarknetCrop(ch, cw, adjust=not s.get_int("noadjust", 0))
    return layer, (ch, cw, c), False


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
    return L.DarknetReorg(stride), (h // stride, w // stride, c * stride * stride), False


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
    return FlatSoftmax(temperature), shape, False


def _cost(s, shape, name):
    # Darknet's [cost] computes the training loss from the truth; at inference it
    # passes its input through.
    return Identity(), shape, False


_BUILDERS = {
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


def _route(s: Section, shapes: list[tuple], names: list[str]):
    """Resolves ``layers=`` (relative if negative) and checks the shapes agree."""
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
    out = (*picked[0][:-1], sum(p[-1] for p in picked))
    layer = Identity() if len(sources) == 1 else L.Concatenate()
    inputs = tuple(names[i] for i in sources)
    return layer, inputs[0] if len(inputs) == 1 else inputs, out, picked[0]


def _net_config(s: Section) -> NetConfig:
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


def _head(s: Section, shape) -> Head:
    """A `Head` from a region/detection section, checked against its input like darknet."""
    common = dict(
        sqrt=bool(s.get_int("sqrt", 0)),
        softmax=bool(s.get_int("softmax", 0)),
        rescore=bool(s.get_int("rescore", 0)),
        random=bool(s.get_int("random", 0)),
        jitter=s.get_float("jitter", 0.2),
        object_scale=s.get_float("object_scale", 1.0),
        noobject_scale=s.get_float("noobject_scale", 1.0),
        class_scale=s.get_float("class_scale", 1.0),
        coord_scale=s.get_float("coord_scale", 1.0),
        options=dict(s.options),
    )
    if s.type == "region":
        coords, classes, num = s.get_int("coords", 4), s.get_int("classes", 20), s.get_int("num", 1)
        _check_positive(s, classes=classes, num=num)
        values = s.get_list("anchors", float, (0.5,) * (2 * num))
        if len(values) != 2 * num:
            fail("darknet cfg", f"2*num = {2 * num} anchor values in {s.where}", len(values))
        want = num * (coords + 1 + classes)
        if len(shape) != 3 or shape[2] != want:
            fail(
                "darknet cfg",
                f"an input map with num*(coords+1+classes) = {want} channels for {s.where}",
                f"input {shape}",
            )
        return Head(
            "region",
            classes,
            num,
            coords,
            anchors=np.asarray(values, np.float32).reshape(num, 2),
            bias_match=bool(s.get_int("bias_match", 0)),
            absolute=bool(s.get_int("absolute", 0)),
            thresh=s.get_float("thresh", 0.5),
            **common,
        )
    coords, classes = s.get_int("coords", 1), s.get_int("classes", 1)
    num, side = s.get_int("num", 1), s.get_int("side", 7)
    _check_positive(s, classes=classes, num=num, side=side)
    if coords < 0:
        fail("darknet cfg", f"coords >= 0 in {s.where}", coords)
    want = side * side * ((1 + coords) * num + classes)
    if math.prod(shape) != want:
        fail(
            "darknet cfg",
            f"an input of side*side*((1+coords)*num+classes) = {want} values for {s.where}",
            f"input {shape} ({math.prod(shape)} values)",
        )
    return Head("detection", classes, num, coords, side=side, **common)


# ---------------------------------------------------------------------------
# Overrides and the builder.
# ---------------------------------------------------------------------------


def _with(s: Section, **options) -> Section:
    return dataclasses.replace(s, options={**s.options, **{k: str(v) for k, v in options.items()}})


def _override(sections: list[Section], image_size, num_classes) -> list[Section]:
    sections = list(sections)
    if image_size is not None:
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if min(h, w) < 1:
            fail("darknet.build_model", "a positive image_size", image_size)
        for i, s in enumerate(sections):
            if s.type == "net":
                sections[i] = _with(s, height=h, width=w)
            elif s.type == "crop":
                sections[i] = _with(s, crop_height=h, crop_width=w)
    if num_classes is not None:
        if num_classes < 1:
            fail("darknet.build_model", "a positive num_classes", num_classes)
        heads = [i for i, s in enumerate(sections) if s.type in ("region", "detection")]
        if not heads:
            fail("darknet.build_model", "a [region] or [detection] section for num_classes", "none")
        at = heads[-1]
        head = sections[at]
        coords, num = (
            head.get_int("coords", 4 if head.type == "region" else 1),
            head.get_int("num", 1),
        )
        sections[at] = _with(head, classes=num_classes)
        if head.type == "region":
            target, key, value = "convolutional", "filters", num * (coords + 1 + num_classes)
        else:
            side = head.get_int("side", 7)
            target, key = "connected", "output"
            value = side * side * ((coords + 1) * num + num_classes)
        last = [i for i in range(at) if sections[i].type == target]
        if not last:
            fail(
                "darknet.build_model",
                f"a [{target}] layer before {head.where} for num_classes",
                "none",
            )
        sections[last[-1]] = _with(sections[last[-1]], **{key: value})
    return sections


def build_model(
    sections: Sequence[Section],
    *,
    image_size: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
    name: str = "darknet",
) -> DarknetModel:
    """Builds parsed cfg sections into a `DarknetModel` (a graph and its description).

    Args:
      sections: from `jaxheads.darknet.parse_cfg` / `read_cfg`.
      image_size: replaces ``[net]`` width/height (an int, or ``(height, width)``)
        and every ``[crop]`` size.
      num_classes: replaces the ``[region]``/``[detection]`` ``classes`` and
        resizes the layer that feeds it: the last ``[convolutional]``'s filters
        to ``num·(coords + 1 + classes)``, or the last ``[connected]``'s output
        to ``side²·((coords + 1)·num + classes)``.
      name: the graph's name.

    Returns:
      A `DarknetModel`; its ``layer`` maps ``[B, H, W, C]`` images to the
      output of the last layer before ``[region]``/``[detection]``.

    Raises:
      ValueError: naming the section (type, layer index, line) for unsupported
        options or activations, routes out of range, or shapes darknet rejects.
    """
    sections = _override(list(sections), image_size, num_classes)
    if not sections or sections[0].type != "net":
        fail("darknet.build_model", "sections starting with [net]", [s.type for s in sections[:1]])
    net = _net_config(sections[0])
    if min(net.width, net.height, net.channels) < 1:
        fail(
            "darknet.build_model",
            "positive width, height and channels in [net]",
            (net.width, net.height, net.channels),
        )
    shape: tuple[int, ...] = (net.height, net.width, net.channels)
    shapes: list[tuple] = []
    names: list[str] = []
    nodes, records = [], []
    head = None
    for s in sections[1:]:
        if head is not None:
            fail(
                "darknet.build_model",
                "[region]/[detection] as the last section",
                f"{s.where} after it",
            )
        if s.type in ("region", "detection"):
            head = _head(s, shape)
            continue
        node = f"{s.index}_{s.type}"
        if s.type == "route":
            layer, inputs, out, in_shape = _route(s, shapes, names)
            bn = False
        else:
            layer, out, bn = _BUILDERS[s.type](s, shape, node)
            inputs, in_shape = None, shape
        nodes.append(L.Node(node, layer, inputs))
        parts = {n.layer.kind: n.name for n in layer.nodes} if layer.nodes else {layer.kind: None}
        records.append(DarknetLayer(s.index, s.type, node, tuple(in_shape), tuple(out), bn, parts))
        shapes.append(tuple(out))
        names.append(node)
        shape = tuple(out)
    if not nodes:
        fail("darknet.build_model", "at least one layer after [net]", "none")
    graph = L.graph(nodes, name=name)
    return DarknetModel(
        graph,
        (None, net.height, net.width, net.channels),
        tuple(records),
        head,
        net,
        tuple(sections),
    )


def from_cfg(
    cfg: str | os.PathLike,
    *,
    image_size: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
) -> DarknetModel:
    """Reads and builds a cfg file, or a packaged model by name (``"fast-yolo"``).

    Raises:
      ValueError: an unknown name (the known ones listed, the closest suggested).
    """
    from jaxheads.darknet.detector import resolve_cfg

    path = resolve_cfg(cfg)
    name = os.path.basename(path).removesuffix(".cfg").replace("-", "_") or "darknet"
    return build_model(read_cfg(path), image_size=image_size, num_classes=num_classes, name=name)


# ---------------------------------------------------------------------------
# A built model with its parameters.
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DarknetNet:
    """A darknet model ready to run: a `DarknetModel` plus params and state.

    Attributes:
      model: the `DarknetModel`.
      params: trainable parameters keyed by node name.
      state: batch-norm running statistics keyed by node name.
      seen: darknet's count of training images, kept from the weights file.
      layers_from_file: how many leading darknet layers took their weights from
        a file (all of them for a full file, ``N`` for darknet's ``partial ... N``
        of a backbone, 0 without a file); the others are initialised.
    """

    model: DarknetModel
    params: Any
    state: Any
    seen: int = 0
    layers_from_file: int = 0

    @property
    def layer(self) -> Layer:
        return self.model.layer

    @property
    def input_shape(self) -> tuple:
        return self.model.input_shape

    @property
    def sections(self) -> tuple[Section, ...]:
        return self.model.sections

    @property
    def head(self) -> Head | None:
        return self.model.head

    @property
    def net(self) -> NetConfig:
        return self.model.net

    @property
    def layers(self) -> tuple[DarknetLayer, ...]:
        return self.model.layers

    def _check_images(self, images):
        op = "DarknetNet"
        check_rank(op, "images", images, 4, "[B, H, W, C]")
        check_floating(op, "images", images)
        check_shape(op, "images", images, (None, *self.input_shape[1:]))

    def __call__(self, images: jax.Array) -> jax.Array:
        """Runs the network in inference mode.

        Args:
          images: ``[B, H, W, C]`` floats in ``[0, 1]`` (darknet's input range),
            ``H, W, C`` as in `input_shape`.

        Returns:
          The raw output of the last layer before ``[region]``/``[detection]``:
          ``[B, h, w, c]`` after a convolution, ``[B, n]`` after ``[connected]``.
        """
        self._check_images(images)
        return self.model.forward(self.params, self.state, images)

    def decode(self, raw: jax.Array):
        """See `DarknetModel.decode`."""
        return self.model.decode(raw)

    def detect(
        self,
        images: jax.Array,
        *,
        score_threshold: float = 0.005,
        iou_threshold: float = 0.45,
        max_detections: int = 100,
    ):
        """Images to padded detections (`jaxheads.detect.postprocess`).

        Args:
          images: ``[B, H, W, C]`` in ``[0, 1]``.
          score_threshold, iou_threshold, max_detections: see `postprocess`.

        Returns:
          `jaxheads.detect.Detections` with ``boxes [B, K, 4]`` xyxy normalised
          to the image, ``scores``, ``labels`` and ``valid`` ``[B, K]``.
        """
        self._check_images(images)
        return self.model.detect(
            self.params,
            self.state,
            images,
            score_threshold=score_threshold,
            iou_threshold=iou_threshold,
            max_detections=max_detections,
        )

    def save_weights(self, path: str | os.PathLike) -> None:
        """Writes a darknet ``.weights`` file (atomically; see `jaxheads.darknet.save_weights`)."""
        weights_io.save_weights(path, self.layers, self.params, self.state, seen=self.seen)

    def summary(self, *, expand_nested: bool = False) -> str:
        """The Keras-style table of `jaxheads.summary`."""
        from jaxheads.summary import summary

        return summary(self.layer, self.input_shape, expand_nested=expand_nested)


def _filled(loaded, initial):
    return initial if isinstance(loaded, jax.ShapeDtypeStruct) else loaded


def load(
    cfg: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    *,
    image_size: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
    seed: int = 0,
) -> DarknetNet:
    """Builds a cfg and loads darknet weights into it (or initialises it randomly).

    Args:
      cfg: a ``.cfg`` path, or a packaged model's name (`jaxheads.darknet.MODELS`, e.g.
        ``"fast-yolo"``) or cfg's (`jaxheads.darknet.CFG_NAMES`).
      weights: a darknet ``.weights`` file, full or holding only the first
        layers (darknet's ``partial``; the others are initialised as with no
        file, and `DarknetNet.layers_from_file` says how many came from it);
        None for darknet-style random params (`DarknetModel.init`).
      image_size, num_classes: overrides (see `build_model`).
      seed: the init's PRNG seed for the layers no file covers.

    Returns:
      A `DarknetNet`.

    >>> net = load("yolov2-tiny-voc", image_size=64)
    >>> net(jnp.zeros((1, 64, 64, 3))).shape
    (1, 2, 2, 125)
    """
    model = from_cfg(cfg, image_size=image_size, num_classes=num_classes)
    if weights is None:
        return DarknetNet(model, *model.init(seed), 0)
    _, template_params, template_state = L.abstract_init(model.layer, model.input_shape)
    # The file is read (and checked) before the init draws what it does not hold.
    params, state, header, count = weights_io.load_weights_upto(
        weights, model.layers, template_params, template_state
    )
    if count < len(model.layers):
        params, state = jax.tree.map(_filled, (params, state), model.init(seed))
    return DarknetNet(model, params, state, header.seen, count)
