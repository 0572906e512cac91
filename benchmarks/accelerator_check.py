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
* ``keras_bench``: ``jaxheads bench --only train`` (jaxheads against Keras 3 and Flax
  NNX) at the full sizes, when Keras can be imported.

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
from collections.abc import Callable

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
    "keras_bench",
)
# Float32 on the accelerator at precision "highest" against the CPU: relative to the
# output's largest magnitude. Sums in another order and cuDNN's algorithms (Winograd,
# FFT) stay well inside 1e-4; TF32 (XLA's default on GPUs) does not, by design.
TOL_F32 = 1e-4
# Bfloat16 keeps 8 significant bits: 2^-8 per rounding, a few roundings deep.
TOL_BF16 = 3e-2
# A training step's gradients, norm-wise, at "highest" precision.
TOL_GRAD = 1e-3
# A step's gradients may differ from the CPU's by this many times what a one-ulp change of
# every parameter does to them on the CPU itself; a bfloat16 result by this many times the
# CPU's own bfloat16 error. A defect (a wrong layout, a lost term) is off by order one.
NOISE_FACTOR = 10.0


class Context:
    """What every part sees: the devices, sizes and the log."""

    def __init__(self, tiny: bool, log: Callable[[str], None]):
        import jax

        self.jax = jax
        self.cpu = jax.devices("cpu")[0]
        self.device = jax.devices()[0]
        self.accelerator = self.device.platform != "cpu"
        self.tiny = tiny or not self.accelerator
        self.log = log
        self.part_deadline = math.inf  # set by `run` for each part

    def time_left(self) -> float:
        return self.part_deadline - time.perf_counter()


def _rel(a, b) -> float:
    """max |a - b| / max |b|: the error relative to the output's scale."""
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return (
            math.inf
            if not np.array_equal(np.isfinite(a), np.isfinite(b))
            else _rel(np.where(np.isfinite(a), a, 0), np.where(np.isfinite(b), b, 0))
        )
    scale = float(np.max(np.abs(b))) or 1.0
    return float(np.max(np.abs(a - b))) / scale if a.size else 0.0


def _tree_rel(a, b) -> float:
    """Norm-wise relative error of two pytrees: ||a - b|| / ||b|| over all leaves."""
    import jax
    import numpy as np

    la = [np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(a)]
    lb = [np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(b)]
    va, vb = np.concatenate(la), np.concatenate(lb)
    return float(np.linalg.norm(va - vb) / (np.linalg.norm(vb) or 1.0))


def _on(ctx: Context, device, fn, *args):
    """``jit(fn)(*args)`` with the arguments placed on ``device``, fetched to the host."""
    jax = ctx.jax
    args = jax.device_put(args, device)
    return jax.device_get(jax.jit(fn)(*args))


def _compare_cases(ctx: Context, cases: dict) -> dict:
    """Runs each ``name -> (fn, args)`` on CPU and on the accelerator in f32 and bf16."""
    import jax
    import jax.numpy as jnp

    out, worst = {}, {"f32_highest": 0.0, "f32_default": 0.0, "bf16": 0.0}
    passed = True
    for name, (fn, args) in cases.items():
        with jax.default_matmul_precision("highest"):
            ref = _on(ctx, ctx.cpu, fn, *args)
            hi = _on(ctx, ctx.device, fn, *args)
        default = _on(ctx, ctx.device, fn, *args)
        low = jax.tree.map(
            lambda a: a.astype(jnp.bfloat16) if jnp.issubdtype(a.dtype, jnp.floating) else a, args
        )
        bf16 = _on(ctx, ctx.device, fn, *low)
        row = {
            "f32_highest": _tree_max(_rel, hi, ref),
            "f32_default": _tree_max(_rel, default, ref),
            "bf16": _tree_max(_rel, bf16, ref),
            # What bfloat16 costs on the CPU itself: long reductions (a kernel's gradient
            # sums over every pixel of the batch) lose more than 2^-8.
            "bf16_cpu": _tree_max(_rel, _on(ctx, ctx.cpu, fn, *low), ref),
        }
        row["passed"] = row["f32_highest"] <= TOL_F32 and row["bf16"] <= max(
            TOL_BF16, NOISE_FACTOR * row["bf16_cpu"]
        )
        passed &= row["passed"]
        for k in worst:
            worst[k] = max(worst[k], row[k])
        out[name] = row
        ctx.log(
            f"  {name:28s} f32 highest {row['f32_highest']:.1e}, default "
            f"{row['f32_default']:.1e}, bf16 {row['bf16']:.1e} (CPU {row['bf16_cpu']:.1e})"
            + ("" if row["passed"] else "  FAILED")
        )
    return {
        "cases": out,
        "worst": worst,
        "tolerance": {
            "f32_highest": TOL_F32,
            "bf16": f"max({TOL_BF16}, {NOISE_FACTOR} x the CPU's own bfloat16 error)",
        },
        "passed": bool(passed),
    }


