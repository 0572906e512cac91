"""The paper-size darknet models end to end on a VOC-format directory, as a user runs them.

``jaxheads data voc-synthetic``, then ``jaxheads train`` of YOLOv2-VOC at 416² and of the
YOLOv1 paper model (its 7×7×1024 → 4096 fully connected layer, 272M parameters) at 448²,
``jaxheads evaluate`` and ``jaxheads detect`` on one of the JPEGs, each command in a
process of its own (the YOLOv1 run takes about 12 GB, given back when it ends). A handful
of images, one step of batch 1: what is checked is that the path works, not what it learns.
"""

import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from jaxheads.data import ShapesDataset
from jaxheads.train.detection import build_detector, evaluate, make_predict

# The JPEGs' side is neither model's input side, so a box left in the network's frame
# (416 or 448 pixels) shows up as one past the image's edge.
PHOTO_SIDE = 320

MODELS = [("yolov2-voc", 416), ("yolov1-paper", 448)]


def jaxheads(*args, env):
    """Runs ``jaxheads ARGS...`` in a new process; its stdout, or the failure shown."""
    done = subprocess.run(
        [sys.executable, "-m", "jaxheads.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert done.returncode == 0, f"jaxheads {' '.join(map(str, args))}:\n{done.stderr[-3000:]}"
    return done.stdout


def strict_json(path):
    def refuse(constant):
        raise AssertionError(f"{path}: {constant} is not strict JSON")

    with open(path) as f:
        return json.load(f, parse_constant=refuse)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The commands' environment: one compilation cache, so that ``evaluate`` loads the
    program ``train``'s final evaluation compiled."""
    cache = tmp_path_factory.mktemp("compilation-cache")
    return {**os.environ, "JAXHEADS_COMPILATION_CACHE": str(cache)}


@pytest.fixture(scope="module")
def voc(tmp_path_factory, env):
    root = tmp_path_factory.mktemp("data") / "VOC2007"
    jaxheads("data", "voc-synthetic", root, "--images", 4, "--image-size", PHOTO_SIDE, env=env)
    return root


@pytest.mark.slow
# Three processes that each build (and YOLOv1's: draw with NumPy) the full-size model; on a
# 2-core machine that is busy with other work they take longer than the suite's 15 minutes.
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("model,size", MODELS, ids=[m for m, _ in MODELS])
def test_train_evaluate_and_detect_at_paper_size(tmp_path, voc, env, model, size):
    workdir = tmp_path / "run"
    out = jaxheads(
        "train",
        "--model",
        model,
        "--dataset",
        "voc",
        "--data-dir",
        voc,
        "--image-size",
        size,
        "--steps",
        1,
        "--batch-size",
        1,
        "--workdir",
        workdir,
        "--no-progress",
        env=env,
    )
    assert "trained 1 steps" in out, out
    assert os.listdir(workdir / "checkpoints") == ["1"]
    config = strict_json(workdir / "config.json")["extra"]
    assert (config["model"], config["image_size"]) == (model, size)

    jaxheads("evaluate", "--workdir", workdir, "--json", tmp_path / "eval.json", env=env)
    metrics = strict_json(tmp_path / "eval.json")
    assert metrics["checkpoint_step"] == 1
    assert metrics["images"] == len((voc / "ImageSets" / "Main" / "test.txt").read_text().split())
    for key in ("mAP50", "mAP50_voc07", "recall", "mAP", "mAP50_coco", "mAP75"):
        assert math.isfinite(metrics[key]) and 0.0 <= metrics[key] <= 1.0, (key, metrics[key])

    photo = voc / "JPEGImages" / "000001.jpg"
    with Image.open(photo) as image:
        assert image.size == (PHOTO_SIDE, PHOTO_SIDE)
    # A threshold of 0 reports every box that survives NMS: an untrained model has some.
    jaxheads(
        "detect",
        "--workdir",
        workdir,
        photo,
        "--thresh",
        0,
        "--json",
        tmp_path / "boxes.json",
        "--quiet",
        env=env,
    )
    (found,) = strict_json(tmp_path / "boxes.json")
    assert (found["width"], found["height"]) == (PHOTO_SIDE, PHOTO_SIDE)
    assert found["detections"], found
    for detection in found["detections"]:
        x0, y0, x1, y1 = detection["box"]
        # Clipped to the image (an untrained YOLOv1 puts some centres outside it: those
        # boxes are clipped to no width or height).
        assert 0 <= x0 <= x1 <= PHOTO_SIDE and 0 <= y0 <= y1 <= PHOTO_SIDE, detection
        assert 0 <= detection["class_id"] < 20 and 0.0 <= detection["score"] <= 1.0
    # The grid's cells cover the image: boxes of normalised [0, 1] coordinates would not.
    inside = [d["box"] for d in found["detections"] if d["box"][0] < d["box"][2]]
    assert max(b[2] for b in inside) > PHOTO_SIDE / 2, found["detections"]
    assert max(b[3] for b in inside if b[1] < b[3]) > PHOTO_SIDE / 2, found["detections"]


@pytest.mark.parametrize("name", ["metrics.txt", "missing-folder/metrics.json", "."])
def test_evaluate_refuses_a_json_path_it_cannot_write_before_evaluating(
    tmp_path, capsys, monkeypatch, name
):
    from jaxheads.cli import main

    (tmp_path / "config.json").write_text("{}")  # the run itself is never read
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--workdir", str(tmp_path), "--json", name]) == 2
    err = capsys.readouterr().err
    assert f"expected --json to name a .json file in an existing folder, got {name}" in err


def test_evaluate_reads_a_small_set_in_one_batch_and_gives_absent_classes_null():
    data = ShapesDataset(
        2, image_size=32, max_boxes=4, num_classes=5, seed=0, split="val", max_objects=1
    )
    detector, init = build_detector("small-yolov2", image_size=32, num_classes=5)
    params, state = init(jax.random.key(0))
    predict, batches = make_predict(detector), []

    def counting_predict(p, s, images):
        batches.append(images.shape[0])
        return predict(p, s, images)

    result = evaluate(detector, params, state, data, batch_size=64, predict=counting_predict)
    assert batches == [2]  # not two images padded with 62 blank ones
    present = {int(k) for i in range(2) for k in data.example(i)["labels"][data.example(i)["mask"]]}
    absent = set(range(5)) - present
    assert absent and all(result["per_class_ap50"][k] is None for k in absent)
    assert all(np.isfinite(result["per_class_ap50"][k]) for k in present)
    json.dumps(result, allow_nan=False)
