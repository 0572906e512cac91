"""Augmentations of one example that keep its boxes right, in numpy.

Every function takes an example (see `jaxheads.data.pipeline`) and returns a
new one; the random ones also take a ``np.random.Generator``, so that
``np.random.default_rng([seed, epoch, index])`` makes each example's
augmentation reproducible on its own, whatever order examples are read in.

Geometry is one axis-aligned map of normalised coordinates, ``p -> scale * p +
offset`` (`scale_translate`): zooming in or out, translating and cropping are
all of this form, so image and boxes move by the same formula. The image is
resampled with a linear kernel, widened when shrinking so that it averages
instead of aliasing (`resize` is the special case with ``offset = 0``, and
equals ``jax.image.resize(..., "linear", antialias=True)``); where the output
looks past the source image it shows ``fill``. ``resize(..., pillow=True)`` (what
the data sets read from files use) lets Pillow, when installed, resample in C
(summing in float64: the same numbers to float32 rounding, ~1e-6); everything
else is numpy, so the embedded data sets' pixels do not depend on what is
installed. Boxes follow the YOLO / SSD
rule: a box is kept when its centre lands inside the output image, clipped to
it, and dropped when the clipped box is less than ``min_box_size`` pixels wide
or high; the kept rows move to the front and the rest are re-padded with zeros.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxheads._checks import fail, pair

__all__ = [
    "augment",
    "flip_horizontal",
    "hsv_jitter",
    "random_crop",
    "random_flip",
    "random_scale_translate",
    "resize",
    "scale_translate",
]

Example = dict[str, np.ndarray]


def _resample_taps(
    out_size: int, in_size: int, scale: float, offset: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The source taps of one axis: indices [out, K], weights [out, K], coverage [out].

    Output pixel ``i`` samples the source at ``x = (i + 0.5 - offset) / scale``
    (pixel units, centres at half-integers) with a triangle kernel of radius
    ``r = max(1, 1 / scale)``: tap ``j`` weighs ``max(0, 1 - |x - j - 0.5| / r)``,
    renormalised over the taps inside the source, as in
    ``jax.image.scale_and_translate``. Only the K taps a kernel can reach are
    kept (a dense [out, in] matrix would send the work to a multithreaded BLAS
    that a loaded machine makes slow). Coverage is the fraction of the output
    pixel's footprint on the source image.
    """
    centres = (np.arange(out_size) + 0.5 - offset) / scale
    radius = max(1.0, 1.0 / scale)
    k = int(np.ceil(2 * radius)) + 1
    idx = np.floor(centres - 0.5 - radius).astype(np.int64)[:, None] + 1 + np.arange(k)
    w = np.maximum(0.0, 1.0 - np.abs(centres[:, None] - idx - 0.5) / radius)
    inside = (idx >= 0) & (idx < in_size)
    w = np.where(inside, w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    lo = (np.arange(out_size) - offset) / scale
    coverage = np.clip(np.minimum(lo + 1.0 / scale, in_size) - np.maximum(lo, 0.0), 0.0, None)
    coverage = np.clip(coverage * scale, 0.0, 1.0)
    return np.clip(idx, 0, in_size - 1), w.astype(np.float32), coverage.astype(np.float32)


def _resample_numpy(
    image: np.ndarray, taps_y: tuple[np.ndarray, np.ndarray], taps_x: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """Applies the taps ``(indices [n, K], weights [n, K])`` of each axis: [n_y, n_x, C]."""
    iy, wy = taps_y
    ix, wx = taps_x
    # Only the source rows and columns the taps reach (an edge needs a few).
    y0, x0 = int(iy.min(initial=0)), int(ix.min(initial=0))
    image = image[y0 : int(iy.max(initial=0)) + 1, x0 : int(ix.max(initial=0)) + 1]
    iy, ix = iy - y0, ix - x0
    h, w, c = image.shape
    # Both passes gather whole rows or (column, channel) runs of a 2-D array, so
    # numpy's inner loops run over long contiguous axes, not over the 3 channels.
    flat = image.reshape(h, w * c)
    rows = np.zeros((iy.shape[0], w * c), np.float32)
    for t in range(iy.shape[1]):
        rows += wy[:, t, None] * flat[iy[:, t]]
    out = np.zeros((iy.shape[0], ix.shape[0] * c), np.float32)
    channels = np.arange(c)
    for t in range(ix.shape[1]):
        cols = (ix[:, t, None] * c + channels).reshape(-1)
        out += rows[:, cols] * np.repeat(wx[:, t], c)[None, :]
    return out.reshape(iy.shape[0], ix.shape[0], c)


def _covered(coverage: np.ndarray) -> tuple[int, int] | None:
    """The run [lo, hi) of output pixels wholly on the source, or None when there is none."""
    full = np.flatnonzero(coverage == 1.0)
    return (int(full[0]), int(full[-1]) + 1) if full.size else None


def _resample_pillow(image, out_hw, box) -> np.ndarray:
    """Pillow's float ("F") bilinear resize of ``box`` (x0, y0, x1, y1) to [h, w, C].

    Pillow's triangle kernel widens by the scale when shrinking and renormalises
    over the taps inside the image, the rule of `_resample_taps`; it sums in
    double precision, so it agrees with the numpy passes to float32 rounding.
    """
    from PIL import Image

    planes = np.ascontiguousarray(np.moveaxis(image, -1, 0))
    out = np.empty((*out_hw, image.shape[2]), np.float32)
    for k, plane in enumerate(planes):
        resized = Image.fromarray(plane).resize(
            (out_hw[1], out_hw[0]), Image.Resampling.BILINEAR, box=box
        )
        out[..., k] = np.asarray(resized)
    return out


def _pillow_available() -> bool:
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


def _resample(
    image: np.ndarray,
    out_hw: tuple[int, int],
    scale_yx: tuple[float, float],
    offset_yx: tuple[float, float],
    fill: float,
    pillow: bool = False,
) -> np.ndarray:
    h, w, c = image.shape
    iy, wy, cy = _resample_taps(out_hw[0], h, scale_yx[0], offset_yx[0])
    ix, wx, cx = _resample_taps(out_hw[1], w, scale_yx[1], offset_yx[1])
    rows, cols = _covered(cy), _covered(cx)
    if not pillow or rows is None or cols is None or not _pillow_available():
        out = _resample_numpy(image, (iy, wy), (ix, wx))
        if np.all(cy == 1.0) and np.all(cx == 1.0):
            return out
        coverage = (cy[:, None] * cx[None, :])[..., None]
        return (out * coverage + np.float32(fill) * (1.0 - coverage)).astype(np.float32)
    # Pillow (C, one pass per axis) resamples the rectangle of output pixels that lie
    # wholly on the source; its box is that rectangle's footprint on the source. The
    # pixels across the source's edge, at most one line per side, are blended with
    # ``fill`` by the numpy passes; those off the source show ``fill``.
    (y0, y1), (x0, x1) = rows, cols
    box = tuple(
        float(np.clip((i - offset) / scale, 0.0, n))
        for i, offset, scale, n in (
            (x0, offset_yx[1], scale_yx[1], w),
            (y0, offset_yx[0], scale_yx[0], h),
            (x1, offset_yx[1], scale_yx[1], w),
            (y1, offset_yx[0], scale_yx[0], h),
        )
    )
    inner = _resample_pillow(image, (y1 - y0, x1 - x0), box)
    if (y0, y1, x0, x1) == (0, out_hw[0], 0, out_hw[1]):
        return inner
    out = np.full((out_hw[0], out_hw[1], c), np.float32(fill), np.float32)
    out[y0:y1, x0:x1] = inner
    partial_y = np.flatnonzero((cy > 0) & (cy < 1))
    partial_x = np.flatnonzero((cx > 0) & (cx < 1))
    seen_x = np.flatnonzero(cx > 0)
    for ys, xs in ((partial_y, seen_x), (np.arange(y0, y1), partial_x)):
        if ys.size and xs.size:
            edge = _resample_numpy(image, (iy[ys], wy[ys]), (ix[xs], wx[xs]))
            coverage = (cy[ys, None] * cx[None, xs])[..., None]
            out[np.ix_(ys, xs)] = edge * coverage + np.float32(fill) * (1.0 - coverage)
    return out


def resize(image: np.ndarray, size: int | Sequence[int], *, pillow: bool = False) -> np.ndarray:
    """Resizes [H, W, C] to [h, w, C] (``size`` is h or (h, w)), linear with antialiasing.

    The same numbers as ``jax.image.resize(image, (h, w, C), "linear",
    antialias=True)`` to float32 rounding, computed on the host by numpy, or by
    Pillow when ``pillow`` and it is installed (about 3× faster at 416²; equal to
    float32 rounding, not bit for bit).
    """
    if np.ndim(image) != 3:
        fail("resize", "an image of rank 3 [H, W, C]", f"shape {np.shape(image)}")
    out_h, out_w = pair("resize", "size", size)
    image = np.asarray(image, np.float32)
    h, w = image.shape[:2]
    return _resample(image, (out_h, out_w), (out_h / h, out_w / w), (0.0, 0.0), 0.0, pillow)


def _move_boxes(example: Example, scale, offset, out_hw, min_box_size: float) -> Example:
    """Maps the boxes by ``p -> scale * p + offset`` ((x, y) pairs) and filters them."""
    boxes, mask = example["boxes"], example["mask"]
    sx, sy = scale
    tx, ty = offset
    moved = boxes * np.array([sx, sy, sx, sy], np.float32) + np.array([tx, ty, tx, ty], np.float32)
    # A negative scale (a flip) swaps the min and max corners.
    moved = np.concatenate(
        [np.minimum(moved[:, :2], moved[:, 2:]), np.maximum(moved[:, :2], moved[:, 2:])], axis=1
    )
    centre = (moved[:, :2] + moved[:, 2:]) / 2
    clipped = np.clip(moved, 0.0, 1.0)
    size_px = (clipped[:, 2:] - clipped[:, :2]) * np.array([out_hw[1], out_hw[0]], np.float32)
    keep = (
        mask
        & np.all((centre > 0.0) & (centre < 1.0), axis=1)
        & np.all(size_px >= min_box_size, axis=1)
    )
    order = np.flatnonzero(keep)
    out = dict(example)
    for key, values in (("boxes", clipped), ("labels", example["labels"])) + (
        (("difficult", example["difficult"]),) if "difficult" in example else ()
    ):
        packed = np.zeros_like(example[key])
        packed[: order.size] = values[order]
        out[key] = packed
    out["mask"] = np.zeros_like(mask)
    out["mask"][: order.size] = True
    return out


def scale_translate(
    example: Example,
    scale: float | Sequence[float],
    offset: Sequence[float],
    *,
    fill: float = 0.5,
    min_box_size: float = 1.0,
) -> Example:
    """Maps normalised coordinates by ``p -> scale * p + offset``; same output size.

    Args:
      example: an example; ``image`` [H, W, 3], ``boxes`` [M, 4] normalised xyxy.
      scale: s or (s_x, s_y) > 0; above 1 zooms in (a crop), below 1 zooms out.
      offset: (t_x, t_y), in fractions of the output's width and height.
      fill: the value shown where the output looks past the source image.
      min_box_size: boxes narrower or lower than this many output pixels after
        clipping are dropped.

    Returns:
      The moved example: boxes whose centre stays inside are clipped and kept
      (in their order, at the front), the others dropped, padding re-zeroed.
    """
    sx, sy = (scale, scale) if np.ndim(scale) == 0 else tuple(scale)
    tx, ty = offset
    if not (sx > 0 and sy > 0):
        fail("scale_translate", "positive scales", (sx, sy))
    image = example["image"]
    h, w = image.shape[:2]
    out = _move_boxes(example, (sx, sy), (tx, ty), (h, w), min_box_size)
    out["image"] = _resample(image, (h, w), (sy, sx), (ty * h, tx * w), fill)
    return out


def flip_horizontal(example: Example) -> Example:
    """Mirrors the image left to right; box x-coordinates become ``1 - x``."""
    out = dict(example)
    out["image"] = np.ascontiguousarray(example["image"][:, ::-1])
    boxes = example["boxes"]
    flipped = np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=1)
    out["boxes"] = np.where(example["mask"][:, None], flipped, 0).astype(np.float32)
    return out


def random_flip(example: Example, rng: np.random.Generator, probability: float = 0.5) -> Example:
    """`flip_horizontal` with the given probability."""
    return flip_horizontal(example) if rng.random() < probability else example


def random_scale_translate(
    example: Example,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.75, 1.25),
    translate: float = 0.2,
    *,
    fill: float = 0.5,
    min_box_size: float = 1.0,
) -> Example:
    """Zooms about the centre by a log-uniform factor in ``scale``, then shifts.

    The image centre moves by up to ``translate`` of the image size along each
    axis. Zooming out pads with ``fill``; zooming in or shifting clips boxes
    and drops those whose centre leaves the image (see `scale_translate`).
    """
    s = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
    shift = rng.uniform(-translate, translate, size=2)
    offset = (0.5 - 0.5 * s + shift[0], 0.5 - 0.5 * s + shift[1])
    return scale_translate(example, s, offset, fill=fill, min_box_size=min_box_size)


