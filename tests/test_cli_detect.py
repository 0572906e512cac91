"""``jaxheads detect`` on files: printed lines, JSON, drawn images, bad files, --workdir."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from tiny_darknet import REGION_CFG, tiny_darknet

from jaxheads import Detector
from jaxheads.cli import main
from jaxheads.predict import class_color, read_image, to_rgb_float


def _write_images(folder):
    rng = np.random.default_rng(0)
    folder.mkdir()
    photo = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    Image.fromarray(photo).save(folder / "photo.jpg", quality=95)
    Image.fromarray(rng.integers(0, 256, (110, 70, 3), dtype=np.uint8)).save(folder / "tall.png")
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(folder / "gray.png")
    deep = rng.integers(0, 65536, (60, 80), dtype=np.uint16)
    Image.fromarray(deep).save(folder / "deep.png")
    with open(folder / "photo.jpg", "rb") as f:
        (folder / "broken.jpg").write_bytes(f.read()[:300])  # a truncated JPEG
    return deep


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("model")
    cfg, weights, _ = tiny_darknet(
        tmp, REGION_CFG, "tiny", objectness_bias=-6.0, class_bias=2.0, kernel_scale=8.0
    )
    names = tmp / "short.names"
    names.write_text("a\nb\nc\n")
    return cfg, weights, Detector.from_darknet(cfg, weights, names=str(names)), str(names)


def test_detect_files_prints_writes_json_and_draws(tmp_path, capsys, model):
    cfg, weights, detector, names = model
    deep = _write_images(tmp_path / "images")
    out = tmp_path / "out"
    rc = main(
        [
            "detect",
            cfg,
            weights,
            str(tmp_path / "images"),
            "--json",
            str(out / "boxes.json"),
            "--save",
            str(out / "drawn"),
            "--batch-size",
            "2",
            "--names",
            names,
        ]
    )
    captured = capsys.readouterr()
    assert rc == 1
    assert "broken.jpg" in captured.err and "1 of 5 could not be read" in captured.err
    good = ["deep.png", "gray.png", "photo.jpg", "tall.png"]
    paths = [str(tmp_path / "images" / name) for name in good]
    records = detector.detect(paths)
    # darknet's lines after each image's header, in the order of the files
    want = []
    for r in records:
        want.append(f"{r.source}: {r.width}x{r.height}, {len(r)} detections")
        want += r.lines()
    printed = [line for line in captured.out.splitlines() if not line.startswith("Detector(")]
    assert printed == want
    assert all(len(r) > 0 for r in records) and records[0].lines()[0][0] in "abc"
    # the 16-bit PNG is read as v / 65535 (not as white): same as the array it holds
    (from_array,) = detector.detect(deep)
    np.testing.assert_array_equal(from_array.scores, records[0].scores)
    np.testing.assert_array_equal(from_array.boxes, records[0].boxes)
    assert np.abs(read_image(paths[0]) - to_rgb_float(deep)).max() == 0
    # JSON: every file, the broken one with its error; boxes in pixels, clipped
    with open(out / "boxes.json") as f:
        entries = json.load(f)
    assert [os.path.basename(e["file"]) for e in entries] == ["broken.jpg", *good]
    assert "error" in entries[0] and "broken.jpg" in entries[0]["error"]
    for entry, record in zip(entries[1:], records, strict=True):
        assert (entry["width"], entry["height"]) == (record.width, record.height)
        assert [d["label"] for d in entry["detections"]] == list(record.labels)
        assert [d["class_id"] for d in entry["detections"]] == record.class_ids.tolist()
        np.testing.assert_allclose([d["score"] for d in entry["detections"]], record.scores)
        boxes = np.array([d["box"] for d in entry["detections"]])
        np.testing.assert_allclose(boxes, record.boxes)
        assert boxes.min() >= 0 and boxes[:, [0, 2]].max() <= record.width
        assert boxes[:, [1, 3]].max() <= record.height
    # drawn images: the best box's outline in its class colour, other pixels as read
    assert sorted(os.listdir(out / "drawn")) == sorted(good)
    for path, record in zip(paths, records, strict=True):
        with Image.open(out / "drawn" / os.path.basename(path)) as image:
            drawn = np.asarray(image.convert("RGB")).astype(int)
        original = np.asarray(read_image(path, keep_pil=True)[1]).astype(int)
        assert drawn.shape == original.shape
        changed = np.abs(drawn - original).max(axis=2) > (40 if path.endswith("jpg") else 0)
        x1, y1, x2, y2 = record.boxes[0].astype(int)
        on_edge = changed[(y1 + y2) // 2, x1]
        assert on_edge
        if path.endswith(".png"):
            assert tuple(drawn[(y1 + y2) // 2, x1]) == class_color(int(record.class_ids[0]), 3)
            inside = np.zeros_like(changed)
            for bx1, by1, bx2, by2 in record.boxes.astype(int):
                # the box, and its label ("a 51%": under 40 px wide, 20 px high) above its
                # top-left corner, shifted left at the image's right edge
                inside[max(0, by1 - 20) : by2 + 1, max(0, bx1 - 40) : max(bx2, bx1 + 40) + 1] = True
            assert not np.any(changed & ~inside)


def test_detect_usage_errors(tmp_path, capsys, model):
    cfg, weights, _, _ = model
    assert main(["detect", cfg, weights]) == 2
    assert "expected CFG WEIGHTS IMAGE..." in capsys.readouterr().err
    assert main(["detect", cfg, weights, "x.png", "--thresh", "1.5"]) == 2
    assert "expected --thresh in [0, 1], got 1.5" in capsys.readouterr().err
    assert main(["detect", "nothere.cfg", weights, "x.png"]) == 2
    assert "nothere.cfg" in capsys.readouterr().err
    # a missing image is reported by name and counted
    assert main(["detect", cfg, weights, str(tmp_path / "missing.png")]) == 1
    err = capsys.readouterr().err
    assert "missing.png: expected an image file, got no such file" in err
    assert "1 of 1 could not be read" in err


@pytest.mark.slow
def test_detect_workdir_of_a_trained_run(tmp_path, capsys):
    from jaxheads.data import SHAPE_NAMES, ShapesDataset
    from jaxheads.train.detection import build_detector, make_predict
    from jaxheads.train.loop import RunConfig, Task, restore_params

    workdir = str(tmp_path / "run")
    assert (
        main(
            [
                "train",
                "--workdir",
                workdir,
                "--steps",
                "1",
                "--batch-size",
                "8",
                "--image-size",
                "32",
                "--val-examples",
                "4",
                "--train-examples",
                "16",
                "--checkpoint-every",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    example = ShapesDataset(4, image_size=32, split="val").example(0)
    path = tmp_path / "val0.png"
    Image.fromarray((example["image"] * 255).round().astype(np.uint8)).save(path)
    capsys.readouterr()
    assert (
        main(
            [
                "detect",
                "--workdir",
                workdir,
                str(path),
                "--thresh",
                "0.01",
                "--json",
                str(tmp_path / "out.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "small-yolov2 on shapes, step 1" in out and f"{path}: 32x32," in out
    with open(tmp_path / "out.json") as f:
        (entry,) = json.load(f)
    assert entry["detections"]
    assert {d["label"] for d in entry["detections"]} <= set(SHAPE_NAMES[:3])
    # the same boxes as the trained model's own predict on the same pixels
    detector, init = build_detector("small-yolov2", image_size=32, num_classes=3)
    with open(os.path.join(workdir, "config.json")) as f:
        saved = json.load(f)
    cfg = RunConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})
    params, state, _ = restore_params(workdir, Task(init, None, None, 1), cfg)
    pixels = read_image(path)[None]
    dets = make_predict(detector, score_threshold=0.01, max_detections=1000)(params, state, pixels)
    valid = np.asarray(dets.valid[0])
    np.testing.assert_allclose(
        np.sort(np.asarray(dets.scores[0])[valid]),
        np.sort([d["score"] for d in entry["detections"]]),
        rtol=1e-6,
    )
