"""Training: three parallel strategies agree; runs survive kills, signals, corruption and NaN."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from train_toy import assert_same_tree, final_checkpoint, logged_losses, spawn_toy, toy_task

from jaxheads.train.loop import RunConfig, TrainingDiverged, fit
from jaxheads.train.optim import schedule

HERE = os.path.dirname(__file__)
ENV = {**os.environ, "PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _run(workdir, **kw):
    kw = {
        "steps": 6,
        "optimizer": "sgd",
        "learning_rate": 0.01,
        "progress": False,
        "checkpoint_every": 5,
        "log_every": 1,
        **kw,
    }
    return fit(toy_task(), RunConfig(workdir=str(workdir), **kw))


def _maxdiff(a, b):
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(x - y))), a, b)))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_pmap_jit_shard_map_match_one_device(tmp_path, optimizer):
    assert len(jax.devices()) == 8
    single = _run(tmp_path / "single", parallel="jit", num_devices=1, optimizer=optimizer)
    for parallel in ("jit", "pmap", "shard_map"):
        multi = _run(tmp_path / parallel, parallel=parallel, num_devices=8, optimizer=optimizer)
        assert multi["status"] == "completed" and multi["step"] == 6
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
            multi["params"],
            single["params"],
        )
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
            multi["state"],
            single["state"],
        )


def test_unsynchronised_batch_norm_differs(tmp_path):
    single = _run(tmp_path / "single", num_devices=1)
    local = _run(tmp_path / "local", parallel="pmap", num_devices=8, sync_batch_norm=False)
    # Synchronised runs agree to ~1e-7; per-device statistics move the running stats visibly.
    assert _maxdiff(local["state"], single["state"]) > 1e-4


def _wait_for_checkpoint(workdir, step, proc, timeout=120):
    deadline = time.time() + timeout
    path = os.path.join(workdir, "checkpoints", str(step))
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(os.path.join(path, "commit_success.txt")) or (
            os.path.isdir(path)
            and not any(n.startswith(".") for n in os.listdir(path))
            and os.listdir(path)
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint {step} appeared: {proc.communicate()}")


@pytest.mark.slow
def test_kill_9_and_sigterm_resume_exactly(tmp_path):
    reference = spawn_toy(tmp_path / "ref", 20)
    assert "STATUS completed 20" in reference.communicate(timeout=300)[0]

    killed = spawn_toy(tmp_path / "killed", 20, slow=0.2)
    _wait_for_checkpoint(tmp_path / "killed", 10, killed)
    time.sleep(0.5)  # a few steps past the checkpoint, metrics already logged for them
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert "STATUS completed 20" in spawn_toy(tmp_path / "killed", 20).communicate(timeout=300)[0]

    stopped = spawn_toy(tmp_path / "stopped", 20, slow=0.2)
    _wait_for_checkpoint(tmp_path / "stopped", 5, stopped)
    stopped.send_signal(signal.SIGTERM)
    out = stopped.communicate(timeout=120)[0]
    assert "STATUS interrupted" in out
    interrupted_at = int(out.split("STATUS interrupted")[1].split()[0])
    assert os.path.isdir(tmp_path / "stopped" / "checkpoints" / str(interrupted_at))
    assert "STATUS completed 20" in spawn_toy(tmp_path / "stopped", 20).communicate(timeout=300)[0]

    ref_metrics = logged_losses(tmp_path / "ref")
    assert [s for s, _ in ref_metrics] == list(range(1, 21))
    for name in ("killed", "stopped"):
        assert logged_losses(tmp_path / name) == ref_metrics, name
    ref = final_checkpoint(tmp_path / "ref", 20)
    for name in ("killed", "stopped"):
        assert_same_tree(final_checkpoint(tmp_path / name, 20), ref)


def test_corrupt_newest_checkpoint_falls_back_with_warning(tmp_path):
    reference = _run(tmp_path / "ref", steps=12)
    _run(tmp_path / "run", steps=12)
    newest = tmp_path / "run" / "checkpoints" / "12"
    for root, _, files in os.walk(newest):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"\x00garbage")
    with pytest.warns(UserWarning, match="checkpoint 12 .* is unreadable"):
        resumed = _run(tmp_path / "run", steps=12)
    assert _maxdiff(resumed["params"], reference["params"]) == 0.0
    assert logged_losses(tmp_path / "run") == logged_losses(tmp_path / "ref")


def test_nan_stops_without_overwriting_good_checkpoint(tmp_path):
    workdir = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match="nan at step 8.*last good checkpoint .* is step 5"):
        fit(
            toy_task(nan_at_step=8),
            RunConfig(
                workdir=str(workdir), steps=20, progress=False, checkpoint_every=5, log_every=1
            ),
        )
    assert sorted(os.listdir(workdir / "checkpoints")) == ["5"]
    assert max(s for s, _ in logged_losses(workdir)) < 8


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="divisible by the 8 devices, got 12"):
        fit(
            toy_task(batch_size=12),
            RunConfig(workdir=str(tmp_path / "b"), steps=2, num_devices=8, progress=False),
        )
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="train: expected a writable workdir"):
        _run(blocker / "sub")
    _run(tmp_path / "run", steps=2)
    with pytest.raises(ValueError, match=r"the same settings .* learning_rate: 0.01 -> 0.5"):
        _run(tmp_path / "run", steps=2, learning_rate=0.5)
    with pytest.raises(ValueError, match="train: expected at most 8 devices"):
        _run(tmp_path / "many", num_devices=16)
    with pytest.raises(ValueError, match="make_runner: expected parallel in"):
        _run(tmp_path / "par", parallel="dp")


def test_schedules():
    darknet = schedule(
        1e-3, total_steps=100, policy="steps", burn_in=10, steps=[50, 80], scales=[0.1, 0.1]
    )
    assert float(darknet(5)) == pytest.approx(1e-3 * 0.5**4)
    assert float(darknet(20)) == pytest.approx(1e-3)
    assert float(darknet(60)) == pytest.approx(1e-4)
    assert float(darknet(90)) == pytest.approx(1e-5)
    cosine = schedule(1e-3, total_steps=110, policy="cosine", burn_in=10)
    assert float(cosine(10)) == pytest.approx(1e-3)
    assert float(cosine(60)) == pytest.approx(5e-4, rel=1e-3)
    with pytest.raises(ValueError, match="schedule: expected as many scales as steps"):
        schedule(1e-3, total_steps=10, policy="steps", steps=[1], scales=[])


@pytest.mark.slow
def test_two_processes_with_jax_distributed_match_one_process(tmp_path):
    single = _run(tmp_path / "single", steps=4, num_devices=1, checkpoint_every=3)
    expected = [float(x.sum()) for x in jax.tree.leaves(single["params"])]
    runs = [(12461, "jit", 0), (12462, "pmap", 0), (12463, "shard_map", 0)]
    runs += [(12464, "jit", 1), (12465, "pmap", 1)]  # batches made where the step reads them
    for port, parallel, place in runs:
        workdir = tmp_path / f"{parallel}{'-placed' * place}"
        procs = [
            _spawn_process(port, pid, workdir, 4, parallel=parallel, placed=place) for pid in (0, 1)
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        for pid, (out, err) in enumerate(outs):
            line = next((ln for ln in out.splitlines() if ln.startswith("RESULT")), None)
            assert line is not None, f"{workdir.name} process {pid} failed:\n{err[-3000:]}"
            assert line.split()[2] == "4", (parallel, pid, line)
            # Sharded reductions sum in another order: equal to float32 rounding, not bitwise.
            sums = [float(v) for v in line.split()[3:]]
            np.testing.assert_allclose(sums, expected, rtol=1e-5, atol=1e-6, err_msg=parallel)
        assert [s for s, _ in logged_losses(workdir)] == [1, 2, 3, 4]  # one writer: process 0


def _spawn_process(port, pid, workdir, steps, slow=0.0, parallel="jit", die=0, placed=0):
    """One of two processes of a `train_multiprocess.py` run on localhost."""
    script = os.path.join(HERE, "train_multiprocess.py")
    return subprocess.Popen(
        [sys.executable, script, str(port), "2", str(pid), str(workdir), str(steps), parallel]
        + [str(slow), str(die), str(placed)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _final_params(port, workdir, steps) -> list[list[str]]:
    """Each of two processes' ``RESULT`` fields after running (or resuming) ``workdir``."""
    procs = [_spawn_process(port, pid, workdir, steps) for pid in (0, 1)]
    return [_result_line(p).split()[1:] for p in procs]


