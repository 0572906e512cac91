"""Every refused argument leaves nothing behind: the corrected command then just runs.

``jaxheads train … --seed -1 --workdir W`` used to exit 2 after writing ``W/config.json``
(seed -1), ``.lock``, ``checkpoints/`` and ``metrics.jsonl``, and the corrected command
was then refused as a different run. Here each flag of ``train`` and ``pretrain`` is set
to a bad value in turn: the command exits 2 with one line naming the flag, and the work
directory does not exist; then the corrected command trains in that same directory.
"""

import pytest

from jaxheads.cli import main

GOOD_TRAIN = [
    "train",
    "--steps",
    "1",
    "--batch-size",
    "8",
    "--image-size",
    "32",
    "--val-examples",
    "8",
    "--train-examples",
    "8",
    "--no-progress",
]
BAD_TRAIN = [
    ("--seed", "-1", "seed"),
    ("--seed", "99999999999999999999", "seed"),
    ("--steps", "0", "--steps"),
    ("--batch-size", "0", "--batch-size"),
    ("--image-size", "0", "--image-size"),
    ("--lr", "nan", "--lr"),
    ("--lr", "-1", "--lr"),
    ("--weight-decay", "-1", "--weight-decay"),
    ("--clip-norm", "0", "--clip-norm"),
    ("--checkpoint-every", "0", "--checkpoint-every"),
    ("--log-every", "0", "--log-every"),
    ("--eval-every", "-1", "--eval-every"),
    ("--val-examples", "0", "--val-examples"),
    ("--train-examples", "0", "--train-examples"),
    ("--burn-in", "-1", "--burn-in"),
    ("--freeze", "-1", "--freeze"),
    ("--devices", "0", "--devices"),
    ("--model", "small-yolov9", "small-yolov9"),
    ("--dataset", "shapez", "shapez"),
    ("--init", "/nonexistent/backbone.weights", "no such file"),
    ("--policy", "sometimes", "--policy"),
    ("--optimizer", "adagrad", "--optimizer"),
]


def _refused(argv, capsys) -> str:
    try:
        status = main(argv)
    except SystemExit as exit:  # argparse's own refusals (choices, types)
        status = exit.code
    err = capsys.readouterr().err
    assert status == 2, (argv, err)
    return err


def _each_refused_then_the_corrected_command_runs(good, bad, workdir, capsys) -> None:
    for flag, value, named in bad:
        err = _refused([*good, "--workdir", str(workdir), flag, value], capsys)
        assert named in err.strip().splitlines()[-1], (flag, value, err)  # a line, not a traceback
        assert "Traceback" not in err, err
        assert not workdir.exists(), (flag, value, sorted(p.name for p in workdir.iterdir()))
    assert main([*good, "--workdir", str(workdir)]) == 0
    assert (workdir / "config.json").exists()


@pytest.mark.slow
def test_each_bad_train_flag_writes_nothing_then_the_corrected_command_runs(tmp_path, capsys):
    _each_refused_then_the_corrected_command_runs(GOOD_TRAIN, BAD_TRAIN, tmp_path / "run", capsys)


def test_a_missing_init_file_is_named_as_missing(tmp_path, capsys):
    argv = [*GOOD_TRAIN, "--workdir", str(tmp_path / "run"), "--init", str(tmp_path / "x.weights")]
    err = _refused(argv, capsys)
    assert "x.weights" in err and "no such file" in err.lower(), err
    assert not (tmp_path / "run").exists()


GOOD_PRETRAIN = [
    "pretrain",
    "--steps",
    "1",
    "--batch-size",
    "8",
    "--image-size",
    "32",
    "--train-examples",
    "16",
    "--val-examples",
    "8",
    "--no-progress",
]
BAD_PRETRAIN = [
    ("--seed", "-1", "seed"),
    ("--steps", "0", "steps"),
    ("--batch-size", "0", "batch"),
    ("--image-size", "0", "image"),
    ("--train-examples", "0", "train"),
    ("--val-examples", "0", "val"),
    ("--checkpoint-every", "0", "checkpoint_every"),
    ("--log-every", "0", "log_every"),
    ("--lr", "nan", "learning_rate"),
    ("--backbone", "darknet99", "darknet99"),
    ("--init", "/nonexistent/backbone.weights", "no such file"),
]


@pytest.mark.slow
def test_each_bad_pretrain_flag_writes_nothing_then_the_corrected_command_runs(tmp_path, capsys):
    _each_refused_then_the_corrected_command_runs(
        GOOD_PRETRAIN, BAD_PRETRAIN, tmp_path / "run", capsys
    )
