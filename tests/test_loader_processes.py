"""``jaxheads train --loader-processes N``: the training images loaded in worker processes.

The batches are the same bit for bit whatever the number of processes
(`jaxheads.data.workers`), so the losses are too, and a run may resume with another number.
"""

import json

import pytest

from jaxheads.cli import main
from jaxheads.data import SyntheticVOC, write_synthetic_voc

pytest.importorskip("PIL.Image")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _losses(workdir):
    with open(workdir / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def _train(workdir, root, steps, processes):
    argv = ["train", "--workdir", str(workdir), "--model", "small-yolov2", "--dataset", "voc"]
    argv += ["--data-dir", str(root), "--image-size", "32", "--batch-size", "8"]
    argv += ["--steps", str(steps), "--policy", "constant", "--burn-in", "0"]
    argv += ["--checkpoint-every", "2", "--log-every", "1"]
    argv += ["--val-examples", "4", "--no-progress", "--no-tensorboard"]
    assert main([*argv, "--loader-processes", str(processes)]) == 0


def test_worker_processes_train_the_same_run_and_resume_with_another_count(tmp_path):
    root = tmp_path / "VOC2007"
    write_synthetic_voc(root, SyntheticVOC(images=16, image_size=(45, 60)))
    _train(tmp_path / "threads", root, 4, 0)
    want = _losses(tmp_path / "threads")
    assert len(want) == 4
    # Two steps in two worker processes, then extended to four in three (a constant rate:
    # the longer run has the same schedule).
    _train(tmp_path / "workers", root, 2, 2)
    saved = json.loads((tmp_path / "workers" / "config.json").read_text())
    assert saved["extra"]["loader_processes"] == 2
    _train(tmp_path / "workers", root, 4, 3)
    assert _losses(tmp_path / "workers") == want
