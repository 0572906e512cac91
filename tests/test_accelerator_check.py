"""The accelerator check runs on a CPU too: every part runs or says why it is skipped."""

import gzip
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from benchmarks import accelerator_check as ac
from benchmarks import accelerator_compare as cmp
from benchmarks import accelerator_models as models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_relative_errors():
    b = np.array([1.0, -4.0, 2.0])
    assert cmp.rel(b, b) == 0.0
    assert cmp.rel(b + np.array([0.0, 0.0, 0.4]), b) == pytest.approx(0.1)
    assert cmp.rel(np.array([1.0, np.nan]), np.array([1.0, 2.0])) == float("inf")
    assert cmp.tree_rel({"a": b * 1.01}, {"a": b}) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="shapes differ"):
        cmp.rel(b, b[:2])


def test_comparison_of_two_devices_finds_a_difference(monkeypatch):
    """The CPU against itself agrees; an accelerator off by 1e-3 of the scale fails."""
    ctx = cmp.Context(tiny=True, log=lambda _: None)
    ctx.device = jax.devices("cpu")[1]  # another CPU device stands in for the accelerator
    x = cmp.rng_arrays(0, (2, 6, 6, 4))[0]
    cases = {"max": (lambda x: jax.numpy.max(x, axis=1), (x,))}
    same = cmp.compare_cases(ctx, cases)
    assert same["passed"] and same["worst"]["f32_highest"] == 0.0

    on = cmp.on_device

    def off(ctx_, device, fn, *args):
        out = on(ctx_, device, fn, *args)
        return out if device == ctx.cpu else out + 1e-3 * np.max(np.abs(out))

    monkeypatch.setattr(cmp, "on_device", off)
    worse = cmp.compare_cases(ctx, cases)
    assert not worse["passed"]
    assert worse["worst"]["f32_highest"] == pytest.approx(1e-3, rel=1e-3)

    def off_in_bf16(ctx_, device, fn, *args):
        out = on(ctx_, device, fn, *args)
        low = out.dtype == jax.numpy.bfloat16
        return out * 1.5 if device != ctx.cpu and low else out

    monkeypatch.setattr(cmp, "on_device", off_in_bf16)
    bf16 = cmp.compare_cases(ctx, cases)
    assert not bf16["passed"] and bf16["worst"]["f32_highest"] == 0.0
    assert bf16["worst"]["bf16"] > cmp.NOISE_FACTOR * bf16["cases"]["max"]["bf16_cpu"]


def test_unknown_part_is_refused(tmp_path):
    with pytest.raises(ValueError, match="expected parts among"):
        ac.run(["env", "gpu"], json_path=str(tmp_path / "x.json"))


@pytest.mark.slow
def test_script_end_to_end_on_cpu(tmp_path):
    """The shell driver: groups in their own processes, one merged JSON, one log."""
    env = {
        **os.environ,
        "TINY": "1",
        "PYTHON": sys.executable,
        "CHECK_GROUPS": "correctness:env,ops,postprocess:150 bench:bench:150 "
        "rest:pytest,study,keras_bench:60 late:env:1",
    }
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", os.path.join(ROOT, "benchmarks", "accelerator_check.sh"), str(out), "400"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["accelerator_check.json", "accelerator_check.log"]
    result = json.loads((out / "accelerator_check.json").read_text())
    groups = result["groups"]
    assert set(groups) == {"correctness", "bench", "rest"}  # "late" had too little time
    parts = {p: r for g in groups.values() for p, r in g["parts"].items()}
    assert parts["env"]["status"] == "ok" and parts["env"]["platform"] == "cpu"
    for name in ("ops", "postprocess", "pytest", "study"):
        assert parts[name]["status"] == "skipped" and "reason" in parts[name], name
    bench = parts["bench"]
    assert bench["status"] == "ok", bench
    (train,) = bench["train"].values()
    assert train["images_per_s"] > 0 and train["flops_per_step"] > 0 and train["loss_finite"]
    (infer,) = bench["infer"].values()
    assert infer["images_per_s"] > 0
    log = (out / "accelerator_check.log").read_text()
    assert "[late] skipped: out of time" in log


def test_max_pool_gradient_inputs_have_no_ties_in_bfloat16():
    """A tie broken the other way moves a max-pool gradient: the inputs must have none."""
    x = np.asarray(cmp.untied_windows((2, 6, 8, 3)))
    windows = x.reshape(2, 3, 2, 4, 2, 3).transpose(0, 1, 3, 5, 2, 4).reshape(-1, 4)
    assert all(len(set(w)) == 4 for w in windows)
    as_bf16 = np.asarray(jax.numpy.asarray(x, jax.numpy.bfloat16).astype(np.float32))
    np.testing.assert_array_equal(as_bf16, x)


