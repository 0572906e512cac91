"""``jaxheads data voc-synthetic``: the shapes written as a VOC set, read back and trained on."""

import numpy as np
import pytest

from jaxheads.cli import main
from jaxheads.data import ShapesDataset, SyntheticVOC, VOCDataset, write_synthetic_voc
from jaxheads.data.voc import VOC_CLASSES, parse_voc_xml
from jaxheads.data.voc_synthetic import synthetic_splits

SPEC = SyntheticVOC(images=6, image_size=48, seed=3)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("voc") / "VOC2007"
    return out, write_synthetic_voc(out, SPEC)


def test_the_devkit_layout_is_written(written):
    out, ids = written
    assert ids == {
        "train": ["000001", "000002", "000003", "000004"],
        "val": ["000005"],
        "test": ["000006"],
        "trainval": ["000001", "000002", "000003", "000004", "000005"],
    }
    for split, names in ids.items():
        assert (out / "ImageSets" / "Main" / f"{split}.txt").read_text().split() == names
    for image_id in ids["trainval"] + ids["test"]:
        assert (out / "JPEGImages" / f"{image_id}.jpg").is_file()
        assert (out / "Annotations" / f"{image_id}.xml").is_file()


def test_voc_reads_back_the_shapes_boxes_and_classes(written):
    out, _ = written
    streams = {
        split: ShapesDataset(4, image_size=48, max_boxes=6, seed=3, split=split, max_objects=6)
        for split in ("train", "val")
    }
    sources = [("train", i) for i in range(4)] + [("val", 0), ("val", 1)]
    for split, first in (("train", 0), ("val", 4), ("test", 5)):
        ds = VOCDataset(out, split=split, image_size=48, max_boxes=6)
        for k, record in enumerate(ds.records):
            scene = streams[sources[first + k][0]].scene(sources[first + k][1])
            # Integer pixel edges: VOC's 1-based inclusive indices hold them exactly.
            np.testing.assert_array_equal(record.boxes, scene.boxes * 48)
            np.testing.assert_array_equal(record.labels, scene.labels)
            assert not record.difficult.any()
            example = ds.example(k)
            n = len(scene.labels)
            np.testing.assert_allclose(example["boxes"][:n], scene.boxes, rtol=1e-6)
            assert example["mask"].sum() == n
            # JPEG's loss, not a different image: the per-pixel noise and the halved
            # chroma resolution cost a few levels a pixel; another scene differs by ~0.2.
            assert np.abs(example["image"] - scene.image).mean() < 0.05
    names = {VOC_CLASSES[k] for k in range(3)}
    record = parse_voc_xml(out / "Annotations" / "000001.xml")
    assert {VOC_CLASSES[k] for k in record.labels} <= names


def test_a_set_is_not_written_over(written):
    out, _ = written
    with pytest.raises(ValueError, match="without a VOC set"):
        write_synthetic_voc(out, SPEC)


@pytest.mark.parametrize("images", [0, 2, 2.5])
def test_too_few_images_are_refused(tmp_path, images):
    with pytest.raises(ValueError, match="images >= 3"):
        write_synthetic_voc(tmp_path / "voc", SyntheticVOC(images=images))
    assert not (tmp_path / "voc").exists()


def test_splits_share_the_images():
    assert synthetic_splits(3) == {"train": 1, "val": 1, "test": 1}
    assert synthetic_splits(64) == {"train": 32, "val": 16, "test": 16}


def test_the_command_writes_a_set_that_trains(tmp_path, capsys):
    out = tmp_path / "VOCdevkit" / "VOC2007"
    argv = ["data", "voc-synthetic", str(out), "--images", "16", "--image-size", "32"]
    assert main(argv) == 0
    assert "jaxheads train --dataset voc" in capsys.readouterr().out
    assert main(argv) == 2
    assert "without a VOC set" in capsys.readouterr().err
    train = ["train", "--dataset", "voc", "--data-dir", str(out), "--model", "small-yolov2"]
    train += ["--workdir", str(tmp_path / "run"), "--steps", "2", "--batch-size", "8"]
    train += ["--image-size", "32", "--log-every", "1", "--checkpoint-every", "2"]
    assert main([*train, "--no-progress"]) == 0
    assert (tmp_path / "run").is_dir()
