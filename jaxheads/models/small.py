"""Small detectors for CPU experiments: one backbone, every head.

`small_backbone` is Darknet-19 in miniature: stages of 3×3 conv, batch norm and
leaky ReLU, each followed by a 2×2 max pool, then one more conv block on the
coarse map. With the defaults (``width=16``, ``stages=4``) a 96×96 image gives
a 6×6×256 coarse map (stride 16) and a 12×12×128 fine tap, the stand-ins for
Darknet-19's 13×13×1024 and 26×26×512; the backbone has about 0.4M parameters.

`small_detector` puts each head of `jaxheads.heads` on it, with the widths
scaled down (``SMALL_HEADS``), so the heads can be compared on equal footing
in a few CPU minutes.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping

from jaxheads import layers as L
from jaxheads._checks import check_positive_int, fail
from jaxheads.heads import VOC_ANCHORS, Head, gap, yolov1_fc, yolov1_local, yolov1_percell, yolov2
from jaxheads.layers.combinators import Node, graph
from jaxheads.models.detector import Backbone, Detector, detector

STAGES = 4  # the default small backbone's stride is 2**4 = 16


def _conv_block(
    prefix: str, filters: int, source: str | None, batch_norm: bool = True
) -> list[Node]:
    if not batch_norm:
        # YOLOv1's convolutions: a bias, no normalisation.
        return [
            Node(f"{prefix}_conv", L.Conv2D(filters, 3, padding="same"), source),
            Node(f"{prefix}_leaky", L.LeakyReLU(0.1)),
        ]
    return [
        Node(f"{prefix}_conv", L.Conv2D(filters, 3, padding="same", use_bias=False), source),
        Node(f"{prefix}_bn", L.BatchNormalization()),
        Node(f"{prefix}_leaky", L.LeakyReLU(0.1)),
    ]


def small_backbone(
    *,
    width: int = 16,
    stages: int = STAGES,
    depth: int = 1,
    batch_norm: bool = True,
    name: str = "small_backbone",
) -> Backbone:
    """A small conv-BN-leaky backbone with a coarse output and a fine tap.

    Stage ``i`` (``i = 0 … stages-1``) is ``depth`` blocks of 3×3 conv
    (``width·2^i`` filters, no bias), batch norm and leaky ReLU 0.1, then a 2×2
    max pool; a last stage of ``depth`` blocks with ``width·2^stages`` filters
    runs on the coarse map. The fine tap is the last activation before the last
    pool, as Darknet-19's layer 16 is for YOLOv2's passthrough.

    Args:
      width: filters of the first stage.
      stages: number of 2×2 pools; the stride is ``2**stages``.
      depth: conv blocks per stage.
      batch_norm: with False, each block is a 3×3 conv with a bias and leaky
        ReLU, no batch norm (YOLOv1's blocks: the first step of YOLOv2's Table 2).
      name: the layer's name.

    Returns:
      A `Backbone` mapping ``[B, H, W, 3]`` to ``(coarse [B, H/s, W/s, width·2^stages],
      fine [B, 2H/s, 2W/s, width·2^(stages-1)])`` with ``s = 2**stages``.
    """
    op = "small_backbone"
    check_positive_int(op, "width", width)
    check_positive_int(op, "stages", stages)
    check_positive_int(op, "depth", depth)
    nodes: list[Node] = []
    for i in range(stages):
        for d in range(depth):
            nodes += _conv_block(f"stage{i + 1}_{d + 1}", width * 2**i, None, batch_norm)
        nodes.append(Node(f"stage{i + 1}_pool", L.MaxPooling2D(2)))
    for d in range(depth):
        nodes += _conv_block(f"stage{stages + 1}_{d + 1}", width * 2**stages, None, batch_norm)
    fine = f"stage{stages}_{depth}_leaky"
    layer = graph(nodes, outputs=(nodes[-1].name, fine), name=name)
    return Backbone(layer, 2**stages, width * 2**stages, width * 2 ** (stages - 1))


# (1×1 reduction, 3×3 expansion) filters per pair, in multiples of the stem's width, per stage.
_EXTRACTION_STAGES = (((2, 4),), ((4, 8),), ((8, 16), (8, 16)))


def small_extraction_backbone(
    *, width: int = 16, batch_norm: bool = True, name: str = "small_backbone"
) -> Backbone:
    """YOLOv1's network (darknet ``extraction.cfg``) in miniature, the "old network".

    GoogLeNet-like as YOLOv1's: a 7×7 stride-2 convolution and a 2×2 pool, then
    stages of 1×1 reductions followed by 3×3 convolutions, each stage but the
    last ending in a 2×2 max pool; leaky ReLU 0.1 throughout (batch norm as in
    `small_backbone`). Same stride (16), same output widths and, at 96×96, about
    the same FLOPs as `small_backbone` (the stand-in for Darknet-19), so
    YOLOv2's "new network" row changes the architecture alone.

    Args:
      width: the stem's filters; the stages' 1×1 reductions and 3×3 expansions
        are multiples of it (``_EXTRACTION_STAGES``), the last expanding to ``width·16``.
      batch_norm: batch norm after every convolution (False: a bias instead).
      name: the layer's name (the same as `small_backbone`'s by default, so a
        detector's parameters are addressed alike).

    Returns:
      A `Backbone`: ``[B, H, W, 3]`` to ``(coarse [B, H/16, W/16, width·16],
      fine [B, H/8, W/8, width·8])``.
    """
    op = "small_extraction_backbone"
    check_positive_int(op, "width", width)

    def block(prefix, filters, size, strides=1):
        conv = L.Conv2D(filters, size, strides=strides, padding="same", use_bias=not batch_norm)
        nodes = [Node(f"{prefix}_conv", conv)]
        if batch_norm:
            nodes.append(Node(f"{prefix}_bn", L.BatchNormalization()))
        return nodes + [Node(f"{prefix}_leaky", L.LeakyReLU(0.1))]

    nodes = block("stem", width, 7, strides=2) + [Node("stem_pool", L.MaxPooling2D(2))]
    for i, pairs in enumerate(_EXTRACTION_STAGES):
        for j, (reduce, expand) in enumerate(pairs):
            nodes += block(f"stage{i + 1}_{j + 1}_reduce", width * reduce, 1)
            nodes += block(f"stage{i + 1}_{j + 1}_expand", width * expand, 3)
        if i < len(_EXTRACTION_STAGES) - 1:
            nodes.append(Node(f"stage{i + 1}_pool", L.MaxPooling2D(2)))
    fine = f"stage2_{len(_EXTRACTION_STAGES[1])}_expand_leaky"
    layer = graph(nodes, outputs=(nodes[-1].name, fine), name=name)
    return Backbone(layer, 16, width * 16, width * 8)


def small_anchors(side: int) -> tuple[tuple[float, float], ...]:
    """``yolov2-voc.cfg``'s anchors rescaled from its 13×13 grid to a ``side × side`` one."""
    return tuple((w * side / 13, h * side / 13) for w, h in VOC_ANCHORS)