def test_one_ulp_nudge_moves_every_float_parameter():
    params = {"w": jax.numpy.linspace(-2.0, 3.0, 64), "n": jax.numpy.arange(3)}
    nudged = models.nudge(params)
    w, n = np.asarray(params["w"]), np.asarray(nudged["w"])
    assert np.all(n != w)
    up, down = np.nextafter(w, np.inf), np.nextafter(w, -np.inf)
    assert np.all((n == up) | (n == down)) and np.any(n == up) and np.any(n == down)
    np.testing.assert_array_equal(np.asarray(nudged["n"]), [0, 1, 2])


def test_test_files_with_missing_imports_are_left_out(tmp_path, monkeypatch):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("import numpy\n")
    (tmp_path / "tests" / "test_b.py").write_text("import no_such_module_here\n")
    (tmp_path / "tests" / "test_c.py").write_text("from jaxheads import ops\n")
    monkeypatch.setattr(ac, "_repo_root", lambda: str(tmp_path))
    assert ac._pytest_files() == ["tests/test_a.py", "tests/test_c.py"]


def test_kernel_table_ranks_device_kernels_and_xla_ops(tmp_path):
    from benchmarks.step_study import kernel_table

    events = [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "/host:CPU"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 7, "args": {"name": "Stream #13"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 8, "args": {"name": "XLA Ops"}},
        {"ph": "X", "name": "conv_kernel", "pid": 1, "tid": 7, "dur": 30.0},
        {"ph": "X", "name": "conv_kernel", "pid": 1, "tid": 7, "dur": 30.0},
        {"ph": "X", "name": "bn_fusion", "pid": 1, "tid": 7, "dur": 40.0},
        {"ph": "X", "name": "fusion.3", "pid": 1, "tid": 8, "dur": 5.0},
        {"ph": "X", "name": "host_work", "pid": 2, "tid": 1, "dur": 999.0},
    ]
    folder = tmp_path / "plugins" / "profile" / "run"
    folder.mkdir(parents=True)
    with gzip.open(folder / "perfetto_trace.json.gz", "wt") as f:
        json.dump({"traceEvents": events}, f)
    table = kernel_table(str(tmp_path))
    assert table["source"] == "device"
    assert [(r["name"], r["us"], r["calls"]) for r in table["kernels"]["top"]] == [
        ("conv_kernel", 60.0, 2),
        ("bn_fusion", 40.0, 1),
    ]
    assert table["kernels"]["top"][0]["share"] == pytest.approx(0.6)
    assert table["xla_ops"]["top"][0]["name"] == "fusion.3"


@pytest.mark.slow
def test_step_mode_end_to_end_on_cpu(tmp_path):
    """``accelerator_check.sh OUT SECONDS step`` at tiny size: profile, candidates, flags."""
    env = {**os.environ, "TINY": "1", "PYTHON": sys.executable}
    env.pop("CHECK_GROUPS", None)
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", os.path.join(ROOT, "benchmarks", "accelerator_check.sh"), str(out), "560", "step"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "step_kernels.md").read_text().startswith("Source:")
    groups = json.loads((out / "accelerator_check.json").read_text())["groups"]
    assert set(groups) == {"step", "flags"}
    parts = {p: r for g in groups.values() for p, r in g["parts"].items()}
    profile = parts["step_profile"]
    assert profile["status"] == "ok", profile
    assert profile["kernels"]["top"] and profile["kernels"]["total_us"] > 0
    candidates = parts["step_candidates"]
    assert candidates["status"] == "ok", candidates
    assert list(candidates["candidates"]) == ["baseline", "bf16_params"]
    for row in candidates["candidates"].values():
        assert row["step_ms"] > 0 and row["loss_finite"], row
    assert candidates["baseline_flops"] > 0
    flags = parts["step_flags"]
    assert flags["status"] == "ok", flags
    (row,) = flags["flag_sets"].values()
    assert row["returncode"] == 0 and row["step_ms"] > 0 and row["xla_flags"]


def test_study_mode_end_to_end_on_cpu(tmp_path):
    """``accelerator_check.sh OUT SECONDS study`` at tiny size: a slice of the heads study's
    accelerator profile on device-drawn scenes, its row's rate and the profile's estimate."""
    env = {**os.environ, "TINY": "1", "PYTHON": sys.executable}
    env.pop("CHECK_GROUPS", None)
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", os.path.join(ROOT, "benchmarks", "accelerator_check.sh"), str(out), "400"]
        + ["study"],
        env=env,
        capture_output=True,
        text=True,
        timeout=450,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    groups = json.loads((out / "accelerator_check.json").read_text())["groups"]
    assert set(groups) == {"study_profile"}
    part = groups["study_profile"]["parts"]["study_profile"]
    assert part["status"] == "ok", part
    assert (part["study"], part["dataset"], part["seeds"]) == ("heads", "shapes-device", [0, 1, 2])
    (row,) = part["rows"].values()  # the first row alone, from scratch, at tiny size
    assert row["images_per_s"] > 0 and row["compile_s"] >= 0 and row["profile_steps"] == 20_000
    # three seeds of the slice's wall time and of the 19,998 steps it did not train
    want = 3 * (part["wall_s"] + 19_998 * 8 / row["images_per_s"])
    assert part["estimated_profile_s"] == pytest.approx(want)
