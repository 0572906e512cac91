"""The built-in models on the accelerator: a training step against the CPU's, the
parallel runners, and the speed of training and inference at real sizes.

Parts ``train_step``, ``runners`` and ``bench`` of `benchmarks.accelerator_check`.
"""

from __future__ import annotations

import math
import time

from benchmarks.accelerator_compare import (
    NOISE_FACTOR,
    TOL_F32,
    TOL_GRAD,
    Context,
    on_device,
    tree_rel,
)
from jaxheads.bench import cost_flops, peak, timing


def _model_names(ctx: Context) -> list[tuple[str, int]]:
    """Every built-in model at a size where the comparison is quick, most used first.

    The equality of a step does not need the real size; the bench part measures that.
    """
    from jaxheads.train.detection import model_names

    first = ["yolov2-voc", "small-yolov2", "yolov2-tiny-voc", "yolov1", "small-yolov1-fc"]
    names = first + [n for n in model_names() if n not in first]
    out = []
    for n in names:
        if n.startswith("small-"):
            out.append((n, 64 if ctx.tiny else 96))
        elif "yolov1" in n or n == "fast-yolo":
            out.append((n, 64 if ctx.tiny else 192))
        else:
            out.append((n, 64 if ctx.tiny else 160))
    if ctx.tiny:  # on a CPU: one model of each kind is enough to test the part
        keep = {"small-yolov2", "yolov1-tiny"}
        out = [(n, s) for n, s in out if n in keep]
    return out


def detection_batch(size: int, batch: int, num_classes: int, seed: int = 0) -> dict:
    """A random detection batch at ``size`` (host numpy): images, 1 to 8 boxes each."""
    import numpy as np

    rng = np.random.default_rng(seed)
    m = 8
    centres = rng.uniform(0.1, 0.9, (batch, m, 2))
    sizes = rng.uniform(0.05, 0.5, (batch, m, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], -1).clip(0, 1)
    return {
        "image": rng.uniform(0, 1, (batch, size, size, 3)).astype(np.float32),
        "boxes": boxes.astype(np.float32),
        "labels": rng.integers(0, num_classes, (batch, m)).astype(np.int32),
        "mask": np.arange(m)[None, :] < rng.integers(1, m + 1, (batch, 1)),
    }


def train_parts(name: str, size: int, batch: int, num_classes: int, dtype):
    """(detector, params, state, loss_fn) of a built-in model."""
    import jax

    from jaxheads.train.detection import build_detector, detection_loss

    detector, init = build_detector(name, image_size=size, num_classes=num_classes)
    params, state = init(jax.random.key(0))
    loss_fn = detection_loss(detector, global_batch=batch, compute_dtype=dtype)
    return detector, params, state, loss_fn


