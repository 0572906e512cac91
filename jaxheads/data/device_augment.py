"""The default training augmentation as pure functions of a key, for one example on the device.

The counterpart of `jaxheads.data.augment.augment` in `jax.numpy`: the same
geometry (a `random_crop` with probability ``crop``, else a zoom about the centre
and a shift), the same darknet colour jitter and the same flip, with the same
formulas and defaults, so that `jax.vmap` applies it to a batch inside a jitted
program. An example is a dict of arrays: ``image`` [H, W, 3] float32 in [0, 1],
``boxes`` [M, 4] normalised xyxy, ``labels`` [M] int32, ``mask`` [M] bool.

Both geometries are one map ``p -> scale * p + offset`` of normalised coordinates,
so one resampling serves both: ``jax.image.scale_and_translate`` with a linear,
antialiased kernel, the numbers of `jaxheads.data.augment.scale_translate` where
the output looks at the source image. Where it looks past it the output shows
``fill``; the host version blends ``fill`` by the fraction of the pixel's footprint
outside the source, this one shows it in whole pixels (those whose centre samples
outside). Boxes follow the host rule: kept when their centre lands inside,
clipped, dropped when less than ``min_box_size`` pixels wide or high, the kept
rows moved to the front.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxheads._checks import fail

__all__ = [
    "DeviceAugment",
    "flip_horizontal_device",
    "hsv_jitter_device",
    "scale_translate_device",
]

Example = dict[str, jax.Array]


def _check_example(op: str, example: Example) -> None:
    for key in ("image", "boxes", "labels", "mask"):
        if key not in example:
            fail(op, "an example with image, boxes, labels and mask", sorted(example))
    image, boxes = example["image"], example["boxes"]
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != jnp.float32:
        fail(op, "image [H, W, 3] float32", f"{image.shape} {image.dtype}")
    m = example["mask"].shape
    if boxes.shape != (*m, 4) or len(m) != 1 or example["labels"].shape != m:
        fail(
            op,
            "boxes [M, 4], labels [M] and mask [M]",
            f"{boxes.shape}, {example['labels'].shape}, {m}",
        )


def _pack(keep: jax.Array, *rows: jax.Array) -> tuple[jax.Array, ...]:
    """Moves the rows where ``keep`` holds to the front, in order; zeroes the rest."""
    order = jnp.argsort(~keep, stable=True)
    kept = keep[order]
    out = []
    for r in rows:
        moved = r[order]
        mask = kept.reshape(kept.shape + (1,) * (moved.ndim - 1))
        out.append(jnp.where(mask, moved, jnp.zeros_like(moved)))
    return (*out, kept)


def scale_translate_device(
    example: Example,
    scale: jax.Array,
    offset: jax.Array,
    *,
    fill: float = 0.5,
    min_box_size: float = 1.0,
) -> Example:
    """Maps normalised coordinates by ``p -> scale * p + offset``; same output size.

    Args:
      example: one example (the module docstring).
      scale: [2] (s_x, s_y) > 0; above 1 zooms in.
      offset: [2] (t_x, t_y), fractions of the output's width and height.
      fill: what the output shows past the source image.
      min_box_size: boxes narrower or lower than this many pixels after clipping
        are dropped.
    """
    _check_example("scale_translate_device", example)
    image = example["image"]
    h, w, _ = image.shape
    scale = jnp.asarray(scale, jnp.float32)
    offset = jnp.asarray(offset, jnp.float32)
    if scale.shape != (2,) or offset.shape != (2,):
        fail("scale_translate_device", "scale [2] and offset [2]", (scale.shape, offset.shape))
    size = jnp.array([w, h], jnp.float32)
    # Resampling (image - fill) shows 0, hence fill, past the source.
    moved = jax.image.scale_and_translate(
        image - jnp.float32(fill),
        image.shape,
        (0, 1),
        scale[::-1],
        (offset * size)[::-1],
        method="linear",
        antialias=True,
    ) + jnp.float32(fill)
    boxes = example["boxes"] * jnp.tile(scale, 2)[None, :] + jnp.tile(offset, 2)[None, :]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    clipped = jnp.clip(boxes, 0.0, 1.0)
    size_px = (clipped[:, 2:] - clipped[:, :2]) * size[None, :]
    keep = (
        example["mask"]
        & jnp.all((centre > 0.0) & (centre < 1.0), axis=1)
        & jnp.all(size_px >= min_box_size, axis=1)
    )
    boxes, labels, mask = _pack(keep, clipped, example["labels"])
    return {**example, "image": moved, "boxes": boxes, "labels": labels, "mask": mask}


def flip_horizontal_device(example: Example) -> Example:
    """Mirrors the image left to right; box x-coordinates become ``1 - x``."""
    _check_example("flip_horizontal_device", example)
    b = example["boxes"]
    flipped = jnp.stack([1 - b[:, 2], b[:, 1], 1 - b[:, 0], b[:, 3]], axis=1)
    boxes = jnp.where(example["mask"][:, None], flipped, 0.0)
    return {**example, "image": example["image"][:, ::-1], "boxes": boxes}


def _rgb_to_hsv(rgb: jax.Array) -> jax.Array:
    """[..., 3] RGB in [0, 1] -> HSV, hue in turns (as `jaxheads.data.augment`)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = jnp.maximum(jnp.maximum(r, g), b)
    delta = v - jnp.minimum(jnp.minimum(r, g), b)
    s = jnp.where(v > 0, delta / jnp.where(v > 0, v, 1.0), 0.0)
    safe = jnp.where(delta > 0, delta, 1.0)
    h = jnp.where(v == r, (g - b) / safe, jnp.where(v == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    h = jnp.where(delta > 0, jnp.mod(h / 6, 1.0), 0.0)
    return jnp.stack([h, s, v], axis=-1)


def _hsv_to_rgb(hsv: jax.Array) -> jax.Array:
    h6, s, v = hsv[..., 0] * 6, hsv[..., 1], hsv[..., 2]
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = jnp.mod(h6 + n, 6.0)
        channels.append(v - v * s * jnp.clip(jnp.minimum(k, 4 - k), 0.0, 1.0))
    return jnp.stack(channels, axis=-1)


def hsv_jitter_device(
    example: Example, d_hue: jax.Array, d_sat: jax.Array, d_exp: jax.Array
) -> Example:
    """Shifts the hue by ``d_hue`` turns, scales saturation and value; clips to [0, 1]."""
    _check_example("hsv_jitter_device", example)
    hsv = _rgb_to_hsv(example["image"])
    h = jnp.mod(hsv[..., 0] + d_hue, 1.0)
    shifted = jnp.stack([h, hsv[..., 1] * d_sat, hsv[..., 2] * d_exp], axis=-1)
    return {**example, "image": jnp.clip(_hsv_to_rgb(shifted), 0.0, 1.0)}


def _log_uniform(key, low: float, high: float, shape=()) -> jax.Array:
    lo, hi = jnp.log(jnp.float32(low)), jnp.log(jnp.float32(high))
    return jnp.exp(jax.random.uniform(key, shape, jnp.float32, lo, hi))


def _darknet_scale(key, limit: float) -> jax.Array:
    """darknet's ``rand_scale``: uniform in [1, limit], inverted half the time."""
    k_s, k_inv = jax.random.split(key)
    s = jax.random.uniform(k_s, (), jnp.float32, 1.0, limit)
    return jnp.where(jax.random.uniform(k_inv) < 0.5, s, 1.0 / s)


@dataclasses.dataclass(frozen=True)
class DeviceAugment:
    """The default training augmentation (`jaxheads.data.augment.augment`) on the device.

    Called as ``augment(example, key) -> example``: a pure function of the key,
    traced once per shape (the record is hashable, a static argument of a jitted
    function). The fields and their defaults are those of the host function.
    """

    flip: float = 0.5
    crop: float = 0.5
    crop_area: tuple[float, float] = (0.3, 1.0)
    crop_aspect_ratio: tuple[float, float] = (0.75, 1.333)
    scale: tuple[float, float] = (0.75, 1.25)
    translate: float = 0.2
    hue: float = 0.1
    saturation: float = 1.5
    exposure: float = 1.5
    fill: float = 0.5
    min_box_size: float = 1.0

    def __post_init__(self):
        for name in ("flip", "crop"):
            if not 0 <= getattr(self, name) <= 1:
                fail("DeviceAugment", f"{name} a probability in [0, 1]", getattr(self, name))
        for name in ("crop_area", "crop_aspect_ratio", "scale"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                fail("DeviceAugment", f"{name} = (low, high) with 0 < low <= high", (low, high))
        if self.saturation < 1 or self.exposure < 1:
            fail("DeviceAugment", "saturation and exposure >= 1", (self.saturation, self.exposure))

    def geometry(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(scale [2], offset [2])``: a random crop with probability ``crop``, else a zoom."""
        k_pick, k_area, k_ratio, k_x, k_y, k_scale, k_shift = jax.random.split(key, 7)
        area = jax.random.uniform(k_area, (), jnp.float32, *self.crop_area)
        ratio = _log_uniform(k_ratio, *self.crop_aspect_ratio)
        cw = jnp.minimum(1.0, jnp.sqrt(area * ratio))
        ch = jnp.minimum(1.0, jnp.sqrt(area / ratio))
        x0 = jax.random.uniform(k_x, (), jnp.float32) * (1.0 - cw)
        y0 = jax.random.uniform(k_y, (), jnp.float32) * (1.0 - ch)
        crop_scale = jnp.stack([1.0 / cw, 1.0 / ch])
        crop_offset = jnp.stack([-x0 / cw, -y0 / ch])
        s = _log_uniform(k_scale, *self.scale)
        shift = jax.random.uniform(k_shift, (2,), jnp.float32, -self.translate, self.translate)
        zoom_offset = 0.5 - 0.5 * s + shift
        cropping = jax.random.uniform(k_pick) < self.crop
        return (
            jnp.where(cropping, crop_scale, jnp.stack([s, s])),
            jnp.where(cropping, crop_offset, zoom_offset),
        )

    def __call__(self, example: Example, key: jax.Array) -> Example:
        _check_example("DeviceAugment", example)
        k_geometry, k_hue, k_sat, k_exp, k_flip = jax.random.split(key, 5)
        scale, offset = self.geometry(k_geometry)
        example = scale_translate_device(
            example, scale, offset, fill=self.fill, min_box_size=self.min_box_size
        )
        d_hue = jax.random.uniform(k_hue, (), jnp.float32, -self.hue, self.hue)
        example = hsv_jitter_device(
            example,
            d_hue,
            _darknet_scale(k_sat, self.saturation),
            _darknet_scale(k_exp, self.exposure),
        )
        flipped = flip_horizontal_device(example)
        flip = jax.random.uniform(k_flip) < self.flip
        return jax.tree.map(lambda a, b: jnp.where(flip, a, b), flipped, example)
