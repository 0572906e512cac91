"""A per-layer roofline of the YOLOv2-VOC training step (416², batch 64, bfloat16).

Every darknet layer's forward and backward (``jax.vjp``) is lowered on abstract inputs
(`jax.ShapeDtypeStruct`: nothing of 64×416×416 is allocated) and XLA's cost analysis
gives its FLOPs and bytes accessed. A batch-normalised convolution is split into its
parts: the convolution (with the float32 → bfloat16 cast of its kernel, and the cast of
its gradient back), batch norm, and the leaky activation; the casts' bytes are the
convolution's bytes with float32 kernels less those with bfloat16 kernels. XLA's
convolution is used on every layer (as on a GPU), not the CPU's product of patches.

Two byte counts:

* **unfused**: the lowered program's analysis, every HLO op reading its operands and
  writing its result (what XLA:CPU's cost analysis of an unoptimised program counts).
  On a GPU XLA fuses the elementwise ops and the reductions around a convolution into a
  few kernels, so this overstates the traffic of batch norm and the activations.
* **fused**: the convolutions as lowered (a cuDNN convolution reads its operands and
  writes its result once, as the lowered op does), plus batch norm, the activation and
  the pooling compiled together by XLA:CPU, whose fusions give one kernel's traffic per
  fusion. (XLA:CPU's compiled convolutions are not used: it computes bfloat16
  convolutions in float32 after transposes, which a GPU does not.) XLA:GPU fuses at
  least as much, so this is closer to, and still at or above, what a GPU moves.

For each layer and device the roofline time is ``max(flops / peak, bytes / bandwidth)``
(for the unfused count part by part, since unfused parts are separate kernels); the
step's predicted time is their sum plus the rest of the step (loss, optimizer update:
the whole step's count less the layers'), and the MFU ceiling is the step's FLOPs over
peak × that time. Peaks are the datasheets': NVIDIA H100 SXM5 (989.4 TFLOP/s dense
bfloat16, 3.35 TB/s HBM3) and H200 SXM (989.4 TFLOP/s, 4.8 TB/s HBM3e).

``python -m benchmarks.roofline`` writes ``docs/results/bench/roofline.json`` and
prints the Markdown table that ``docs/benchmarks.md`` holds (``--markdown PATH`` writes
it to a file too). About a minute on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import time

import jax
import jax.numpy as jnp

from jaxheads import layers as L
from jaxheads.bench.roofline_table import bandwidth_bound_layers, roofline_table
from jaxheads.ops import conv

#: The datasheets' dense bfloat16 peaks (FLOP/s) and HBM bandwidths (bytes/s).
DEVICES = {
    "H100": {"peak_flops": 989.4e12, "bandwidth": 3.35e12, "source": "NVIDIA H100 datasheet"},
    "H200": {"peak_flops": 989.4e12, "bandwidth": 4.8e12, "source": "NVIDIA H200 datasheet"},
}
DEFAULT_JSON = os.path.join("docs", "results", "bench", "roofline.json")
COMMAND = "python -m benchmarks.roofline"


@contextlib.contextmanager
def xla_convolutions():
    """XLA's convolution on every layer while lowering (a GPU's program, not the CPU's)."""
    old = conv.PATCHES_MIN_CHANNELS
    conv.PATCHES_MIN_CHANNELS = 2**31
    try:
        yield
    finally:
        conv.PATCHES_MIN_CHANNELS = old


def _cost(stage) -> dict:
    analysis = stage.cost_analysis()
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else {}
    return {"flops": float(analysis.get("flops", 0.0)), "bytes": float(analysis["bytes accessed"])}


def _abstract(tree, dtype=None):
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, dtype or a.dtype), tree)


