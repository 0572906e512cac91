"""Bad data files: wrong flags, 16-bit and odd-mode images, NaN boxes, duplicate ids, paths that
leave their folder, corrupt images — each read correctly or refused naming the file and field."""

import json

import numpy as np
import pytest
from test_data_loaders import (  # noqa: F401 — fixtures
    coco_files,
    coco_json,
    fake_image,
    voc_root,
    voc_xml,
    write_json,
)

from jaxheads.data import COCODataset, VOCDataset
from jaxheads.data.voc import parse_voc_xml, read_rgb

Image = pytest.importorskip("PIL.Image")

# Fault injection and property tests are bounded: a hang is a failure, not a stuck CI.
pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("0", False),
        ("1", True),
        ("false", False),
        ("true", True),
        ("False", False),
        ("TRUE", True),
        (" 0 ", False),
        ("", False),
    ],
)
def test_voc_difficult_flags(tmp_path, text, expected):
    xml = voc_xml("000001", [("dog", (1, 1, 40, 30), False)]).replace(
        "<difficult>0</difficult>", f"<difficult>{text}</difficult>"
    )
    (tmp_path / "a.xml").write_text(xml)
    assert parse_voc_xml(tmp_path / "a.xml").difficult.tolist() == [expected]


@pytest.mark.parametrize("text", ["2", "yes", "-1", "0.5"])
def test_voc_unknown_difficult_flag_is_refused(tmp_path, text):
    xml = voc_xml("000001", [("dog", (1, 1, 40, 30), False)]).replace(
        "<difficult>0</difficult>", f"<difficult>{text}</difficult>"
    )
    (tmp_path / "a.xml").write_text(xml)
    with pytest.raises(
        ValueError,
        match=rf"expected 0, 1, true or false in <difficult> of "
        rf"<object> 0 in .*a.xml, got '{text}'",
    ):
        parse_voc_xml(tmp_path / "a.xml")


@pytest.mark.parametrize("width", ["nan", "inf", "-inf", "1e400", "12.5", "0"])
def test_voc_size_must_be_a_positive_integer(tmp_path, width):
    (tmp_path / "a.xml").write_text(voc_xml("000001", [], size=(width, 30)))
    with pytest.raises(ValueError, match=r"<width> in <size> in .*a.xml"):
        parse_voc_xml(tmp_path / "a.xml")


def test_voc_nan_box_is_refused(tmp_path):
    (tmp_path / "a.xml").write_text(voc_xml("000001", [("dog", ("nan", 1, 40, 30), False)]))
    with pytest.raises(ValueError, match=r"finite number in <xmin> in <bndbox> of <object> 0"):
        parse_voc_xml(tmp_path / "a.xml")


@pytest.mark.parametrize("image_id", ["../000001", "/etc/passwd", "a/../../b", "C:\\x"])
def test_voc_image_ids_stay_inside_the_devkit(voc_root, image_id):  # noqa: F811
    (voc_root / "ImageSets/Main/trainval.txt").write_text(f"{image_id}\n")
    with pytest.raises(ValueError, match="relative name inside its folder"):
        VOCDataset(voc_root)


def _png(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_sixteen_bit_png_scales_by_65535(tmp_path):
    values = np.array([[0, 1000, 32768], [65535, 12345, 60000]], np.uint16)
    path = _png(tmp_path / "g16.png", values)
    with Image.open(path) as image:
        assert image.mode.startswith("I")  # the case an 8-bit conversion clips to white
    got = read_rgb(path)
    assert got.dtype == np.float32 and got.shape == (2, 3, 3)
    np.testing.assert_allclose(got, np.repeat((values / 65535)[:, :, None], 3, 2), rtol=1e-6)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "CMYK", "RGBA", "1"])
def test_odd_modes_convert_to_rgb_like_pillow(tmp_path, mode):
    rgb = fake_image("000001")
    source = Image.fromarray(rgb).convert(mode)
    path = tmp_path / ("x.tiff" if mode == "CMYK" else "x.png")
    source.save(path)
    got = read_rgb(path)
    assert got.dtype == np.uint8 and got.shape == (30, 40, 3)
    np.testing.assert_array_equal(got, np.asarray(source.convert("RGB")))


