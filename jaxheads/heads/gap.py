"""The global-average-pooling head: the YOLOv1 output with no spatial information."""

from __future__ import annotations

from jaxheads import layers as L
from jaxheads.heads.base import Head, check_yolov1_sizes, yolov1_head


def gap(
    *,
    side: int = 7,
    num_boxes: int = 2,
    num_classes: int = 20,
    sqrt: bool = True,
    name: str = "gap",
) -> Head:
    """``GlobalAveragePooling2D -> Dense(S·S·(nb·5 + C)) -> Reshape([S, S, nb·5 + C])``.

    The baseline: averaging ``H`` and ``W`` away leaves one ``C_in`` vector per
    image, so where things are survives only in what the backbone wrote into
    the channels. On a 7×7×1024 map it has 1024·1470 + 1470 = 1,506,750
    parameters.

    Args:
      side: the grid ``S``; the input must be ``[B, S, S, C_in]`` (the pooling
        itself would take any size; the check keeps heads interchangeable).
      num_boxes: boxes per cell ``nb``.
      num_classes: ``C``.
      sqrt: the decoder squares ``w, h``.
      name: the layer's name.

    Returns:
      A `Head` whose layer maps ``[B, S, S, C_in] -> [B, S, S, nb·5 + C]``.

    >>> from jaxheads import summary
    >>> print(summary(gap().layer, (None, 7, 7, 1024)).splitlines()[-3])
    Total params: 1,506,750 (5.75 MB)
    """
    op = "gap"
    out = check_yolov1_sizes(op, side, num_boxes, num_classes)
    layer = L.serial(
        L.GlobalAveragePooling2D(),
        L.Dense(side * side * out),
        L.Reshape((side, side, out)),
        name=name,
    )
    return yolov1_head(op, layer, side, num_boxes, num_classes, sqrt)
