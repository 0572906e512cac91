"""Real handwritten digits scattered on canvases: a small detection set with 10 classes.

The digits are scikit-learn's bundled copy of the UCI optical digits (1797
images of 8x8 pixels, ``sklearn.datasets.load_digits``; no download). A scene
is a canvas with a random colour, a gradient and per-pixel noise, and 1 to
``max_objects`` digits, each scaled up (linear interpolation) to a height in
``digit_size`` pixels and a width of 75-100% of it, in a colour that stands out
from the canvas, placed wholly inside the image without touching another
digit. The class of a digit is its value, named ``"0"`` .. ``"9"``.

The 1797 source images are split once, by a fixed permutation that does not
depend on ``seed``: ``val_fraction`` of them are drawn only in the ``"val"``
split and the rest only in ``"train"``, so validation digits are unseen
handwriting.

A digit is drawn with the opacity of its scaled-up ink, and pixels under 20%
ink are not drawn at all, so that a box is exactly the tight box of a digit's
drawn pixels (the pixel convention of `jaxheads.data.shapes`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from jaxheads._checks import check_positive_int, fail
from jaxheads.data.augment import resize
from jaxheads.data.pipeline import DetectionDataset, pad_targets

__all__ = ["DIGIT_NAMES", "DigitsDataset", "DigitsScene", "load_digit_images"]

#: The class names of `DigitsDataset`: ``"0"`` to ``"9"``.
DIGIT_NAMES = tuple(str(d) for d in range(10))
SPLITS = {"train": 0, "val": 1}

_SPLIT_SEED = 8  # fixes which source digits are held out; never change it
_INK_THRESHOLD = 0.2
_PLACEMENT_TRIES = 8


class DigitsScene(NamedTuple):
    """One drawn image before padding.

    Attributes:
      image: [H, W, 3] float32 in [0, 1].
      boxes: [N, 4] float32 xyxy normalised, the tight boxes of the drawn pixels.
      labels: [N] int32 digit values.
      instances: [H, W] int16, the digit (row of ``boxes``) each pixel shows; -1
        where no digit is drawn.
      sources: [N] int64 indices of the digits in ``load_digits()``.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    sources: np.ndarray


@functools.cache
def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images [1797, 8, 8] float32 in [0, 1] and labels [1797] int32.

    Raises:
      ImportError: when scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "DigitsDataset: expected scikit-learn for its bundled digits, got none: "
            "pip install scikit-learn"
        ) from error
    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int32)


def split_indices(split: str, val_fraction: float = 0.2) -> np.ndarray:
    """The indices of the source digits that ``split`` draws from, sorted."""
    images, _ = load_digit_images()
    order = np.random.default_rng(_SPLIT_SEED).permutation(images.shape[0])
    num_val = int(round(val_fraction * images.shape[0]))
    return np.sort(order[:num_val] if split == "val" else order[num_val:])