def _survivor_exits_at_once(proc, since: float) -> None:
    """``proc`` exits within 30 s of ``since`` with the lost-peer status and message."""
    out, err = proc.communicate(timeout=120)
    waited = time.time() - since
    assert proc.returncode == 5, err[-3000:]
    assert "PEER_LOST" in out and "start every process again" in out, out
    assert waited < 30, f"the survivor took {waited:.0f} s to exit"


def _result_line(proc) -> str:
    out, err = proc.communicate(timeout=300)
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT")), None)
    assert line is not None, err[-3000:]
    return line


@pytest.mark.slow
def test_kill_9_of_one_process_ends_the_other_at_once_and_resumes_exactly(tmp_path):
    """A multi-process run whose other process dies: the survivor exits within seconds
    with one line saying what to do (not after JAX's heartbeat timeout, nor with an
    abort), and restarting both resumes to the uninterrupted run's parameters."""
    steps = 24
    expected = _final_params(12481, tmp_path / "reference", steps)
    workdir = tmp_path / "run"
    procs = [_spawn_process(12482, pid, workdir, steps, slow=0.3) for pid in (0, 1)]
    deadline = time.time() + 240
    while not (workdir / "checkpoints" / "6").is_dir():
        assert time.time() < deadline and procs[0].poll() is None, procs[0].communicate()
        time.sleep(0.05)
    procs[1].kill()
    _survivor_exits_at_once(procs[0], time.time())
    procs[1].communicate()
    assert _final_params(12483, workdir, steps) == expected


