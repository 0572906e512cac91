"""Everything to check and measure on an accelerator, in one run of a few minutes.

Parts (each guarded: a failure, an exception or a timeout in one is recorded and the
next part runs):

* ``env``: the devices, ``nvidia-smi``, the installed versions.
* ``ops``: every public op on random inputs, on the accelerator against the CPU, in
  float32 (XLA's default matmul precision and ``"highest"``) and bfloat16; the
  gradients of the convolution and of batch norm.
* ``losses``: the YOLOv1 and region losses and their gradients, accelerator vs CPU.
* ``postprocess``: decoding, top-k and per-class NMS: the same detections on both.
* ``train_step``: one training step of every built-in model, accelerator vs CPU
  (loss, gradient norm-wise error, the step's parameter update).
* ``runners``: the jit, pmap and shard_map runners on the one device: same losses.
* ``bench``: the jaxheads training step (jit + NamedSharding) and inference (forward,
  decode, NMS) at real sizes, YOLOv2 and YOLOv2-tiny at 416², float32 and bfloat16:
  images/s, compile time, XLA's FLOPs and MFU against the datasheet bf16 peak and a
  measured bf16 matmul.
* ``pytest``: the test files that need no Keras or pycocotools, on the accelerator
  as default backend.
* ``study``: ``jaxheads compare --quick`` end to end, with its wall time.
* ``study_profile``: a slice of a study's accelerator profile (``CHECK_STUDY``, default
  ``heads``): every row, seed 0, ``CHECK_STUDY_STEPS`` steps (default 500) at the
  profile's size, batch and device-drawn data, after its pre-training stages; each row's
  measured training rate and compile time, and from them the whole profile's estimated
  wall time (the ``study`` mode of ``accelerator_check.sh``).
* ``keras_bench``: ``python -m benchmarks.bench --only train,infer`` (jaxheads against
  Keras 3 and Flax NNX) at the full sizes, when Keras can be imported.
* ``step_profile``, ``step_candidates``, ``step_flags``: the YOLOv2-VOC bf16 step's
  kernel profile, its candidate changes and XLA:GPU flag sets
  (`benchmarks.step_study`; the ``step`` mode of ``accelerator_check.sh``).

This file holds the driver, ``env`` and the parts that run a command;
``accelerator_compare.py`` the op-level comparisons (``ops``, ``losses``,
``postprocess``), ``accelerator_models.py`` the model-level ones and the speed
(``train_step``, ``runners``, ``bench``).

On a machine without an accelerator everything runs at tiny sizes and the
comparisons against the CPU are reported as skipped (there is nothing to compare);
CI runs it so (``tests/test_accelerator_check.py``).

Command (``OUT`` receives ``accelerator_check.json`` and ``accelerator_check.log``)::

    bash benchmarks/accelerator_check.sh OUT

or one group of parts: ``python -m benchmarks.accelerator_check --parts env,ops
--json OUT/part.json``. Run times: about 6 minutes on one H200 (start-up aside);
about 2 minutes on a 2-core CPU (``--tiny``). Results and their reading:
``docs/benchmarks.md``, "On a GPU".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback

from benchmarks.accelerator_compare import Context, part_losses, part_ops, part_postprocess
from benchmarks.accelerator_models import part_bench, part_runners, part_train_step
from benchmarks.step_study import part_step_candidates, part_step_flags, part_step_profile

PARTS = (
    "env",
    "ops",
    "losses",
    "postprocess",
    "train_step",
    "runners",
    "bench",
    "pytest",
    "study",
    "study_profile",
    "keras_bench",
    "step_profile",
    "step_candidates",
    "step_flags",
)


def part_env(ctx: Context) -> dict:
    import flax
    import jax
    import jaxlib
    import numpy as np
    import optax

    try:
        import orbax.checkpoint as ocp

        orbax_version = getattr(ocp, "__version__", "?")
    except ImportError:
        orbax_version = None
    info = {
        "platform": ctx.device.platform,
        "device_kind": ctx.device.device_kind,
        "devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "orbax": orbax_version,
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    try:
        stats = ctx.device.memory_stats() or {}
        info["memory_bytes_limit"] = stats.get("bytes_limit")
    except Exception:  # noqa: BLE001 - not every backend reports memory
        pass
    try:
        smi = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        info["nvidia_smi"] = f"not available: {err}"
    ctx.log(
        f"  {info['device_kind']} ({info['platform']}), jax {info['jax']}, "
        f"flax {info['flax']}; {info.get('nvidia_smi')}"
    )
    return info


#: The parts run in this process, by name (pytest, study and keras_bench start their own).
IN_PROCESS = {
    "env": part_env,
    "ops": part_ops,
    "losses": part_losses,
    "postprocess": part_postprocess,
    "train_step": part_train_step,
    "runners": part_runners,
    "bench": part_bench,
    "step_profile": part_step_profile,
    "step_candidates": part_step_candidates,
    "step_flags": part_step_flags,
}


# --- the parts that run a command -------------------------------------------------------------


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(cmd: list[str], timeout: float, ctx: Context, env: dict | None = None) -> dict:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            cwd=_repo_root(),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        rc = "timeout"
        text = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
    wall = time.perf_counter() - t0
    ctx.log(f"  $ {' '.join(cmd)}  -> rc {rc} in {wall:.0f} s")
    tail = text[-3000:]
    for line in tail.splitlines()[-15:]:
        ctx.log(f"    {line}")
    return {"command": cmd, "returncode": rc, "wall_s": wall, "output_tail": tail}


def _pytest_files() -> list[str]:
    """Test files whose imports are all installed, and which use neither Keras, pycocotools
    nor subprocesses (absent or slow on the GPU image)."""
    import ast
    import importlib.util

    tests = os.path.join(_repo_root(), "tests")
    names = sorted(os.listdir(tests))
    local = set(names) | {"jaxheads", "benchmarks", "experiments"}
    files = []
    for name in names:
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        with open(os.path.join(tests, name)) as f:
            text = f.read()
        if "keras" in text or "pycocotools" in text or "subprocess" in text:
            continue
        roots = set()
        for node in ast.parse(text).body:
            if isinstance(node, ast.Import):
                roots.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                roots.add(node.module.split(".")[0])
        missing = [
            r
            for r in roots
            if r + ".py" not in local and r not in local and importlib.util.find_spec(r) is None
        ]
        if not missing:
            files.append(os.path.join("tests", name))
    return files


def part_pytest(ctx: Context, timeout: float) -> dict:
    if not ctx.accelerator:
        return {"status": "skipped", "reason": "no accelerator: CI runs the suite on CPU"}
    files = _pytest_files()
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-o",
        "addopts=",  # one process: jax takes most of the accelerator's memory per process
        "-q",
        "-m",
        "not slow",
        "-p",
        "no:cacheprovider",
        "--no-header",
        *files,
    ]
    res = _run(cmd, timeout, ctx)
    res["files"] = files
    res["passed"] = res["returncode"] == 0
    return res


def part_study(ctx: Context, timeout: float, workdir: str) -> dict:
    cmd = [sys.executable, "-m", "jaxheads.cli", "compare", "--quick", "--workdir", workdir]
    if ctx.tiny:
        return {
            "status": "skipped",
            "reason": "a quick study takes 3-5 minutes on a CPU; tests/test_compare.py runs it",
        }
    res = _run(cmd, timeout, ctx)
    results = os.path.join(workdir, "results.json")
    if os.path.isfile(results):
        with open(results) as f:
            res["results"] = json.load(f)
    return res


def part_study_profile(ctx: Context, timeout: float, workdir: str) -> dict:
    """A slice of a study's accelerator profile, timed, and the whole profile estimated.

    The slice trains every row for seed 0 at ``steps`` steps (the pre-training stages at
    their own budgets). The estimate takes each row's measured images/s for the steps the
    slice did not train, in every seed, and adds the slice's wall time once a seed (its
    stages, compiles and evaluations; compiles repeat less, as the cache keeps them):
    ``seeds × (slice wall + Σ_rows (steps_full − steps) × batch / images_per_s)``.
    Not for ``budget``: its rows set their own steps, which ``--steps`` may not override
    (compare refuses it, and the part reports the refusal).
    """
    from jaxheads.study.studies import load_study

    study = os.environ.get("CHECK_STUDY", "heads")
    steps = 2 if ctx.tiny else int(os.environ.get("CHECK_STUDY_STEPS", "500"))
    config = load_study(study).get_config("accelerator")
    cmd = [sys.executable, "-m", "jaxheads.cli", "compare", "--config", study]
    cmd += ["--profile", "accelerator", "--seeds", "1", "--steps", str(steps)]
    cmd += ["--workdir", workdir, "--no-progress", "--no-tensorboard"]
    if ctx.tiny:  # one row from scratch (no pre-training) at a CPU's size
        cmd += ["--heads", config.rows[0].label, "--image-size", "32", "--batch-size", "8"]
    res = _run(cmd, timeout, ctx)
    rows, train_s = {}, 0.0
    for row in config.rows:
        path = os.path.join(workdir, row.label, "seed0", "result.json")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            got = json.load(f)["row"]
        budget = config.budget_of(row)
        batch = 8 if ctx.tiny else budget.batch_size
        rate = got.get("images_per_s")
        rows[row.label] = {
            "images_per_s": rate,
            "compile_s": got.get("compile_s"),
            "mAP50": got.get("mAP50"),
            "profile_steps": budget.run.steps,
        }
        if rate:
            train_s += max(budget.run.steps - steps, 0) * batch / rate
    res.update(
        study=study,
        steps=steps,
        rows=rows,
        seeds=list(config.seeds),
        dataset=config.budget.dataset,
    )
    if rows and res["returncode"] == 0:
        res["estimated_profile_s"] = len(config.seeds) * (res["wall_s"] + train_s)
    else:
        res["status"] = "failed"
    return res


def part_keras_bench(ctx: Context, timeout: float, json_path: str) -> dict:
    try:
        import keras  # noqa: F401
    except Exception as err:  # noqa: BLE001
        return {"status": "skipped", "reason": f"keras not importable: {err}"}
    if ctx.tiny:
        return {"status": "skipped", "reason": "tests/test_bench.py runs the bench on CPU"}
    res = _run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench",
            "--only",
            "train,infer",
            "--json",
            json_path,
        ],
        timeout,
        ctx,
        env={"KERAS_BACKEND": "jax"},
    )
    if os.path.isfile(json_path):
        with open(json_path) as f:
            res["bench"] = json.load(f)
    return res


# --- driver ---------------------------------------------------------------------------------


def run(
    parts,
    *,
    json_path: str,
    tiny: bool = False,
    deadline: float | None = None,
    workdir: str = "/tmp/jaxheads-accelerator-check",
    log=print,
) -> dict:
    """Runs ``parts`` in order, each guarded, writing ``json_path`` after each one."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"accelerator_check: expected parts among {PARTS}, got {unknown}")
    os.environ.setdefault("KERAS_BACKEND", "jax")
    start = time.perf_counter()
    deadline = deadline or math.inf

    def say(msg):
        log(f"[{time.perf_counter() - start:6.1f} s] {msg}")

    ctx = Context(tiny, say)
    result = {
        "accelerator": ctx.accelerator,
        "device_kind": ctx.device.device_kind,
        "tiny": ctx.tiny,
        "parts": {},
    }
    os.makedirs(workdir, exist_ok=True)
    for part in parts:
        left = deadline - time.perf_counter()
        if left < 15:
            result["parts"][part] = {"status": "skipped", "reason": "out of time"}
            say(f"{part}: skipped, out of time")
            continue
        say(f"{part} ...")
        ctx.part_deadline = deadline
        t0 = time.perf_counter()
        try:
            if part == "pytest":
                out = part_pytest(ctx, left - 5)
            elif part == "study":
                out = part_study(ctx, left - 5, os.path.join(workdir, "study"))
            elif part == "study_profile":
                out = part_study_profile(ctx, left - 5, os.path.join(workdir, "study_profile"))
            elif part == "keras_bench":
                out = part_keras_bench(ctx, left - 5, os.path.join(workdir, "bench.json"))
            else:
                out = IN_PROCESS[part](ctx)
            out.setdefault("status", "ok" if out.get("passed", True) else "failed")
        except Exception as err:  # noqa: BLE001 - record it and go on with the next part
            out = {
                "status": "error",
                "error": f"{type(err).__name__}: {err}"[:4000],
                "traceback": traceback.format_exc()[-4000:],
            }
            say(f"{part}: ERROR {type(err).__name__}: {str(err)[:500]}")
        out["seconds"] = time.perf_counter() - t0
        result["parts"][part] = out
        say(f"{part}: {out['status']} in {out['seconds']:.1f} s")
        _write_json(json_path, result)
    result["wall_s"] = time.perf_counter() - start
    _write_json(json_path, result)
    return result


def _write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=str, allow_nan=True)
        f.write("\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.accelerator_check",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument("--json", required=True, metavar="PATH", help="write the figures here")
    parser.add_argument(
        "--tiny", action="store_true", help="tiny sizes (the default without an accelerator)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=480.0,
        help="time budget: parts that would start later are skipped",
    )
    parser.add_argument(
        "--workdir",
        default="/tmp/jaxheads-accelerator-check",
        help="scratch folder for the study and the bench",
    )
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    try:
        result = run(
            parts,
            json_path=args.json,
            tiny=args.tiny,
            deadline=time.perf_counter() + args.seconds,
            workdir=args.workdir,
            log=lambda m: print(m, flush=True),
        )
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    bad = [p for p, r in result["parts"].items() if r["status"] in ("failed", "error")]
    print(f"accelerator_check: {len(result['parts'])} parts, failed: {bad or 'none'}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
