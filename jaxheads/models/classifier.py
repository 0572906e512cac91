"""A backbone with darknet19's classification head, for pre-training.

Darknet-19 (``darknet19.cfg``) classifies with a 1×1 convolution to the
classes, a global average pool and a softmax; YOLOv2 pre-trains its backbone
so, then drops that head for the detection head. `classifier` puts the same
head on any `Backbone`. Its graph names the backbone node ``backbone``, as
`jaxheads.models.detector` does, so a detector starts from a classifier's
weights by name (``jaxheads train --init``).
"""

from __future__ import annotations

from typing import NamedTuple

from jaxheads import layers as L
from jaxheads._checks import check_positive_int, fail
from jaxheads.heads.base import select
from jaxheads.layers.base import Layer
from jaxheads.layers.combinators import INPUT, Node, graph
from jaxheads.models.detector import Backbone


class Classifier(NamedTuple):
    """A classifier: ``image [B, H, W, 3] -> logits [B, num_classes]``.

    Attributes:
      layer: one `graph` with nodes ``backbone``, ``coarse`` (the coarse map)
        and ``classifier`` (1×1 conv with bias, then the global average pool).
      num_classes: ``C``.
      input_shape: ``(None, image_size, image_size, 3)``.
    """

    layer: Layer
    num_classes: int
    input_shape: tuple


def classifier(
    backbone: Backbone, num_classes: int, *, image_size: int, name: str = "classifier"
) -> Classifier:
    """Darknet19's classification head on ``backbone`` (logits; the loss applies softmax).

    Args:
      backbone: the feature extractor (its coarse map is classified).
      num_classes: ``C``.
      image_size: the image side, a multiple of ``backbone.stride``. The head
        pools globally, so the same weights run at any such size (YOLOv2's
        high-resolution fine-tuning changes only this).
      name: the model's name.
    """
    op = "classifier"
    check_positive_int(op, "num_classes", num_classes)
    check_positive_int(op, "image_size", image_size)
    if image_size % backbone.stride:
        fail(op, f"image_size divisible by the backbone's stride {backbone.stride}", image_size)
    head = L.serial(
        L.Conv2D(num_classes, 1, padding="valid"), L.GlobalAveragePooling2D(), name="classifier"
    )
    nodes = [
        Node("backbone", backbone.layer, INPUT),
        Node("coarse", select(0, name="coarse"), "backbone"),
        Node("classifier", head, "coarse"),
    ]
    return Classifier(graph(nodes, name=name), num_classes, (None, image_size, image_size, 3))
