"""Tests for `jaxheads.data.augment`: boxes follow the pixels, determinism, resize parity."""

import colorsys
import functools

import jax
import numpy as np
import pytest

from jaxheads.data import augment as aug  # the module
from jaxheads.data.pipeline import pad_targets

SIZE = 48


def rectangle_example(x0=10, y0=14, x1=30, y1=26, max_boxes=3, size=SIZE):
    """A white rectangle on black covering pixel columns x0..x1-1 and rows y0..y1-1."""
    image = np.zeros((size, size, 3), np.float32)
    image[y0:y1, x0:x1] = 1.0
    ex = pad_targets(
        np.array([[x0, y0, x1, y1]], np.float32) / size,
        [2],
        max_boxes,
        difficult=np.array([True]),
    )
    ex["image"] = image
    return ex


def assert_box_matches_pixels(ex):
    """The kept box is where the rectangle's pixels are, to half a pixel."""
    assert ex["mask"][0] and not ex["mask"][1:].any()
    assert ex["labels"][0] == 2 and ex["difficult"][0]
    bright = ex["image"].mean(axis=-1) > 0.5
    rows = np.flatnonzero(bright.any(axis=1))
    cols = np.flatnonzero(bright.any(axis=0))
    extent = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)
    # A pixel is bright when its centre is inside the moved rectangle, so each
    # edge is within half a pixel of the box.
    np.testing.assert_allclose(extent, ex["boxes"][0] * SIZE, atol=0.5 + 1e-3)


def test_flip_moves_box_with_pixels_and_twice_is_identity():
    ex = rectangle_example()
    flipped = aug.flip_horizontal(ex)
    assert_box_matches_pixels(flipped)
    np.testing.assert_allclose(flipped["boxes"][0], [18 / SIZE, 14 / SIZE, 38 / SIZE, 26 / SIZE])
    assert not flipped["boxes"][1:].any(), "padding rows stay zero"
    again = aug.flip_horizontal(flipped)
    for key in ex:
        np.testing.assert_allclose(again[key], ex[key], atol=1e-6)


@pytest.mark.parametrize(
    "scale, offset",
    [(1.0, (0.1, -0.05)), (1.7, (-0.3, -0.4)), (0.55, (0.2, 0.1)), ((1.3, 0.8), (-0.1, 0.05))],
)
def test_scale_translate_moves_box_with_pixels(scale, offset):
    out = aug.scale_translate(rectangle_example(), scale, offset, fill=0.0)
    assert_box_matches_pixels(out)


def test_zoom_in_clips_box_to_the_image():
    # Zoom 2x about the top-left: the rectangle is cut by the right border.
    out = aug.scale_translate(rectangle_example(x0=12, x1=30), 2.0, (0.0, -0.2), fill=0.0)
    assert_box_matches_pixels(out)
    assert out["boxes"][0, 2] == 1.0


@pytest.mark.parametrize("seed", range(6))
def test_random_geometry_keeps_boxes_right(seed):
    rng = np.random.default_rng(seed)
    for op in (
        functools.partial(aug.random_crop, area=(0.3, 0.8)),
        functools.partial(aug.random_scale_translate, scale=(0.5, 2.0), fill=0.0),
    ):
        out = op(rectangle_example(), rng)
        if out["mask"][0]:
            assert_box_matches_pixels(out)
        else:
            assert not out["boxes"].any() and not out["labels"].any()


def test_full_augment_keeps_boxes_right():
    kept = 0
    for seed in range(10):
        rng = np.random.default_rng([seed, 0, 1])
        # Colour off: exposure moves the half-brightness threshold off the edge.
        out = aug.augment(rectangle_example(), rng, fill=0.0, saturation=1.0, exposure=1.0)
        if out["mask"][0]:
            assert_box_matches_pixels(out)
            kept += 1
    assert kept >= 5


def test_boxes_are_filtered_packed_and_repadded():
    ex = rectangle_example(max_boxes=5)
    ex["boxes"][:4] = np.array(
        [[0.1, 0.1, 0.3, 0.3], [0.7, 0.7, 0.95, 0.95], [0.4, 0.5, 0.5, 0.6], [0.25, 0, 0.45, 0.2]],
        np.float32,
    )
    ex["labels"][:4] = [4, 5, 6, 7]
    ex["difficult"][:4] = [False, True, False, True]
    ex["mask"][:4] = True
    # Shift left by 0.3: box 0's centre (0.2) leaves the image; the others stay, box 3
    # (centre 0.35 -> 0.05) is clipped at the left border.
    out = aug.scale_translate(ex, 1.0, (-0.3, 0.0))
    np.testing.assert_array_equal(out["mask"], [True, True, True, False, False])
    np.testing.assert_array_equal(out["labels"], [5, 6, 7, 0, 0])
    np.testing.assert_array_equal(out["difficult"], [True, False, True, False, False])
    want = [[0.4, 0.7, 0.65, 0.95], [0.1, 0.5, 0.2, 0.6], [0.0, 0.0, 0.15, 0.2]]
    np.testing.assert_allclose(out["boxes"][:3], want, atol=1e-6)
    assert not out["boxes"][3:].any()


