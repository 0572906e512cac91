"""A head's family: the loss it trains with and the darknet section it stands for.

`jaxheads.heads.Head.family` holds one of these; code outside `jaxheads.heads`
asks it (``head.family.loss(...)``, ``head.family.darknet_section``) instead of
testing the family's name, so a new family is one more `jaxheads.heads.HeadFamily` value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

from jaxheads.decode import BOUNDED, RegionCentre
from jaxheads.losses import region_loss, yolov1_loss


class HeadFamily(NamedTuple):
    """What the heads of one family share.

    Attributes:
      name: ``"yolov1"``, ``"yolov2"``, ...: the family's name (``Head.kind``).
      darknet_section: the darknet cfg section a head of the family is
        (``"detection"``, ``"region"``), or None for a family darknet lacks.
      loss_kwargs: ``head -> dict``: the head's configuration as keyword
        arguments of ``loss``.
      loss: ``loss(raw, boxes [B, M, 4], labels [B, M], mask [B, M], *, seen,
        **kwargs) -> [B]`` float32: the per-image loss of a raw prediction;
        ``seen`` (images trained on so far, a float32 scalar) is for losses
        with a warm-up, the others ignore it.
    """

    name: str
    darknet_section: str | None
    loss_kwargs: Callable[[object], dict]
    loss: Callable[..., jax.Array]


def _yolov1_loss(raw, boxes, labels, mask, *, seen, **kwargs) -> jax.Array:
    del seen  # the YOLOv1 loss has no warm-up
    return yolov1_loss(raw, boxes, labels, mask, **kwargs)


YOLOV1 = HeadFamily(
    "yolov1",
    "detection",
    lambda head: {"num_boxes": head.num_boxes, "num_classes": head.num_classes, "sqrt": head.sqrt},
    _yolov1_loss,
)
YOLOV2 = HeadFamily(
    "yolov2",
    "region",
    lambda head: {"anchors": np.asarray(head.anchors, np.float32)},
    region_loss,
)


def region_family(centre: RegionCentre) -> HeadFamily:
    """The YOLOv2 family with another centre parameterisation (`jaxheads.decode.RegionCentre`).

    `YOLOV2` for `jaxheads.decode.BOUNDED`; otherwise the same loss with ``centre`` passed
    through, and no darknet section (darknet's ``[region]`` is bounded).
    """
    if centre is BOUNDED:
        return YOLOV2
    return HeadFamily(
        "yolov2",
        None,
        lambda head: {**YOLOV2.loss_kwargs(head), "centre": centre},
        region_loss,
    )
