"""Procedural data drawn on the device: reproducible streams, true boxes, checks, resume."""

import colorsys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxheads.data import (
    DeviceAugment,
    DeviceBatches,
    DeviceDataset,
    DigitsSpec,
    ShapesDataset,
    ShapesSpec,
    draw_batch,
    draw_example,
)
from jaxheads.data.augment import flip_horizontal, scale_translate
from jaxheads.data.device_augment import (
    _rgb_to_hsv,
    flip_horizontal_device,
    scale_translate_device,
)
from jaxheads.data.device_digits import glyph_weights
from jaxheads.data.device_pipeline import example_key

# One small spec of each kind, so that every test reuses the same compiled programs.
SIZE = 32
SPECS = {
    "shapes": ShapesSpec(image_size=(SIZE, SIZE), max_boxes=6, max_objects=6),
    "digits": DigitsSpec(image_size=(SIZE, SIZE), max_boxes=6, digit_size=(8, 16), max_objects=4),
}
AUGMENT = DeviceAugment()


def _batch(spec, indices, epochs=None, augment=None, seed=3):
    indices = np.asarray(indices, np.int32)
    epochs = np.zeros_like(indices) if epochs is None else np.asarray(epochs, np.int32)
    return jax.device_get(draw_batch(spec, np.uint32(seed), indices, epochs, np.uint32(7), augment))


def _rows(batch, i):
    return {k: v[i] for k, v in batch.items()}


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("augment", [None, AUGMENT], ids=["plain", "augmented"])
def test_an_example_is_the_same_in_any_run_and_any_batch_position(name, augment):
    spec = SPECS[name]
    first = _batch(spec, np.arange(8), augment=augment)
    again = _batch(spec, np.arange(8), augment=augment)
    jax.tree.map(np.testing.assert_array_equal, first, again)
    # The same examples in other positions, among others.
    shuffled = [5, 100, 0, 7, 3, 2, 6, 1]
    other = _batch(spec, shuffled, augment=augment)
    for position, index in enumerate(shuffled):
        if index < 8:
            jax.tree.map(np.testing.assert_array_equal, _rows(other, position), _rows(first, index))
    # Another epoch, seed or index draws another example.
    assert not np.array_equal(first["image"][0], first["image"][1])
    assert not np.array_equal(
        first["image"], _batch(spec, np.arange(8), seed=4, augment=augment)["image"]
    )
    if augment is not None:
        later = _batch(spec, np.arange(8), epochs=np.ones(8), augment=augment)
        assert not np.array_equal(first["image"], later["image"])


@pytest.mark.parametrize("name", sorted(SPECS))
def test_an_example_alone_equals_its_row_of_a_batch(name):
    spec = SPECS[name]
    batch = _batch(spec, np.arange(8))
    for i in (0, 5):
        scene = jax.device_get(draw_example(spec, np.uint32(3), np.int32(i)))
        np.testing.assert_allclose(scene.image, batch["image"][i], atol=1e-6)
        np.testing.assert_array_equal(scene.boxes, batch["boxes"][i])
        np.testing.assert_array_equal(scene.labels, batch["labels"][i])
        assert int(scene.count) == batch["mask"][i].sum()