def random_crop(
    example: Example,
    rng: np.random.Generator,
    area: tuple[float, float] = (0.3, 1.0),
    aspect_ratio: tuple[float, float] = (0.75, 1.333),
    *,
    min_box_size: float = 1.0,
) -> Example:
    """Crops a random window and stretches it back to the image's size.

    The window covers a fraction in ``area`` of the image with a width/height
    ratio (relative to the image's) log-uniform in ``aspect_ratio``, and lies
    wholly inside the image. Boxes whose centre is outside the window are
    dropped, the others clipped to it.
    """
    a = rng.uniform(*area)
    r = float(np.exp(rng.uniform(np.log(aspect_ratio[0]), np.log(aspect_ratio[1]))))
    cw = min(1.0, float(np.sqrt(a * r)))
    ch = min(1.0, float(np.sqrt(a / r)))
    x0 = rng.uniform(0.0, 1.0 - cw)
    y0 = rng.uniform(0.0, 1.0 - ch)
    return scale_translate(
        example, (1.0 / cw, 1.0 / ch), (-x0 / cw, -y0 / ch), min_box_size=min_box_size
    )


def _rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] RGB in [0, 1] -> [..., 3] HSV, hue in turns [0, 1) (as `colorsys`)."""
    # Channel by channel: numpy reduces slowly over a trailing axis of 3.
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = np.maximum(np.maximum(r, g), b)
    delta = v - np.minimum(np.minimum(r, g), b)
    s = np.divide(delta, v, out=np.zeros_like(v), where=v > 0)
    safe = np.where(delta > 0, delta, 1)
    h = np.where(v == r, (g - b) / safe, np.where(v == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    h = np.where(delta > 0, (h / 6) % 1.0, 0)
    return np.stack([h, s, v], axis=-1)


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """[..., 3] HSV (hue in turns) -> [..., 3] RGB, inverse of `_rgb_to_hsv`."""
    h6, s, v = hsv[..., 0] * 6, hsv[..., 1], hsv[..., 2]
    vs = v * s
    # The closed form: channel n (5, 3, 1 for r, g, b) is v - v s clip(min(k, 4 - k), 0, 1)
    # with k = (n + 6 h) mod 6.
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = (h6 + np.float32(n)) % 6
        channels.append(v - vs * np.clip(np.minimum(k, 4 - k), 0, 1))
    return np.stack(channels, axis=-1)


def _unit_remainder(x: np.ndarray) -> None:
    """``x % 1.0`` in place, bit for bit, for x in (-1, 2): numpy's float remainder is slow.

    On that range ``fmod`` is exact, so numpy's remainder is ``x + 1`` below 0,
    ``x - 1`` from 1 on (exact, by Sterbenz's lemma) and ``x`` between.
    """
    x += x < 0
    x -= x >= 1


# Pixels per block of `_jitter_hsv`: its dozen temporaries stay in a core's L2 cache.
_HSV_BLOCK = 8192


def _jitter_hsv(image: np.ndarray, d_hue: float, d_sat: float, d_exp: float) -> np.ndarray:
    """``clip(_hsv_to_rgb(jittered _rgb_to_hsv(image)), 0, 1)``, bit for bit, faster.

    The same float32 operations in the same order as `_rgb_to_hsv`, the jitter
    and `_hsv_to_rgb`, on contiguous planes of a block of pixels at a time. Each
    ``np.where`` there is a sum of products with 0/1 masks here (``x * 1 + 0 =
    x`` exactly; masked numpy operations are many times slower than plain ones),
    and each remainder of known range an exact subtraction (`_unit_remainder`).
    """
    pixels = np.asarray(image, np.float32).reshape(-1, 3)
    out = np.empty(pixels.shape, np.float32)
    for start in range(0, pixels.shape[0], _HSV_BLOCK):
        block = slice(start, start + _HSV_BLOCK)
        out[block] = _jitter_hsv_planes(pixels[block].T.copy(), d_hue, d_sat, d_exp).T
    return out.reshape(np.shape(image))


def _jitter_hsv_planes(rgb: np.ndarray, d_hue: float, d_sat: float, d_exp: float) -> np.ndarray:
    """`_jitter_hsv` of [3, N] planes (overwritten) -> [3, N]."""
    r, g, b = rgb
    v = np.maximum(np.maximum(r, g), b)
    delta = v - np.minimum(np.minimum(r, g), b)
    positive = v > 0
    s = delta / (v * positive + ~positive)
    s *= positive
    safe = delta + (delta == 0)
    is_r = v == r
    is_g = (v == g) & ~is_r
    is_b = ~(is_r | is_g)
    # The hue's sector: (g - b) / delta where v is red, 2 + (b - r) / delta where
    # green, 4 + (r - g) / delta where blue.
    h = (g - b) * is_r + (b - r) * is_g + (r - g) * is_b
    h /= safe
    h += is_g * np.float32(2) + is_b * np.float32(4)
    h /= np.float32(6)
    _unit_remainder(h)
    h *= delta > 0
    h += np.float32(d_hue)
    if abs(d_hue) < 1:
        _unit_remainder(h)
    else:
        np.remainder(h, 1.0, out=h)
    s *= np.float32(d_sat)
    v *= np.float32(d_exp)
    h *= np.float32(6)
    vs = v * s
    k = np.empty_like(v)
    for c, n in enumerate((5.0, 3.0, 1.0)):
        # (6 h + n) mod 6 with 6 h in [0, 6] and n in [1, 5]: one subtraction of 6.
        np.add(h, np.float32(n), out=k)
        k -= (k >= 6) * np.float32(6)
        t = rgb[c]
        np.subtract(np.float32(4), k, out=t)
        np.minimum(k, t, out=t)
        np.clip(t, 0, 1, out=t)
        t *= vs
        np.subtract(v, t, out=t)
        np.clip(t, 0.0, 1.0, out=t)
    return rgb


def _darknet_scale(rng: np.random.Generator, limit: float) -> float:
    """darknet's ``rand_scale``: uniform in [1, limit], inverted half the time."""
    s = rng.uniform(1.0, limit)
    return float(s if rng.random() < 0.5 else 1.0 / s)


def hsv_jitter(
    example: Example,
    rng: np.random.Generator,
    hue: float = 0.1,
    saturation: float = 1.5,
    exposure: float = 1.5,
) -> Example:
    """darknet's ``random_distort_image``: shifts hue, scales saturation and value.

    The hue moves by a uniform amount in [-hue, hue] (hue in turns, wrapping);
    saturation and value are multiplied by a factor uniform in [1, saturation]
    (resp. [1, exposure]), inverted half the time; the result is clipped to
    [0, 1]. Boxes are unchanged.
    """
    d_hue = rng.uniform(-hue, hue)
    d_sat = _darknet_scale(rng, saturation)
    d_exp = _darknet_scale(rng, exposure)
    out = dict(example)
    out["image"] = _jitter_hsv(example["image"], d_hue, d_sat, d_exp)
    return out


def augment(
    example: Example,
    rng: np.random.Generator,
    *,
    flip: float = 0.5,
    crop: float = 0.5,
    crop_area: tuple[float, float] = (0.3, 1.0),
    scale: tuple[float, float] = (0.75, 1.25),
    translate: float = 0.2,
    hue: float = 0.1,
    saturation: float = 1.5,
    exposure: float = 1.5,
    fill: float = 0.5,
    min_box_size: float = 1.0,
) -> Example:
    """The default training augmentation: geometry, then colour, then flip.

    With probability ``crop`` a `random_crop` (window area in ``crop_area``),
    otherwise a `random_scale_translate` (``scale``, ``translate``); then
    `hsv_jitter` and a `random_flip` with probability ``flip``. Pass
    ``crop=0, scale=(1, 1), translate=0`` to turn the geometry off, and ``hue=0,
    saturation=1, exposure=1`` for the colour. Use ``functools.partial`` to give
    `jaxheads.data.Batches` other settings.
    """
    if rng.random() < crop:
        example = random_crop(example, rng, crop_area, min_box_size=min_box_size)
    else:
        example = random_scale_translate(
            example, rng, scale, translate, fill=fill, min_box_size=min_box_size
        )
    example = hsv_jitter(example, rng, hue, saturation, exposure)
    return random_flip(example, rng, flip)
