"""``jaxheads train`` / ``evaluate`` end to end, and their errors."""

import json
import os

import pytest

from jaxheads.cli import main

SMALL = ["--steps", "4", "--batch-size", "8", "--image-size", "32", "--val-examples", "8",
         "--train-examples", "64", "--log-every", "2", "--checkpoint-every", "2",
         "--no-progress"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["small-yolov2-passthrough", "small-yolov1-fc"])
def test_train_then_evaluate(tmp_path, capsys, model):
    workdir = str(tmp_path / "run")
    assert main(["train", "--model", model, "--workdir", workdir, *SMALL]) == 0
    out = capsys.readouterr().out
    assert "trained 4 steps" in out and "VOC2010 mAP@0.5" in out
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4]
    evals = [r["eval"] for r in rows if "eval" in r]
    assert len(evals) == 1 and 0.0 <= evals[0]["mAP50"] <= 1.0
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
    assert main(["evaluate", "--workdir", workdir]) == 0
    out = capsys.readouterr().out
    assert "checkpoint step 4" in out and "COCO mAP@[.5:.95]" in out
    # The same command again finds the finished run and trains nothing more.
    assert main(["train", "--model", model, "--workdir", workdir, *SMALL]) == 0
    assert "trained 4 steps" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--model", "yolov9"], "build_detector: expected a model in"),
    (["--dataset", "imagenet"], "make_dataset: expected a dataset in"),
    (["--dataset", "voc"], "expected --data-dir"),
    (["--dataset", "voc", "--data-dir", "/nonexistent/VOC"], "/nonexistent/VOC"),
    (["--devices", "8", "--batch-size", "12"], "divisible by the 8 devices, got 12"),
])
def test_bad_input_leaves_no_workdir(tmp_path, capsys, args, message):
    workdir = tmp_path / "run"
    flags = dict(zip(SMALL[::2], SMALL[1::2], strict=False))
    flags.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = ["train", "--workdir", str(workdir), "--no-progress"]
    for k, v in flags.items():
        if k != "--no-progress":
            argv += [k, v]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    if "divisible" not in message:
        assert not workdir.exists()


def test_unwritable_workdir_and_missing_run(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["train", "--workdir", str(blocker / "run"), *SMALL]) == 2
    assert "expected a writable workdir" in capsys.readouterr().err
    assert main(["evaluate", "--workdir", str(tmp_path / "nothing")]) == 2
    assert "expected a run's config" in capsys.readouterr().err
