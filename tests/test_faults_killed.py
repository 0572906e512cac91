"""Killed and stopped training processes resume to the uninterrupted run's result.

Each test runs ``train_toy.py`` in a subprocess and kills it (SIGKILL during a save
and between steps) or stops it (SIGTERM, with a second run meeting the lock), then
lets the same command finish and compares its losses and final checkpoint with an
uninterrupted run's, bit for bit.
"""

import os
import random
import signal
import subprocess
import sys
import time

import orbax.checkpoint as ocp
import pytest
from train_toy import assert_same_tree, logged_losses

pytestmark = pytest.mark.timeout(300)

HERE = os.path.dirname(__file__)
ENV = {**os.environ, "PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _spawn(workdir, steps=20, slow=0.0):
    return subprocess.Popen(
        [
            sys.executable,
            os.path.join(HERE, "train_toy.py"),
            str(workdir),
            str(steps),
            "jit",
            "2",
            str(slow),
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, proc, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"the condition never held: {proc.communicate()}")


@pytest.fixture(scope="module")
def toy_reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("toy") / "ref"
    out = _spawn(workdir).communicate(timeout=300)[0]
    assert "STATUS completed 20" in out
    return workdir


def _final(workdir):
    manager = ocp.CheckpointManager(os.path.abspath(workdir / "checkpoints"))
    try:
        return manager.restore(20)
    finally:
        manager.close()


def _finish_and_compare(workdir, toy_reference):
    out, err = _spawn(workdir).communicate(timeout=300)
    assert "STATUS completed 20" in out, err[-3000:]
    assert logged_losses(workdir) == logged_losses(toy_reference)
    assert_same_tree(_final(workdir), _final(toy_reference))


@pytest.mark.slow
def test_kill_9_during_saves_and_between_steps_resumes_exactly(tmp_path, toy_reference):
    workdir = tmp_path / "run"
    checkpoints = workdir / "checkpoints"
    # During a save: as soon as orbax's temporary folder for step 10 appears.
    proc = _spawn(workdir, slow=0.05)
    _wait_for(
        lambda: (
            checkpoints.is_dir()
            and any(n.startswith("10.") or n == "10" for n in os.listdir(checkpoints))
        ),
        proc,
    )
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    # Between steps, at a random moment after the next run has resumed.
    proc = _spawn(workdir, slow=0.05)
    time.sleep(random.Random(0).uniform(3.0, 6.0))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    _finish_and_compare(workdir, toy_reference)


@pytest.mark.slow
def test_sigterm_then_a_concurrent_second_run_then_resume(tmp_path, toy_reference):
    workdir = tmp_path / "run"
    proc = _spawn(workdir, slow=3.0)  # 45 s from step 5 to the end: the second run meets it
    _wait_for(lambda: (workdir / "checkpoints" / "5").is_dir(), proc)
    second = _spawn(workdir)
    out, err = second.communicate(timeout=300)
    assert second.returncode != 0 and "expected no other run training in" in err, out + err
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert "STATUS interrupted" in out
    _finish_and_compare(workdir, toy_reference)
