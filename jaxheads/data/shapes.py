"""Procedural detection data: coloured shapes on cluttered backgrounds, in numpy.

Each image is drawn from its own generator, ``np.random.default_rng([seed,
split, i])``, so any example can be produced on its own, in any order, and the
``"train"`` and ``"val"`` splits are disjoint streams of the same
distribution. A scene is:

  * a background: a random colour with a linear gradient, a faint sinusoidal
    texture of random frequency and orientation, and up to three thin random
    lines (distractors that belong to no class);
  * 1 to ``max_objects`` solid shapes (circle, square, triangle, diamond,
    cross: the first ``num_classes`` of them) with a side log-uniform in
    ``size`` (fractions of the image side, so small, medium and large objects
    all occur), a random aspect ratio in [0.75, 1.33] and a random colour that
    stands out from the background. A later shape may hide at most a third of
    an earlier one, and centres lie anywhere in the image, so shapes overlap
    and are cut by the border;
  * per-pixel noise over everything.

A box is the tight box of the pixels where its shape is *visible* in the final
image: pixel (row r, column c) covers [c, c + 1) x [r, r + 1), and a shape
whose visible pixels span columns c0..c1 and rows r0..r1 has the box
``(c0, r0, c1 + 1, r1 + 1) / (W, H)``. `ShapesDataset.scene` returns the
per-pixel instance map that these boxes are computed from.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jaxheads._checks import check_positive_int, fail
from jaxheads.data.pipeline import DetectionDataset, pad_targets

__all__ = ["SHAPE_NAMES", "ShapesDataset", "ShapesScene", "draw_shapes"]

#: The class names of `ShapesDataset`, in label order.
SHAPE_NAMES = ("circle", "square", "triangle", "diamond", "cross")
SPLITS = {"train": 0, "val": 1}

# A later shape may cover at most this fraction of an earlier shape's visible pixels.
_MAX_OCCLUSION = 1 / 3
_MIN_PIXELS = 12
_PLACEMENT_TRIES = 8


class ShapesScene(NamedTuple):
    """One drawn image before padding.

    Attributes:
      image: [H, W, 3] float32 in [0, 1].
      boxes: [N, 4] float32 xyxy normalised, the tight boxes of the visible pixels.
      labels: [N] int32 shape classes (indices into `SHAPE_NAMES`).
      instances: [H, W] int16, the object (row of ``boxes``) each pixel shows; -1
        for the background.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    instances: np.ndarray