def vjp_cost(layer, params, state, x, *, compiled: bool = False, input_grad: bool = True) -> dict:
    """FLOPs and bytes of ``layer``'s training forward and its backward (one ``vjp``).

    Args:
      layer: a `jaxheads.layers.Layer`.
      params, state: its params and state as ShapeDtypeStructs.
      x: its input (a ShapeDtypeStruct, or a list of them).
      compiled: the XLA:CPU-compiled program's analysis (fusions) instead of the
        lowered one's.
      input_grad: also the gradient with respect to ``x`` (not for the first layer:
        the step never differentiates the images).
    """

    def fwd_bwd(params, state, x, dy):
        def f(p, x):
            return layer.apply(p, state, x, train=True)

        if input_grad:
            (y, new_state), vjp = jax.vjp(f, params, x)
            return y, new_state, vjp((dy, jax.tree.map(jnp.zeros_like, new_state)))
        (y, new_state), vjp = jax.vjp(lambda p: f(p, x), params)
        return y, new_state, vjp((dy, jax.tree.map(jnp.zeros_like, new_state)))

    out = jax.eval_shape(lambda p, s, x: layer.apply(p, s, x, train=True)[0], params, state, x)
    with xla_convolutions():
        lowered = jax.jit(fwd_bwd).lower(params, state, x, out)
        return _cost(lowered.compile() if compiled else lowered)


def _parts(node) -> list[tuple[str, object]]:
    """``(part, layer)`` of a graph node: its leaves for a Sequential, else itself."""
    if node.layer.kind == "Sequential":
        return [(n.layer.kind, n.layer) for n in node.layer.nodes]
    return [(node.layer.kind, node.layer)]


PART_GROUPS = {
    "Conv2D": "conv",
    "BatchNormalization": "batch_norm",
    "LeakyReLU": "activation",
    "Activation": "activation",
}


def layer_rows(detector, batch: int, dtype) -> list[dict]:
    """One row per graph node: its parts' FLOPs and bytes, unfused and fused."""
    graph = detector.layer
    shapes = {"input": jax.ShapeDtypeStruct((batch, *detector.input_shape[1:]), dtype)}
    rows = []
    for i, node in enumerate(graph.nodes):
        inputs = node.inputs or (graph.nodes[i - 1].name if i else "input")
        x = [shapes[n] for n in inputs] if isinstance(inputs, tuple) else shapes[inputs]
        in_shape = [tuple(a.shape) for a in x] if isinstance(x, list) else tuple(x.shape)
        row = {"layer": node.name, "input": in_shape, "parts": {}, "flops": 0.0}
        row["kinds"] = [kind for kind, _ in _parts(node)]
        unfused = 0.0
        h = x
        rest = []  # the parts after the convolution, fused together for the second count
        for kind, part in _parts(node):
            _, params, state = L.abstract_init(part, jax.tree.map(lambda a: a.shape, h))
            group = PART_GROUPS.get(kind, "other")
            first = i == 0 and group == "conv"
            cost = vjp_cost(part, params, state, h, input_grad=not first)
            if group == "conv":
                bf16 = vjp_cost(part, _abstract(params, dtype), state, h, input_grad=not first)
                cost["casts_bytes"] = cost["bytes"] - bf16["bytes"]
                cost["bytes"] = bf16["bytes"]
                row["kernel"] = list(params["kernel"].shape)
            else:
                rest.append((part, params, state, h))
            row["parts"][group] = cost
            row["flops"] += cost["flops"]
            unfused += cost["bytes"] + cost.get("casts_bytes", 0.0)
            h = jax.eval_shape(
                lambda p, s, x, part=part: part.apply(p, s, x, train=True)[0], params, state, h
            )
        shapes[node.name] = h
        row["output"] = tuple(h.shape)
        row["bytes_unfused"] = unfused
        row["bytes_fused"] = sum(
            p.get("bytes", 0.0) + p.get("casts_bytes", 0.0)
            for g, p in row["parts"].items()
            if g == "conv"
        ) + (_fused_rest(rest) if rest else 0.0)
        row["bytes_min"] = _min_bytes(row, x, h)
        rows.append(row)
    return rows


def _nbytes(a) -> float:
    arrays = a if isinstance(a, list) else [a]
    return float(sum(math.prod(b.shape) * b.dtype.itemsize for b in arrays))


