"""The YOLOv2-VOC bf16 step on an accelerator: its kernel profile and every candidate.

Parts ``step_profile``, ``step_candidates`` and ``step_flags`` of
`benchmarks.accelerator_check` (``bash benchmarks/accelerator_check.sh OUT 470 step``):

* ``step_profile``: one ``jax.profiler`` trace of three steps; the Perfetto trace
  (``perfetto_trace.json.gz``) is read back and the kernels (and XLA ops) ranked by
  device time, written to ``OUT/step_kernels.md`` and the JSON.
* ``step_candidates``: the step under each `benchmarks.step_variants.StepOptions`,
  in the same process (XLA:GPU's autotuning results are reused between the programs),
  five-repeat medians of five steps; MFU counts the baseline's FLOPs (XLA's count of
  the step lowered for the CPU) for every candidate, since space-to-depth adds
  multiplications by zero that are no work of the model.
* ``step_flags``: the baseline step in one child process per XLA:GPU flag set
  (``XLA_FLAGS``, read once per process).

Time on one H100 (estimated from the H200's 41 s compile of the bf16 step): start and
profile about 70 s; each candidate 20–45 s (compile, five repeats of five steps at about
25 ms), seven in all about 250 s; each flag set about 60 s in its own process (no shared
autotuning). Everything is ordered most wanted first and skipped past the deadline, so
the mode fits 8 minutes; ``--tiny`` (CPU, CI) runs it at 64², batch 2, one repeat.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import math
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.accelerator_compare import Context
from benchmarks.step_variants import StepOptions
from jaxheads.bench import timing

#: Most wanted first; each runs while time is left.
CANDIDATES = {
    "baseline": StepOptions(),
    "bf16_params": StepOptions(bf16_params=True),
    "space_to_depth": StepOptions(space_to_depth=True),
    "pad_channels": StepOptions(pad_channels=True),
    "remat_convs": StepOptions(remat="convs"),
    "all_but_remat": StepOptions(bf16_params=True, space_to_depth=True, pad_channels=True),
    "remat_nothing": StepOptions(remat="nothing"),
}

#: XLA:GPU flag sets, each in its own process (names as the flags of jaxlib 0.10).
FLAG_SETS = {
    "triton_gemm_off": "--xla_gpu_enable_triton_gemm=false",
    "latency_hiding": "--xla_gpu_enable_latency_hiding_scheduler=true",
    "cudnn_conv_fusion": "--xla_gpu_experimental_enable_conv_fusion=true "
    "--xla_gpu_cudnn_gemm_fusion_level=2",
    "autotune_0": "--xla_gpu_autotune_level=0",
}


def _sizes(ctx: Context) -> dict:
    if ctx.tiny:
        return {"name": "yolov2-tiny-voc", "size": 64, "batch": 2, "steps": 1, "repeats": 1}
    return {"name": "yolov2-voc", "size": 416, "batch": 64, "steps": 5, "repeats": 5}


def out_dir(ctx: Context) -> str:
    path = os.environ.get("CHECK_OUT") or tempfile.mkdtemp(prefix="step-study-")
    os.makedirs(path, exist_ok=True)
    return path


def build(ctx: Context, options: StepOptions, sizes: dict):
    """``(compiled step, state, batch, key, compile seconds)`` on the context's device."""
    import jax
    import jax.numpy as jnp
    import optax

    from benchmarks.accelerator_models import detection_batch
    from benchmarks.step_variants import make_variant_step, variant_detector, variant_state
    from jaxheads.train.detection import build_detector, detection_loss
    from jaxheads.train.step import init_train_state

    detector, init = build_detector(sizes["name"], image_size=sizes["size"], num_classes=20)
    params, state = init(jax.random.key(0))
    detector = variant_detector(detector, options)
    loss_fn = detection_loss(detector, global_batch=sizes["batch"], compute_dtype=jnp.bfloat16)
    opt = optax.adam(1e-4)
    step = jax.jit(make_variant_step(loss_fn, opt, options), donate_argnums=0)
    ts = jax.device_put(variant_state(init_train_state(params, state, opt), options), ctx.device)
    batch = jax.device_put(detection_batch(sizes["size"], sizes["batch"], 20), ctx.device)
    key = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = step.lower(ts, batch, key).compile()
    return compiled, ts, batch, key, time.perf_counter() - t0


