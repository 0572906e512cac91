"""The accelerator against the CPU: every public op, the losses and the postprocessing.

Parts ``ops``, ``losses`` and ``postprocess`` of `benchmarks.accelerator_check`, with
the `Context` every part sees, the tolerances and the comparison helpers the model
parts (`benchmarks.accelerator_models`) use too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

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


def rel(a, b) -> float:
    """max |a - b| / max |b|: the error relative to the output's scale."""
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return (
            math.inf
            if not np.array_equal(np.isfinite(a), np.isfinite(b))
            else rel(np.where(np.isfinite(a), a, 0), np.where(np.isfinite(b), b, 0))
        )
    scale = float(np.max(np.abs(b))) or 1.0
    return float(np.max(np.abs(a - b))) / scale if a.size else 0.0


def tree_rel(a, b) -> float:
    """Norm-wise relative error of two pytrees: ||a - b|| / ||b|| over all leaves."""
    import jax
    import numpy as np

    la = [np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(a)]
    lb = [np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(b)]
    va, vb = np.concatenate(la), np.concatenate(lb)
    return float(np.linalg.norm(va - vb) / (np.linalg.norm(vb) or 1.0))


def on_device(ctx: Context, device, fn, *args):
    """``jit(fn)(*args)`` with the arguments placed on ``device``, fetched to the host."""
    jax = ctx.jax
    args = jax.device_put(args, device)
    return jax.device_get(jax.jit(fn)(*args))


def compare_cases(ctx: Context, cases: dict) -> dict:
    """Runs each ``name -> (fn, args)`` on CPU and on the accelerator in f32 and bf16."""
    import jax
    import jax.numpy as jnp

    out, worst = {}, {"f32_highest": 0.0, "f32_default": 0.0, "bf16": 0.0}
    passed = True
    for name, (fn, args) in cases.items():
        with jax.default_matmul_precision("highest"):
            ref = on_device(ctx, ctx.cpu, fn, *args)
            hi = on_device(ctx, ctx.device, fn, *args)
        default = on_device(ctx, ctx.device, fn, *args)
        low = jax.tree.map(
            lambda a: a.astype(jnp.bfloat16) if jnp.issubdtype(a.dtype, jnp.floating) else a, args
        )
        bf16 = on_device(ctx, ctx.device, fn, *low)
        row = {
            "f32_highest": _tree_max(rel, hi, ref),
            "f32_default": _tree_max(rel, default, ref),
            "bf16": _tree_max(rel, bf16, ref),
            # What bfloat16 costs on the CPU itself: long reductions (a kernel's gradient
            # sums over every pixel of the batch) lose more than 2^-8.
            "bf16_cpu": _tree_max(rel, on_device(ctx, ctx.cpu, fn, *low), ref),
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


def untied_windows(shape, seed: int = 6):
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


def rng_arrays(seed: int, *shapes, scale: float = 1.0):
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(seed)
    return [jnp.asarray(scale * rng.standard_normal(s), jnp.float32) for s in shapes]


def _op_cases(ctx: Context) -> dict:
    """Each public op (and the gradients of the two with custom rules) on random inputs."""
    import jax
    import jax.numpy as jnp

    from jaxheads import ops

    b, s, c = (2, 12, 8) if ctx.tiny else (8, 26, 64)
    x, k3, k1, bias = rng_arrays(0, (b, s, s, c), (3, 3, c, 2 * c), (1, 1, c, c), (2 * c,))
    kg, kd = rng_arrays(1, (3, 3, c // 4, c), (c, 3 * c))
    scale, shift = rng_arrays(2, (c,), (c,))
    out_s = s - 2
    kl, bl = rng_arrays(3, (out_s, out_s, 9 * c, 4), (out_s, out_s, 4))
    t = 3
    xs = rng_arrays(4, (b, t, s // 2, s // 2, 4))[0]
    ck, rk, cb = rng_arrays(5, (3, 3, 4, 4 * 8), (3, 3, 8, 4 * 8), (4 * 8,), scale=0.3)

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
            (untied_windows(x.shape),),
        ),
    }


def part_ops(ctx: Context) -> dict:
    if not ctx.accelerator:
        # Still build and run every case once, so that the part itself is tested on CPU.
        for fn, args in _op_cases(ctx).values():
            ctx.jax.block_until_ready(ctx.jax.jit(fn)(*args))
        return {"status": "skipped", "reason": "no accelerator: nothing to compare with the CPU"}
    return compare_cases(ctx, _op_cases(ctx))


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
    p1 = rng_arrays(8, (b, side, side, nb * 5 + classes))[0]
    anchors = np.array(
        [[1.08, 1.19], [3.42, 4.41], [6.63, 11.38], [9.42, 5.11], [16.62, 10.52]], np.float32
    )
    p2 = rng_arrays(9, (b, 13, 13, 5 * (5 + classes)), scale=0.5)[0]

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
    return compare_cases(ctx, cases)


def part_postprocess(ctx: Context) -> dict:
    import jax.numpy as jnp
    import numpy as np

    from jaxheads.decode import decode_yolov2
    from jaxheads.detect import postprocess

    b, classes = (2, 3) if ctx.tiny else (16, 20)
    anchors = np.array(
        [[1.08, 1.19], [3.42, 4.41], [6.63, 11.38], [9.42, 5.11], [16.62, 10.52]], np.float32
    )
    raw = rng_arrays(11, (b, 13, 13, 5 * (5 + classes)), scale=2.0)[0]

    def run(raw):
        boxes, scores = decode_yolov2(raw, anchors, num_classes=classes)
        return postprocess(
            boxes, scores, score_threshold=0.05, iou_threshold=0.45, max_detections=100
        )

    if not ctx.accelerator:
        ctx.jax.block_until_ready(ctx.jax.jit(run)(raw))
        return {"status": "skipped", "reason": "no accelerator: nothing to compare with the CPU"}
    cpu = on_device(ctx, ctx.cpu, run, raw)
    acc = on_device(ctx, ctx.device, run, raw)
    same_valid = bool(np.array_equal(cpu.valid, acc.valid))
    same_labels = bool(
        np.array_equal(np.where(cpu.valid, cpu.labels, -1), np.where(acc.valid, acc.labels, -1))
    )
    box_err = rel(
        np.where(cpu.valid[..., None], acc.boxes, 0), np.where(cpu.valid[..., None], cpu.boxes, 0)
    )
    score_err = rel(np.where(cpu.valid, acc.scores, 0), np.where(cpu.valid, cpu.scores, 0))
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