def _tree_max(metric, a, b) -> float:
    import jax

    return max(metric(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _untied_windows(shape, seed: int = 6):
    """Values exact in bfloat16 and distinct within every 2x2 window.

    A max-pool gradient goes to the window's largest value; random normals rounded to
    bfloat16 tie often, and a tie broken the other way moves the whole gradient, which
    says nothing about the accelerator. Each window holds ``(4 r + p) / 32`` with ``r``
    random below 64 and ``p`` a permutation of 0..3: integers below 256, scaled by a power
    of two.
    """
    import jax.numpy as jnp
    import numpy as np

    b, h, w, c = shape
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 64, (b, h // 2, w // 2, c))
    perm = rng.permuted(np.broadcast_to(np.arange(4), (b, h // 2, w // 2, c, 4)), axis=-1)
    cells = 4 * base[..., None] + perm  # (b, h/2, w/2, c, 4)
    cells = cells.reshape(b, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3)
    return jnp.asarray(cells.reshape(b, h, w, c) / 32.0, jnp.float32)


def _rng_arrays(seed: int, *shapes, scale: float = 1.0):
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(seed)
    return [jnp.asarray(scale * rng.standard_normal(s), jnp.float32) for s in shapes]


# --- the parts ------------------------------------------------------------------------------


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


def _op_cases(ctx: Context) -> dict:
    """Each public op (and the gradients of the two with custom rules) on random inputs."""
    import jax
    import jax.numpy as jnp

    from jaxheads import ops

    b, s, c = (2, 12, 8) if ctx.tiny else (8, 26, 64)
    x, k3, k1, bias = _rng_arrays(0, (b, s, s, c), (3, 3, c, 2 * c), (1, 1, c, c), (2 * c,))
    kg, kd = _rng_arrays(1, (3, 3, c // 4, c), (c, 3 * c))
    scale, shift = _rng_arrays(2, (c,), (c,))
    out_s = s - 2
    kl, bl = _rng_arrays(3, (out_s, out_s, 9 * c, 4), (out_s, out_s, 4))
    t = 3
    xs = _rng_arrays(4, (b, t, s // 2, s // 2, 4))[0]
    ck, rk, cb = _rng_arrays(5, (3, 3, 4, 4 * 8), (3, 3, 8, 4 * 8), (4 * 8,), scale=0.3)

    def conv_loss(x, k):
        return jnp.sum(jnp.tanh(ops.conv2d(x, k, strides=2, padding="same")))

    def bn_loss(x, g, b):
        y, _, _ = ops.batch_norm_train(x, g, b, epsilon=1e-3)
        return jnp.sum(jnp.tanh(y) * jnp.arange(y.shape[-1], dtype=y.dtype))

    return {
        "conv2d 3x3 same": (lambda x, k, b: ops.conv2d(x, k, b, padding="same"), (x, k3, bias)),
        "conv2d 3x3 s2 valid": (lambda x, k: ops.conv2d(x, k, strides=2, padding="valid"), (x, k3)),
        "conv2d 1x1": (lambda x, k: ops.conv2d(x, k, padding="valid"), (x, k1)),
        "conv2d dilation 2": (lambda x, k: ops.conv2d(x, k, padding="same", dilation=2), (x, k3)),
        "conv2d groups 4": (lambda x, k: ops.conv2d(x, k, padding="same", groups=4), (x, kg)),
        "conv2d darknet pad 1 s2": (lambda x, k: ops.conv2d(x, k, strides=2, padding=1), (x, k3)),
        "dense per cell": (lambda x, k: ops.dense(x, k), (x, kd)),
        "flatten + dense": (
            lambda x, k: ops.dense(ops.flatten(x), k[:c, :]),
            (x[:, :1, :1, :], kd),
        ),
        "max_pool2d 2/2": (lambda x: ops.max_pool2d(x, 2, 2), (x,)),
        "max_pool2d 2/1 same": (lambda x: ops.max_pool2d(x, 2, 1, padding="same"), (x,)),
        "avg_pool2d 3/2 same": (lambda x: ops.avg_pool2d(x, 3, 2, padding="same"), (x,)),
        "global_avg_pool2d": (ops.global_avg_pool2d, (x,)),
        "batch_norm (inference)": (
            lambda x, g, b: ops.batch_norm(x, g, b, b * 0.1, jnp.abs(g) + 0.5, epsilon=1e-3),
            (x, scale, shift),
        ),
        "batch_norm_train": (
            lambda x, g, b: ops.batch_norm_train(x, g, b, epsilon=1e-3),
            (x, scale, shift),
        ),
        "leaky_relu 0.1": (lambda x: ops.leaky_relu(x, 0.1), (x,)),
        "space_to_depth 2": (lambda x: ops.space_to_depth(x, 2), (x,)),
        "darknet_reorg 2": (lambda x: ops.darknet_reorg(x, 2), (x,)),
        "locally_connected2d 3x3": (
            lambda x, k, b: ops.locally_connected2d(x, k, b, kernel_size=3),
            (x, kl, bl),
        ),
        "conv_lstm2d": (
            lambda x, k, r, b: ops.conv_lstm2d(x, k, r, b, padding="same", return_sequences=True),
            (xs, ck, rk, cb),
        ),
        "grad conv2d": (jax.grad(conv_loss, argnums=(0, 1)), (x, k3)),
        "grad batch_norm_train": (jax.grad(bn_loss, argnums=(0, 1, 2)), (x, scale, shift)),
        "grad max_pool2d": (
            jax.grad(lambda x: jnp.sum(jnp.sin(ops.max_pool2d(x, 2, 2)))),
            (_untied_windows(x.shape),),
        ),
    }


def part_ops(ctx: Context) -> dict:
    if not ctx.accelerator:
        # Still build and run every case once, so that the part itself is tested on CPU.
        for fn, args in _op_cases(ctx).values():
            ctx.jax.block_until_ready(ctx.jax.jit(fn)(*args))
        return {"status": "skipped", "reason": "no accelerator: nothing to compare with the CPU"}
    return _compare_cases(ctx, _op_cases(ctx))


def _loss_cases(ctx: Context) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxheads.losses import region_loss, yolov1_loss

    rng = np.random.default_rng(7)
    b, m, classes = (2, 4, 3) if ctx.tiny else (16, 12, 20)
    centres = rng.uniform(0.1, 0.9, (b, m, 2))
    sizes = rng.uniform(0.05, 0.4, (b, m, 2))
    boxes = jnp.asarray(
        np.concatenate([centres - sizes / 2, centres + sizes / 2], -1).clip(0, 1), jnp.float32
    )
    labels = jnp.asarray(rng.integers(0, classes, (b, m)), jnp.int32)
    mask = jnp.asarray(np.arange(m)[None, :] < rng.integers(1, m + 1, (b, 1)))
    side, nb = 7, 2
    p1 = _rng_arrays(8, (b, side, side, nb * 5 + classes))[0]
    anchors = np.array(
        [[1.08, 1.19], [3.42, 4.41], [6.63, 11.38], [9.42, 5.11], [16.62, 10.52]], np.float32
    )
    p2 = _rng_arrays(9, (b, 13, 13, 5 * (5 + classes)), scale=0.5)[0]

    def v1(p):
        return jnp.mean(yolov1_loss(p, boxes, labels, mask, num_boxes=nb, num_classes=classes))

    def v2(p):
        return jnp.mean(region_loss(p, boxes, labels, mask, anchors, seen=jnp.float32(1e6)))

    return {
        "yolov1_loss": (jax.value_and_grad(v1), (p1,)),
        "region_loss": (jax.value_and_grad(v2), (p2,)),
    }


def part_losses(ctx: Context) -> dict:
    cases = _loss_cases(ctx)
    if not ctx.accelerator:
        for fn, args in cases.values():
            ctx.jax.block_until_ready(ctx.jax.jit(fn)(*args))
        return {"status": "skipped", "reason": "no accelerator: nothing to compare with the CPU"}
    return _compare_cases(ctx, cases)


def part_postprocess(ctx: Context) -> dict:
    import jax.numpy as jnp
    import numpy as np

    from jaxheads.decode import decode_yolov2
    from jaxheads.detect import postprocess

    b, classes = (2, 3) if ctx.tiny else (16, 20)
    anchors = np.array(
        [[1.08, 1.19], [3.42, 4.41], [6.63, 11.38], [9.42, 5.11], [16.62, 10.52]], np.float32
    )
    raw = _rng_arrays(11, (b, 13, 13, 5 * (5 + classes)), scale=2.0)[0]

    def run(raw):
        boxes, scores = decode_yolov2(raw, anchors, num_classes=classes)
        return postprocess(
            boxes, scores, score_threshold=0.05, iou_threshold=0.45, max_detections=100
        )

    if not ctx.accelerator:
        ctx.jax.block_until_ready(ctx.jax.jit(run)(raw))
        return {"status": "skipped", "reason": "no accelerator: nothing to compare with the CPU"}
    cpu = _on(ctx, ctx.cpu, run, raw)
    acc = _on(ctx, ctx.device, run, raw)
    same_valid = bool(np.array_equal(cpu.valid, acc.valid))
    same_labels = bool(
        np.array_equal(np.where(cpu.valid, cpu.labels, -1), np.where(acc.valid, acc.labels, -1))
    )
    box_err = _rel(
        np.where(cpu.valid[..., None], acc.boxes, 0), np.where(cpu.valid[..., None], cpu.boxes, 0)
    )
    score_err = _rel(np.where(cpu.valid, acc.scores, 0), np.where(cpu.valid, cpu.scores, 0))
    result = {
        "detections": int(np.sum(cpu.valid)),
        "same_valid": same_valid,
        "same_labels": same_labels,
        "box_rel_err": box_err,
        "score_rel_err": score_err,
        "passed": same_valid and same_labels and box_err <= TOL_F32 and score_err <= TOL_F32,
    }
    del jnp
    ctx.log(f"  {result}")
    return result


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


def _batch(size: int, batch: int, num_classes: int, seed: int = 0) -> dict:
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


def _train_parts(name: str, size: int, batch: int, num_classes: int, dtype):
    """(detector, params, state, loss_fn) of a built-in model."""
    import jax

    from jaxheads.train.detection import build_detector, detection_loss

    detector, init = build_detector(name, image_size=size, num_classes=num_classes)
    params, state = init(jax.random.key(0))
    loss_fn = detection_loss(detector, global_batch=batch, compute_dtype=dtype)
    return detector, params, state, loss_fn


def _nudge(params, seed: int = 7):
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
            _, params, state, loss_fn = _train_parts(name, size, b, classes, jnp.float32)
            host = _batch(size, b, classes)
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
                lc, gc, sc = _on(ctx, ctx.cpu, grads, params, state, host)
                la, ga, sa = _on(ctx, ctx.device, grads, params, state, host)
                # The step's own float32 noise floor: the CPU's gradients after every
                # parameter moves by about one ulp. Deep batch-normed nets with the
                # region loss's IoU decisions amplify rounding; a defect exceeds this.
                nudged = _nudge(params)
                _, gn, _ = _on(ctx, ctx.cpu, grads, nudged, state, host)
            ld, gd, _ = _on(ctx, ctx.device, grads, params, state, host)
            row = {
                "image_size": size,
                "loss_cpu": float(lc),
                "loss_rel_err": abs(float(la) - float(lc)) / max(abs(float(lc)), 1e-12),
                "grad_rel_err": _tree_rel(ga, gc),
                "grad_rel_err_default_precision": _tree_rel(gd, gc),
                "grad_noise_floor_cpu": _tree_rel(gn, gc),
                "bn_state_rel_err": _tree_rel(sa, sc) if jax.tree.leaves(sc) else 0.0,
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
    _, params, state, loss_fn = _train_parts("small-yolov2", size, b, classes, jnp.float32)
    host = _batch(size, b, classes)
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


def _median(values: list[float]) -> float:
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


def _time(fn, repeats: int) -> float:
    """Median wall seconds of ``fn()`` (which must block until its result is ready)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return _median(times)


def _flops(stage) -> float:
    try:
        analysis = stage.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend analyses every program
        return math.nan
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", math.nan))


def _bench_train(ctx, name, size, batch, dtype_name, steps, repeats, peaks) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    from jaxheads.train.step import JitRunner, data_mesh, init_train_state

    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[dtype_name]
    _, params, state, loss_fn = _train_parts(name, size, batch, 20, dtype)
    opt = optax.adam(1e-4)
    runner = JitRunner(loss_fn, opt, data_mesh([ctx.device]))
    ts = runner.place_state(init_train_state(params, state, opt))
    host = _batch(size, batch, 20)
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
    for peak_name, peak in peaks.items():
        if peak:
            row[f"mfu_vs_{peak_name}"] = flops / seconds / peak
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
    detector, params, state, _ = _train_parts(name, size, batch, 20, dtype)

    @jax.jit
    def predict(params, state, images):
        raw, _ = detector.layer.apply(params, state, images.astype(dtype))
        boxes, scores = detector.head.decode(raw.astype(jnp.float32))
        return postprocess(
            boxes, scores, score_threshold=0.005, iou_threshold=0.45, max_detections=100
        )

    images = jax.device_put(_batch(size, batch, 20)["image"], ctx.device)
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
    from benchmarks import peak

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

    from benchmarks import peak

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
            "jaxheads.cli",
            "bench",
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
            elif part == "keras_bench":
                out = part_keras_bench(ctx, left - 5, os.path.join(workdir, "bench.json"))
            else:
                out = globals()[f"part_{part}"](ctx)
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
