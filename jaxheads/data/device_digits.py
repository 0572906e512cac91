"""The digits scenes of `jaxheads.data.digits`, composited with `jax.numpy` on the device.

As on the host: a canvas with a random colour, a gradient and per-pixel noise,
and 1 to ``max_objects`` of scikit-learn's 8x8 handwritten digits, each scaled
up to a height in ``digit_size`` pixels and a width of 75-100% of it, in a
colour that stands out from the canvas, placed wholly inside the image where its
window (grown by a pixel) meets no earlier digit's (``placement_tries`` places,
all evaluated at once, the first free one taken). The glyph is scaled by linear
interpolation with half-pixel centres and clamped edges, written as two small
matrices (rows [H, 8], columns [W, 8]) around the 8x8 glyph: for an upscale these
are the numbers of `jaxheads.data.augment.resize`. A digit is drawn with the
opacity ``clip(1.5 ink, 0, 1)`` of its scaled ink, and pixels under 20% are not
drawn, so its box is the tight box of its drawn pixels.

The ``"train"`` and ``"val"`` splits draw disjoint source digits (the split of
`jaxheads.data.digits.split_indices`); the glyphs are constants of the program,
read from scikit-learn when it is traced.
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
from jaxheads.data.digits import DIGIT_NAMES, load_digit_images, split_indices

__all__ = ["DigitsSpec", "glyph_weights"]

_INK_THRESHOLD = 0.2
_GLYPH = 8


def glyph_weights(out: int, start: jax.Array, length: jax.Array) -> jax.Array:
    """[out, 8] linear-interpolation weights that scale 8 glyph pixels to ``length``.

    Row ``i`` samples the glyph at ``(i - start + 0.5) * 8 / length - 0.5``
    (clamped to the glyph) when ``start <= i < start + length``, and is zero
    elsewhere, so ``rows @ glyph @ cols.T`` places the scaled glyph in an image.
    """
    i = jnp.arange(out, dtype=jnp.float32)
    x = (i - start + 0.5) * (_GLYPH / length) - 0.5
    x = jnp.clip(x, 0.0, _GLYPH - 1.0)
    taps = jnp.arange(_GLYPH, dtype=jnp.float32)
    weights = jnp.maximum(0.0, 1.0 - jnp.abs(x[:, None] - taps[None, :]))
    inside = (i >= start) & (i < start + length)
    return jnp.where(inside[:, None], weights, 0.0)


@dataclasses.dataclass(frozen=True)
class DigitsSpec:
    """The settings of a device-drawn digits data set (those of `jaxheads.data.DigitsDataset`).

    Attributes:
      image_size: (H, W).
      max_boxes: M, the padded number of box rows.
      max_objects: at most this many digits per image (<= ``max_boxes``).
      digit_size: the range of a digit's height in pixels, >= 8 (an upscale).
      noise: the largest per-pixel noise amplitude.
      split: ``"train"`` or ``"val"``: disjoint streams and disjoint source digits.
      val_fraction: the fraction of the 1797 source digits held out for ``"val"``.
      placement_tries: places tried per digit.
    """

    image_size: tuple[int, int] = (96, 96)
    max_boxes: int = 8
    max_objects: int = 5
    digit_size: tuple[int, int] = (12, 40)
    noise: float = 0.05
    split: str = "train"
    val_fraction: float = 0.2
    placement_tries: int = 8

    def __post_init__(self):
        op = "DigitsSpec"
        check_scene_settings(op, self)
        if not _GLYPH <= self.digit_size[0] <= self.digit_size[1]:
            fail(op, f"digit_size = (low, high) with {_GLYPH} <= low <= high", self.digit_size)
        if not 0 < self.val_fraction < 1:
            fail(op, "val_fraction in (0, 1)", self.val_fraction)

    @property
    def class_names(self) -> tuple[str, ...]:
        return DIGIT_NAMES

    def glyphs(self) -> tuple[np.ndarray, np.ndarray]:
        """The split's source digits: [N, 8, 8] float32 ink and [N] int32 values."""
        images, targets = load_digit_images()
        pool = split_indices(self.split, self.val_fraction)
        return images[pool], targets[pool]

    def draw(self, key: jax.Array) -> DeviceScene:
        """One scene from ``key`` (the module docstring)."""
        h, w = self.image_size
        n_obj, tries = self.max_objects, self.placement_tries
        glyphs, values = (jnp.asarray(a) for a in self.glyphs())
        k_colour, k_count, k_objects, k_noise = jax.random.split(key, 4)
        base, gx, gy = jax.random.uniform(k_colour, (3, 3), jnp.float32)
        ys = jnp.arange(h, dtype=jnp.float32) / h - 0.5
        xs = jnp.arange(w, dtype=jnp.float32) / w - 0.5
        image = (
            base[None, None, :]
            + ((gy - 0.5) / 2)[None, None, :] * ys[:, None, None]
            + ((gx - 0.5) / 2)[None, None, :] * xs[None, :, None]
        )
        count = jax.random.randint(k_count, (), 1, n_obj + 1)
        r = jax.random.uniform(k_objects, (n_obj, 1 + 24 + 2 + 2 * tries), jnp.float32)
        lo, hi = self.digit_size

        def place(carry, k):
            painted, instances, windows, present, labels = carry
            row = r[k]
            source = jnp.minimum((row[0] * glyphs.shape[0]).astype(jnp.int32), glyphs.shape[0] - 1)
            colour = pick_colour(row[1:25].reshape(8, 3), base, 0.4)
            dh = jnp.minimum(h, jnp.floor(lo + row[25] * (hi - lo + 1)))
            dw = jnp.minimum(w, jnp.maximum(1.0, jnp.round(dh * (0.75 + 0.25 * row[26]))))
            ry, rx = row[27:].reshape(tries, 2).T
            r0 = jnp.floor(ry * (h - dh + 1))
            c0 = jnp.floor(rx * (w - dw + 1))
            # A try is free when its window grown by a pixel meets no earlier window.
            R0, C0, DH, DW = (windows[:, j][None, :] for j in range(4))
            meets = (
                (r0[:, None] - 1 < R0 + DH)
                & (R0 < r0[:, None] + dh + 1)
                & (c0[:, None] - 1 < C0 + DW)
                & (C0 < c0[:, None] + dw + 1)
                & present[None, :]
            )
            free = ~jnp.any(meets, axis=1)
            t = jnp.argmax(free)
            top, left = r0[t], c0[t]
            ink = glyph_weights(h, top, dh) @ glyphs[source] @ glyph_weights(w, left, dw).T
            alpha = jnp.clip(1.5 * ink, 0.0, 1.0)
            alpha = jnp.where(alpha < _INK_THRESHOLD, 0.0, alpha)
            drawn = alpha > 0
            placed = (k < count) & free[t] & jnp.any(drawn)
            alpha = jnp.where(placed, alpha, 0.0)
            painted = painted + alpha[..., None] * (colour[None, None, :] - painted)
            instances = jnp.where(drawn & placed, k, instances)
            windows = windows.at[k].set(jnp.stack([top, left, dh, dw]))
            present = present.at[k].set(placed)
            labels = labels.at[k].set(values[source])
            return (painted, instances, windows, present, labels), None

        start = (
            image,
            jnp.full((h, w), -1, jnp.int32),
            jnp.zeros((n_obj, 4), jnp.float32),
            jnp.zeros((n_obj,), bool),
            jnp.zeros((n_obj,), jnp.int32),
        )
        (painted, instances, _, present, labels), _ = jax.lax.scan(place, start, jnp.arange(n_obj))
        return finish_scene(k_noise, self, image, painted, instances, present, labels)
