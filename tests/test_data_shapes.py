"""Tests for `jaxheads.data.shapes`: determinism, tight boxes, the example format."""

import doctest

import numpy as np
import pytest

import jaxheads.data.shapes as shapes_module
from jaxheads.data import SHAPE_NAMES, ShapesDataset


def check_example_format(ex, image_size, max_boxes, num_classes):
    """The conventions of `jaxheads.data.pipeline`, for one example."""
    assert ex["image"].shape == (*image_size, 3) and ex["image"].dtype == np.float32
    assert ex["boxes"].shape == (max_boxes, 4) and ex["boxes"].dtype == np.float32
    assert ex["labels"].shape == (max_boxes,) and ex["labels"].dtype == np.int32
    assert ex["mask"].shape == (max_boxes,) and ex["mask"].dtype == np.bool_
    assert 0.0 <= ex["image"].min() and ex["image"].max() <= 1.0
    n = int(ex["mask"].sum())
    assert ex["mask"][:n].all(), "objects must fill a prefix of the rows"
    boxes, labels = ex["boxes"], ex["labels"]
    assert np.all((boxes[:n] >= 0) & (boxes[:n] <= 1))
    assert np.all(boxes[:n, 2:] > boxes[:n, :2])
    assert np.all((labels[:n] >= 0) & (labels[:n] < num_classes))
    assert not boxes[n:].any() and not labels[n:].any()
    if "difficult" in ex:
        assert ex["difficult"].shape == (max_boxes,) and not ex["difficult"][n:].any()


def pixel_extent(pixels):
    """Tight box (x0, y0, x1, y1) in pixel units of a boolean [H, W] mask."""
    rows = np.flatnonzero(pixels.any(axis=1))
    cols = np.flatnonzero(pixels.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


def test_same_seed_same_arrays_and_order_free():
    a = ShapesDataset(50, image_size=48, seed=3)
    b = ShapesDataset(50, image_size=48, seed=3)
    # Random access: index 7 read cold equals index 7 read after others.
    first = a.example(7)
    for i in (0, 30, 7):
        b.example(i)
    for key, value in b.example(7).items():
        np.testing.assert_array_equal(value, first[key])


def test_seeds_and_splits_differ():
    base = ShapesDataset(5, image_size=48, seed=0).example(0)["image"]
    other_seed = ShapesDataset(5, image_size=48, seed=1).example(0)["image"]
    val = ShapesDataset(5, image_size=48, seed=0, split="val").example(0)["image"]
    assert not np.array_equal(base, other_seed)
    assert not np.array_equal(base, val)


@pytest.mark.parametrize("num_classes", [1, 3, 5])
def test_example_format(num_classes):
    ds = ShapesDataset(30, image_size=(40, 56), max_boxes=5, num_classes=num_classes)
    assert ds.num_classes == num_classes and ds.class_names == SHAPE_NAMES[:num_classes]
    assert len(ds) == 30
    seen = set()
    for i in range(len(ds)):
        ex = ds.example(i)
        check_example_format(ex, (40, 56), 5, num_classes)
        assert ex["mask"].any(), "every image has an object"
        seen.update(ex["labels"][ex["mask"]].tolist())
    assert seen == set(range(num_classes))


def test_single_shape_box_is_tight_around_its_colour():
    # Without noise a shape is one flat colour that nothing else has (random floats),
    # so its pixels can be found in the image alone, independently of the generator.
    ds = ShapesDataset(40, image_size=64, num_classes=5, max_objects=1, noise=0.0)
    for i in range(len(ds)):
        ex = ds.example(i)
        assert ex["mask"].sum() == 1
        scene = ds.scene(i)
        colour = ex["image"][scene.instances == 0][0]
        drawn = np.all(ex["image"] == colour, axis=-1)
        assert drawn.sum() >= 12
        np.testing.assert_array_equal(pixel_extent(drawn) / 64, ex["boxes"][0])


def test_boxes_are_tight_around_visible_pixels_with_overlap():
    ds = ShapesDataset(40, image_size=64, max_boxes=8, max_objects=8, noise=0.0)
    occluded = 0
    for i in range(len(ds)):
        scene = ds.scene(i)
        for j, box in enumerate(scene.boxes):
            mine = scene.instances == j
            np.testing.assert_array_equal(pixel_extent(mine) / 64, box)
            colours = scene.image[mine]
            np.testing.assert_array_equal(colours, np.broadcast_to(colours[0], colours.shape))
            # Full-shape pixels hidden by later shapes show up as other instances in the box.
            x0, y0, x1, y1 = (box * 64).astype(int)
            occluded += np.any(scene.instances[y0:y1, x0:x1] > j)
    assert occluded > 0, "some scenes should have overlapping shapes"


def test_object_sizes_span_small_to_large():
    ds = ShapesDataset(60, image_size=96)
    sides = []
    for i in range(len(ds)):
        ex = ds.example(i)
        wh = ex["boxes"][ex["mask"], 2:] - ex["boxes"][ex["mask"], :2]
        sides.extend(np.sqrt(wh[:, 0] * wh[:, 1]).tolist())
    assert min(sides) < 0.12 and max(sides) > 0.4


def test_errors():
    with pytest.raises(ValueError, match="ShapesDataset: expected num_classes"):
        ShapesDataset(5, num_classes=6)
    with pytest.raises(ValueError, match="ShapesDataset: expected split"):
        ShapesDataset(5, split="test")
    with pytest.raises(ValueError, match="ShapesDataset: expected max_objects"):
        ShapesDataset(5, max_boxes=2, max_objects=3)
    with pytest.raises(IndexError, match=r"expected an index in \[0, 5\), got 5"):
        ShapesDataset(5).example(5)


def test_doctest():
    assert doctest.testmod(shapes_module).failed == 0
