"""Embedded classification data: one object per image, from the shapes and the digits.

The pre-training task of the detectors' backbones (both YOLO papers pre-train
theirs on ImageNet classification before detection). An example is a scene of
`jaxheads.data.shapes` or `jaxheads.data.digits` with exactly one object, large
enough to fill a good part of the image, on the same cluttered backgrounds; its
class is the shape (drawn whole, never cut by the border; ``circle`` ..
``cross``: 0 to 4) or the digit (``"0"`` .. ``"9"``: 5 to 14), 15 classes in
all. Half the examples are shapes, half digits (example ``i`` is a digit when
``i`` is odd). The ``"val"`` split draws other
scenes, and its digits come from handwriting that ``"train"`` never shows (the
split of `jaxheads.data.digits`).

Examples have the detection format of `jaxheads.data.pipeline` (the object's box
in row 0) plus ``label``, a scalar int32, so `Batches` and the detection
augmentations apply unchanged.
"""

from __future__ import annotations

import numpy as np

from jaxheads._checks import check_positive_int, fail
from jaxheads.data.digits import DIGIT_NAMES, draw_digits, split_indices
from jaxheads.data.pipeline import DetectionDataset, pad_targets
from jaxheads.data.shapes import SHAPE_NAMES, draw_shapes

__all__ = ["OBJECT_NAMES", "ObjectsDataset"]

OBJECT_NAMES = SHAPE_NAMES + DIGIT_NAMES
SPLITS = {"train": 0, "val": 1}
# Distinct from the detection sets' streams: a scene here is never a detection scene.
_STREAM = 17
_SHAPE_TRIES = 32


class ObjectsDataset(DetectionDataset):
    """Single-object images of shapes and handwritten digits, 15 classes.

    Args:
      num_examples: the data set's length.
      image_size: H = W.
      seed: picks the data set; ``(seed, split, i)`` fixes example ``i``.
      split: ``"train"`` or ``"val"``.

    ``example(i)`` returns ``image`` [H, W, 3] float32 in [0, 1], ``label`` []
    int32, and the object's box as a detection example (``boxes`` [1, 4],
    ``labels`` [1], ``mask`` [1]).

    >>> ds = ObjectsDataset(4, image_size=32)
    >>> ex = ds.example(1)
    >>> ex["image"].shape, ds.class_names[int(ex["label"])] in DIGIT_NAMES
    ((32, 32, 3), True)
    """

    max_boxes = 1

    def __init__(
        self, num_examples: int, image_size: int = 64, seed: int = 0, split: str = "train"
    ):
        op = "ObjectsDataset"
        check_positive_int(op, "num_examples", num_examples)
        check_positive_int(op, "image_size", image_size)
        if image_size < 16:
            fail(op, "image_size >= 16 (a digit needs room)", image_size)
        if split not in SPLITS:
            fail(op, f"split in {tuple(SPLITS)}", repr(split))
        self.num_examples = int(num_examples)
        self.image_size = (int(image_size), int(image_size))
        self.seed = int(seed)
        self.split = split
        self.class_names = OBJECT_NAMES
        self._pool = split_indices(split)

    def __len__(self) -> int:
        return self.num_examples

    def example(self, i: int) -> dict[str, np.ndarray]:
        i = self._index(i)
        rng = np.random.default_rng([self.seed, _STREAM, SPLITS[self.split], i])
        side = self.image_size[0]
        if i % 2 == 0:
            # The shapes' centres lie anywhere; a class must be visible whole, so a scene
            # whose shape touches the border is drawn again (the next draw of the same rng).
            for _ in range(_SHAPE_TRIES):
                scene = draw_shapes(
                    rng,
                    image_size=self.image_size,
                    num_classes=len(SHAPE_NAMES),
                    max_objects=1,
                    size=(0.3, 0.7),
                )
                if np.all(scene.boxes[0, :2] > 0) and np.all(scene.boxes[0, 2:] < 1):
                    break
            labels = scene.labels
        else:
            scene = draw_digits(
                rng,
                self._pool,
                image_size=self.image_size,
                max_objects=1,
                digit_size=(max(8, int(0.45 * side)), int(0.9 * side)),
            )
            labels = scene.labels + len(SHAPE_NAMES)
        out = pad_targets(scene.boxes, labels.astype(np.int32), 1, op="ObjectsDataset")
        out["image"] = scene.image
        out["label"] = np.asarray(labels[0], np.int32)
        return out


def classification_augment(example: dict, rng: np.random.Generator) -> dict:
    """Scale, shift and colour jitter that keep the object in view; no flips (digits)."""
    from jaxheads.data.augment import hsv_jitter, random_scale_translate

    moved = random_scale_translate(example, rng, (0.8, 1.2), 0.1, fill=0.5, min_box_size=1.0)
    moved = hsv_jitter(moved, rng, 0.1, 1.5, 1.5)
    moved["label"] = example["label"]
    return moved
