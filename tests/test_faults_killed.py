"""Killed and stopped training processes resume to the uninterrupted run's result.

Each test runs ``train_toy.py`` in a subprocess and kills it (SIGKILL inside a save,
held before its commit by ``train_toy.paused_commit``, and between steps) or stops it
(SIGTERM, with a second run meeting the lock), then lets the same command finish and
compares its losses and final checkpoint with an uninterrupted run's, bit for bit.
"""

import hashlib
import os
import random
import signal
import time

import pytest
from train_toy import assert_same_tree, final_checkpoint, logged_losses, spawn_toy

from jaxheads.train.checkpoints import QUARANTINE

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


def _files(folder) -> dict:
    """Every file under ``folder`` (and the folder): its bytes' SHA-256, inode and mtime."""
    seen = {".": os.stat(folder).st_ino}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            st = os.stat(path)
            seen[os.path.relpath(path, folder)] = (digest, st.st_ino, st.st_mtime_ns)
    return seen


def _good(workdir) -> tuple:
    """Checkpoint 5 of a run and its checksum file, as files on disk."""
    with open(workdir / "checksums" / "5.json", "rb") as f:
        return _files(workdir / "checkpoints" / "5"), f.read()


@pytest.mark.slow
def test_kill_9_inside_a_save_keeps_the_good_checkpoint_and_resumes_exactly(
    tmp_path, toy_reference
):
    workdir = tmp_path / "run"
    checkpoints = workdir / "checkpoints"
    first, second = tmp_path / "gate-1", tmp_path / "gate-2"
    first.mkdir()
    second.mkdir()
    # Killed inside the save of checkpoint 10: every file written, the folder not renamed.
    proc = spawn_toy(workdir, 20, pause=(10, str(first)))
    _wait_for(lambda: (first / "inside").exists(), proc)
    good = _good(workdir)
    names = os.listdir(checkpoints)
    pending = [n for n in names if n.startswith("10.orbax-checkpoint-tmp")]
    assert "10" not in names and len(pending) == 1, names
    assert sum(len(f) for _, _, f in os.walk(checkpoints / pending[0])) > 2, pending
    assert (workdir / "checksums" / "10.json").exists()
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert _good(workdir) == good
    # The next run resumes from checkpoint 5 and leaves it as it was: seen when that
    # run is itself inside the save of checkpoint 10.
    proc = spawn_toy(workdir, 20, slow=0.05, pause=(10, str(second)))
    _wait_for(lambda: (second / "inside").exists(), proc)
    assert _good(workdir) == good
    assert not (workdir / QUARANTINE).exists()
    assert "10" not in os.listdir(checkpoints)
    # Then killed between steps, at a random moment after that save.
    (second / "release").touch()
    _wait_for(lambda: (checkpoints / "10").is_dir(), proc)
    time.sleep(random.Random(0).uniform(0.0, 0.3))
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, out + err[-3000:]
    _finish_and_compare(workdir, toy_reference)
    assert not (workdir / QUARANTINE).exists()


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
