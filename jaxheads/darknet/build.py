"""Darknet cfg sections to one `jaxheads.layers.graph`: the `DarknetModel`.

Every darknet layer becomes ONE node named ``f"{index}_{type}"`` (``0_convolutional``,
``27_reorg``, ``28_route``), ``index`` being darknet's layer index (``[net]``
is not a layer), so ``[route] layers=-1,-4`` reads the nodes darknet reads.
A layer made of several steps is a nested `serial`: a batch-normalised
``[convolutional]`` is ``serial(Conv2D(use_bias=False), BatchNormalization(epsilon=1e-6),
LeakyReLU(0.1))`` — darknet's ``normalize_cpu`` adds ``.000001`` to the
variance — so ``summary(..., expand_nested=True)`` lists Keras-like rows while
the default lists darknet's layers. `jaxheads.darknet.sections` builds each
node and says what it computes; its output shape is the one its own init gives.
``[region]`` / ``[detection]`` end the graph; their options become the `Head`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads import layers as L
from jaxheads._checks import fail
from jaxheads.darknet.cfg import Section, read_cfg
from jaxheads.darknet.head import KINDS, check_head, detection_cells, section_head
from jaxheads.darknet.sections import BUILDERS, NetConfig, net_config, route
from jaxheads.heads import Head
from jaxheads.layers.base import Layer


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


def _forward(layer: Layer, params, state, images):
    return layer.apply(params, state, images)[0]


@dataclass(frozen=True, eq=False)
class DarknetModel:
    """A cfg built into a layer, without parameters.

    Attributes:
      layer: the `graph` (`jaxheads.layers.Layer`) of every darknet layer up to
        the ``[region]``/``[detection]`` section.
      input_shape: ``(None, height, width, channels)``.
      layers: one `DarknetLayer` per darknet layer, in order.
      net: the `NetConfig`.
      sections: the sections it was built from (overrides applied).

    Its `head` and its jitted forward and detection functions are derived from
    these fields once, so every `DarknetNet` sharing a model shares their
    compilations, and a copy with another ``layer`` (`dataclasses.replace`)
    derives its own.
    """

    layer: Layer
    input_shape: tuple
    layers: tuple[DarknetLayer, ...]
    net: NetConfig
    sections: tuple[Section, ...]

    @functools.cached_property
    def head(self) -> Head | None:
        """The `jaxheads.heads.Head` of the closing ``[region]``/``[detection]`` on `layer`.

        None when the cfg has neither. Its ``layer`` is `layer` itself for
        ``[region]`` and `layer` then a ``cells`` node for ``[detection]``
        (see `jaxheads.darknet.head`).
        """
        last = self.sections[-1]
        return section_head(last, self.layer) if last.type in KINDS else None

    @functools.cached_property
    def forward(self) -> Callable:
        """Jitted ``(params, state, images [B, H, W, C]) -> raw output`` in inference mode."""
        return jax.jit(functools.partial(_forward, self.layer))

    @functools.cached_property
    def detect(self) -> Callable:
        """Jitted forward, `decode` and `jaxheads.detect.postprocess`: ``(params, state,
        images, *, score_threshold, iou_threshold, max_detections) -> Detections``."""
        from jaxheads.detect import postprocess

        layer, decode = self.layer, self.decode

        def detect(
            params, state, images, *, score_threshold=0.005, iou_threshold=0.45, max_detections=100
        ):
            boxes, scores = decode(_forward(layer, params, state, images))
            return postprocess(
                boxes,
                scores,
                score_threshold=score_threshold,
                iou_threshold=iou_threshold,
                max_detections=max_detections,
            )

        return jax.jit(
            detect, static_argnames=("score_threshold", "iou_threshold", "max_detections")
        )

    def decode(self, raw: jax.Array):
        """Raw output to ``(boxes [B, N, 4] xyxy in [0, 1], scores [B, N, C])``.

        The head's decoder: `jaxheads.decode.decode_yolov2` with the cfg's anchors
        for ``[region]`` (it always applies darknet's ``softmax=1``);
        `jaxheads.decode.decode_yolov1` of `jaxheads.darknet.detection_cells` for
        ``[detection]``.
        """
        head = self.head
        if head is None:
            fail("DarknetModel.decode", "a cfg ending in [region] or [detection]", "neither")
        if head.family.darknet_section == "detection" and head.coords == 4:
            raw = detection_cells(raw, head)
        return head.decode(raw)

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


#: The default of `build_model`'s ``max_bytes`` (8 GiB: darknet's yolov1.cfg holds
#: 1.08 GB of float32 parameters; YOLOv2's activations at 416² are 0.08 GB an image).
MAX_MODEL_BYTES = 8 * 2**30


def _nbytes(tree) -> int:
    return sum(math.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


class _Budget:
    """Counts a cfg's parameter and activation bytes section by section, refusing a cfg
    past ``limit`` at the section that crosses it (before anything is allocated)."""

    def __init__(self, limit: int):
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            fail("darknet.build_model", "max_bytes a positive integer", repr(limit))
        self.limit, self.params, self.activations = limit, 0, 0

    def add(self, section: Section, params: int, activations: int) -> None:
        self.params += params
        self.activations += activations
        for what, total, own in (
            ("parameters", self.params, params),
            ("activations for one image", self.activations, activations),
        ):
            if total > self.limit:
                fail(
                    "darknet.build_model",
                    f"a model of at most {self.limit:,} bytes of {what} (raise max_bytes, "
                    "--max-model-bytes, to allow more)",
                    f"{total:,} bytes up to {section.where}, which adds {own:,}",
                )


def build_model(
    sections: Sequence[Section],
    *,
    image_size: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
    name: str = "darknet",
    max_bytes: int = MAX_MODEL_BYTES,
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
      max_bytes: the most bytes the model's float32 parameters and batch-norm
        statistics may take, and, separately, its activations for one image at
        the input size; both are counted from the sections' shapes before any
        array exists, and a cfg beyond either is refused naming the section that
        crosses it.

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
    net = net_config(sections[0])
    if min(net.width, net.height, net.channels) < 1:
        fail(
            "darknet.build_model",
            "positive width, height and channels in [net]",
            (net.width, net.height, net.channels),
        )
    shape: tuple[int, ...] = (net.height, net.width, net.channels)
    budget = _Budget(max_bytes)
    shapes: list[tuple] = []
    names: list[str] = []
    nodes, records = [], []
    closing = None
    for s in sections[1:]:
        if closing is not None:
            fail(
                "darknet.build_model",
                "[region]/[detection] as the last section",
                f"{s.where} after it",
            )
        if s.type in KINDS:
            check_head(s, shape)
            closing = s
            continue
        node = f"{s.index}_{s.type}"
        if s.type == "route":
            layer, inputs, picked = route(s, shapes, names)
            bn, in_shape = False, picked[0]
            fed = (None, *in_shape) if len(picked) == 1 else [(None, *p) for p in picked]
        else:
            layer, bn = BUILDERS[s.type](s, shape, node)
            inputs, in_shape, fed = None, shape, (None, *shape)
        # The layer's own init, run abstractly, gives the output shape (batch first).
        out, params, state = L.abstract_init(layer, fed)
        shape = tuple(out[1:])
        budget.add(s, _nbytes((params, state)), 4 * math.prod(shape))
        nodes.append(L.Node(node, layer, inputs))
        parts = {n.layer.kind: n.name for n in layer.nodes} if layer.nodes else {layer.kind: None}
        records.append(DarknetLayer(s.index, s.type, node, tuple(in_shape), shape, bn, parts))
        shapes.append(shape)
        names.append(node)
    if not nodes:
        fail("darknet.build_model", "at least one layer after [net]", "none")
    graph = L.graph(nodes, name=name)
    return DarknetModel(
        graph, (None, net.height, net.width, net.channels), tuple(records), net, tuple(sections)
    )


def from_cfg(
    cfg: str | os.PathLike,
    *,
    image_size: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
    max_bytes: int = MAX_MODEL_BYTES,
) -> DarknetModel:
    """Reads and builds a cfg file, or a packaged model by name (``"fast-yolo"``).

    ``image_size``, ``num_classes`` and ``max_bytes`` as in `build_model`.

    Raises:
      ValueError: an unknown name (the known ones listed, the closest suggested).
    """
    from jaxheads.darknet.detector import resolve_cfg

    path = resolve_cfg(cfg)
    name = os.path.basename(path).removesuffix(".cfg").replace("-", "_") or "darknet"
    return build_model(
        read_cfg(path),
        image_size=image_size,
        num_classes=num_classes,
        name=name,
        max_bytes=max_bytes,
    )