def _tight_box(pixels: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    h, w = pixels.shape
    return np.array([cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h], np.float32)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_boxes_are_the_tight_boxes_of_pixels_that_differ_from_the_background(name):
    spec = SPECS[name]
    classes = len(spec.class_names)
    scenes = jax.device_get(
        jax.vmap(lambda i: spec.draw(example_key(np.uint32(3), spec.split, i)))(jnp.arange(24))
    )
    assert scenes.image.shape == (24, SIZE, SIZE, 3) and scenes.image.dtype == np.float32
    assert scenes.boxes.shape == (24, 6, 4) and scenes.labels.dtype == np.int32
    assert np.all((scenes.image >= 0) & (scenes.image <= 1))
    assert np.all(scenes.count >= 1) and np.all(scenes.count <= spec.max_objects)
    assert len(set(scenes.count.tolist())) > 1
    for s in range(24):
        n = int(scenes.count[s])
        inst, image, clean = scenes.instances[s], scenes.image[s], scenes.background[s]
        assert set(np.unique(inst).tolist()) <= set(range(-1, n))
        np.testing.assert_array_equal(image[inst < 0], clean[inst < 0])
        for j in range(n):
            pixels = inst == j
            assert pixels.sum() >= 1
            np.testing.assert_array_equal(scenes.boxes[s, j], _tight_box(pixels))
            differs = np.any(image[pixels] != clean[pixels], axis=-1)
            assert differs.mean() > 0.9, (s, j)
        boxes = scenes.boxes[s, :n]
        assert np.all((boxes >= 0) & (boxes <= 1))
        assert np.all(boxes[:, 2:] > boxes[:, :2])
        assert np.all((scenes.labels[s, :n] >= 0) & (scenes.labels[s, :n] < classes))
        np.testing.assert_array_equal(scenes.boxes[s, n:], 0)
        np.testing.assert_array_equal(scenes.labels[s, n:], 0)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_augmented_boxes_stay_in_the_image_and_fill_a_prefix(name):
    batch = _batch(SPECS[name], np.arange(16), augment=AUGMENT)
    mask, boxes = batch["mask"], batch["boxes"]
    assert np.all(mask[:, 1:] <= mask[:, :-1])  # kept rows first
    assert np.all((boxes >= 0) & (boxes <= 1))
    assert np.all(boxes[mask][:, 2:] - boxes[mask][:, :2] >= 1 / SIZE - 1e-6)
    np.testing.assert_array_equal(boxes[~mask], 0)
    assert np.all((batch["image"] >= 0) & (batch["image"] <= 1))


def test_a_zoom_in_equals_the_host_scale_translate():
    rng = np.random.default_rng(0)
    example = ShapesDataset(4, image_size=SIZE, max_boxes=6).example(1)
    example["image"] = rng.random((SIZE, SIZE, 3), dtype=np.float32)
    scale, offset = (1.6, 1.3), (-0.3, -0.1)  # looks only inside the source
    host = scale_translate(example, scale, offset)
    device = jax.device_get(
        jax.jit(scale_translate_device)(
            {k: jnp.asarray(v) for k, v in example.items()}, jnp.array(scale), jnp.array(offset)
        )
    )
    np.testing.assert_allclose(device["image"], host["image"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(device["mask"], host["mask"])
    np.testing.assert_allclose(device["boxes"], host["boxes"], atol=1e-6)
    np.testing.assert_array_equal(device["labels"], host["labels"])
    flipped = jax.device_get(flip_horizontal_device({k: jnp.asarray(v) for k, v in host.items()}))
    for k, v in flip_horizontal(host).items():
        np.testing.assert_array_equal(flipped[k], v)


def test_hsv_matches_colorsys():
    rgb = np.random.default_rng(1).random((64, 3), dtype=np.float32)
    rgb[:4] = [[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1, 0, 0]]
    want = np.array([colorsys.rgb_to_hsv(*p) for p in rgb.tolist()], np.float32)
    np.testing.assert_allclose(jax.device_get(_rgb_to_hsv(jnp.asarray(rgb))), want, atol=1e-6)


@pytest.mark.parametrize("size", [(8, 8), (12, 9), (16, 13), (40, 30)])
def test_a_glyph_scales_as_jax_image_resize(size):
    glyph = np.random.default_rng(2).random((8, 8), dtype=np.float32)
    h, w = size
    rows = glyph_weights(h + 3, jnp.float32(2), jnp.float32(h))
    cols = glyph_weights(w + 1, jnp.float32(1), jnp.float32(w))
    placed = np.array(rows @ glyph @ cols.T)
    want = jax.image.resize(glyph, (h, w), "linear", antialias=True)
    np.testing.assert_allclose(placed[2 : 2 + h, 1 : 1 + w], want, atol=1e-6)
    placed[2 : 2 + h, 1 : 1 + w] = 0
    np.testing.assert_array_equal(placed, 0)


def test_bad_input_is_refused_at_trace_time():
    spec = SPECS["shapes"]
    with pytest.raises(ValueError, match="draw_batch: expected indices an integer array of rank 1"):
        draw_batch(spec, np.uint32(0), np.zeros(4, np.float32), np.zeros(4, np.int32))
    with pytest.raises(
        ValueError, match=r"draw_batch: expected epochs of the indices' shape \(4,\)"
    ):
        draw_batch(spec, np.uint32(0), np.zeros(4, np.int32), np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="draw_example: expected index an integer array of rank 0"):
        draw_example(spec, np.uint32(0), np.zeros(2, np.int32))
    with pytest.raises(ValueError, match="ShapesSpec: expected num_classes in 1..5, got 9"):
        ShapesSpec(num_classes=9)
    with pytest.raises(ValueError, match="max_objects <= max_boxes=4"):
        ShapesSpec(max_boxes=4, max_objects=6)
    with pytest.raises(ValueError, match="DigitsSpec: expected digit_size"):
        DigitsSpec(digit_size=(4, 20))
    with pytest.raises(ValueError, match="DeviceAugment: expected flip a probability"):
        DeviceAugment(flip=2.0)
    with pytest.raises(
        ValueError, match="DeviceBatches: expected a DeviceDataset, got ShapesDataset"
    ):
        DeviceBatches(ShapesDataset(8, image_size=SIZE), 4, seed=0)
    with pytest.raises(
        ValueError, match=r"DeviceDataset: expected seed an integer in \[0, 2\*\*32\)"
    ):
        DeviceDataset(spec, 8, seed=2**32)
    with pytest.raises(ValueError, match="DeviceDataset: expected split in"):
        DeviceDataset(ShapesSpec(split="test"), 8)
    with pytest.raises(ValueError, match="scale_translate_device: expected image"):
        scale_translate_device(
            {"image": jnp.zeros((3, 8, 8)), "boxes": jnp.zeros((2, 4)),
             "labels": jnp.zeros(2, jnp.int32), "mask": jnp.zeros(2, bool)},
            jnp.ones(2), jnp.zeros(2),
        )  # fmt: skip


def test_batches_resumed_at_a_step_are_the_uninterrupted_batches():
    data = DeviceDataset(SPECS["digits"], 12, seed=1)
    with DeviceBatches(data, 8, seed=5, augment=AUGMENT, drop_remainder=False) as batches:
        run = [jax.device_get(next(batches)) for _ in range(4)]
    with DeviceBatches(data, 8, seed=5, augment=AUGMENT, drop_remainder=False, start_step=3) as b:
        jax.tree.map(np.testing.assert_array_equal, jax.device_get(next(b)), run[3])
    # 12 examples in batches of 8: the second batch of each epoch pads 4 blank rows.
    np.testing.assert_array_equal(run[1]["valid"], [True] * 4 + [False] * 4)
    assert not run[1]["image"][4:].any() and not run[1]["mask"][4:].any()
    # The epoch changes the augmentation, not the examples.
    assert not np.array_equal(run[0]["image"], run[2]["image"])


def test_the_host_view_of_an_example_has_the_pipeline_format():
    from jaxheads.train.detection import make_dataset

    data = make_dataset("shapes-device", "val", image_size=SIZE, num_examples=5, max_boxes=6)
    assert isinstance(data, DeviceDataset) and data.class_names == ("circle", "square", "triangle")
    example = data.example(4)
    assert {k: (v.shape, v.dtype) for k, v in example.items()} == {
        "image": ((SIZE, SIZE, 3), np.float32),
        "boxes": ((6, 4), np.float32),
        "labels": ((6,), np.int32),
        "mask": ((6,), np.bool_),
    }
    with pytest.raises(IndexError, match=r"expected an index in \[0, 5\)"):
        data.example(5)
    train = make_dataset("shapes-device", "train", image_size=SIZE, num_examples=5, max_boxes=6)
    assert not np.array_equal(train.example(4)["image"], example["image"])


@pytest.mark.slow
def test_a_run_resumed_from_a_checkpoint_matches_the_uninterrupted_run(tmp_path):
    from jaxheads.train.detection import build_detector, detection_task, make_dataset
    from jaxheads.train.loop import RunConfig, fit

    detector, init = build_detector("small-yolov2", image_size=SIZE, num_classes=10)
    train = make_dataset("digits-device", "train", image_size=SIZE, num_examples=8)
    task = detection_task(detector, init, train, batch_size=4, seed=0, augment=True)

    def run(workdir, steps):
        cfg = RunConfig(
            workdir=str(workdir),
            steps=steps,
            num_devices=1,
            policy="constant",
            learning_rate=1e-3,
            checkpoint_every=2,
            log_every=1,
            progress=False,
        )
        return fit(task, cfg)

    whole = run(tmp_path / "whole", 5)
    assert run(tmp_path / "resumed", 3)["step"] == 3  # 2 steps an epoch: stops in epoch 1
    resumed = run(tmp_path / "resumed", 5)
    assert resumed["step"] == 5
    jax.tree.map(np.testing.assert_array_equal, resumed["params"], whole["params"])
    jax.tree.map(np.testing.assert_array_equal, resumed["state"], whole["state"])
