"""``jaxheads train …`` and the library call with the same records start the same run."""

import dataclasses
import json

import pytest

from jaxheads.cli import main
from jaxheads.train.detection import DetectionExperiment, build_experiment
from jaxheads.train.loop import RunConfig, fit


def _config(workdir) -> dict:
    config = json.loads((workdir / "config.json").read_text())
    assert config.pop("workdir") == str(workdir)
    return config


def _losses(workdir) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [(row["step"], row["loss"]) for row in rows if "loss" in row]


@pytest.mark.slow  # two short trainings, about a minute on 2 cores
def test_train_from_the_shell_equals_the_library_call(tmp_path):
    shell, python = tmp_path / "shell", tmp_path / "python"
    # batch 8: the suite's host has 8 forced CPU devices, and the process may have started
    # them already (so no --devices, which must come before jax starts)
    argv = ["train", "--workdir", str(shell), "--steps", "3", "--batch-size", "8"]
    argv += ["--image-size", "32", "--val-examples", "8", "--log-every", "1", "--no-progress"]
    assert main(argv) == 0

    # The same run from Python: the records with the fields the flags set, the rest defaults.
    experiment = DetectionExperiment(batch_size=8, image_size=32, val_examples=8)
    run = RunConfig(
        workdir=str(python),
        steps=3,
        log_every=1,
        eval_every=3,  # the command's --eval-every 0: once, at the end
        progress=False,
        extra=dataclasses.asdict(experiment),
    )
    _, task, _ = build_experiment(experiment, run.seed)
    fit(task, run)

    assert _config(shell) == _config(python)
    losses = _losses(shell)
    assert [step for step, _ in losses] == [1, 2, 3]
    assert losses == _losses(python)
