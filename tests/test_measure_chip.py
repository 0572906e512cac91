"""``jaxheads bench`` / `jaxheads.bench.measure_chip`: measuring a chip from the package alone."""

import ast
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

from jaxheads.bench import ChipBench
from jaxheads.cli import build_parser

PACKAGE = Path(__file__).resolve().parents[1] / "jaxheads"
TINY = [
    "--model",
    "small-yolov2",
    "--image-size",
    "32",
    "--batch-size",
    "2",
    "--steps",
    "1",
    "--repeats",
    "1",
    "--pipeline-batches",
    "2",
    "--matmul-size",
    "64",
]


def test_the_package_imports_nothing_from_benchmarks():
    # benchmarks/ (a source checkout's folder) imports the package, never the reverse.
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            found += [f"{path}: {n}" for n in names if n.split(".")[0] == "benchmarks"]
    assert not found


def test_flags_default_to_the_record():
    args = build_parser().parse_args(["bench"])
    fields = {f: getattr(args, f) for f in ChipBench.__dataclass_fields__}
    assert ChipBench(**fields) == ChipBench()


def test_bench_runs_from_the_package_alone(tmp_path):
    # The package copied alone onto the path, started from an empty folder: no
    # benchmarks/ can be imported, as from an installed wheel.
    shutil.copytree(PACKAGE, tmp_path / "site" / "jaxheads")
    run = tmp_path / "run"
    run.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    proc = subprocess.run(
        [sys.executable, "-m", "jaxheads.cli", "bench", *TINY, "--json", "bench.json"],
        cwd=run,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| training step |" in proc.stdout and "MFU" in proc.stdout
    result = json.loads((run / "bench.json").read_text())
    assert result["kind"] == "chip_bench"
    assert result["command"] == "jaxheads " + " ".join(["bench", *TINY, "--json", "bench.json"])
    assert result["config"] == {**vars(ChipBench()), **_tiny_config()}
    figures = {(r["section"], r["metric"]): r["value"] for r in result["figures"]}
    for key in [
        ("compile", "lower_s"),
        ("compile", "compile_s"),
        ("train", "step_ms"),
        ("train", "images_per_s"),
        ("train", "model_flops_per_step"),
        ("train", "mfu"),
        ("peak", "matmul_flops_per_s"),
        ("pipeline", "images_per_s"),
        ("pipeline", "fed_images_per_s"),
        ("pipeline", "fraction_of_step"),
    ]:
        assert math.isfinite(figures[key]) and figures[key] > 0, key
    assert {"platform", "device_kind", "jax", "load_average_end"} <= set(result["machine"])


def _tiny_config() -> dict:
    args = build_parser().parse_args(["bench", *TINY])
    return {f: getattr(args, f) for f in ChipBench.__dataclass_fields__}
