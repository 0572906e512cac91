"""The input pipeline's rate per host core as a table, from its record.

The record is the JSON ``python -m benchmarks.pipeline_rates`` writes to
``docs/results/bench/pipeline_rates.json``: per data set and image size the images
per CPU second (per core) of `jaxheads.data.Batches` on one thread with the default
training augmentation, and the VOC pipeline's rate in worker processes.
`jaxheads.study.tables` quotes this table in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

#: YOLOv2-VOC's training step at 416², batch 64, bfloat16 on one H200 (docs/accelerators.md):
#: the rate a host must feed.
H200_IMAGES_PER_S = 2803.0
FEED_SIZE = 416


ON_DEVICE = "augmented on the device"


def _label(row: Mapping) -> str:
    return row["dataset"] + (f", {ON_DEVICE}" if row.get("augment_on_device") else "")


def pipeline_rates_table(result: Mapping) -> str:
    """The images/s per core of each data set (rows) and size (columns), the cores a
    feed of ``feed_target_images_per_s`` at 416² takes, and the conditions measured in;
    then the worker-process cells, when the record has them."""
    rows, config, m = result["rows"], result["config"], result["machine"]
    sizes = sorted({r["image_size"] for r in rows})
    names = list(dict.fromkeys(_label(r) for r in rows))
    rate = {(_label(r), r["image_size"]): r["images_per_cpu_s"] for r in rows}
    target = config["feed_target_images_per_s"]
    feed = f"cores for {target:,.0f} images/s at {FEED_SIZE}²"
    lines = [
        "| data set | " + " | ".join(f"{s}²" for s in sizes) + f" | {feed} |",
        "|---|" + "---|" * (len(sizes) + 1),
    ]
    for name in names:
        cells = [f"{rate[name, s]:,.0f}" if (name, s) in rate else "" for s in sizes]
        at = rate.get((name, FEED_SIZE))
        cores = f"{math.ceil(target / at)}" if at else ""
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {cores} |")
    cpu = sum(r["cpu_s"] for r in rows) / sum(r["wall_s"] for r in rows)
    w, h = config["voc_source_size"]
    start, end = m["load_average_start"], m["load_average_end"]
    lines += [
        "",
        f"Images per CPU second, i.e. per core, on one thread (`Batches(prefetch=0, "
        f"num_workers=1)`; wall-time rates are lower by the share of a core the process "
        f"got), batch "
        f"{config['batch']}, {config['batches']} batches after {config['warmup_batches']} to "
        f"warm up, with the default training augmentation; `voc` and `coco` decode {w}×{h} "
        f"JPEGs (the synthetic set of `jaxheads data voc-synthetic`), `shapes` and `digits` "
        f"draw at the output size. Measured on {m['cpu']} ({m['cpu_count']} cores, Python "
        f"{m['python']}, JAX {m['jax']}), {m['date'][:10]}, with load averages "
        f"{start[0]:.2f} at the start and {end[0]:.2f} at the end: the cores were shared with "
        f"other work (a busy core also runs slower per CPU second), so these are lower bounds "
        f"on a free core's rate. CPU time ÷ wall time {cpu:.2f} over all cells (1.00: one "
        f"core's worth). From `{result['command']}`.",
    ]
    if any(r.get("augment_on_device") for r in rows):
        lines += [
            "",
            f'The rows "{ON_DEVICE}": the host\'s share of `jaxheads.data.DeviceAugmentedBatches` '
            "(`jaxheads train --augment-on-device`): decoding the JPEGs into uint8 canvases, "
            "which the accelerator resizes and augments.",
        ]
    device = [n for n in names if n.endswith("-device")]
    if device:
        on = {r["dataset"] for r in rows if r["dataset"] in device}
        ratio = sum(r["cpu_s"] for r in rows if r["dataset"] in on) / sum(
            r["wall_s"] for r in rows if r["dataset"] in on
        )
        lines += [
            "",
            f"{' and '.join(f'`{n}`' for n in device)}: the same kind of scenes drawn and "
            "augmented by one jitted program a batch (`jaxheads.data.DeviceBatches`), here on "
            f"this CPU through XLA (CPU time ÷ wall time {ratio:.2f} in these cells), each "
            "batch waited for; on an accelerator the host only picks the indices.",
        ]
    fraction = result.get("step_fraction")
    if fraction:
        step, draw = fraction["step_ms"], fraction["draw_ms"]
        parts = ", ".join(
            f"`{n}` {ms:,.0f} ms ({ms / step:.0%} of the step)" for n, ms in draw.items()
        )
        lines += [
            "",
            f"A training step of `{fraction['model']}` at {fraction['image_size']}², batch "
            f"{fraction['batch']}, on a batch drawn beforehand: {step:,.0f} ms on the same "
            f"CPU (median of {fraction['repeats']}); drawing one such batch: {parts}.",
        ]
    process_rows = result.get("process_rows") or []
    if process_rows:
        lines += [
            "",
            "| VOC in worker processes | processes | images/s (wall) "
            "| caller's CPU ms per image | caller-bound images/s |",
            "|---|---|---|---|---|",
        ]
        for r in process_rows:
            ms = r["caller_cpu_ms_per_image"]
            lines.append(
                f"| {r['image_size']}² | {r['processes']} | {r['images_per_s']:,.1f} | "
                f"{ms:.2f} | {1e3 / ms:,.0f} |"
            )
        lines += [
            "",
            "`Batches(processes=P, prefetch=2)`, the same batches bit for bit as one process; "
            "wall-time images/s over the cells' batches after the one that starts the workers, "
            "on the same shared cores. The caller's CPU time per image (copying the workers' "
            "examples out of shared memory into the batch) bounds what one process receives.",
        ]
    return "\n".join(lines)
