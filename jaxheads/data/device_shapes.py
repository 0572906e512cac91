"""The shapes scenes of `jaxheads.data.shapes`, rasterised with `jax.numpy` on the device.

The same kind of scene as the host's, drawn over a coordinate grid with masks
and without a Python loop over pixels: a background colour with a linear
gradient, a faint sinusoidal grating and up to three thin line segments (pixels
within a half-width of a segment); then 1 to ``max_objects`` filled shapes
(circle, square, triangle, diamond, cross: inside-tests of the pixel centres in
coordinates where the shape spans [-1, 1]^2), each with a side log-uniform in
``size``, an aspect ratio in [0.75, 1.33] and a colour that stands out from the
background; then per-pixel noise. As on the host, a later shape may hide at most
a third of an earlier one, and each shape tries ``placement_tries`` places (all
evaluated at once) and takes the first allowed one; the first shape's last try is
the image centre. The random numbers come from a `jax.random` key, so the images
are not the host's images: the distribution is the same.

A box is the tight box of the pixels where its shape is visible in the final
image (`jaxheads.data.device_pipeline.tight_boxes`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads._checks import fail
from jaxheads.data.device_pipeline import (
    DeviceScene,
    check_scene_settings,
    finish_scene,
    pick_colour,
)
from jaxheads.data.shapes import SHAPE_NAMES

__all__ = ["ShapesSpec"]

# A later shape may hide at most 1 / _OCCLUSION_DIVISOR of an earlier one's visible pixels.
_OCCLUSION_DIVISOR = 3
_MIN_PIXELS = 12
_LINES = 3


def _shape_masks(u: jax.Array, v: jax.Array) -> jax.Array:
    """[5, ...] inside-tests of the five shapes at ``(u, v)``, their extent [-1, 1]^2."""
    au, av = jnp.abs(u), jnp.abs(v)
    big, small = jnp.maximum(au, av), jnp.minimum(au, av)
    return jnp.stack(
        [
            u * u + v * v <= 1.0,
            big <= 1.0,
            (v <= 1.0) & (au <= (v + 1.0) / 2),  # apex up: rows grow downwards
            au + av <= 1.0,
            (big <= 1.0) & (small <= 1.0 / 3.0),
        ]
    )


def background(key: jax.Array, h: int, w: int) -> tuple[jax.Array, jax.Array]:
    """The cluttered background [H, W, 3] and its base colour [3]."""
    k_colour, k_wave, k_lines = jax.random.split(key, 3)
    base, gx, gy = jax.random.uniform(k_colour, (3, 3), jnp.float32)
    freq, angle, amp, phase, num_lines = jax.random.uniform(k_wave, (5,), jnp.float32)
    ys = jnp.arange(h, dtype=jnp.float32) / h - 0.5
    xs = jnp.arange(w, dtype=jnp.float32) / w - 0.5
    image = (
        base[None, None, :]
        + ((gy - 0.5) / 2)[None, None, :] * ys[:, None, None]
        + ((gx - 0.5) / 2)[None, None, :] * xs[None, :, None]
    )
    k = 2 * jnp.pi * (2.0 + 10.0 * freq)
    angle = angle * jnp.pi
    wave = jnp.sin(
        xs[None, :] * (k * jnp.cos(angle)) + ys[:, None] * (k * jnp.sin(angle)) + 2 * jnp.pi * phase
    )
    image = image + (0.08 * amp) * wave[..., None]
    # Up to three thin segments: edges that belong to no class.
    lines = jax.random.uniform(k_lines, (_LINES, 8), jnp.float32)
    px = jnp.arange(w, dtype=jnp.float32)[None, :] + 0.5
    py = jnp.arange(h, dtype=jnp.float32)[:, None] + 0.5
    for j in range(_LINES):
        x0, y0, x1, y1 = lines[j, 0] * w, lines[j, 1] * h, lines[j, 2] * w, lines[j, 3] * h
        half_width = 0.5 + 0.7 * lines[j, 4]
        dx, dy = x1 - x0, y1 - y0
        t = jnp.clip(((px - x0) * dx + (py - y0) * dy) / jnp.maximum(dx * dx + dy * dy, 1e-6), 0, 1)
        ex, ey = px - x0 - t * dx, py - y0 - t * dy
        on = (ex * ex + ey * ey <= half_width * half_width) & (j < jnp.floor(4 * num_lines))
        image = jnp.where(on[..., None], lines[j, 5:][None, None, :], image)
    return image, base


@dataclasses.dataclass(frozen=True)
class ShapesSpec:
    """The settings of a device-drawn shapes data set (those of `jaxheads.data.ShapesDataset`).

    Attributes:
      image_size: (H, W).
      max_boxes: M, the padded number of box rows.
      num_classes: 1..5, the first ``num_classes`` of `SHAPE_NAMES`.
      max_objects: at most this many shapes per image (<= ``max_boxes``).
      size: the range of a shape's mean side, in fractions of min(H, W).
      noise: the largest per-pixel noise amplitude.
      split: ``"train"`` or ``"val"``, disjoint random streams.
      placement_tries: places tried per shape.
    """

    image_size: tuple[int, int] = (96, 96)
    max_boxes: int = 8
    num_classes: int = 3
    max_objects: int = 6
    size: tuple[float, float] = (0.08, 0.6)
    noise: float = 0.06
    split: str = "train"
    placement_tries: int = 8

    def __post_init__(self):
        op = "ShapesSpec"
        check_scene_settings(op, self)
        if self.num_classes not in range(1, len(SHAPE_NAMES) + 1):
            fail(op, f"num_classes in 1..{len(SHAPE_NAMES)}", repr(self.num_classes))
        if not 0 < self.size[0] <= self.size[1]:
            fail(op, "size = (low, high) with 0 < low <= high", self.size)

    @property
    def class_names(self) -> tuple[str, ...]:
        return SHAPE_NAMES[: self.num_classes]

    def draw(self, key: jax.Array) -> DeviceScene:
        """One scene from ``key`` (the module docstring)."""
        h, w = self.image_size
        n_obj, tries = self.max_objects, self.placement_tries
        k_bg, k_count, k_objects, k_noise = jax.random.split(key, 4)
        image, base = background(k_bg, h, w)
        count = jax.random.randint(k_count, (), 1, n_obj + 1)
        # One draw an object: class, 8 candidate colours, 4 numbers a try.
        r = jax.random.uniform(k_objects, (n_obj, 1 + 24 + 4 * tries), jnp.float32)
        px = jnp.arange(w, dtype=jnp.float32) + 0.5
        py = jnp.arange(h, dtype=jnp.float32) + 0.5
        log_size = float(np.log(self.size[0])), float(np.log(self.size[1]))
        log_aspect = float(np.log(0.75)), float(np.log(4 / 3))
        side = min(h, w)

        def place(carry, k):
            painted, instances, visible, labels = carry
            row = r[k]
            kind = jnp.minimum((row[0] * self.num_classes).astype(jnp.int32), self.num_classes - 1)
            colour = pick_colour(row[1:25].reshape(8, 3), base, 0.35)
            rs, ra, rx, ry = row[25:].reshape(tries, 4).T
            mean_side = side * jnp.exp(log_size[0] + rs * (log_size[1] - log_size[0]))
            aspect = jnp.exp(log_aspect[0] + ra * (log_aspect[1] - log_aspect[0]))
            half_w = mean_side * jnp.sqrt(aspect) / 2
            half_h = mean_side / jnp.sqrt(aspect) / 2
            centre_last = (k == 0) & (jnp.arange(tries) == tries - 1)
            cx = jnp.where(centre_last, w / 2, rx * w)
            cy = jnp.where(centre_last, h / 2, ry * h)
            u = (px[None, None, :] - cx[:, None, None]) / half_w[:, None, None]
            v = (py[None, :, None] - cy[:, None, None]) / half_h[:, None, None]
            masks = _shape_masks(u, v)[kind]  # [T, H, W]
            area = jnp.sum(masks, axis=(1, 2))
            # covered[t, j]: pixels of object j that try t would hide, as one matmul.
            owners = jax.nn.one_hot(instances.reshape(-1), n_obj, dtype=jnp.float32)
            covered = masks.reshape(tries, -1).astype(jnp.float32) @ owners
            covered = covered.astype(jnp.int32)
            remaining = visible[None, :] - covered
            shown = visible[None, :] > 0
            allowed = (
                (area >= _MIN_PIXELS)
                & jnp.all(~shown | (covered * _OCCLUSION_DIVISOR <= visible[None, :]), axis=1)
                & jnp.all(~shown | (remaining >= _MIN_PIXELS), axis=1)
            )
            t = jnp.argmax(allowed)
            placed = (k < count) & allowed[t]
            mask = masks[t] & placed
            painted = jnp.where(mask[..., None], colour[None, None, :], painted)
            instances = jnp.where(mask, k, instances)
            visible = (
                jnp.where(placed, remaining[t], visible).at[k].set(jnp.where(placed, area[t], 0))
            )
            labels = labels.at[k].set(kind)
            return (painted, instances, visible, labels), None

        start = (
            image,
            jnp.full((h, w), -1, jnp.int32),
            jnp.zeros((n_obj,), jnp.int32),
            jnp.zeros((n_obj,), jnp.int32),
        )
        (painted, instances, visible, labels), _ = jax.lax.scan(place, start, jnp.arange(n_obj))
        return finish_scene(k_noise, self, image, painted, instances, visible > 0, labels)
