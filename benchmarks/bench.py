"""``python -m benchmarks.bench``: jaxheads against Keras 3, hand-written Flax NNX and the hardware.

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

Commands and run times (2-core CPU): ``python -m benchmarks.bench --quick --json
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
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass

from benchmarks.report import report
from jaxheads.bench.figures import Figure, Figures

#: The sections, in the order they run.
BENCH_SECTIONS = ("train", "e2e", "infer", "evaluate", "scaling", "detect")


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


@dataclass(frozen=True)
class Target:
    """A figure the benchmark aims at: the records it applies to, and the bar."""

    section: str
    metric: str
    target: float
    what: str
    framework: str | None = None
    model: str | None = None  # None: every network
    batch: int | None = None  # None: every batch size
    at_most: bool = False  # the figure must stay at or under the target

    def matches(self, figures: Figures) -> list[Figure]:
        fields = {"framework": self.framework, "model": self.model, "batch": self.batch}
        return figures.select(
            section=self.section,
            metric=self.metric,
            **{k: v for k, v in fields.items() if v is not None},
        )


TARGETS = (
    Target(
        "train", "speedup", 1.0, "training step not slower than Keras 3 (best of its two)", "keras"
    ),
    Target(
        "train", "speedup", 1.0, "training step not slower than hand-written Flax NNX", "flax_nnx"
    ),
    Target("e2e", "speedup", 1.3, "end to end ≥ 1.3× Keras model.fit", "keras_fit"),
    Target("e2e", "fraction_of_step", 0.9, "input pipeline never starves the step", "jaxheads"),
    Target(
        "train",
        "mfu",
        0.25,
        "YOLOv2-tiny step ≥ 25% of the measured matmul peak (CPU)",
        model="yolov2_tiny",
    ),
    Target("evaluate", "speedup", 5.0, "evaluate_detections ≥ 5× pycocotools", "pycocotools"),
    Target("detect", "speedup", 2.0, "detect ≥ 2× darknet's detector test (CPU)", "darknet"),
    Target(
        "detect",
        "host_fraction",
        0.2,
        "detect's decoding and resizing ≤ 20% of its time at batch 16",
        "jaxheads",
        batch=16,
        at_most=True,
    ),
)
NOISE = 0.05  # ratios within 5% of a 1.0 target are "noise" on a shared machine


def machine() -> dict:
    """What the numbers were measured on: `jaxheads.bench.machine`, and Keras."""
    import keras

    from jaxheads.bench import machine as chip_machine

    return {
        **chip_machine(),
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
    }


def _train(cfg: Config, sections, figures: Figures, log) -> None:
    """The ``train`` and/or ``e2e`` sections for every network, into ``figures``."""
    import jax
    import jax.numpy as jnp

    from benchmarks import networks as nw
    from benchmarks.training import Contenders
    from jaxheads.bench import peak, timing

    accelerator = jax.default_backend() != "cpu"
    kind = jax.devices()[0].device_kind
    n = 8192 if accelerator else cfg.matmul_size
    matmul, matmul_flops = peak.matmul(n)
    datasheet = peak.datasheet_peak(kind) if accelerator else None
    if datasheet:
        figures.add("peak", "datasheet_flops_per_s", datasheet, dtype="bfloat16")
    if accelerator:  # the bf16 matmul the datasheet figure is for, measured once
        run_bf16, flops_bf16 = peak.matmul(n, jnp.bfloat16)
        run_bf16()
        seconds = timing.median([timing.wall(run_bf16) for _ in range(5)])
        figures.add("peak", "matmul_flops_per_s", flops_bf16 / seconds, dtype="bfloat16")
    for net_name, size in cfg.networks:
        network = nw.NETWORKS[net_name](size, cfg.num_classes)
        name, b = network.name, cfg.train_batch
        log(f"[train] {network.title}, batch {b}: building and compiling ...")
        c = Contenders(network, b)
        figures.extend(c.figures)

        def add(section, metric, value, framework=None, name=name, b=b):
            figures.add(section, metric, value, model=name, framework=framework, batch=b)

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
                add("train", "step_ms", step_s * 1e3, fw)
                add("train", "images_per_s", ips[fw], fw)
                add("train", "cpu_ms_per_image", cpu_per_image[fw] * 1e3, fw)
            keras_best = max(ips["keras_train_on_batch"], ips["keras_stateless"])
            add("train", "speedup", ips["jaxheads"] / keras_best, "keras")
            for fw in ("keras_train_on_batch", "keras_stateless", "flax_nnx"):
                add("train", "speedup", ips["jaxheads"] / ips[fw], fw)
                # CPU time per image: the work done, whatever share of the cores we got.
                add("train", "speedup_cpu", cpu_per_image[fw] / cpu_per_image["jaxheads"], fw)
                # Ratios within one repeat are paired in time: steadier under drifting load.
                paired = sorted(t / j for j, t in zip(times["jaxheads"], times[fw], strict=True))
                add("train", "speedup_paired_median", timing.median(paired), fw)
                add("train", "speedup_paired_min", paired[0], fw)
                add("train", "speedup_paired_max", paired[-1], fw)

            step_s = b / ips["jaxheads"]
            peak_flops = matmul_flops / timing.median(times["matmul"])
            xla = figures.value(
                "train", "xla_flops_per_step", model=name, framework="jaxheads", batch=b
            )
            model_flops = nw.training_flops(network, b)
            # XLA:GPU's cost analysis leaves out the convolutions it hands to cuDNN as custom
            # calls (a 2% count was seen on an H200); there the model's own count stands in.
            xla = xla if xla >= model_flops else model_flops  # NaN too
            mfu = xla / step_s / peak_flops
            add("train", "matmul_peak_flops_per_s", peak_flops)
            add("train", "model_flops_per_step", model_flops)
            add("train", "achieved_flops_per_s", xla / step_s, "jaxheads")
            add("train", "mfu", mfu, "jaxheads")
            add("train", "mfu_model_flops", model_flops / step_s / peak_flops, "jaxheads")
            if datasheet:
                add("train", "mfu_vs_datasheet_bf16", xla / step_s / datasheet, "jaxheads")
            log(
                f"[train] {name}: "
                + ", ".join(f"{k} {v:.1f} img/s" for k, v in ips.items())
                + f"; matmul {peak_flops / 1e9:.1f} GFLOP/s, MFU {mfu:.1%}"
            )
        if "e2e" in sections:
            steps = cfg.e2e_steps
            step_ips = figures.value(
                "train", "images_per_s", model=name, framework="jaxheads", batch=b
            )
            if math.isfinite(step_ips):
                steps = max(steps, min(64, round(cfg.e2e_seconds * step_ips / b)))
            add("e2e", "steps", steps)
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
            for fw in ("jaxheads", "keras_fit", "step_only", "jaxheads_predrawn"):
                add("e2e", "images_per_s", e2e[fw], fw)
            add("e2e", "speedup", e2e["jaxheads"] / e2e["keras_fit"], "keras_fit")
            add("e2e", "speedup_cpu", cpu_s["keras_fit"] / cpu_s["jaxheads"], "keras_fit")
            add("e2e", "fraction_of_step", e2e["jaxheads"] / e2e["step_only"], "jaxheads")
            add("e2e", "fraction_of_step_cpu", cpu_s["step_only"] / cpu_s["jaxheads"], "jaxheads")
            # What the drawing costs and what the pipeline itself costs, told apart.
            predrawn = e2e["jaxheads_predrawn"] / e2e["step_only"]
            add("e2e", "fraction_of_step", predrawn, "jaxheads_predrawn")
            for fw in ("jaxheads", "jaxheads_predrawn"):
                wait = timing.median([w / t for w, t in zip(waits[fw], times[fw], strict=True)])
                add("e2e", "data_wait_fraction", wait, fw)
            log(
                f"[e2e] {name}: jaxheads {e2e['jaxheads']:.1f} img/s, "
                f"keras fit {e2e['keras_fit']:.1f} img/s"
            )
        del c


def targets(figures: Figures) -> list[dict]:
    """Each target's figures: the figure's fields, its value, the target and the status."""
    out = []
    for target in TARGETS:
        for figure in target.matches(figures):
            if not math.isfinite(figure.value):
                continue
            status = (
                "met"
                if (
                    figure.value <= target.target
                    if target.at_most
                    else figure.value >= target.target
                )
                else "noise"
                if target.target == 1.0 and figure.value >= target.target - NOISE
                else "missed"
            )
            out.append(
                {
                    **dataclasses.asdict(figure),
                    "target": target.target,
                    "status": status,
                    "what": target.what,
                }
            )
    return out


def run(
    cfg: Config,
    *,
    sections=BENCH_SECTIONS,
    json_path: str | None = None,
    markdown_path: str | None = None,
    command: str | None = None,
    log=print,
) -> dict:
    """Runs the benchmark; returns ``{"machine", "config", "sections", "figures", "targets"}``.

    ``figures`` is the `Figures` of the run; the JSON holds each record as an object, and
    ``command`` (the command line that ran it) when given; ``markdown_path`` receives the
    tables `benchmarks.report.report` makes of the same result.
    """
    os.environ.setdefault("KERAS_BACKEND", "jax")
    unknown = set(sections) - set(BENCH_SECTIONS)
    if unknown:
        raise ValueError(
            f"jaxheads bench: expected sections among {BENCH_SECTIONS}, got {sorted(unknown)}"
        )
    from benchmarks import evaluation, inference, scaling
    from benchmarks import networks as nw
    from jaxheads.bench.timing import load_average

    start = time.perf_counter()

    def say(msg):  # progress lines, stamped with the time since the start
        log(f"[{time.perf_counter() - start:6.1f} s] {msg}")

    info = machine()
    say(
        f"jaxheads bench ({cfg.name}) on {info['platform']} ({info['device_kind']}, "
        f"{info['cpu_count']} CPUs: {info['cpu']}), load average {info['load_average_start']}"
    )
    figures = Figures()
    if "train" in sections or "e2e" in sections:
        _train(cfg, sections, figures, say)
    if "infer" in sections:
        for net_name, size in cfg.networks:
            network = nw.NETWORKS[net_name](size, cfg.num_classes)
            found = inference.measure(
                network, cfg.infer_batches, calls=cfg.infer_calls, repeats=cfg.repeats
            )
            figures.extend(found)
            say(
                f"[infer] {net_name}: "
                + ", ".join(
                    f"b{f.batch} {f.value:.1f} ms" for f in found if f.metric == "latency_ms"
                )
            )
    if "evaluate" in sections:
        figures.extend(
            evaluation.measure(
                cfg.eval_images, num_classes=cfg.num_classes, repeats=cfg.eval_repeats
            )
        )
        seconds = {
            fw: figures.value("evaluate", "seconds", framework=fw)
            for fw in ("jaxheads", "pycocotools")
        }
        say(
            f"[evaluate] {cfg.eval_images} images: jaxheads "
            f"{seconds['jaxheads']:.3f} s, pycocotools {seconds['pycocotools']:.3f} s, equal stats"
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
        figures.extend(found)
        say(
            "[detect] JPEG files to boxes, yolov2-tiny-voc "
            f"{cfg.detect_image_size}²: "
            + ", ".join(
                f"{f.framework}{'' if f.batch is None else f' b{f.batch}'} {f.value:.2f} img/s"
                for f in found
                if f.metric == "images_per_s"
            )
        )
    if "scaling" in sections:
        say(
            f"[scaling] {cfg.scaling_network} over {cfg.scaling_devices} devices "
            "(fresh processes) ..."
        )
        figures.extend(
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
        "targets": targets(figures),
    }
    log(report(result))
    if json_path:
        record = {"command": command} if command else {}
        with open(json_path, "w") as f:
            record.update(result, figures=figures.to_json())
            json.dump(record, f, indent=1, sort_keys=False)
            f.write("\n")
        log(f"wrote {json_path}")
    if markdown_path:
        with open(markdown_path, "w") as f:
            made = f" by `{command}`" if command else ""
            f.write(f"Made{made}; every figure is in the JSON beside this file.\n\n")
            f.write(report(result) + "\n")
        log(f"wrote {markdown_path}")
    return result


def run_from_args(args: argparse.Namespace) -> int:
    sections = tuple(s.strip() for s in args.only.split(",")) if args.only else BENCH_SECTIONS
    try:
        run(
            QUICK if args.quick else FULL,
            sections=sections,
            json_path=args.json,
            markdown_path=args.markdown,
            command="python -m benchmarks.bench " + shlex.join(sys.argv[1:]),
            log=lambda msg: print(msg, flush=True),
        )
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="reduced sizes: a few minutes on a 2-core CPU"
    )
    parser.add_argument("--json", metavar="PATH", help="write every figure to PATH")
    parser.add_argument("--markdown", metavar="PATH", help="write the tables to PATH")
    parser.add_argument(
        "--only",
        metavar="SECTIONS",
        help=f"comma-separated subset of {','.join(BENCH_SECTIONS)}; default: all of them",
    )
    return parser


def main(argv=None) -> int:
    return run_from_args(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
