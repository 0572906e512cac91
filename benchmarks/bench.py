"""``jaxheads bench``: jaxheads against Keras 3, hand-written Flax NNX and the hardware.

In one process, side by side (interleaved runs, medians of repeats, after
warm-up), on the same network, batch, dtype (float32) and loss:

* ``train``: training-step images/s of jaxheads (`JitRunner` program), Keras
  (``train_on_batch`` and a jitted ``stateless_call`` step) and Flax NNX
  (``nnx.jit``), for YOLOv2-tiny and the small YOLOv1-FC detector; the
  lower + compile time of the step; XLA's FLOPs per step over the step time
  against a matmul peak measured in the same interleaving (and, on GPU/TPU,
  a datasheet bf16 peak).
* ``e2e``: the same steps fed by each framework's data interface: jaxheads'
  `Batches` against ``model.fit`` over a ``keras.utils.PyDataset``.
* ``infer``: `make_predict` (forward + decode + NMS) latency and images/s.
* ``evaluate``: `evaluate_detections` (COCO) against pycocotools, equal stats.
* ``detect``: ``jaxheads detect``'s pipeline, JPEG files on disk to boxes
  (yolov2-tiny-voc), batch 1 and 16, with the host work (decoding, resizing) apart;
  with ``JAXHEADS_DARKNET`` set to a built darknet binary, darknet's ``detector test``
  on the same files (`benchmarks/detect.py`).
* ``scaling``: the jit + NamedSharding runner over 1, 2, 4, 8 devices (fresh
  processes; forced host devices on CPU).

Commands and run times (2-core CPU): ``jaxheads bench --quick --json
/tmp/bench.json`` takes about 4 to 6 minutes; without ``--quick`` the networks
run at their real sizes (YOLOv2-tiny 416×416, batch 16), meant for an accelerator.
Expected with ``--quick`` on a 2-core CPU: training steps within ±5% of Keras and
Flax (YOLOv2-tiny 2–5% behind Flax NNX), YOLOv2-tiny at about 30% of the matmul
peak, fed training at about 95% of the step alone, `evaluate_detections` about 40×
pycocotools. Results and their analysis: ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass

SECTIONS = ("train", "e2e", "infer", "evaluate", "scaling", "detect")


@dataclass(frozen=True)
class Config:
    """Sizes and repeat counts of one benchmark run (see `QUICK`, `FULL`, `SMOKE`)."""

    name: str
    networks: tuple[tuple[str, int], ...]  # (network, image size)
    train_batch: int
    train_steps: int  # steps per timed run
    repeats: int
    e2e_steps: int  # at least this many steps per end-to-end run
    e2e_repeats: int
    infer_batches: tuple[int, ...]
    infer_calls: int
    eval_images: int
    eval_repeats: int
    scaling_network: str
    scaling_image_size: int
    scaling_devices: tuple[int, ...]
    scaling_batch: int
    scaling_steps: int
    scaling_repeats: int
    matmul_size: int  # on CPU; accelerators use 8192
    num_classes: int = 20
    # End-to-end runs last about this long (more steps for faster steps), so the
    # pipeline's start-up (threads, first batch, Keras' data adapter) weighs the same.
    e2e_seconds: float = 0.0
    # `jaxheads detect`'s pipeline: JPEG files to boxes (yolov2-tiny-voc), images and side.
    detect_images: int = 32
    detect_image_size: int = 416


FULL = Config(
    "full",
    (("yolov2_tiny", 416), ("yolov1_fc", 224)),
    train_batch=16,
    train_steps=3,
    repeats=5,
    e2e_steps=20,
    e2e_repeats=3,
    infer_batches=(1, 64),
    infer_calls=20,
    eval_images=5000,
    eval_repeats=3,
    scaling_network="yolov2_tiny",
    scaling_image_size=416,
    scaling_devices=(1, 2, 4, 8),
    scaling_batch=16,
    scaling_steps=3,
    scaling_repeats=3,
    matmul_size=2048,
    e2e_seconds=20.0,
)
QUICK = Config(
    "quick",
    (("yolov2_tiny", 128), ("yolov1_fc", 96)),
    train_batch=16,
    train_steps=1,
    repeats=5,
    e2e_steps=6,
    # Runs of 3 s on two shared cores: the median of 3 moved the e2e fraction by ±5%.
    e2e_repeats=5,
    infer_batches=(1, 16),
    infer_calls=8,
    eval_images=1000,
    eval_repeats=2,
    scaling_network="yolov1_fc",
    scaling_image_size=96,
    scaling_devices=(1, 2, 4, 8),
    scaling_batch=16,
    scaling_steps=2,
    scaling_repeats=2,
    matmul_size=2048,
    e2e_seconds=3.0,
    detect_images=16,
)
SMOKE = Config(
    "smoke",
    (("yolov1_fc", 32),),
    train_batch=2,
    train_steps=1,
    repeats=1,
    e2e_steps=2,
    e2e_repeats=1,
    infer_batches=(1, 2),
    infer_calls=1,
    eval_images=60,
    eval_repeats=1,
    scaling_network="yolov1_fc",
    scaling_image_size=32,
    scaling_devices=(1, 2),
    scaling_batch=2,
    scaling_steps=1,
    scaling_repeats=1,
    matmul_size=256,
    detect_images=2,
    detect_image_size=64,
)

# (figure, target, what it says) checked by `targets`; {n} is a network name.
TARGETS = (
    ("speedup_vs_keras_{n}", 1.0, "training step not slower than Keras 3 (best of its two)"),
    ("speedup_vs_flax_{n}", 1.0, "training step not slower than hand-written Flax NNX"),
    ("e2e_speedup_vs_keras_fit_{n}", 1.3, "end to end ≥ 1.3× Keras model.fit"),
    ("e2e_fraction_of_step_{n}", 0.9, "input pipeline never starves the step"),
    ("mfu_yolov2_tiny", 0.25, "YOLOv2-tiny step ≥ 25% of the measured matmul peak (CPU)"),
    ("evaluate_speedup_vs_pycocotools", 5.0, "evaluate_detections ≥ 5× pycocotools"),
)
NOISE = 0.05  # ratios within 5% of a 1.0 target are "noise" on a shared machine


def machine() -> dict:
    """What the numbers were measured on."""
    import flax
    import jax
    import jaxlib
    import keras
    import optax

    from benchmarks.timing import load_average

    device = jax.devices()[0]
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "flax": flax.__version__,
        "optax": optax.__version__,
        "load_average_start": load_average(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _train(cfg: Config, sections, figures: dict, log) -> None:
    """The ``train`` and/or ``e2e`` sections for every network, into ``figures``."""
    import jax
    import jax.numpy as jnp

    from benchmarks import networks as nw
    from benchmarks import peak, timing
    from benchmarks.training import Contenders

    accelerator = jax.default_backend() != "cpu"
    kind = jax.devices()[0].device_kind
    n = 8192 if accelerator else cfg.matmul_size
    matmul, matmul_flops = peak.matmul(n)
    datasheet = peak.datasheet_peak(kind) if accelerator else None
    if datasheet:
        figures["datasheet_bf16_peak_flops_per_s"] = datasheet
    if accelerator:  # the bf16 matmul the datasheet figure is for, measured once
        run_bf16, flops_bf16 = peak.matmul(n, jnp.bfloat16)
        run_bf16()
        figures["matmul_peak_bf16_flops_per_s"] = flops_bf16 / timing.median(
            [timing.wall(run_bf16) for _ in range(5)]
        )
    for net_name, size in cfg.networks:
        network = nw.NETWORKS[net_name](size, cfg.num_classes)
        name, b = network.name, cfg.train_batch
        log(f"[train] {network.title}, batch {b}: building and compiling ...")
        c = Contenders(network, b)
        figures.update(c.figures)
        if "train" in sections:
            runs = c.step_runners(cfg.train_steps)
            runs["matmul"] = matmul
            cpu: dict[str, list[float]] = {}
            times = timing.interleaved(runs, repeats=cfg.repeats, cpu=cpu)
            ips, cpu_per_image = {}, {}
            for fw in ("jaxheads", "keras_train_on_batch", "keras_stateless", "flax_nnx"):
                step_s = timing.median(times[fw]) / cfg.train_steps
                ips[fw] = b / step_s
                cpu_per_image[fw] = timing.median(cpu[fw]) / (cfg.train_steps * b)
                figures[f"train_step_ms_{fw}_{name}"] = step_s * 1e3
                figures[f"train_images_per_s_{fw}_{name}"] = ips[fw]
                figures[f"train_cpu_ms_per_image_{fw}_{name}"] = cpu_per_image[fw] * 1e3
            keras_best = max(ips["keras_train_on_batch"], ips["keras_stateless"])
            figures[f"speedup_vs_keras_{name}"] = ips["jaxheads"] / keras_best
            figures[f"speedup_vs_flax_{name}"] = ips["jaxheads"] / ips["flax_nnx"]
            for fw, label in (
                ("keras_train_on_batch", "keras_train_on_batch"),
                ("keras_stateless", "keras_stateless"),
                ("flax_nnx", "flax"),
            ):
                if fw != "flax_nnx":
                    figures[f"speedup_vs_{label}_{name}"] = ips["jaxheads"] / ips[fw]
                # CPU time per image: the work done, whatever share of the cores we got.
                figures[f"speedup_vs_{label}_cpu_{name}"] = (
                    cpu_per_image[fw] / cpu_per_image["jaxheads"]
                )
                # Ratios within one repeat are paired in time: steadier under drifting load.
                paired = sorted(t / j for j, t in zip(times["jaxheads"], times[fw], strict=True))
                figures[f"speedup_vs_{label}_paired_median_{name}"] = timing.median(paired)
                figures[f"speedup_vs_{label}_paired_min_{name}"] = paired[0]
                figures[f"speedup_vs_{label}_paired_max_{name}"] = paired[-1]

            step_s = b / ips["jaxheads"]
            peak_flops = matmul_flops / timing.median(times["matmul"])
            xla = figures[f"xla_flops_per_step_jaxheads_{name}"]
            model_flops = nw.training_flops(network, b)
            figures[f"matmul_peak_flops_per_s_{name}"] = peak_flops
            figures[f"model_flops_per_step_{name}"] = model_flops
            figures[f"achieved_flops_per_s_{name}"] = xla / step_s
            figures[f"mfu_{name}"] = xla / step_s / peak_flops
            figures[f"mfu_model_flops_{name}"] = model_flops / step_s / peak_flops
            if datasheet:
                figures[f"mfu_vs_datasheet_bf16_{name}"] = xla / step_s / datasheet
            log(
                f"[train] {name}: "
                + ", ".join(f"{k} {v:.1f} img/s" for k, v in ips.items())
                + f"; matmul {peak_flops / 1e9:.1f} GFLOP/s, MFU {figures[f'mfu_{name}']:.1%}"
            )
        if "e2e" in sections:
            steps = cfg.e2e_steps
            step_ips = figures.get(f"train_images_per_s_jaxheads_{name}")
            if step_ips:
                steps = max(steps, min(64, round(cfg.e2e_seconds * step_ips / b)))
            figures[f"e2e_steps_{name}"] = float(steps)
            for run in c.end_to_end_runners(2).values():  # warm-up: Keras' data adapter
                run()
            # The step alone, interleaved with the fed runs: the same load for all three.
            waits: dict[str, list[float]] = {}
            runs = {"step_only": c.step_runners(steps)["jaxheads"]}
            runs.update(c.end_to_end_runners(steps, waits))
            cpu = {}
            times = timing.interleaved(runs, repeats=cfg.e2e_repeats, cpu=cpu)
            e2e = {fw: b * steps / timing.median(t) for fw, t in times.items()}
            cpu_s = {fw: timing.median(t) for fw, t in cpu.items()}
            figures[f"e2e_images_per_s_jaxheads_{name}"] = e2e["jaxheads"]
            figures[f"e2e_images_per_s_keras_fit_{name}"] = e2e["keras_fit"]
            figures[f"e2e_images_per_s_step_only_{name}"] = e2e["step_only"]
            figures[f"e2e_speedup_vs_keras_fit_{name}"] = e2e["jaxheads"] / e2e["keras_fit"]
            figures[f"e2e_fraction_of_step_{name}"] = e2e["jaxheads"] / e2e["step_only"]
            figures[f"e2e_speedup_vs_keras_fit_cpu_{name}"] = cpu_s["keras_fit"] / cpu_s["jaxheads"]
            figures[f"e2e_fraction_of_step_cpu_{name}"] = cpu_s["step_only"] / cpu_s["jaxheads"]
            # What the drawing costs and what the pipeline itself costs, told apart.
            figures[f"e2e_images_per_s_jaxheads_predrawn_{name}"] = e2e["jaxheads_predrawn"]
            figures[f"e2e_fraction_of_step_predrawn_{name}"] = (
                e2e["jaxheads_predrawn"] / e2e["step_only"]
            )
            for fw in ("jaxheads", "jaxheads_predrawn"):
                wait = timing.median([w / t for w, t in zip(waits[fw], times[fw], strict=True)])
                figures[f"e2e_data_wait_fraction_{fw}_{name}"] = wait
            log(
                f"[e2e] {name}: jaxheads {e2e['jaxheads']:.1f} img/s, "
                f"keras fit {e2e['keras_fit']:.1f} img/s"
            )
        del c


def targets(figures: dict, networks) -> dict:
    """Each target of the issue: value, target and whether it is met."""
    out = {}
    for pattern, target, what in TARGETS:
        names = [pattern.format(n=n) for n in networks] if "{n}" in pattern else [pattern]
        for key in names:
            if key not in figures or not math.isfinite(figures[key]):
                continue
            value = figures[key]
            status = (
                "met"
                if value >= target
                else "noise"
                if target == 1.0 and value >= target - NOISE
                else "missed"
            )
            out[key] = {"value": value, "target": target, "status": status, "what": what}
    return out


def run(cfg: Config, *, sections=SECTIONS, json_path: str | None = None, log=print) -> dict:
    """Runs the benchmark; returns ``{"machine", "config", "figures", "targets"}``."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(
            f"jaxheads bench: expected sections among {SECTIONS}, got {sorted(unknown)}"
        )
    from benchmarks import evaluation, inference, scaling
    from benchmarks import networks as nw
    from benchmarks.timing import load_average

    start = time.perf_counter()

    def say(msg):  # progress lines, stamped with the time since the start
        log(f"[{time.perf_counter() - start:6.1f} s] {msg}")

    info = machine()
    say(
        f"jaxheads bench ({cfg.name}) on {info['platform']} ({info['device_kind']}, "
        f"{info['cpu_count']} CPUs: {info['cpu']}), load average {info['load_average_start']}"
    )
    figures: dict[str, float] = {}
    if "train" in sections or "e2e" in sections:
        _train(cfg, sections, figures, say)
    if "infer" in sections:
        for net_name, size in cfg.networks:
            network = nw.NETWORKS[net_name](size, cfg.num_classes)
            figures.update(
                inference.measure(
                    network, cfg.infer_batches, calls=cfg.infer_calls, repeats=cfg.repeats
                )
            )
            say(
                f"[infer] {net_name}: "
                + ", ".join(
                    f"b{b} {figures[f'infer_latency_ms_b{b}_{net_name}']:.1f} ms"
                    for b in cfg.infer_batches
                )
            )
    if "evaluate" in sections:
        figures.update(
            evaluation.measure(
                cfg.eval_images, num_classes=cfg.num_classes, repeats=cfg.eval_repeats
            )
        )
        say(
            f"[evaluate] {cfg.eval_images} images: jaxheads "
            f"{figures['evaluate_s_jaxheads']:.3f} s, pycocotools "
            f"{figures['evaluate_s_pycocotools']:.3f} s, equal stats"
        )
    if "detect" in sections:
        from benchmarks import detect

        found = detect.measure(
            count=cfg.detect_images,
            image_size=cfg.detect_image_size,
            repeats=min(cfg.repeats, 3),
            darknet=os.environ.get("JAXHEADS_DARKNET"),
            log=lambda m: None,
        )
        figures.update({f"detect_{k}": v for k, v in found.items() if k != "load_average_end"})
        say(
            "[detect] JPEG files to boxes, yolov2-tiny-voc "
            f"{cfg.detect_image_size}²: "
            + ", ".join(
                f"{k[len('detect_images_per_s_') :]} {v:.2f} img/s"
                for k, v in figures.items()
                if k.startswith("detect_images_per_s_")
            )
        )
    if "scaling" in sections:
        say(
            f"[scaling] {cfg.scaling_network} over {cfg.scaling_devices} devices "
            "(fresh processes) ..."
        )
        figures.update(
            scaling.measure(
                cfg.scaling_network,
                cfg.scaling_image_size,
                devices=cfg.scaling_devices,
                batch=cfg.scaling_batch,
                steps=cfg.scaling_steps,
                repeats=cfg.scaling_repeats,
            )
        )
    info["load_average_end"] = load_average()
    info["wall_s"] = time.perf_counter() - start
    result = {
        "machine": info,
        "config": dataclasses.asdict(cfg),
        "sections": list(sections),
        "figures": figures,
        "targets": targets(figures, [n for n, _ in cfg.networks]),
    }
    log(report(result))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1, sort_keys=False)
            f.write("\n")
        log(f"wrote {json_path}")
    return result


