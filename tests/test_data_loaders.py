"""Tests for the digits, VOC and COCO data sets, on fixtures written to tmp_path.

Pillow is not a dependency, so the fixtures' "JPEG" files hold `np.save` bytes
and the data sets get ``read_image=np.load``; one test decodes real JPEGs when
Pillow is installed.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from jaxheads.data import COCODataset, DigitsDataset, VOCDataset, resize
from jaxheads.data.digits import load_digit_images

# ------------------------------------------------------------------ digits


def test_digits_deterministic_and_seeded():
    a = DigitsDataset(20, image_size=64, seed=1)
    b = DigitsDataset(20, image_size=64, seed=1)
    c = DigitsDataset(20, image_size=64, seed=2)
    for key, value in a.example(9).items():
        np.testing.assert_array_equal(b.example(9)[key], value)
    assert not np.array_equal(a.example(9)["image"], c.example(9)["image"])
    assert a.class_names == tuple("0123456789") and a.num_classes == 10


def test_digits_val_and_train_use_disjoint_source_digits():
    train = DigitsDataset(30, image_size=64, split="train")
    val = DigitsDataset(30, image_size=64, split="val")
    assert not set(train.sources.tolist()) & set(val.sources.tolist())
    assert train.sources.size + val.sources.size == 1797
    assert abs(val.sources.size - 0.2 * 1797) < 1
    _, targets = load_digit_images()
    for ds in (train, val):
        pool = set(ds.sources.tolist())
        for i in range(len(ds)):
            scene = ds.scene(i)
            assert set(scene.sources.tolist()) <= pool
            np.testing.assert_array_equal(scene.labels, targets[scene.sources])


def test_digits_boxes_are_tight_and_in_range():
    ds = DigitsDataset(30, image_size=80, max_boxes=6, digit_size=(12, 30))
    for i in range(len(ds)):
        scene, ex = ds.scene(i), ds.example(i)
        n = scene.labels.shape[0]
        assert 1 <= n <= 5 and ex["mask"].sum() == n and ex["mask"][:n].all()
        assert ex["image"].shape == (80, 80, 3) and ex["image"].dtype == np.float32
        assert 0 <= ex["image"].min() and ex["image"].max() <= 1
        assert not ex["boxes"][n:].any()
        for j, box in enumerate(scene.boxes):
            mine = scene.instances == j
            rows, cols = np.flatnonzero(mine.any(1)), np.flatnonzero(mine.any(0))
            want = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]) / 80
            np.testing.assert_allclose(box, want, rtol=1e-6)
            h = (box[3] - box[1]) * 80
            assert 3 <= h <= 30


# ------------------------------------------------------------------ VOC

SIZES = {"000001": (40, 30), "000002": (24, 36), "000003": (32, 32)}  # id: (width, height)


def voc_xml(image_id, objects, size=None):
    width, height = size or SIZES[image_id]
    parts = [
        f"<annotation><filename>{image_id}.jpg</filename>",
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
    ]
    for name, box, difficult in objects:
        xmin, ymin, xmax, ymax = box
        parts.append(
            f"<object><name>{name}</name><difficult>{int(difficult)}</difficult>"
            f"<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
            f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


def fake_image(image_id):
    width, height = SIZES[image_id]
    rng = np.random.default_rng(int(image_id))
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def save_array(path: Path, array):
    """Writes .npy bytes under any file name (np.save would append .npy)."""
    with open(path, "wb") as f:
        np.save(f, array)


VOC_OBJECTS = {
    "000001": [("dog", (1, 1, 40, 30), False), ("person", (11, 6, 20, 15), True)],
    "000002": [("tvmonitor", (2, 3, 24, 36), False)],
    "000003": [],
}


@pytest.fixture
def voc_root(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (root / sub).mkdir(parents=True)
    (root / "ImageSets/Main/trainval.txt").write_text("000001\n000002\n000003\n")
    (root / "ImageSets/Main/val.txt").write_text("000002\n")
    for image_id, objects in VOC_OBJECTS.items():
        (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml(image_id, objects))
        save_array(root / "JPEGImages" / f"{image_id}.jpg", fake_image(image_id))
    return root


def test_voc_reads_boxes_labels_difficult_with_1_based_conversion(voc_root):
    ds = VOCDataset(voc_root, image_size=32, max_boxes=4, read_image=np.load)
    assert len(ds) == 3 and ds.num_classes == 20 and ds.class_names[11] == "dog"
    ex = ds.example(0)
    # (1, 1, W, H) is the whole image; (11, 6, 20, 15) covers columns 10..19, rows 5..14.
    np.testing.assert_allclose(ex["boxes"][0], [0, 0, 1, 1])
    np.testing.assert_allclose(ex["boxes"][1], [10 / 40, 5 / 30, 20 / 40, 15 / 30], rtol=1e-6)
    np.testing.assert_array_equal(ex["labels"], [11, 14, 0, 0])
    np.testing.assert_array_equal(ex["mask"], [True, True, False, False])
    np.testing.assert_array_equal(ex["difficult"], [False, True, False, False])
    np.testing.assert_allclose(ds.records[0].boxes[1], [10, 5, 20, 15])
    want = resize(fake_image("000001").astype(np.float32) / 255, 32)
    np.testing.assert_allclose(ex["image"], want, atol=1e-6)
    assert ex["image"].shape == (32, 32, 3) and ex["image"].dtype == np.float32
    empty = ds.example(2)
    assert not empty["mask"].any() and not empty["boxes"].any()
    # An image already at the output size is unchanged.
    np.testing.assert_allclose(empty["image"], fake_image("000003") / np.float32(255), atol=1e-6)


def test_voc_year_split_and_keep_difficult(voc_root):
    ds = VOCDataset(voc_root.parent, "val", year=2007, image_size=16, read_image=np.load)
    assert [r.image_id for r in ds.records] == ["000002"]
    no_difficult = VOCDataset(voc_root, image_size=16, keep_difficult=False, read_image=np.load)
    ex = no_difficult.example(0)
    np.testing.assert_array_equal(ex["mask"][:2], [True, False])
    assert not ex["difficult"].any()


def test_voc_batches(voc_root):
    ds = VOCDataset(voc_root, image_size=16, max_boxes=4, read_image=np.load)
    batch = next(ds.batches(2, seed=0, prefetch=0))
    assert batch["image"].shape == (2, 16, 16, 3) and batch["difficult"].shape == (2, 4)


def break_annotation(root, text, image_id="000002"):
    (root / "Annotations" / f"{image_id}.xml").write_text(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("<annotation><size><width>3</width>", "well-formed XML"),
        (voc_xml("000002", [("unicorn", (1, 1, 5, 5), False)]), "'unicorn'"),
        (voc_xml("000002", [("cat", (0, 1, 5, 5), False)]), "bndbox"),
        (voc_xml("000002", [("cat", (1, 1, 25, 5), False)]), "bndbox"),
        (voc_xml("000002", [("cat", (9, 1, 5, 5), False)]), "bndbox"),
        (voc_xml("000002", [("cat", (1, 1, "x", 5), False)]), "xmax"),
        ("<annotation><object><name>cat</name></object></annotation>", "size"),
        (
            voc_xml("000002", [("cat", (1, 1, 5, 5), False)]).replace("<xmin>1</xmin>", ""),
            "xmin",
        ),
    ],
    ids=["xml", "class", "outside-low", "outside-high", "inverted", "number", "size", "field"],
)
def test_voc_annotation_errors_name_file_and_field(voc_root, text, message):
    break_annotation(voc_root, text)
    with pytest.raises(ValueError, match="000002.xml") as info:
        VOCDataset(voc_root, read_image=np.load)
    assert message in str(info.value)


def test_voc_missing_files(voc_root):
    with pytest.raises(FileNotFoundError, match="VOC2012"):
        VOCDataset(voc_root.parent, year=2012)
    with pytest.raises(FileNotFoundError, match="test.txt"):
        VOCDataset(voc_root, split="test")
    (voc_root / "Annotations" / "000003.xml").unlink()
    with pytest.raises(FileNotFoundError, match="000003.xml"):
        VOCDataset(voc_root)


def test_voc_missing_image_and_wrong_size(voc_root):
    (voc_root / "JPEGImages" / "000002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="000002.jpg"):
        VOCDataset(voc_root)
    save_array(voc_root / "JPEGImages" / "000002.jpg", np.zeros((5, 5, 3), np.uint8))
    ds = VOCDataset(voc_root, read_image=np.load)
    with pytest.raises(ValueError, match=r"000002\.jpg to be \d+x\d+ as <size> says, got 5x5"):
        ds.example(1)


def test_voc_too_many_objects(voc_root):
    with pytest.raises(ValueError, match="max_boxes=1.*000001.xml"):
        VOCDataset(voc_root, max_boxes=1, read_image=np.load)


def test_voc_real_jpeg_with_pillow(voc_root):
    image_module = pytest.importorskip("PIL.Image")
    # A smooth image: JPEG keeps it to a few levels, where per-pixel noise would not survive.
    yy, xx = np.mgrid[0:32, 0:32]
    smooth = np.stack([xx * 8, yy * 8, (xx + yy) * 4], axis=-1).astype(np.uint8)
    for image_id in SIZES:
        image_module.fromarray(smooth).save(voc_root / "JPEGImages" / f"{image_id}.jpg", quality=95)
    ex = VOCDataset(voc_root, image_size=32).example(2)  # 000003 is 32x32: no resize
    assert ex["image"].dtype == np.float32 and ex["image"].shape == (32, 32, 3)
    np.testing.assert_allclose(ex["image"], smooth / 255, atol=8 / 255)


# ------------------------------------------------------------------ COCO


def coco_json():
    return {
        "images": [
            {"id": 7, "file_name": "b.jpg", "width": 24, "height": 36},
            {"id": 3, "file_name": "a.jpg", "width": 40, "height": 30},
            {"id": 9, "file_name": "c.jpg", "width": 32, "height": 32},
        ],
        "categories": [
            {"id": 18, "name": "dog"},
            {"id": 1, "name": "person"},
            {"id": 5, "name": "airplane"},
        ],
        "annotations": [
            {"id": 1, "image_id": 3, "category_id": 18, "bbox": [10, 5, 10, 10], "iscrowd": 0},
            {"id": 2, "image_id": 3, "category_id": 1, "bbox": [0, 0, 40.5, 30], "iscrowd": 1},
            {"id": 3, "image_id": 7, "category_id": 5, "bbox": [2.5, 3, 20, 30]},
            {"id": 4, "image_id": 7, "category_id": 5, "bbox": [2, 3, 0, 30]},
        ],
    }


@pytest.fixture
def coco_files(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name, image_id in (("a.jpg", "000001"), ("b.jpg", "000002"), ("c.jpg", "000003")):
        save_array(images / name, fake_image(image_id))
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(coco_json()))
    return ann, images


def test_coco_reads_boxes_labels_and_crowd(coco_files):
    ds = COCODataset(*coco_files, image_size=16, max_boxes=3, read_image=np.load)
    assert ds.class_names == ("person", "airplane", "dog") and ds.category_ids == (1, 5, 18)
    assert ds.image_ids == (3, 7, 9) and ds.num_skipped == 1
    ex = ds.example(0)
    np.testing.assert_allclose(ex["boxes"][0], [10 / 40, 5 / 30, 20 / 40, 15 / 30], rtol=1e-6)
    np.testing.assert_allclose(ex["boxes"][1], [0, 0, 1, 1])  # clipped from 40.5
    np.testing.assert_array_equal(ex["labels"], [2, 0, 0])
    np.testing.assert_array_equal(ex["difficult"], [False, True, False])
    np.testing.assert_array_equal(ex["mask"], [True, True, False])
    np.testing.assert_allclose(
        ds.example(1)["boxes"][0], [2.5 / 24, 3 / 36, 22.5 / 24, 33 / 36], rtol=1e-6
    )
    assert not ds.example(2)["mask"].any()
    dropped = COCODataset(*coco_files, image_size=16, keep_crowd=False, read_image=np.load)
    assert dropped.example(0)["mask"].sum() == 1


def write_json(coco_files, data):
    coco_files[0].write_text(data if isinstance(data, str) else json.dumps(data))


def without(data, section, index, key):
    del data[section][index][key]
    return data


@pytest.mark.parametrize(
    "data, message",
    [
        ('{"images": [', "well-formed JSON"),
        ({"images": [], "categories": []}, "'annotations'"),
        (without(coco_json(), "annotations", 2, "bbox"), r"annotations\[2\]\.bbox"),
        (without(coco_json(), "images", 1, "width"), r"images\[1\]\.width"),
        (without(coco_json(), "categories", 0, "name"), r"categories\[0\]\.name"),
    ],
    ids=["json", "section", "bbox", "width", "name"],
)
def test_coco_malformed_json_names_file_and_field(coco_files, data, message):
    write_json(coco_files, data)
    with pytest.raises(ValueError, match="instances.json") as info:
        COCODataset(*coco_files)
    assert info.match(message)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("category_id", 4, "category_id"),
        ("image_id", 99, "image_id"),
        ("bbox", [30, 0, 20, 5], "bbox"),
        ("bbox", [1, 2, -3, 4], "bbox"),
        ("bbox", [1, 2, 3], "bbox"),
    ],
)
def test_coco_bad_annotation(coco_files, key, value, message):
    data = coco_json()
    data["annotations"][0][key] = value
    write_json(coco_files, data)
    with pytest.raises(ValueError, match=rf"annotations\[0\]\.{message} in .*instances.json"):
        COCODataset(*coco_files)


def test_coco_wrong_image_size_names_file_and_sizes(coco_files):
    save_array(coco_files[1] / "c.jpg", np.zeros((5, 6, 3), np.uint8))
    ds = COCODataset(*coco_files, read_image=np.load)
    with pytest.raises(ValueError, match=r"c\.jpg to be 32x32 as the json says, got 6x5"):
        ds.example(2)


def test_coco_missing_files(coco_files, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        COCODataset(tmp_path / "nothing.json", coco_files[1])
    (coco_files[1] / "c.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="c.jpg"):
        COCODataset(*coco_files)