@pytest.mark.parametrize(
    "mode, options",
    [
        ("RGB", {"quality": 90}),  # 4:2:0 chroma, upsampled
        ("RGB", {"quality": 95, "subsampling": 0}),  # 4:4:4
        ("RGB", {"quality": 75, "progressive": True}),
        ("L", {"quality": 90}),
        ("CMYK", {"quality": 90}),  # simplejpeg refuses it; Pillow converts it
    ],
)
def test_jpeg_decodes_to_pillows_pixels(tmp_path, mode, options):
    """simplejpeg's pixels are Pillow's: libjpeg-turbo with the same settings."""
    pytest.importorskip("simplejpeg")
    rng = np.random.default_rng(8)
    yy, xx = np.mgrid[0:61, 0:83]
    rgb = np.stack([xx * 3, yy * 4, (xx + yy) * 2], axis=-1) + rng.integers(0, 40, (61, 83, 3))
    source = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).convert(mode)
    path = tmp_path / "x.jpg"
    source.save(path, format="JPEG", **options)
    with Image.open(path) as image:
        want = np.asarray(image.convert("RGB"))
    got = read_rgb(path)
    assert got.dtype == np.uint8 and got.shape == (61, 83, 3)
    np.testing.assert_array_equal(got, want)


def test_image_to_float_normalises_uint16_and_refuses_out_of_range(voc_root):  # noqa: F811
    big = np.full((30, 40, 3), 65535, np.uint16)
    ds = VOCDataset(voc_root, image_size=8, read_image=lambda p: big)
    np.testing.assert_allclose(ds.example(0)["image"], 1.0, rtol=1e-6)
    ds = VOCDataset(voc_root, image_size=8, read_image=lambda p: big.astype(np.float32))
    with pytest.raises(ValueError, match=r"finite values in \[0, 1\] in .*000001.jpg"):
        ds.example(0)
    ds = VOCDataset(voc_root, image_size=8, read_image=lambda p: big.astype(np.int64))
    with pytest.raises(ValueError, match="uint8, uint16 or float image .* got dtype int64"):
        ds.example(0)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_jpeg_names_the_file(voc_root, damage):  # noqa: F811
    path = voc_root / "JPEGImages" / "000001.jpg"
    Image.fromarray(fake_image("000001")).save(path, format="JPEG")
    data = path.read_bytes()
    path.write_bytes(
        {"truncated": data[: len(data) // 2], "garbage": b"\xff\xd8" + bytes(64), "empty": b""}[
            damage
        ]
    )
    ds = VOCDataset(voc_root, image_size=8)
    with pytest.raises(ValueError, match=r"read_rgb: expected a decodable image in .*000001.jpg"):
        ds.example(0)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_coco_non_finite_box_is_refused_at_load(coco_files, value):  # noqa: F811
    text = json.dumps(coco_json()).replace(
        '"bbox": [10, 5, 10, 10]', f'"bbox": [10, 5, {value}, 10]'
    )
    write_json(coco_files, text)
    with pytest.raises(ValueError, match=r"4 finite numbers at annotations\[0\]\.bbox"):
        COCODataset(*coco_files)


@pytest.mark.parametrize("value", ["0", "1", 2, -1, 0.0, None, [0]])
def test_coco_iscrowd_must_be_0_or_1(coco_files, value):  # noqa: F811
    data = coco_json()
    data["annotations"][0]["iscrowd"] = value
    write_json(coco_files, data)
    with pytest.raises(ValueError, match=r"0, 1, true or false at annotations\[0\]\.iscrowd"):
        COCODataset(*coco_files)


def test_coco_iscrowd_booleans(coco_files):  # noqa: F811
    data = coco_json()
    data["annotations"][0]["iscrowd"], data["annotations"][1]["iscrowd"] = False, True
    write_json(coco_files, data)
    ds = COCODataset(*coco_files, read_image=np.load)
    assert ds.records[0].difficult.tolist() == [False, True]


@pytest.mark.parametrize("section", ["categories", "images"])
def test_coco_duplicate_ids_are_refused(coco_files, section):  # noqa: F811
    data = coco_json()
    data[section].append({**data[section][0], "name": "cat", "file_name": "a.jpg"})
    write_json(coco_files, data)
    with pytest.raises(ValueError, match=rf"unique .* ids .* at {section}\[0\] and {section}\[3\]"):
        COCODataset(*coco_files)


@pytest.mark.parametrize("name", ["../a.jpg", "/etc/passwd", "x/../../a.jpg", "", "a\0.jpg"])
def test_coco_file_names_stay_inside_the_image_folder(coco_files, name):  # noqa: F811
    data = coco_json()
    data["images"][0]["file_name"] = name
    write_json(coco_files, data)
    with pytest.raises(ValueError, match=r"images\[0\]\.file_name .* relative name inside"):
        COCODataset(*coco_files)