def _min_bytes(row, x, y) -> float:
    """Each tensor moved as few times as full fusion allows (a model, not XLA's count).

    A convolution as lowered; batch norm and its activation in eight passes over the
    convolution's output (forward: statistics, then normalise + activate; backward:
    the two reductions, then the input gradient: reads of z, z, da, z, da, z and the
    writes of a and dz); a max pool reads its input twice and writes its output and
    its input's gradient; a copy (route, reorg) reads and writes each tensor twice.
    """
    conv = row["parts"].get("conv")
    if conv is not None:
        after = 8 * _nbytes(y) if "batch_norm" in row["parts"] else 0.0
        return conv["bytes"] + conv["casts_bytes"] + after
    if "MaxPooling2D" in row["kinds"]:
        return 3 * _nbytes(x) + 2 * _nbytes(y)
    return 2 * (_nbytes(x) + _nbytes(y))


def _fused_rest(rest) -> float:
    """Bytes of the parts after the convolution compiled as one program (XLA:CPU's fusions)."""
    layers = [r[0] for r in rest]
    params = [r[1] for r in rest]
    states = [r[2] for r in rest]

    def apply(ps, s, x, train=True):
        new = []
        for layer, p, st in zip(layers, ps, s, strict=True):
            x, st = layer.apply(p, st, x, train=train)
            new.append(st)
        return x, new

    chain = L.Layer(None, apply, "chain", "chain")
    return vjp_cost(chain, params, states, rest[0][3], compiled=True)["bytes"]


def step_cost(detector, batch: int, dtype) -> dict:
    """FLOPs and bytes of the whole training step (loss, backward, Adam), lowered abstractly."""
    import optax

    from jaxheads.train.detection import detection_loss
    from jaxheads.train.step import init_train_state, make_step

    loss_fn = detection_loss(detector, global_batch=batch, compute_dtype=dtype)
    opt = optax.adam(1e-4)
    _, params, state = L.abstract_init(detector.layer, detector.input_shape)
    ts = jax.eval_shape(lambda p, s: init_train_state(p, s, opt), params, state)
    boxes = 8  # per image, as benchmarks.accelerator_models.detection_batch draws them
    batch_shapes = {
        "image": jax.ShapeDtypeStruct((batch, *detector.input_shape[1:]), jnp.float32),
        "boxes": jax.ShapeDtypeStruct((batch, boxes, 4), jnp.float32),
        "labels": jax.ShapeDtypeStruct((batch, boxes), jnp.int32),
        "mask": jax.ShapeDtypeStruct((batch, boxes), jnp.bool_),
    }
    with xla_convolutions():
        lowered = jax.jit(make_step(loss_fn, opt)).lower(ts, batch_shapes, jax.random.key(0))
    return _cost(lowered)