@dataclasses.dataclass(frozen=True)
class SmallHead:
    """A head of `jaxheads.heads` sized for the small backbone.

    Called as ``(side, num_classes, **options) -> Head``: ``builder`` with the grid
    ``side`` (when it takes one), ``sizes(side)`` as defaults that an option wins over,
    and ``fixed``, which no option may change.
    """

    builder: Callable[..., Head]
    sizes: Callable[[int], dict] = lambda side: {}
    fixed: Mapping[str, object] = dataclasses.field(default_factory=dict)

    def options(self) -> list[str]:
        """The keywords of ``builder`` an option may set."""
        params = inspect.signature(self.builder).parameters
        return sorted(set(params) - {"side", "num_classes"} - set(self.fixed))

    def check(self, options: Mapping[str, object]) -> None:
        """Refuses, by name, an option that is not among `options`."""
        unknown = sorted(set(options) - set(self.options()))
        if unknown:
            fail(
                "small_detector",
                f"head options of {self.builder.__name__} among {self.options()}",
                unknown,
            )

    def __call__(self, side: int, num_classes: int, **options) -> Head:
        self.check(options)
        grid = {"side": side} if "side" in inspect.signature(self.builder).parameters else {}
        kw = {**self.sizes(side), **options, **self.fixed}
        return self.builder(**kw, **grid, num_classes=num_classes)


def _yolov2_sizes(side: int) -> dict:
    return {"anchors": small_anchors(side), "width": 128}


#: Heads sized for the small backbone (`SmallHead`): ``(side, num_classes, **options) ->
#: Head``; an option is a keyword of the head's builder and wins over the size set here.
SMALL_HEADS: dict[str, SmallHead] = {
    "yolov1-fc": SmallHead(yolov1_fc, lambda side: {"hidden": 256}),
    "yolov1-percell": SmallHead(yolov1_percell, lambda side: {"hidden": 256}),
    "yolov1-local": SmallHead(yolov1_local, lambda side: {"filters": 32}),
    "gap": SmallHead(gap),
    "yolov2": SmallHead(yolov2, _yolov2_sizes, {"passthrough": False}),
    "yolov2-passthrough": SmallHead(
        yolov2,
        lambda side: {**_yolov2_sizes(side), "passthrough_channels": 16},
        {"passthrough": True},
    ),
}


def small_detector(
    head: str,
    *,
    image_size: int = 96,
    num_classes: int = 3,
    width: int = 16,
    batch_norm: bool = True,
    backbone: str = "darknet",
    **head_options,
) -> Detector:
    """A small backbone with one of ``SMALL_HEADS`` on it.

    Args:
      head: a key of ``SMALL_HEADS``: ``"yolov1-fc"``, ``"yolov1-percell"``,
        ``"yolov1-local"``, ``"gap"``, ``"yolov2"``, ``"yolov2-passthrough"``.
      image_size: the image side, a multiple of 16 (grid ``image_size / 16``).
      num_classes: ``C``.
      width: the backbone's first-stage filters.
      batch_norm: batch norm in the backbone (see `small_backbone`).
      backbone: ``"darknet"`` (`small_backbone`, Darknet-19-like) or ``"extraction"``
        (`small_extraction_backbone`, YOLOv1-like).
      head_options: keywords of the head's builder (`jaxheads.heads.yolov1_fc`'s
        ``dropout``, ``hidden``, ``output_scale``; `jaxheads.heads.yolov2`'s ``anchors``,
        ``centre``, ...), over the sizes ``SMALL_HEADS`` sets.

    Returns:
      A `Detector` on ``[B, image_size, image_size, 3]`` images.
    """
    op = "small_detector"
    if head not in SMALL_HEADS:
        fail(op, f"head in {sorted(SMALL_HEADS)}", repr(head))
    SMALL_HEADS[head].check(head_options)
    check_positive_int(op, "image_size", image_size)
    if backbone == "darknet":
        net = small_backbone(width=width, batch_norm=batch_norm)
    elif backbone == "extraction":
        net = small_extraction_backbone(width=width, batch_norm=batch_norm)
    else:
        fail(op, "backbone 'darknet' or 'extraction'", repr(backbone))
    if image_size % net.stride:
        fail(op, f"image_size divisible by {net.stride}", image_size)
    side = image_size // net.stride
    return detector(
        net,
        SMALL_HEADS[head](side, num_classes, **head_options),
        image_size=image_size,
        name=f"small_{head.replace('-', '_')}",
    )