def baseline_flops(sizes: dict) -> float:
    """XLA's FLOPs of the baseline step lowered for the CPU (the model's work)."""
    from benchmarks.roofline import step_cost
    from jaxheads.train.detection import build_detector

    detector, _ = build_detector(sizes["name"], image_size=sizes["size"], num_classes=20)
    import jax.numpy as jnp

    return step_cost(detector, sizes["batch"], jnp.bfloat16)["flops"]


def measure(ctx: Context, options: StepOptions, sizes: dict, flops: float) -> dict:
    import jax

    from jaxheads.bench import peak
    from jaxheads.bench.flops import cost_flops

    compiled, ts, batch, key, compile_s = build(ctx, options, sizes)
    box = {"ts": ts}

    def run():
        s = box["ts"]
        for _ in range(sizes["steps"]):
            s, metrics = compiled(s, batch, key)
        box["ts"] = s
        box["loss"] = float(jax.block_until_ready(metrics["loss"]))

    run()  # warm-up
    seconds = timing.median(timing.interleaved({"run": run}, repeats=sizes["repeats"])["run"])
    step_s = seconds / sizes["steps"]
    row = {
        "compile_s": compile_s,
        "step_ms": step_s * 1e3,
        "images_per_s": sizes["batch"] / step_s,
        "loss_finite": math.isfinite(box["loss"]),
        "flops_counted": cost_flops(compiled.cost_analysis()),
    }
    top = peak.datasheet_peak(ctx.device.device_kind) if ctx.accelerator else None
    if top:
        row["mfu_vs_datasheet_bf16"] = flops / step_s / top
    try:
        row["temp_bytes"] = int(compiled.memory_analysis().temp_size_in_bytes)
    except Exception:  # noqa: BLE001 - not every backend reports memory
        pass
    return row


def kernel_table(trace_dir: str, top: int = 25) -> dict:
    """Device time by kernel (and by XLA op) from the Perfetto trace a profile wrote."""
    paths = glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True)
    if not paths:
        return {"error": f"no perfetto_trace.json.gz under {trace_dir}"}
    with gzip.open(sorted(paths)[-1], "rt") as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    procs, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            procs[e["pid"]] = e.get("args", {}).get("name", "")
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e.get("tid"))] = e.get("args", {}).get("name", "")
    device = {p for p, n in procs.items() if "/device:" in n and "CPU" not in n.upper()}
    by = {"kernels": collections.Counter(), "xla_ops": collections.Counter()}
    counts = collections.Counter()
    source = "device" if device else "host threads (no device in the trace)"
    for e in events:
        if e.get("ph") != "X" or (device and e.get("pid") not in device):
            continue
        thread = threads.get((e.get("pid"), e.get("tid")), "")
        if "XLA Ops" in thread:
            by["xla_ops"][e["name"]] += float(e.get("dur", 0))
        elif not device or "Stream" in thread or not thread:
            by["kernels"][e["name"]] += float(e.get("dur", 0))
            counts[e["name"]] += 1
    out = {"source": source, "trace": sorted(paths)[-1]}
    for kind, table in by.items():
        total = sum(table.values())
        out[kind] = {
            "total_us": total,
            "top": [
                {"name": n, "us": us, "share": us / total if total else 0.0, "calls": counts[n]}
                for n, us in table.most_common(top)
            ],
        }
    return out


def _markdown(table: dict, steps: int) -> str:
    lines = [f"Source: {table.get('source')}; {steps} steps traced.", ""]
    for kind in ("kernels", "xla_ops"):
        part = table.get(kind, {})
        lines += [
            f"| {kind} (total {part.get('total_us', 0) / 1e3:.1f} ms) | ms | share | calls |",
            "|---|---|---|---|",
        ]
        for r in part.get("top", []):
            name = r["name"].replace("|", "/")[:90]
            lines.append(f"| `{name}` | {r['us'] / 1e3:.2f} | {r['share']:.1%} | {r['calls']} |")
        lines.append("")
    return "\n".join(lines)


