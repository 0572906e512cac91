"""``jaxheads train`` / ``evaluate`` end to end, and their errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxheads.cli import main

SMALL = [
    "--steps",
    "4",
    "--batch-size",
    "8",
    "--image-size",
    "32",
    "--val-examples",
    "8",
    "--train-examples",
    "64",
    "--log-every",
    "2",
    "--checkpoint-every",
    "2",
    "--no-progress",
]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["small-yolov2-passthrough", "small-yolov1-fc"])
def test_train_then_evaluate(tmp_path, capsys, model):
    workdir = str(tmp_path / "run")
    assert main(["train", "--model", model, "--workdir", workdir, *SMALL]) == 0
    out = out_first = capsys.readouterr().out
    assert "trained 4 steps" in out and "VOC2010 mAP@0.5" in out and "final loss nan" not in out
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4]
    evals = [r["eval"] for r in rows if "eval" in r]
    assert len(evals) == 1 and 0.0 <= evals[0]["mAP50"] <= 1.0
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
    assert main(["evaluate", "--workdir", workdir]) == 0
    out = capsys.readouterr().out
    assert "checkpoint step 4" in out and "COCO mAP@[.5:.95]" in out
    # The same command again finds the finished run, trains nothing more and reports the
    # run's final loss and evaluation again.
    assert main(["train", "--model", model, "--workdir", workdir, *SMALL]) == 0
    again = capsys.readouterr().out
    assert again == out_first


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "yolov9"], "build_detector: expected a model in"),
        (["--dataset", "imagenet"], "make_dataset: expected a dataset in"),
        (["--dataset", "voc"], "expected --data-dir"),
        (["--dataset", "voc", "--data-dir", "/nonexistent/VOC"], "/nonexistent/VOC"),
        (
            ["--devices", "8", "--batch-size", "12"],
            "divisible by the 8 devices (--devices), got 12",
        ),
        (["--steps", "-5"], "--steps: expected an integer >= 1, got -5"),
        (["--checkpoint-every", "0"], "--checkpoint-every: expected an integer >= 1, got 0"),
        (["--devices", "0"], "--devices: expected an integer >= 1, got 0"),
        (["--image-size", "0"], "--image-size: expected an integer >= 1, got 0"),
        (["--log-every", "0"], "--log-every: expected an integer >= 1, got 0"),
        (["--train-examples", "0"], "--train-examples: expected an integer >= 1, got 0"),
        (["--lr", "nan"], "--lr: expected a finite number >= 0.0, got nan"),
        (["--lr", "inf"], "--lr: expected a finite number >= 0.0, got inf"),
        (["--weight-decay", "nan"], "--weight-decay: expected a finite number >= 0.0, got nan"),
        (["--clip-norm", "0"], "--clip-norm: expected a finite number > 0.0, got 0.0"),
        (["--loader-processes", "-1"], "--loader-processes: expected an integer >= 0, got -1"),
        (
            ["--dataset", "shapes-device", "--loader-processes", "2"],
            "expected loader_processes 0 for 'shapes-device' (drawn on the device",
        ),
    ],
)
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
    # Refused before anything is written, so the corrected command starts a new run.
    assert not workdir.exists()


def test_unwritable_workdir_and_missing_run(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["train", "--workdir", str(blocker / "run"), *SMALL]) == 2
    assert "expected a writable workdir" in capsys.readouterr().err
    assert main(["evaluate", "--workdir", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "expected a jaxheads work directory with a readable" in err and "nothing" in err


def _train_argv(workdir, *extra):
    return [
        sys.executable,
        "-m",
        "jaxheads.cli",
        "train",
        "--workdir",
        str(workdir),
        "--steps",
        "60",
        "--batch-size",
        "8",
        "--image-size",
        "32",
        "--val-examples",
        "8",
        "--train-examples",
        "64",
        "--log-every",
        "1",
        "--checkpoint-every",
        "4",
        "--no-progress",
        *extra,
    ]


def _losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [(r["step"], r["loss"]) for r in map(json.loads, f) if "loss" in r]


@pytest.mark.slow
def test_cli_sigterm_then_same_command_matches_uninterrupted(tmp_path):
    """The detection pipeline (prefetch thread, augmentation) resumes exactly too."""
    ref = subprocess.run(_train_argv(tmp_path / "ref"), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]
    proc = subprocess.Popen(
        _train_argv(tmp_path / "run"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "interrupted at step" in out, out
    again = subprocess.run(
        _train_argv(tmp_path / "run"), capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0 and "trained 60 steps" in again.stdout, again.stderr[-2000:]
    assert _losses(tmp_path / "run") == _losses(tmp_path / "ref")
    assert [s for s, _ in _losses(tmp_path / "ref")] == list(range(1, 61))


def test_bf16_compute_keeps_float32_params(tmp_path):
    import jax
    import jax.numpy as jnp

    from jaxheads.train.detection import build_detector, detection_loss, make_dataset

    det, init = build_detector("small-yolov2", image_size=32, num_classes=3)
    params, state = init(jax.random.key(0))
    data = make_dataset("shapes", "train", image_size=32, num_examples=4)
    batch = {
        k: jnp.asarray(np.stack([data.example(i)[k] for i in range(4)]))
        for k in ("image", "boxes", "labels", "mask")
    }
    losses = {}
    for dtype in (jnp.float32, jnp.bfloat16):
        fn = detection_loss(det, global_batch=4, compute_dtype=dtype)
        (loss, _), grads = jax.value_and_grad(fn, has_aux=True)(
            params, state, batch, jax.random.key(1), None, jnp.int32(0)
        )
        assert loss.dtype == jnp.float32
        assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
        losses[dtype] = float(loss)
    assert losses[jnp.bfloat16] == pytest.approx(losses[jnp.float32], rel=0.05)


@pytest.mark.slow
def test_cli_two_processes_match_one(tmp_path):
    """`jaxheads train` with --coordinator-address: each process loads its half of a batch."""
    flags = [
        "--steps",
        "4",
        "--batch-size",
        "8",
        "--image-size",
        "32",
        "--train-examples",
        "64",
        "--val-examples",
        "8",
        "--log-every",
        "1",
        "--checkpoint-every",
        "2",
        "--no-progress",
        "--devices",
        "2",
    ]
    single = subprocess.run(
        [sys.executable, "-m", "jaxheads.cli", "train", "--workdir", str(tmp_path / "one"), *flags],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-2000:]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jaxheads.cli",
                "train",
                "--workdir",
                str(tmp_path / "two"),
                *flags,
                "--coordinator-address",
                "localhost:12597",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (0, 1)
    ]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0 and "trained 4 steps" in out, err[-2000:]
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert [s for s, _ in two] == [1, 2, 3, 4]
    np.testing.assert_allclose([v for _, v in two], [v for _, v in one], rtol=1e-4)
