"""A detector is a backbone and a head composed into one `Layer`."""

from __future__ import annotations

from typing import NamedTuple

from jaxheads._checks import check_positive_int, fail
from jaxheads.heads.base import Head, select
from jaxheads.layers.base import Layer
from jaxheads.layers.combinators import INPUT, Node, graph


class Backbone(NamedTuple):
    """A feature extractor with a coarse output and a finer tap for YOLOv2's passthrough.

    Attributes:
      layer: ``image [B, H, W, 3] -> (coarse [B, H/stride, W/stride, channels],
        fine [B, 2H/stride, 2W/stride, fine_channels])`` — like Darknet-19's
        layer 22 (13×13×1024) and layer 16 (26×26×512).
      stride: the coarse map's downsampling factor.
      channels: the coarse map's channels.
      fine_channels: the fine map's channels.
    """

    layer: Layer
    stride: int
    channels: int
    fine_channels: int


class Detector(NamedTuple):
    """A whole detector.

    Attributes:
      layer: ``image [B, H, W, 3] -> raw prediction`` (see `Head`), one `graph`
        with nodes ``backbone`` and ``head`` (and ``coarse``, which picks the
        coarse map, when the head reads only that).
      head: the `Head`: its ``decode`` turns the raw prediction into boxes and
        scores, its ``loss_kwargs()`` configure the loss.
      input_shape: ``(None, image_size, image_size, 3)``.
    """

    layer: Layer
    head: Head
    input_shape: tuple


def detector(
    backbone: Backbone, head: Head, *, image_size: int, name: str = "detector"
) -> Detector:
    """Composes a backbone and a head into one `Layer` on square RGB images.

    Args:
      backbone: the feature extractor.
      head: a head from `jaxheads.heads`; a YOLOv2 head with passthrough gets
        ``[coarse, fine]``, any other head the coarse map.
      image_size: the image side; a multiple of ``backbone.stride`` giving the
        head's grid (``image_size / stride == head.side`` for YOLOv1 heads).
      name: the model's name.

    Returns:
      A `Detector` whose layer maps ``[B, image_size, image_size, 3]`` to the
      head's raw prediction.
    """
    op = "detector"
    check_positive_int(op, "image_size", image_size)
    if image_size % backbone.stride:
        fail(op, f"image_size divisible by the backbone's stride {backbone.stride}", image_size)
    grid = image_size // backbone.stride
    if head.side is not None and grid != head.side:
        fail(
            op,
            f"image_size == side·stride = {head.side}·{backbone.stride} = "
            f"{head.side * backbone.stride} for a head built for side={head.side}",
            image_size,
        )
    if head.passthrough:
        nodes = [Node("backbone", backbone.layer, INPUT), Node("head", head.layer, "backbone")]
    else:
        nodes = [
            Node("backbone", backbone.layer, INPUT),
            Node("coarse", select(0, name="coarse"), "backbone"),
            Node("head", head.layer, "coarse"),
        ]
    return Detector(graph(nodes, name=name), head, (None, image_size, image_size, 3))