def draw_digits(
    rng: np.random.Generator,
    pool: np.ndarray,
    *,
    image_size: tuple[int, int] = (96, 96),
    max_objects: int = 5,
    digit_size: tuple[int, int] = (12, 40),
    noise: float = 0.05,
) -> DigitsScene:
    """Draws one scene from ``rng`` with digits from ``pool`` (see the module docstring)."""
    images, targets = load_digit_images()
    h, w = image_size
    base, gx, gy = rng.random((3, 3), dtype=np.float32)
    ys = np.arange(h, dtype=np.float32) / h - 0.5
    xs = np.arange(w, dtype=np.float32) / w - 0.5
    # Channels first: numpy broadcasts slowly over a trailing axis of 3.
    rows = base[:, None] + (gy[:, None] - 0.5) / 2 * ys[None, :]
    image = rows[:, :, None] + ((gx[:, None] - 0.5) / 2 * xs[None, :])[:, None, :]
    instances = np.full((h, w), -1, np.int16)
    taken = np.zeros((h, w), bool)
    boxes, labels, sources = [], [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        # One draw per digit: source, colour candidates, size, aspect, then positions.
        r = rng.random(1 + 24 + 2 + 2 * _PLACEMENT_TRIES)
        source = int(pool[int(r[0] * pool.shape[0])])
        colours = r[1:25].astype(np.float32).reshape(8, 3)
        ok = np.abs(colours - base).max(axis=1) >= 0.4
        colour = colours[np.argmax(ok)] if ok.any() else np.where(base > 0.5, 0.0, 1.0)
        dh = min(h, int(digit_size[0] + r[25] * (digit_size[1] - digit_size[0] + 1)))
        dw = min(w, max(1, int(round(dh * (0.75 + 0.25 * r[26])))))
        for ry, rx in r[27:].reshape(-1, 2):
            r0, c0 = int(ry * (h - dh + 1)), int(rx * (w - dw + 1))
            window = (slice(r0, r0 + dh), slice(c0, c0 + dw))
            if not taken[max(0, r0 - 1) : r0 + dh + 1, max(0, c0 - 1) : c0 + dw + 1].any():
                break
        else:
            continue
        ink = resize(images[source][:, :, None], (dh, dw))[:, :, 0]
        alpha = np.clip(1.5 * ink, 0.0, 1.0)
        alpha[alpha < _INK_THRESHOLD] = 0.0
        drawn = alpha > 0
        if not drawn.any():
            continue
        j = len(labels)
        taken[window] = True
        instances[window][drawn] = j
        patch = image[:, window[0], window[1]]
        patch += alpha[None] * (colour.astype(np.float32)[:, None, None] - patch)
        rr = np.flatnonzero(drawn.any(axis=1))
        cc = np.flatnonzero(drawn.any(axis=0))
        boxes.append([c0 + cc[0], r0 + rr[0], c0 + cc[-1] + 1, r0 + rr[-1] + 1])
        labels.append(int(targets[source]))
        sources.append(source)
    amplitude = np.float32(2 * noise * rng.random())
    image += (rng.random((h, w), dtype=np.float32) - np.float32(0.5)) * amplitude
    np.clip(image, 0.0, 1.0, out=image)
    boxes_array = np.asarray(boxes, np.float32).reshape(-1, 4) / np.array([w, h, w, h], np.float32)
    return DigitsScene(
        np.stack([image[0], image[1], image[2]], axis=-1),
        boxes_array,
        np.asarray(labels, np.int32),
        instances,
        np.asarray(sources, np.int64),
    )


class DigitsDataset(DetectionDataset):
    """Handwritten digits on canvases, 10 classes ``"0"`` .. ``"9"``; random access.

    Needs scikit-learn (for its bundled digits), imported when the first one is made.

    Args:
      num_examples: the data set's length.
      image_size: H = W, or (H, W).
      max_boxes: M, the padded number of box rows.
      seed: picks the data set; ``(seed, split, i)`` fixes example ``i``.
      split: ``"train"`` or ``"val"``: disjoint random streams *and* disjoint
        source digits (see `split_indices`).
      max_objects: at most this many digits per image; default ``min(max_boxes, 5)``.
      digit_size: the range of a digit's height in pixels (before the tight box).
      noise: the largest per-pixel noise amplitude.
      val_fraction: the fraction of the 1797 source digits held out for ``"val"``.

    ``example(i)`` returns ``image`` [H, W, 3] float32, ``boxes`` [M, 4],
    ``labels`` [M] int32 and ``mask`` [M] bool (see `jaxheads.data.pipeline`).
    """

    def __init__(
        self,
        num_examples: int,
        image_size: int | tuple[int, int] = 96,
        max_boxes: int = 8,
        seed: int = 0,
        split: str = "train",
        *,
        max_objects: int | None = None,
        digit_size: tuple[int, int] = (12, 40),
        noise: float = 0.05,
        val_fraction: float = 0.2,
    ):
        op = "DigitsDataset"
        check_positive_int(op, "num_examples", num_examples)
        check_positive_int(op, "max_boxes", max_boxes)
        if split not in SPLITS:
            fail(op, f"split in {tuple(SPLITS)}", repr(split))
        if max_objects is None:
            max_objects = min(max_boxes, 5)
        check_positive_int(op, "max_objects", max_objects)
        if max_objects > max_boxes:
            fail(op, f"max_objects <= max_boxes={max_boxes}", max_objects)
        if not 1 <= digit_size[0] <= digit_size[1]:
            fail(op, "digit_size = (low, high) with 1 <= low <= high", digit_size)
        if not 0 < val_fraction < 1:
            fail(op, "val_fraction in (0, 1)", val_fraction)
        if isinstance(image_size, (int, np.integer)):
            image_size = (int(image_size), int(image_size))
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.num_examples = int(num_examples)
        self.max_boxes = int(max_boxes)
        self.class_names = DIGIT_NAMES
        self.seed = int(seed)
        self.split = split
        self.max_objects = int(max_objects)
        self.digit_size = (int(digit_size[0]), int(digit_size[1]))
        self.noise = float(noise)
        self.sources = split_indices(split, val_fraction)

    def __len__(self) -> int:
        return self.num_examples

    def scene(self, i: int) -> DigitsScene:
        """Example ``i`` before padding, with its instance map and source digits."""
        i = self._index(i)
        return draw_digits(
            np.random.default_rng([self.seed, SPLITS[self.split], i]),
            self.sources,
            image_size=self.image_size,
            max_objects=self.max_objects,
            digit_size=self.digit_size,
            noise=self.noise,
        )

    def example(self, i: int) -> dict[str, np.ndarray]:
        scene = self.scene(i)
        out = pad_targets(scene.boxes, scene.labels, self.max_boxes, op="DigitsDataset")
        out["image"] = scene.image
        return out