@pytest.mark.slow
def test_a_process_lost_inside_a_save_ends_the_other_at_once_and_resumes_exactly(tmp_path):
    """Process 1 exits at the first barrier of its save of step 6, while process 0 saves:
    process 0's barrier is a collective, which fails at once (the coordination service's
    barrier would wait out the 100 s heartbeat), it says what to do, and both restarted
    resume to the uninterrupted run's parameters."""
    steps = 12
    expected = _final_params(12491, tmp_path / "reference", steps)
    workdir = tmp_path / "run"
    procs = [_spawn_process(12492, pid, workdir, steps, die=6) for pid in (0, 1)]
    out1, _ = procs[1].communicate(timeout=240)
    died_at = time.time()
    assert procs[1].returncode == 9 and "DYING" in out1, out1
    _survivor_exits_at_once(procs[0], died_at)
    assert _final_params(12493, workdir, steps) == expected


@pytest.mark.slow
def test_stop_signals_at_different_moments_stop_every_process_after_the_same_step(tmp_path):
    """A preemption signals each host at its own moment: process 1 gets SIGTERM, process 0
    half a second (about two steps) later. Both stop after the same step and save it (a
    process that stopped alone would leave the other waiting on a collective), and both
    restarted resume to the uninterrupted run's parameters."""
    steps = 24
    expected = _final_params(12494, tmp_path / "reference", steps)
    workdir = tmp_path / "run"
    procs = [_spawn_process(12495, pid, workdir, steps, slow=0.25) for pid in (0, 1)]
    deadline = time.time() + 240
    while not (workdir / "checkpoints" / "3").is_dir():
        assert time.time() < deadline and procs[0].poll() is None, procs[0].communicate()
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)
    time.sleep(0.5)
    procs[0].send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=120) for p in procs]
    stops = []
    for pid, (out, err) in enumerate(outs):
        line = next((ln for ln in out.splitlines() if ln.startswith("STATUS")), None)
        assert line is not None, f"process {pid}:\n{err[-3000:]}"
        _, _, status, step = line.split()
        assert status == "interrupted", line
        stops.append(int(step))
    assert stops[0] == stops[1] and 3 < stops[0] < steps, stops
    assert (workdir / "checkpoints" / str(stops[0])).is_dir()
    assert _final_params(12496, workdir, steps) == expected