def _fmt(value, spec: str = ".1f") -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


def report(result: dict) -> str:
    """Markdown tables of a `run` result (what ``docs/benchmarks.md`` pastes)."""
    f, cfg = result["figures"], result["config"]
    nets = [n for n, _ in cfg["networks"]]
    sizes = dict((n, s) for n, s in cfg["networks"])
    lines = []
    if any(f"train_images_per_s_jaxheads_{n}" in f for n in nets):
        lines += [
            "",
            f"Training step, images/s (batch {cfg['train_batch']}, float32; speedups "
            "are jaxheads ÷ theirs, paired = median of per-repeat ratios):",
            "",
            "| network | jaxheads | Keras train_on_batch | Keras stateless jit | "
            "Flax NNX | vs Keras (best) | vs Flax | paired vs Keras t_o_b / stateless / "
            "Flax | CPU time vs Keras t_o_b / stateless / Flax |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for n in nets:
            g = lambda k, n=n: f.get(f"{k}_{n}", math.nan)  # noqa: E731
            fws = ("keras_train_on_batch", "keras_stateless", "flax")
            paired = " / ".join(_fmt(g(f"speedup_vs_{fw}_paired_median"), ".2f") for fw in fws)
            cpu = " / ".join(_fmt(g(f"speedup_vs_{fw}_cpu"), ".2f") for fw in fws)
            lines.append(
                f"| {n} {sizes[n]}² | {_fmt(g('train_images_per_s_jaxheads'))} | "
                f"{_fmt(g('train_images_per_s_keras_train_on_batch'))} | "
                f"{_fmt(g('train_images_per_s_keras_stateless'))} | "
                f"{_fmt(g('train_images_per_s_flax_nnx'))} | {_fmt(g('speedup_vs_keras'), '.2f')}× "
                f"| {_fmt(g('speedup_vs_flax'), '.2f')}× | {paired} | {cpu} |"
            )
        lines += [
            "",
            "Compilation and FLOPs:",
            "",
            "| network | lower s | compile s | first step s: jaxheads / Keras stateless / "
            "Keras t_o_b / Flax | XLA GFLOP/step | model GFLOP/step | achieved GFLOP/s | "
            "matmul GFLOP/s | MFU (XLA) | MFU (model) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n in nets:
            g = lambda k, n=n: f.get(f"{k}_{n}", math.nan)  # noqa: E731
            first = " / ".join(
                _fmt(g(f"first_step_s_{fw}"))
                for fw in ("jaxheads", "keras_stateless", "keras_train_on_batch", "flax_nnx")
            )
            lines.append(
                f"| {n} | {_fmt(g('lower_s_jaxheads'))} | {_fmt(g('compile_s_jaxheads'))} | "
                f"{first} | {_fmt(g('xla_flops_per_step_jaxheads') / 1e9, '.2f')} | "
                f"{_fmt(g('model_flops_per_step') / 1e9, '.2f')} | "
                f"{_fmt(g('achieved_flops_per_s') / 1e9)} | "
                f"{_fmt(g('matmul_peak_flops_per_s') / 1e9)} | {_fmt(g('mfu') * 100)}% | "
                f"{_fmt(g('mfu_model_flops') * 100)}% |"
            )
    if any(f"e2e_images_per_s_jaxheads_{n}" in f for n in nets):
        lines += [
            "",
            "End to end with the input pipeline (images/s; runs of about "
            f"{cfg['e2e_seconds']:.0f} s):",
            "",
            "| network | steps per run | jaxheads step only | jaxheads Batches | "
            "Keras fit + PyDataset | vs Keras fit (CPU time) | e2e / step-only (CPU time) | "
            "pre-drawn data: e2e / step-only | time waiting for data: drawn / pre-drawn |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for n in nets:
            g = lambda k, n=n: f.get(f"{k}_{n}", math.nan)  # noqa: E731
            lines.append(
                f"| {n} | {_fmt(g('e2e_steps'), '.0f')} | "
                f"{_fmt(g('e2e_images_per_s_step_only'))} | "
                f"{_fmt(g('e2e_images_per_s_jaxheads'))} | "
                f"{_fmt(g('e2e_images_per_s_keras_fit'))} | "
                f"{_fmt(g('e2e_speedup_vs_keras_fit'), '.2f')}× "
                f"({_fmt(g('e2e_speedup_vs_keras_fit_cpu'), '.2f')}×) | "
                f"{_fmt(g('e2e_fraction_of_step') * 100)}% "
                f"({_fmt(g('e2e_fraction_of_step_cpu') * 100)}%) | "
                f"{_fmt(g('e2e_fraction_of_step_predrawn') * 100)}% | "
                f"{_fmt(g('e2e_data_wait_fraction_jaxheads') * 100)}% / "
                f"{_fmt(g('e2e_data_wait_fraction_jaxheads_predrawn') * 100)}% |"
            )
    if any(k.startswith("infer_") for k in f):
        bs = cfg["infer_batches"]
        lines += [
            "",
            "Inference (forward + decode + NMS, from host images):",
            "",
            "| network | " + " | ".join(f"batch {b}: ms / img/s" for b in bs) + " |",
            "|---|" + "---|" * len(bs),
        ]
        for n in nets:
            cells = [
                f"{_fmt(f.get(f'infer_latency_ms_b{b}_{n}', math.nan))} / "
                f"{_fmt(f.get(f'infer_images_per_s_b{b}_{n}', math.nan))}"
                for b in bs
            ]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    if "evaluate_s_jaxheads" in f:
        lines += [
            "",
            f"COCO evaluation of {int(f['evaluate_images'])} images "
            f"({int(f['evaluate_detections_count'])} detections):",
            "",
            "| evaluate_detections s | pycocotools s | speedup | max |Δ stats| |",
            "|---|---|---|---|",
            f"| {_fmt(f['evaluate_s_jaxheads'], '.3f')} | "
            f"{_fmt(f['evaluate_s_pycocotools'], '.3f')} | "
            f"{_fmt(f['evaluate_speedup_vs_pycocotools'])}× | "
            f"{f['evaluate_stats_max_abs_diff']:.1g} |",
        ]
    if "detect_images_per_s_b1" in f:
        bs = sorted(int(k.rsplit("_b", 1)[1]) for k in f if k.startswith("detect_images_per_s_b"))
        darknet = f.get("detect_darknet_images_per_s")
        lines += [
            "",
            f"`jaxheads detect`, JPEG files to boxes ({int(f['detect_images'])} images, "
            f"yolov2-tiny-voc at {int(f['detect_image_size'])}²):",
            "",
            "| " + " | ".join(f"batch {b} img/s" for b in bs) + " | darknet img/s | "
            "decode ms/img | resize ms/img | host share at the largest batch |",
            "|" + "---|" * (len(bs) + 4),
            "| "
            + " | ".join(_fmt(f[f"detect_images_per_s_b{b}"], ".2f") for b in bs)
            + f" | {_fmt(darknet if darknet else math.nan, '.2f')} | "
            f"{_fmt(f.get('detect_decode_s_per_image', math.nan) * 1e3)} | "
            f"{_fmt(f.get('detect_resize_s_per_image', math.nan) * 1e3)} | "
            f"{_fmt(f.get(f'detect_host_fraction_b{bs[-1]}', math.nan) * 100)}% |",
        ]
    scal = sorted(
        (
            (int(k.rsplit("_", 1)[1][:-3]), v)
            for k, v in f.items()
            if k.startswith("scaling_images_per_s_")
        )
    )
    if scal:
        net = cfg["scaling_network"]
        lines += [
            "",
            f"Scaling, {net} {cfg['scaling_image_size']}², global batch "
            f"{cfg['scaling_batch']}, jit + NamedSharding:",
            "",
            "| devices | images/s | speedup | compile s |",
            "|---|---|---|---|",
        ]
        for d, v in scal:
            lines.append(
                f"| {d} | {_fmt(v)} | "
                f"{_fmt(f.get(f'scaling_speedup_{net}_{d}dev', math.nan), '.2f')}× | "
                f"{_fmt(f.get(f'scaling_compile_s_{net}_{d}dev', math.nan))} |"
            )
    if result["targets"]:
        lines += ["", "Targets:", "", "| figure | value | target | status |", "|---|---|---|---|"]
        for key, t in result["targets"].items():
            lines.append(f"| {key} | {t['value']:.2f} | {t['target']} | {t['status']} |")
    m = result["machine"]
    lines += [
        "",
        f"Machine: {m['platform']} ({m['device_kind']}), {m['cpu_count']} CPUs "
        f"({m['cpu']}), jax {m['jax']}, keras {m['keras']}, flax {m['flax']}; load "
        f"average {m['load_average_start']} at start, {m.get('load_average_end')} at end; "
        f"{m.get('wall_s', math.nan):.0f} s in all.",
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="reduced sizes: a few minutes on a 2-core CPU"
    )
    parser.add_argument("--json", metavar="PATH", help="write every figure to PATH")
    parser.add_argument(
        "--only", metavar="SECTIONS", help=f"comma-separated subset of {','.join(SECTIONS)}"
    )


def run_from_args(args: argparse.Namespace) -> int:
    sections = tuple(s.strip() for s in args.only.split(",")) if args.only else SECTIONS
    try:
        run(
            QUICK if args.quick else FULL,
            sections=sections,
            json_path=args.json,
            log=lambda msg: print(msg, flush=True),
        )
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