def roofline(name="yolov2-voc", size=416, batch=64, dtype_name="bfloat16") -> dict:
    """The rows, the step's totals and each device's predicted step time (see the module)."""
    from jaxheads.train.detection import build_detector

    dtype = jnp.dtype(dtype_name)
    detector, _ = build_detector(name, image_size=size, num_classes=20)
    rows = layer_rows(detector, batch, dtype)
    step = step_cost(detector, batch, dtype)
    layers_flops = sum(r["flops"] for r in rows)
    totals = {
        "flops_layers": layers_flops,
        "flops_step": step["flops"],
        "bytes_step_unfused": step["bytes"],
        "bytes_layers_unfused": sum(r["bytes_unfused"] for r in rows),
        "bytes_layers_fused": sum(r["bytes_fused"] for r in rows),
        "bytes_layers_min": sum(r["bytes_min"] for r in rows),
    }
    for group in ("conv", "batch_norm", "activation", "other"):
        totals[f"bytes_unfused_{group}"] = sum(
            r["parts"].get(group, {}).get("bytes", 0.0) for r in rows
        )
    totals["bytes_unfused_casts"] = sum(
        r["parts"].get("conv", {}).get("casts_bytes", 0) for r in rows
    )
    rest = {
        "flops": max(step["flops"] - layers_flops, 0.0),
        "bytes": max(step["bytes"] - totals["bytes_layers_unfused"], 0.0),
    }
    totals["rest_of_step"] = rest
    devices = {}
    for dev, spec in DEVICES.items():
        peak, bw = spec["peak_flops"], spec["bandwidth"]
        ridge = peak / bw

        def t(flops, nbytes, peak=peak, bw=bw):
            return max(flops / peak, nbytes / bw)

        unfused = fused = least = t(rest["flops"], rest["bytes"])
        for r in rows:
            r.setdefault("devices", {})
            intensity = r["flops"] / r["bytes_fused"] if r["bytes_fused"] else float("inf")
            conv_part = r["parts"].get("conv")
            r_unfused = sum(
                t(p["flops"], p["bytes"] + p.get("casts_bytes", 0.0)) for p in r["parts"].values()
            )
            if conv_part:  # the convolution's kernel, then everything after it
                conv_bytes = conv_part["bytes"] + conv_part["casts_bytes"]
                r_fused = t(conv_part["flops"], conv_bytes) + t(
                    r["flops"] - conv_part["flops"], r["bytes_fused"] - conv_bytes
                )
            else:
                r_fused = t(r["flops"], r["bytes_fused"])
            r_min = (
                t(conv_part["flops"], conv_part["bytes"] + conv_part["casts_bytes"])
                + t(r["flops"] - conv_part["flops"], r["bytes_min"] - conv_bytes)
                if conv_part
                else t(r["flops"], r["bytes_min"])
            )
            r["devices"][dev] = {
                "bound": "compute" if intensity >= ridge else "bandwidth",
                "time_unfused_s": r_unfused,
                "time_fused_s": r_fused,
                "time_min_s": r_min,
                "bound_min": "compute" if r["flops"] >= ridge * r["bytes_min"] else "bandwidth",
            }
            r["intensity_fused"] = intensity
            unfused += r_unfused
            fused += r_fused
            least += r_min
        devices[dev] = {
            **spec,
            "ridge_flops_per_byte": ridge,
            "compute_time_s": step["flops"] / peak,
            "predicted_step_s_unfused": unfused,
            "predicted_step_s_fused": fused,
            "predicted_step_s_min": least,
            "mfu_ceiling_unfused": step["flops"] / peak / unfused,
            "mfu_ceiling_min": step["flops"] / peak / least,
            "mfu_ceiling_fused": step["flops"] / peak / fused,
            "bandwidth_bound_layers": [
                r["layer"] for r in rows if r["devices"][dev]["bound"] == "bandwidth"
            ],
        }
    return {
        "model": name,
        "image_size": size,
        "batch": batch,
        "dtype": dtype_name,
        "rows": rows,
        "totals": totals,
        "devices": devices,
    }


def markdown(result: dict) -> str:
    """The table `jaxheads.bench.roofline_table` makes; records the bandwidth-bound layers."""
    for dev in ("H100", "H200"):
        result["devices"][dev]["bandwidth_bound_layers_min"] = bandwidth_bound_layers(result, dev)
    return roofline_table(result)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{COMMAND}",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", default="yolov2-voc", help="a built-in detector")
    parser.add_argument("--image-size", type=int, default=416, help="square input side")
    parser.add_argument("--batch", type=int, default=64, help="images per step")
    parser.add_argument("--json", default=DEFAULT_JSON, help="write the result here")
    parser.add_argument("--markdown", default=None, help="also write the table here")
    args = parser.parse_args(argv)
    jax.config.update("jax_platforms", "cpu")
    t0 = time.perf_counter()
    result = roofline(args.model, args.image_size, args.batch)
    result.update(
        command=COMMAND,
        jax=jax.__version__,
        processor=platform.processor() or platform.machine(),
        date=datetime.date.today().isoformat(),
        seconds=time.perf_counter() - t0,
    )
    table = markdown(result)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
