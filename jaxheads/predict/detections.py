"""`ImageDetections`: what `jaxheads.predict.Detector` returns for one image.

Boxes in the image's own pixels, scores, class ids and names, printed as darknet
prints them (`ImageDetections.lines`) or as JSON (`ImageDetections.to_json`); an
image that could not be read keeps its error instead (`unreadable`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["ImageDetections", "unreadable"]


@dataclasses.dataclass(frozen=True, eq=False)
class ImageDetections:
    """The detections of one image.

    Attributes:
      source: the file path, or None for a PIL image or an array.
      width, height: the image's size in pixels (after EXIF orientation).
      boxes: ``[K, 4]`` float32 ``(x1, y1, x2, y2)`` in the image's pixels, clipped to
        ``[0, width] × [0, height]``.
      scores: ``[K]`` float32 probabilities (objectness × class probability).
      class_ids: ``[K]`` int32.
      labels: ``K`` class names.
      error: why the image could not be read (then ``K = 0``); None otherwise.

    Detections are ordered by score, best first; a box above the threshold for
    several classes appears once per class, as darknet prints it.
    """

    source: str | None
    width: int
    height: int
    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: tuple[str, ...]
    error: str | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def lines(self) -> list[str]:
        """Darknet's printed lines, ``"dog: 82%"``, one per detection."""
        return [
            f"{label}: {float(s) * 100:.0f}%"
            for label, s in zip(self.labels, self.scores, strict=True)
        ]

    def to_json(self) -> dict[str, Any]:
        """``{"file", "width", "height", "detections": [{"class_id", "label", "score",
        "box": [x1, y1, x2, y2]}]}`` (``{"file", "error"}`` for an unreadable image)."""
        if self.error is not None:
            return {"file": self.source, "error": self.error}
        return {
            "file": self.source,
            "width": self.width,
            "height": self.height,
            "detections": [
                {
                    "class_id": int(c),
                    "label": label,
                    "score": float(s),
                    "box": [float(v) for v in b],
                }
                for c, label, s, b in zip(
                    self.class_ids, self.labels, self.scores, self.boxes, strict=True
                )
            ],
        }


def unreadable(source, message: str) -> ImageDetections:
    """No detections for an image that could not be read, and why (``error``)."""
    return ImageDetections(
        source,
        0,
        0,
        np.zeros((0, 4), np.float32),
        np.zeros(0, np.float32),
        np.zeros(0, np.int32),
        (),
        message,
    )