def nudge(params, seed: int = 7):
    """Every float parameter moved by one ulp up or down (a random sign per element)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(seed)

    def one(p):
        p = np.asarray(p)
        if not np.issubdtype(p.dtype, np.floating):
            return p
        up = rng.random(p.shape) < 0.5
        return jnp.asarray(np.where(up, np.nextafter(p, np.inf), np.nextafter(p, -np.inf)))

    return jax.tree.map(one, params)


def part_train_step(ctx: Context) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    b, classes = (2, 3) if ctx.tiny else (4, 20)
    rows, passed = {}, True
    for name, size in _model_names(ctx):
        if ctx.time_left() < 20:
            rows[name] = {"status": "not run: out of time"}
            continue
        t0 = time.perf_counter()
        try:
            _, params, state, loss_fn = train_parts(name, size, b, classes, jnp.float32)
            host = detection_batch(size, b, classes)
            key = jax.random.key(1)

            def grads(params, state, batch, loss_fn=loss_fn, key=key):
                fn = lambda p: loss_fn(p, state, batch, key, None, jnp.int32(100))  # noqa: E731
                (loss, (new_state, _)), g = jax.value_and_grad(fn, has_aux=True)(params)
                return loss, g, new_state

            if not ctx.accelerator:
                jax.block_until_ready(jax.jit(grads)(params, state, host))
                rows[name] = {"status": "skipped (no accelerator)"}
                continue
            with jax.default_matmul_precision("highest"):
                lc, gc, sc = on_device(ctx, ctx.cpu, grads, params, state, host)
                la, ga, sa = on_device(ctx, ctx.device, grads, params, state, host)
                # The step's own float32 noise floor: the CPU's gradients after every
                # parameter moves by about one ulp. Deep batch-normed nets with the
                # region loss's IoU decisions amplify rounding; a defect exceeds this.
                nudged = nudge(params)
                _, gn, _ = on_device(ctx, ctx.cpu, grads, nudged, state, host)
            ld, gd, _ = on_device(ctx, ctx.device, grads, params, state, host)
            row = {
                "image_size": size,
                "loss_cpu": float(lc),
                "loss_rel_err": abs(float(la) - float(lc)) / max(abs(float(lc)), 1e-12),
                "grad_rel_err": tree_rel(ga, gc),
                "grad_rel_err_default_precision": tree_rel(gd, gc),
                "grad_noise_floor_cpu": tree_rel(gn, gc),
                "bn_state_rel_err": tree_rel(sa, sc) if jax.tree.leaves(sc) else 0.0,
                "finite": bool(np.isfinite(float(la))),
                "seconds": time.perf_counter() - t0,
            }
            row["passed"] = (
                row["loss_rel_err"] <= TOL_F32
                and row["grad_rel_err"] <= max(TOL_GRAD, NOISE_FACTOR * row["grad_noise_floor_cpu"])
                and row["bn_state_rel_err"] <= TOL_F32
                and row["finite"]
            )
            passed &= row["passed"]
            rows[name] = row
            ctx.log(
                f"  {name:18s} {size}²: loss {row['loss_cpu']:.4g} (rel err "
                f"{row['loss_rel_err']:.1e}), grads {row['grad_rel_err']:.1e} (default "
                f"precision {row['grad_rel_err_default_precision']:.1e}; CPU one-ulp "
                f"noise {row['grad_noise_floor_cpu']:.1e}), "
                f"{row['seconds']:.1f} s"
            )
        except Exception as err:  # noqa: BLE001 - one model's failure is a finding, not a stop
            passed = False
            rows[name] = {"error": f"{type(err).__name__}: {err}"[:2000]}
            ctx.log(f"  {name}: FAILED {type(err).__name__}: {str(err)[:300]}")
    if not ctx.accelerator:
        return {"status": "skipped", "reason": "no accelerator", "models": rows}
    tolerance = {"loss": TOL_F32, "grads": f"max({TOL_GRAD}, {NOISE_FACTOR} x CPU one-ulp noise)"}
    return {"models": rows, "tolerance": tolerance, "passed": passed}


def part_runners(ctx: Context) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from jaxheads.train.step import init_train_state, make_runner

    b, classes, size = 4, 3, 64
    _, params, state, loss_fn = train_parts("small-yolov2", size, b, classes, jnp.float32)
    host = detection_batch(size, b, classes)
    losses = {}
    for parallel in ("jit", "pmap", "shard_map"):
        runner = make_runner(parallel, loss_fn, optax.adam(1e-4), devices=[ctx.device])
        ts = runner.place_state(init_train_state(params, state, optax.adam(1e-4)))
        out = []
        for i in range(3):
            ts, metrics = runner.step(ts, runner.place_batch(host), jax.random.key(i))
            out.append(float(metrics["loss"]))
        losses[parallel] = out
    ref = np.asarray(losses["jit"])
    err = max(float(np.max(np.abs(np.asarray(v) - ref) / np.abs(ref))) for v in losses.values())
    ctx.log(f"  losses {losses}; max rel diff {err:.1e}")
    return {
        "device": str(ctx.device),
        "losses": losses,
        "max_rel_diff": err,
        "passed": bool(err <= TOL_GRAD),
    }


def _time(fn, repeats: int) -> float:
    """Median wall seconds of ``fn()`` (which must block until its result is ready)."""
    return timing.median(timing.interleaved({"run": fn}, repeats=repeats)["run"])


def _flops(stage) -> float:
    try:
        return cost_flops(stage.cost_analysis())
    except Exception:  # noqa: BLE001 - not every backend analyses every program
        return math.nan


def _bench_train(ctx, name, size, batch, dtype_name, steps, repeats, peaks) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    from jaxheads.train.step import JitRunner, data_mesh, init_train_state

    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[dtype_name]
    _, params, state, loss_fn = train_parts(name, size, batch, 20, dtype)
    opt = optax.adam(1e-4)
    runner = JitRunner(loss_fn, opt, data_mesh([ctx.device]))
    ts = runner.place_state(init_train_state(params, state, opt))
    host = detection_batch(size, batch, 20)
    dev_batch = runner.place_batch(host)
    key = jax.random.key(0)
    t0 = time.perf_counter()
    lowered = runner._step.lower(ts, dev_batch, key)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    box = {"ts": ts, "loss": None}

    def run():
        s = box["ts"]
        for _ in range(steps):
            s, metrics = compiled(s, dev_batch, key)
        box["ts"], box["loss"] = s, jax.block_until_ready(metrics["loss"])

    run()  # warm-up (autotuning, allocation)
    seconds = _time(run, repeats) / steps
    flops = _flops(lowered)  # the model's count, before XLA's rewrites
    if not math.isfinite(flops):
        # XLA:GPU does not analyse a lowered program; the CPU's lowering of the same step
        # is the same program before any backend rewrite.
        cpu = JitRunner(loss_fn, opt, data_mesh([ctx.cpu]))
        flops = _flops(
            cpu._step.lower(
                cpu.place_state(init_train_state(params, state, opt)), cpu.place_batch(host), key
            )
        )
    row = {
        "lower_s": t1 - t0,
        "compile_s": t2 - t1,
        "step_ms": seconds * 1e3,
        "images_per_s": batch / seconds,
        "flops_per_step": flops,
        # On a GPU this misses the convolutions (cuDNN custom calls): kept, not used.
        "flops_per_step_compiled": _flops(compiled),
        "achieved_tflops": flops / seconds / 1e12,
        "loss_finite": bool(jnp.isfinite(jax.device_get(box["loss"]))),
    }
    for peak_name, peak_flops in peaks.items():
        if peak_flops:
            row[f"mfu_vs_{peak_name}"] = flops / seconds / peak_flops
    try:
        mem = compiled.memory_analysis()
        row["temp_bytes"] = int(getattr(mem, "temp_size_in_bytes", 0))
    except Exception:  # noqa: BLE001
        pass
    return row


def _bench_infer(ctx, name, size, batch, dtype_name, calls, repeats) -> dict:
    import jax
    import jax.numpy as jnp

    from jaxheads.detect import postprocess

    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[dtype_name]
    detector, params, state, _ = train_parts(name, size, batch, 20, dtype)

    @jax.jit
    def predict(params, state, images):
        raw, _ = detector.layer.apply(params, state, images.astype(dtype))
        boxes, scores = detector.head.decode(raw.astype(jnp.float32))
        return postprocess(
            boxes, scores, score_threshold=0.005, iou_threshold=0.45, max_detections=100
        )

    images = jax.device_put(detection_batch(size, batch, 20)["image"], ctx.device)
    params, state = jax.device_put((params, state), ctx.device)
    t0 = time.perf_counter()
    compiled = predict.lower(params, state, images).compile()
    compile_s = time.perf_counter() - t0

    def run():
        for _ in range(calls):
            out = compiled(params, state, images)
        jax.block_until_ready(out)

    run()
    seconds = _time(run, repeats) / calls
    return {"compile_s": compile_s, "latency_ms": seconds * 1e3, "images_per_s": batch / seconds}


def _matmul_peak(ctx, n: int, dtype) -> float:
    run, flops = peak.matmul(n, dtype)
    run()
    return flops / _time(run, 10)


def _bench_jobs(ctx: Context) -> list[tuple[str, str, int, str, int]]:
    """(kind, network, size, dtype, batch), most wanted first: each runs while time is left."""
    if ctx.tiny:
        return [
            ("train", "yolov2-tiny", 64, "bfloat16", 2),
            ("infer", "yolov2-tiny", 64, "float32", 2),
        ]
    return [
        ("train", "yolov2-voc", 416, "bfloat16", 64),
        ("train", "yolov2-voc", 416, "float32", 64),
        ("infer", "yolov2-voc", 416, "bfloat16", 64),
        ("infer", "yolov2-voc", 416, "bfloat16", 1),
        ("train", "yolov2-tiny-voc", 416, "bfloat16", 64),
        ("train", "yolov2-tiny-voc", 416, "float32", 64),
        ("infer", "yolov2-tiny-voc", 416, "bfloat16", 64),
        ("infer", "yolov2-tiny-voc", 416, "bfloat16", 1),
        ("train", "yolov2-voc", 416, "bfloat16", 32),
        ("infer", "yolov2-voc", 416, "float32", 64),
        ("infer", "yolov2-tiny-voc", 416, "float32", 1),
    ]


def part_bench(ctx: Context) -> dict:
    import jax.numpy as jnp

    steps, repeats, n = (1, 2, 256) if ctx.tiny else (5, 5, 8192)
    peaks = {
        "datasheet_bf16": peak.datasheet_peak(ctx.device.device_kind) if ctx.accelerator else None,
        "matmul_bf16": _matmul_peak(ctx, n, jnp.bfloat16),
        "matmul_f32": _matmul_peak(ctx, n, jnp.float32),
    }
    ctx.log("  peaks (TFLOP/s): " + ", ".join(f"{k} {v / 1e12:.1f}" for k, v in peaks.items() if v))
    out = {"peaks_flops_per_s": peaks, "train": {}, "infer": {}}
    for kind, name, size, dtype, b in _bench_jobs(ctx):
        key = f"{name}_{size}_{dtype}_b{b}"
        if ctx.time_left() < 30:
            out[kind][key] = {"status": "not run: out of time"}
            continue
        try:
            if kind == "train":
                row = _bench_train(ctx, name, size, b, dtype, steps, repeats, peaks)
                ctx.log(
                    f"  train {key}: {row['images_per_s']:.0f} img/s, "
                    f"{row['step_ms']:.1f} ms/step, {row['achieved_tflops']:.1f} TFLOP/s, "
                    f"MFU {row.get('mfu_vs_datasheet_bf16', math.nan):.1%} of the "
                    f"datasheet, {row.get('mfu_vs_matmul_bf16', math.nan):.1%} of the "
                    f"matmul; compile {row['compile_s']:.1f} s"
                )
            else:
                row = _bench_infer(
                    ctx, name, size, b, dtype, calls=10 if b > 1 else 30, repeats=repeats
                )
                ctx.log(
                    f"  infer {key}: {row['images_per_s']:.0f} img/s, "
                    f"{row['latency_ms']:.2f} ms, compile {row['compile_s']:.1f} s"
                )
            out[kind][key] = row
        except Exception as err:  # noqa: BLE001 - one size failing (memory) is a finding
            out[kind][key] = {"error": f"{type(err).__name__}: {err}"[:2000]}
            ctx.log(f"  {kind} {key}: FAILED {type(err).__name__}: {str(err)[:300]}")
    out["passed"] = not any("error" in r for k in ("train", "infer") for r in out[k].values())
    return out