def part_step_profile(ctx: Context) -> dict:
    import jax

    sizes = _sizes(ctx)
    compiled, ts, batch, key, compile_s = build(ctx, StepOptions(), sizes)
    ts, m = compiled(ts, batch, key)
    jax.block_until_ready(m["loss"])
    trace_dir = os.path.join(out_dir(ctx), "step_trace")
    steps = 3
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        for _ in range(steps):
            ts, m = compiled(ts, batch, key)
        jax.block_until_ready(m["loss"])
    table = kernel_table(trace_dir)
    text = _markdown(table, steps)
    with open(os.path.join(out_dir(ctx), "step_kernels.md"), "w") as f:
        f.write(text + "\n")
    for line in text.splitlines()[:14]:
        ctx.log("  " + line)
    return {"compile_s": compile_s, "steps_traced": steps, "sizes": sizes, **table}


def part_step_candidates(ctx: Context) -> dict:
    sizes = _sizes(ctx)
    flops = baseline_flops(sizes)
    rows = {}
    for name, options in CANDIDATES.items():
        if ctx.time_left() < 45 and not ctx.tiny:
            rows[name] = {"status": "not run: out of time"}
            continue
        try:
            rows[name] = {"options": vars(options), **measure(ctx, options, sizes, flops)}
            r = rows[name]
            ctx.log(
                f"  {name:16s} {r['step_ms']:.2f} ms, {r['images_per_s']:.0f} img/s, "
                f"MFU {r.get('mfu_vs_datasheet_bf16', math.nan):.1%}, "
                f"compile {r['compile_s']:.1f} s"
            )
        except Exception as err:  # noqa: BLE001 - a failing candidate is a finding
            rows[name] = {"error": f"{type(err).__name__}: {err}"[:2000]}
            ctx.log(f"  {name}: FAILED {type(err).__name__}: {str(err)[:300]}")
        if ctx.tiny and len(rows) >= 2:  # CI: the baseline and one candidate
            break
    passed = not any("error" in r for r in rows.values())
    return {"sizes": sizes, "baseline_flops": flops, "candidates": rows, "passed": passed}


def part_step_flags(ctx: Context) -> dict:
    rows = {}
    for name, flags in FLAG_SETS.items():
        left = ctx.time_left()
        if left < 60 and not ctx.tiny:
            rows[name] = {"status": "not run: out of time"}
            continue
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            path = f.name
        env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()}
        cmd = [sys.executable, "-m", "benchmarks.step_study", "--json", path]
        if ctx.tiny:
            cmd.append("--tiny")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=max(left - 10, 30)
            )
            rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-1500:]
        except subprocess.TimeoutExpired:
            rc, tail = "timeout", ""
        row = {"xla_flags": flags, "returncode": rc, "wall_s": time.perf_counter() - t0}
        if rc == 0 and os.path.getsize(path):
            with open(path) as f:
                row.update(json.load(f))
        else:
            row["output_tail"] = tail
        rows[name] = row
        ctx.log(
            f"  {name}: rc {rc}, {row.get('step_ms', math.nan):.2f} ms in {row['wall_s']:.0f} s"
        )
        if ctx.tiny:  # CI: one flag set proves the plumbing (XLA:CPU ignores GPU flags)
            break
    return {"flag_sets": rows, "passed": all(r.get("returncode", 0) == 0 for r in rows.values())}


def main(argv=None) -> int:
    """One flag set's child process: the baseline step measured, its row written as JSON."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--json", required=True, help="write the row here")
    parser.add_argument("--tiny", action="store_true", help="64², batch 2, one repeat")
    args = parser.parse_args(argv)
    ctx = Context(args.tiny, print)
    sizes = _sizes(ctx)
    row = measure(ctx, StepOptions(), sizes, baseline_flops(sizes))
    with open(args.json, "w") as f:
        json.dump(row, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
