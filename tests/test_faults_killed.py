"""Killed and stopped training processes resume to the uninterrupted run's result.

Each test runs ``train_toy.py`` in a subprocess and kills it (SIGKILL during a save
and between steps) or stops it (SIGTERM, with a second run meeting the lock), then
lets the same command finish and compares its losses and final checkpoint with an
uninterrupted run's, bit for bit.
"""

import os
import random
import signal
import time

import pytest
from train_toy import assert_same_tree, final_checkpoint, logged_losses, spawn_toy

pytestmark = pytest.mark.timeout(300)


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
    out = spawn_toy(workdir, 20).communicate(timeout=300)[0]
    assert "STATUS completed 20" in out
    return workdir


def _finish_and_compare(workdir, toy_reference):
    out, err = spawn_toy(workdir, 20).communicate(timeout=300)
    assert "STATUS completed 20" in out, err[-3000:]
    assert logged_losses(workdir) == logged_losses(toy_reference)
    assert_same_tree(final_checkpoint(workdir, 20), final_checkpoint(toy_reference, 20))


@pytest.mark.slow
def test_kill_9_during_saves_and_between_steps_resumes_exactly(tmp_path, toy_reference):
    workdir = tmp_path / "run"
    checkpoints = workdir / "checkpoints"
    # During a save: as soon as orbax's temporary folder for step 10 appears.
    proc = spawn_toy(workdir, 20, slow=0.05)
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
    proc = spawn_toy(workdir, 20, slow=0.05)
    time.sleep(random.Random(0).uniform(3.0, 6.0))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    _finish_and_compare(workdir, toy_reference)


@pytest.mark.slow
def test_sigterm_then_a_concurrent_second_run_then_resume(tmp_path, toy_reference):
    workdir = tmp_path / "run"
    proc = spawn_toy(workdir, 20, slow=3.0)  # 45 s from step 5 to the end: the second run meets it
    _wait_for(lambda: (workdir / "checkpoints" / "5").is_dir(), proc)
    second = spawn_toy(workdir, 20)
    out, err = second.communicate(timeout=300)
    assert second.returncode != 0 and "expected no other run training in" in err, out + err
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert "STATUS interrupted" in out
    _finish_and_compare(workdir, toy_reference)
