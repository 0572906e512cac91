"""`restore_run`: a work directory read back into the records that wrote it, or refused by name."""

import dataclasses
import json

import pytest
import tiny_pretrain

from jaxheads.cli import main
from jaxheads.train.detection import DetectionExperiment
from jaxheads.train.pretrain import PretrainExperiment
from jaxheads.train.restore import restore_checkpoint, restore_run
from jaxheads.train.workdir import jsonable


def _written(run) -> str:
    """``config.json`` as `jaxheads.train.workdir.reconcile_config` writes it for ``run``."""
    return json.dumps(jsonable(dataclasses.asdict(run)), indent=2)


@pytest.mark.slow  # two tiny runs, about a minute on 2 cores
def test_a_train_and_a_pretrain_directory_round_trip(tmp_path):
    train, pre = tmp_path / "train", tmp_path / "pre"
    argv = ["train", "--workdir", str(train), "--steps", "2", "--batch-size", "8"]
    argv += ["--image-size", "32", "--train-examples", "16", "--val-examples", "8"]
    assert main([*argv, "--no-progress", "--dataset", "digits"]) == 0
    argv = ["pretrain", "--workdir", str(pre), "--image-size", "32", "--backbone", "small-nobn"]
    assert main([*argv, *tiny_pretrain.ARGS]) == 0

    detection = restore_run(train)
    assert detection.experiment == DetectionExperiment(
        dataset="digits", batch_size=8, image_size=32, train_examples=16, val_examples=8
    )
    pretraining = restore_run(pre)
    assert pretraining.experiment == PretrainExperiment(
        backbone="small-nobn", image_size=32, batch_size=8, train_examples=16, val_examples=8
    )
    for workdir, restored in ((train, detection), (pre, pretraining)):
        # the records write the very bytes they were read from
        assert _written(restored.run) == (workdir / "config.json").read_text()
        assert restored.run.steps == 2 and restored.run.workdir == str(workdir)
        again, model, params, state, step = restore_checkpoint(workdir)
        assert again == restored and step == 2 and params
    # the same command resumes it: the restored settings are the run's
    assert main([*argv, *tiny_pretrain.ARGS]) == 0


def _refused(tmp_path, text, match, **kwargs):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        restore_run(tmp_path, **kwargs)
    assert str(tmp_path) in str(err.value)
    return str(err.value)


def test_a_directory_without_a_readable_run_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="a jaxheads work directory with a readable .*config.json"):
        restore_run(tmp_path / "nowhere")
    _refused(tmp_path, '{"steps": 2, "extra": {', "readable .*JSONDecodeError")
    _refused(tmp_path, "[1, 2]", "settings with an 'extra' object .*got list")
    _refused(tmp_path, '{"steps": 2}', "settings with an 'extra' object .*got NoneType")
    extra = {"model": "small-yolov2", "dataset": "shapes", "image_size": 32}
    _refused(tmp_path, json.dumps({"stepz": 2, "extra": extra}), r"got also \['stepz'\]")
    missing = {"model": "small-yolov2", "image_size": 32}
    _refused(
        tmp_path, json.dumps({"extra": missing}), r"DetectionExperiment's .*got no \['dataset'\]"
    )
    _refused(tmp_path, json.dumps({"steps": 0, "extra": extra}), "valid run settings .*steps")
    bad = {"kind": "pretrain", "backbone": "small-bn", "image_size": 32}
    message = _refused(tmp_path, json.dumps({"extra": bad}), "valid run settings")
    assert "did you mean 'small-nobn'" in message
    _refused(
        tmp_path,
        json.dumps({"extra": extra}),
        "a jaxheads pretrain run in .*got a jaxheads train run",
        expect=PretrainExperiment,
    )


def test_a_pretraining_directory_is_no_detector(tmp_path, capsys):
    extra = PretrainExperiment().extra()
    (tmp_path / "config.json").write_text(json.dumps({"extra": extra}))
    assert main(["evaluate", "--workdir", str(tmp_path)]) == 2
    assert "expected a jaxheads train run" in capsys.readouterr().err
    from jaxheads.predict import Detector

    with pytest.raises(ValueError, match="Detector.from_workdir: expected a jaxheads train run"):
        Detector.from_workdir(tmp_path)
