"""Whole detectors: a `Backbone` and a `jaxheads.heads.Head` composed into one `Layer`.

* `detector` — composes any backbone and head (`Detector`).
* `small_backbone`, `small_extraction_backbone`, `small_detector`, `SMALL_HEADS` (of
  `SmallHead`) — CPU-sized
  models for experiments.
"""

from jaxheads.models.detector import Backbone, Detector, detector
from jaxheads.models.small import (
    SMALL_HEADS,
    SmallHead,
    small_anchors,
    small_backbone,
    small_detector,
    small_extraction_backbone,
)

__all__ = [
    "SMALL_HEADS",
    "Backbone",
    "Detector",
    "SmallHead",
    "detector",
    "small_anchors",
    "small_backbone",
    "small_detector",
    "small_extraction_backbone",
]