def test_tiny_boxes_are_dropped():
    ex = rectangle_example(x0=20, y0=20, x1=22, y1=22)  # 2x2 pixels
    assert aug.scale_translate(ex, 0.6, (0.2, 0.2))["mask"][0]  # 1.2 px
    assert not aug.scale_translate(ex, 0.4, (0.3, 0.3))["mask"][0]  # 0.8 px


@pytest.mark.parametrize("shape, size", [((20, 30, 3), (48, 17)), ((37, 50, 3), (12, 12))])
def test_resize_equals_jax_image_resize(shape, size):
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    want = jax.image.resize(image, (*size, 3), "linear", antialias=True)
    np.testing.assert_allclose(aug.resize(image, size), want, rtol=1e-5, atol=1e-6)


def test_resize_to_same_size_is_identity():
    image = np.random.default_rng(1).random((9, 13, 3), dtype=np.float32)
    np.testing.assert_allclose(aug.resize(image, (9, 13)), image, atol=1e-6)


def test_hsv_round_trip_and_colorsys_parity():
    rgb = np.random.default_rng(2).random((50, 3)).astype(np.float32)
    hsv = aug._rgb_to_hsv(rgb)
    want = np.array([colorsys.rgb_to_hsv(*p) for p in rgb.astype(np.float64)])
    np.testing.assert_allclose(hsv, want, atol=1e-6)
    np.testing.assert_allclose(aug._hsv_to_rgb(hsv), rgb, atol=1e-6)


def test_hsv_jitter_identity_settings_and_range():
    ex = rectangle_example()
    ex["image"] = np.random.default_rng(3).random((SIZE, SIZE, 3), dtype=np.float32)
    same = aug.hsv_jitter(ex, np.random.default_rng(0), hue=0.0, saturation=1.0, exposure=1.0)
    np.testing.assert_allclose(same["image"], ex["image"], atol=1e-6)
    moved = aug.hsv_jitter(ex, np.random.default_rng(0), hue=0.2, saturation=2.0, exposure=2.0)
    assert not np.allclose(moved["image"], ex["image"])
    assert 0.0 <= moved["image"].min() and moved["image"].max() <= 1.0
    assert moved["image"].dtype == np.float32
    np.testing.assert_array_equal(moved["boxes"], ex["boxes"])


def test_augment_is_deterministic_per_rng_seed():
    ex = rectangle_example()
    ex["image"] = np.random.default_rng(4).random((SIZE, SIZE, 3), dtype=np.float32)
    a = aug.augment(ex, np.random.default_rng([7, 1, 3]))
    b = aug.augment(ex, np.random.default_rng([7, 1, 3]))
    c = aug.augment(ex, np.random.default_rng([7, 2, 3]))
    for key in ex:
        np.testing.assert_array_equal(a[key], b[key])
        assert a[key].dtype == ex[key].dtype and a[key].shape == ex[key].shape
    assert not np.array_equal(a["image"], c["image"])


def test_scale_translate_rejects_non_positive_scale():
    with pytest.raises(ValueError, match="scale_translate: expected positive scales"):
        aug.scale_translate(rectangle_example(), 0.0, (0.0, 0.0))


def _numpy_resample(image, out_hw, scale_yx, offset_yx, fill):
    """The numpy passes over the whole output, then the blend with ``fill`` by coverage."""
    h, w, _ = image.shape
    iy, wy, cy = aug._resample_taps(out_hw[0], h, scale_yx[0], offset_yx[0])
    ix, wx, cx = aug._resample_taps(out_hw[1], w, scale_yx[1], offset_yx[1])
    out = aug._resample_numpy(image, (iy, wy), (ix, wx))
    coverage = (cy[:, None] * cx[None, :])[..., None]
    return out * coverage + np.float32(fill) * (1.0 - coverage)


