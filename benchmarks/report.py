"""The Markdown tables of a ``jaxheads bench`` run, read from its `Figure` records.

`report` is what ``docs/benchmarks.md`` pastes: a table per section that ran, the
targets and the machine. Every cell asks `Figures.value` for one record by its fields.
"""

from __future__ import annotations

import math

from jaxheads.bench.figures import FIELDS, Figure, Figures


def _fmt(value, spec: str = ".1f") -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


def _ratios(get, metric: str, frameworks, spec: str = ".2f") -> str:
    return " / ".join(_fmt(get(metric, fw), spec) for fw in frameworks)


def _train_tables(figures: Figures, cfg: dict, nets: list[str]) -> list[str]:
    sizes = dict((n, s) for n, s in cfg["networks"])
    others = ("keras_train_on_batch", "keras_stateless", "flax_nnx")
    lines = [
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

        def get(metric, framework=None, n=n):
            return figures.value("train", metric, model=n, framework=framework)

        ips = " | ".join(_fmt(get("images_per_s", fw)) for fw in ("jaxheads", *others))
        lines.append(
            f"| {n} {sizes[n]}² | {ips} | {_fmt(get('speedup', 'keras'), '.2f')}× "
            f"| {_fmt(get('speedup', 'flax_nnx'), '.2f')}× | "
            f"{_ratios(get, 'speedup_paired_median', others)} | "
            f"{_ratios(get, 'speedup_cpu', others)} |"
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

        def get(metric, framework=None, n=n):
            return figures.value("train", metric, model=n, framework=framework)

        first = _ratios(
            get,
            "first_step_s",
            ("jaxheads", "keras_stateless", "keras_train_on_batch", "flax_nnx"),
            ".1f",
        )
        lines.append(
            f"| {n} | {_fmt(get('lower_s', 'jaxheads'))} | "
            f"{_fmt(get('compile_s', 'jaxheads'))} | {first} | "
            f"{_fmt(get('xla_flops_per_step', 'jaxheads') / 1e9, '.2f')} | "
            f"{_fmt(get('model_flops_per_step') / 1e9, '.2f')} | "
            f"{_fmt(get('achieved_flops_per_s', 'jaxheads') / 1e9)} | "
            f"{_fmt(get('matmul_peak_flops_per_s') / 1e9)} | "
            f"{_fmt(get('mfu', 'jaxheads') * 100)}% | "
            f"{_fmt(get('mfu_model_flops', 'jaxheads') * 100)}% |"
        )
    return lines


def _e2e_table(figures: Figures, cfg: dict, nets: list[str]) -> list[str]:
    lines = [
        "",
        f"End to end with the input pipeline (images/s; runs of about {cfg['e2e_seconds']:.0f} s):",
        "",
        "| network | steps per run | jaxheads step only | jaxheads Batches | "
        "Keras fit + PyDataset | vs Keras fit (CPU time) | e2e / step-only (CPU time) | "
        "pre-drawn data: e2e / step-only | time waiting for data: drawn / pre-drawn |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in nets:

        def get(metric, framework=None, n=n):
            return figures.value("e2e", metric, model=n, framework=framework)

        lines.append(
            f"| {n} | {_fmt(get('steps'), '.0f')} | "
            f"{_fmt(get('images_per_s', 'step_only'))} | "
            f"{_fmt(get('images_per_s', 'jaxheads'))} | "
            f"{_fmt(get('images_per_s', 'keras_fit'))} | "
            f"{_fmt(get('speedup', 'keras_fit'), '.2f')}× "
            f"({_fmt(get('speedup_cpu', 'keras_fit'), '.2f')}×) | "
            f"{_fmt(get('fraction_of_step', 'jaxheads') * 100)}% "
            f"({_fmt(get('fraction_of_step_cpu', 'jaxheads') * 100)}%) | "
            f"{_fmt(get('fraction_of_step', 'jaxheads_predrawn') * 100)}% | "
            f"{_fmt(get('data_wait_fraction', 'jaxheads') * 100)}% / "
            f"{_fmt(get('data_wait_fraction', 'jaxheads_predrawn') * 100)}% |"
        )
    return lines


def _infer_table(figures: Figures, cfg: dict, nets: list[str]) -> list[str]:
    bs = cfg["infer_batches"]
    lines = [
        "",
        "Inference (forward + decode + NMS, from host images):",
        "",
        "| network | " + " | ".join(f"batch {b}: ms / img/s" for b in bs) + " |",
        "|---|" + "---|" * len(bs),
    ]
    for n in nets:
        cells = [
            f"{_fmt(figures.value('infer', 'latency_ms', model=n, batch=b))} / "
            f"{_fmt(figures.value('infer', 'images_per_s', model=n, batch=b))}"
            for b in bs
        ]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def _evaluate_table(figures: Figures, cfg: dict) -> list[str]:
    def get(metric, framework=None):
        return figures.value("evaluate", metric, framework=framework)

    return [
        "",
        f"COCO evaluation of {cfg['eval_images']} images "
        f"({_fmt(get('detections'), '.0f')} detections):",
        "",
        "| evaluate_detections s | pycocotools s | speedup | max |Δ stats| |",
        "|---|---|---|---|",
        f"| {_fmt(get('seconds', 'jaxheads'), '.3f')} | "
        f"{_fmt(get('seconds', 'pycocotools'), '.3f')} | "
        f"{_fmt(get('speedup', 'pycocotools'))}× | "
        f"{get('stats_max_abs_diff', 'pycocotools'):.1g} |",
    ]


def _detect_table(figures: Figures, cfg: dict) -> list[str]:
    runs = figures.select(section="detect", metric="images_per_s", framework="jaxheads")
    bs = sorted(f.batch for f in runs)

    def get(metric, framework="jaxheads", batch=None):
        return figures.value("detect", metric, framework=framework, batch=batch)

    return [
        "",
        f"`jaxheads detect`, JPEG files to boxes ({cfg['detect_images']} images, "
        f"yolov2-tiny-voc at {cfg['detect_image_size']}²):",
        "",
        "| " + " | ".join(f"batch {b} img/s" for b in bs) + " | darknet img/s | "
        "decode ms/img | resize ms/img | host share at the largest batch |",
        "|" + "---|" * (len(bs) + 4),
        "| "
        + " | ".join(_fmt(get("images_per_s", batch=b), ".2f") for b in bs)
        + f" | {_fmt(get('images_per_s', 'darknet'), '.2f')} | "
        f"{_fmt(get('decode_s_per_image') * 1e3)} | "
        f"{_fmt(get('resize_s_per_image') * 1e3)} | "
        f"{_fmt(get('host_fraction', batch=bs[-1]) * 100)}% |",
    ]


def _scaling_table(figures: Figures, cfg: dict) -> list[str]:
    net = cfg["scaling_network"]
    runs = sorted(
        figures.select(section="scaling", metric="images_per_s", model=net),
        key=lambda f: f.devices,
    )
    lines = [
        "",
        f"Scaling, {net} {cfg['scaling_image_size']}², global batch "
        f"{cfg['scaling_batch']}, jit + NamedSharding:",
        "",
        "| devices | images/s | speedup | compile s |",
        "|---|---|---|---|",
    ]
    for run in runs:

        def get(metric, d=run.devices):
            return figures.value("scaling", metric, model=net, devices=d)

        lines.append(
            f"| {run.devices} | {_fmt(run.value)} | {_fmt(get('speedup'), '.2f')}× | "
            f"{_fmt(get('compile_s'))} |"
        )
    return lines


def report(result: dict) -> str:
    """Markdown tables of a `run` result (what ``docs/benchmarks.md`` pastes)."""
    figures, cfg = result["figures"], result["config"]
    nets = [n for n, _ in cfg["networks"]]
    lines = []
    if figures.select(section="train", metric="images_per_s"):
        lines += _train_tables(figures, cfg, nets)
    if figures.select(section="e2e"):
        lines += _e2e_table(figures, cfg, nets)
    if figures.select(section="infer"):
        lines += _infer_table(figures, cfg, nets)
    if figures.select(section="evaluate"):
        lines += _evaluate_table(figures, cfg)
    if figures.select(section="detect", metric="images_per_s", framework="jaxheads"):
        lines += _detect_table(figures, cfg)
    if figures.select(section="scaling", metric="images_per_s"):
        lines += _scaling_table(figures, cfg)
    if result["targets"]:
        lines += ["", "Targets:", "", "| figure | value | target | status |", "|---|---|---|---|"]
        for t in result["targets"]:
            label = Figure(**{k: t[k] for k in FIELDS}, value=t["value"]).label
            lines.append(f"| {label} | {t['value']:.2f} | {t['target']} | {t['status']} |")
    m = result["machine"]
    lines += [
        "",
        f"Machine: {m['platform']} ({m['device_kind']}), {m['cpu_count']} CPUs "
        f"({m['cpu']}), jax {m['jax']}, keras {m['keras']}, flax {m['flax']}; load "
        f"average {m['load_average_start']} at start, {m.get('load_average_end')} at end; "
        f"{m.get('wall_s', math.nan):.0f} s in all.",
    ]
    return "\n".join(lines)