def _shape_mask(kind: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of shape ``kind`` in coordinates where its extent is [-1, 1]^2."""
    au, av = np.abs(u), np.abs(v)
    if kind == 0:
        return u * u + v * v <= 1.0
    if kind == 1:
        return (au <= 1.0) & (av <= 1.0)
    if kind == 2:  # apex up: image rows grow downwards
        return (v <= 1.0) & (au <= (v + 1.0) / 2)
    if kind == 3:
        return au + av <= 1.0
    third = 1.0 / 3.0
    return ((au <= third) & (av <= 1.0)) | ((au <= 1.0) & (av <= third))


def _background(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The cluttered background, channels first [3, H, W], and its base colour [3].

    Channels first because numpy broadcasts slowly over a trailing axis of 3.
    """
    # One draw for every scalar: a small generator call costs more than the maths.
    base, gx, gy = rng.random((3, 3), dtype=np.float32)
    freq, angle, amp, phase, num_lines = rng.random(5)
    gx, gy = (gx - 0.5) / 2, (gy - 0.5) / 2
    ys = np.arange(h, dtype=np.float32) / h - 0.5
    xs = np.arange(w, dtype=np.float32) / w - 0.5
    rows = base[:, None] + gy[:, None] * ys[None, :]  # [3, H]
    cols = gx[:, None] * xs[None, :]  # [3, W]
    image = rows[:, :, None] + cols[:, None, :]
    # A faint grating, texture that is not an object: sin(a x + b y + p) as a sum
    # of two outer products, which is cheaper than a sine per pixel.
    k = 2 * np.pi * (2.0 + 10.0 * freq)
    angle *= np.pi
    ax = xs * np.float32(k * np.cos(angle))
    by = ys * np.float32(k * np.sin(angle)) + np.float32(2 * np.pi * phase)
    wave = np.sin(by)[:, None] * np.cos(ax)[None, :] + np.cos(by)[:, None] * np.sin(ax)[None, :]
    image += np.float32(0.08 * amp) * wave
    # Up to three thin line segments: edges that belong to no class.
    for line in rng.random((int(4 * num_lines), 8), dtype=np.float32):
        x0, y0, x1, y1, width = line[:5].tolist()
        _draw_segment(image, (x0 * w, y0 * h, x1 * w, y1 * h), 0.5 + 0.7 * width, line[5:])
    return image, base


def _draw_segment(image: np.ndarray, ends, half_width: float, colour: np.ndarray) -> None:
    """Paints the pixels of [3, H, W] within ``half_width`` of a segment, in place."""
    h, w = image.shape[1:]
    x0, y0, x1, y1 = ends
    r0, r1 = max(0, int(min(y0, y1) - half_width)), min(h, int(max(y0, y1) + half_width) + 1)
    c0, c1 = max(0, int(min(x0, x1) - half_width)), min(w, int(max(x0, x1) + half_width) + 1)
    ys = (np.arange(r0, r1, dtype=np.float32) + 0.5 - y0)[:, None]
    xs = (np.arange(c0, c1, dtype=np.float32) + 0.5 - x0)[None, :]
    dx, dy = x1 - x0, y1 - y0
    # min(max(., 0), 1) is np.clip without its wrapper's cost (no NaN can occur here).
    t = np.minimum(np.maximum((xs * dx + ys * dy) / max(dx * dx + dy * dy, 1e-6), 0), 1)
    ex, ey = xs - t * dx, ys - t * dy
    _paint(image[:, r0:r1, c0:c1], ex * ex + ey * ey <= half_width * half_width, colour)


def _paint(window: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    """Sets the pixels of ``window`` [3, h, w] where ``mask`` [h, w] holds to ``colour``."""
    np.copyto(window, colour[:, None, None], where=mask)


def _pick_colour(candidates: np.ndarray, base: np.ndarray) -> np.ndarray:
    """The first of ``candidates`` [K, 3] at least 0.35 from ``base`` in some channel."""
    ok = (np.abs(candidates - base) >= 0.35).any(axis=1)
    first = int(ok.argmax())
    if ok[first]:
        return candidates[first]
    return np.where(base > 0.5, 0.0, 1.0).astype(np.float32)


def draw_shapes(
    rng: np.random.Generator,
    *,
    image_size: tuple[int, int] = (96, 96),
    num_classes: int = 3,
    max_objects: int = 6,
    size: tuple[float, float] = (0.08, 0.6),
    noise: float = 0.06,
) -> ShapesScene:
    """Draws one scene from ``rng`` (see the module docstring).

    Args:
      rng: the generator; the scene is a function of its state alone.
      image_size: (H, W).
      num_classes: shapes are drawn from the first ``num_classes`` of `SHAPE_NAMES`.
      max_objects: the number of shapes is uniform in 1..max_objects (a shape
        that finds no place within the occlusion limit is left out; the first
        always finds one).
      size: the range of a shape's mean side, in fractions of min(H, W).
      noise: the largest amplitude of the uniform per-pixel noise.

    Returns:
      A `ShapesScene`.
    """
    h, w = image_size
    image, base = _background(rng, h, w)
    instances = np.full((h, w), -1, np.int16)
    visible: list[int] = []
    windows: list[tuple[slice, slice]] = []
    labels: list[int] = []
    side = min(h, w)
    log_size = np.log(np.asarray(size, np.float64))
    log_aspect = np.log(0.75), np.log(4 / 3)
    for k in range(int(rng.integers(1, max_objects + 1))):
        # One draw per object: the class, 8 candidate colours, then 4 numbers a try.
        r = rng.random(1 + 24 + 4 * _PLACEMENT_TRIES)
        kind = int(r[0] * num_classes)
        colour = _pick_colour(r[1:25].astype(np.float32).reshape(8, 3), base)
        for attempt, (rs, ra, rx, ry) in enumerate(r[25:].reshape(-1, 4).tolist()):
            mean_side = side * np.exp(log_size[0] + rs * (log_size[1] - log_size[0]))
            aspect = np.exp(log_aspect[0] + ra * (log_aspect[1] - log_aspect[0]))
            hw_, hh = mean_side * np.sqrt(aspect) / 2, mean_side / np.sqrt(aspect) / 2
            cx, cy = rx * w, ry * h
            if k == 0 and attempt == _PLACEMENT_TRIES - 1:
                cx, cy = w / 2, h / 2  # so that every image has an object
            r0, r1 = max(0, int(np.floor(cy - hh))), min(h, int(np.ceil(cy + hh)) + 1)
            c0, c1 = max(0, int(np.floor(cx - hw_))), min(w, int(np.ceil(cx + hw_)) + 1)
            if r1 <= r0 or c1 <= c0:
                continue
            v = (np.arange(r0, r1, dtype=np.float32) + np.float32(0.5 - cy)) / np.float32(hh)
            u = (np.arange(c0, c1, dtype=np.float32) + np.float32(0.5 - cx)) / np.float32(hw_)
            mask = _shape_mask(kind, u[None, :], v[:, None])
            area = int(np.count_nonzero(mask))
            if area < _MIN_PIXELS:
                continue
            window = (slice(r0, r1), slice(c0, c1))
            if not visible:
                remaining = np.zeros(0, np.int64)
                break
            under = instances[window][mask]
            covered = np.bincount(under[under >= 0], minlength=len(visible))
            vis = np.asarray(visible, np.int64)
            remaining = vis - covered
            if (covered <= _MAX_OCCLUSION * vis).all() and (remaining >= _MIN_PIXELS).all():
                break
        else:
            continue
        j = len(labels)
        visible[:] = remaining.tolist()
        visible.append(area)
        windows.append(window)
        labels.append(kind)
        instances[window][mask] = j
        _paint(image[:, window[0], window[1]], mask, colour)

    amplitude = np.float32(2 * noise * rng.random())
    image += (rng.random((h, w), dtype=np.float32) - np.float32(0.5)) * amplitude
    np.clip(image, 0.0, 1.0, out=image)
    image = np.stack([image[0], image[1], image[2]], axis=-1)

    boxes = np.zeros((len(labels), 4), np.float32)
    scale = np.array([w, h, w, h], np.float32)
    for j, (rows, cols) in enumerate(windows):
        mine = instances[rows, cols] == j
        rr, cc = mine.any(axis=1), mine.any(axis=0)  # a visible shape has >= _MIN_PIXELS
        boxes[j] = (
            np.array(
                [
                    cols.start + int(cc.argmax()),
                    rows.start + int(rr.argmax()),
                    cols.stop - int(cc[::-1].argmax()),
                    rows.stop - int(rr[::-1].argmax()),
                ],
                np.float32,
            )
            / scale
        )
    return ShapesScene(image, boxes, np.asarray(labels, np.int32), instances)


class ShapesDataset(DetectionDataset):
    """A procedural detection data set of shapes; any index, in any order.

    Args:
      num_examples: the data set's length.
      image_size: H = W, or (H, W).
      max_boxes: M, the padded number of box rows.
      num_classes: 1..5, the first ``num_classes`` of `SHAPE_NAMES`.
      seed: picks the data set; ``(seed, split, i)`` fixes example ``i``.
      split: ``"train"`` or ``"val"``, disjoint random streams.
      max_objects: at most this many shapes per image; default ``min(max_boxes, 6)``.
      size: the range of a shape's side in fractions of the image side.
      noise: the largest per-pixel noise amplitude.

    ``example(i)`` returns ``image`` [H, W, 3] float32, ``boxes`` [M, 4],
    ``labels`` [M] int32 and ``mask`` [M] bool (see `jaxheads.data.pipeline`).

    >>> ds = ShapesDataset(10, image_size=64, max_boxes=4)
    >>> {k: v.shape for k, v in ds.example(3).items()}
    {'boxes': (4, 4), 'labels': (4,), 'mask': (4,), 'image': (64, 64, 3)}
    """

    def __init__(
        self,
        num_examples: int,
        image_size: int | tuple[int, int] = 96,
        max_boxes: int = 8,
        num_classes: int = 3,
        seed: int = 0,
        split: str = "train",
        *,
        max_objects: int | None = None,
        size: tuple[float, float] = (0.08, 0.6),
        noise: float = 0.06,
    ):
        op = "ShapesDataset"
        check_positive_int(op, "num_examples", num_examples)
        check_positive_int(op, "max_boxes", max_boxes)
        if num_classes not in range(1, len(SHAPE_NAMES) + 1):
            fail(op, f"num_classes in 1..{len(SHAPE_NAMES)}", repr(num_classes))
        if split not in SPLITS:
            fail(op, f"split in {tuple(SPLITS)}", repr(split))
        if max_objects is None:
            max_objects = min(max_boxes, 6)
        check_positive_int(op, "max_objects", max_objects)
        if max_objects > max_boxes:
            fail(op, f"max_objects <= max_boxes={max_boxes}", max_objects)
        if not 0 < size[0] <= size[1]:
            fail(op, "size = (low, high) with 0 < low <= high", size)
        if isinstance(image_size, (int, np.integer)):
            image_size = (int(image_size), int(image_size))
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.num_examples = int(num_examples)
        self.max_boxes = int(max_boxes)
        self.class_names = SHAPE_NAMES[:num_classes]
        self.seed = int(seed)
        self.split = split
        self.max_objects = int(max_objects)
        self.size = (float(size[0]), float(size[1]))
        self.noise = float(noise)

    def __len__(self) -> int:
        return self.num_examples

    def scene(self, i: int) -> ShapesScene:
        """Example ``i`` before padding, with its instance map."""
        i = self._index(i)
        rng = np.random.default_rng([self.seed, SPLITS[self.split], i])
        return draw_shapes(
            rng,
            image_size=self.image_size,
            num_classes=self.num_classes,
            max_objects=self.max_objects,
            size=self.size,
            noise=self.noise,
        )

    def example(self, i: int) -> dict[str, np.ndarray]:
        scene = self.scene(i)
        out = pad_targets(scene.boxes, scene.labels, self.max_boxes, op="ShapesDataset")
        out["image"] = scene.image
        return out