@pytest.mark.parametrize("seed", range(4))
def test_pillow_resample_equals_the_numpy_passes(seed):
    """Pillow resamples the covered rectangle; the edges and fill stay the numpy rule."""
    rng = np.random.default_rng(seed)
    for _ in range(40):
        h, w = rng.integers(3, 60, size=2)
        image = rng.random((h, w, 3), dtype=np.float32)
        out_hw = tuple(int(n) for n in rng.integers(2, 50, size=2))
        scale = np.exp(rng.uniform(-1.2, 1.2, size=2)) * np.array(out_hw) / (h, w)
        offset = rng.uniform(-0.5, 0.5, size=2) * np.array(out_hw)
        fill = float(rng.random())
        got = aug._resample(image, out_hw, tuple(scale), tuple(offset), fill, pillow=True)
        want = _numpy_resample(image, out_hw, tuple(scale), tuple(offset), fill)
        assert got.dtype == np.float32 and got.shape == (*out_hw, 3)
        # Pillow sums in float64, the numpy passes in float32.
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_scale_translate_inside_equals_jax_scale_and_translate():
    """Where the output lies on the source, the pixels are jax's antialiased linear map."""
    image = np.random.default_rng(5).random((40, 56, 3), dtype=np.float32)
    out = aug.scale_translate({**rectangle_example(), "image": image}, (1.6, 1.3), (-0.4, -0.2))
    scale = np.array([1.3, 1.6], np.float32)
    want = jax.image.scale_and_translate(
        image, (40, 56, 3), (0, 1), scale, np.array([-0.2 * 40, -0.4 * 56], np.float32), "linear"
    )
    np.testing.assert_allclose(out["image"], want, rtol=0, atol=1e-5)


def _reference_hsv_jitter(image, d_hue, d_sat, d_exp):
    """`hsv_jitter`'s arithmetic spelled out with `_rgb_to_hsv` and `_hsv_to_rgb`."""
    hsv = aug._rgb_to_hsv(image)
    h = (hsv[..., 0] + np.float32(d_hue)) % 1.0
    s = hsv[..., 1] * np.float32(d_sat)
    v = hsv[..., 2] * np.float32(d_exp)
    return np.clip(aug._hsv_to_rgb(np.stack([h, s, v], axis=-1)), 0.0, 1.0).astype(np.float32)


@pytest.mark.parametrize("d_hue", [0.0, 0.07, -0.1, 0.5, -0.99, 1.7])
def test_hsv_jitter_equals_the_hsv_round_trip_bit_for_bit(d_hue):
    rng = np.random.default_rng(6)
    image = rng.random((30, 33, 3), dtype=np.float32)
    # Ties between channels, grays, black and white: every branch of the hue.
    levels = (rng.integers(0, 4, size=image.shape) / 3).astype(np.float32)
    image[:10] = levels[:10]
    image[10:15] = image[10:15, :, :1]
    for d_sat, d_exp in ((1.0, 1.0), (1.4, 1 / 1.3), (1 / 1.5, 1.5), (3.0, 2.0)):
        got = aug._jitter_hsv(image, d_hue, d_sat, d_exp)
        np.testing.assert_array_equal(got, _reference_hsv_jitter(image, d_hue, d_sat, d_exp))


def test_resample_without_pillow_is_the_numpy_passes(monkeypatch):
    image = np.random.default_rng(7).random((21, 17, 3), dtype=np.float32)
    args = ((19, 23), (0.8, 1.5), (3.0, -2.5), 0.25)
    with_pillow = aug._resample(image, *args, pillow=True)
    monkeypatch.setattr(aug, "_pillow_available", lambda: False)
    without = aug._resample(image, *args, pillow=True)
    np.testing.assert_array_equal(without, _numpy_resample(image, *args))
    np.testing.assert_allclose(with_pillow, without, rtol=0, atol=1e-5)


def test_the_augmentation_resamples_with_numpy_whatever_is_installed():
    """The embedded data sets' pixels do not depend on Pillow: only ``resize(pillow=True)``
    (the data sets read from files) takes Pillow's path."""
    image = np.random.default_rng(8).random((21, 17, 3), dtype=np.float32)
    example = {
        "image": image,
        "boxes": np.zeros((1, 4), np.float32),
        "labels": np.zeros((1,), np.int32),
        "mask": np.zeros((1,), bool),
    }
    moved = aug.scale_translate(example, (1.3, 0.8), (-0.1, 0.2), fill=0.25)
    want = _numpy_resample(image, (21, 17), (0.8, 1.3), (0.2 * 21, -0.1 * 17), 0.25)
    np.testing.assert_array_equal(moved["image"], want)
    np.testing.assert_array_equal(
        aug.resize(image, (9, 30)),
        _numpy_resample(image, (9, 30), (9 / 21, 30 / 17), (0.0, 0.0), 0.0),
    )
