"""The input pipeline's rate on one host core: images/s per data set and image size.

Each cell is `jaxheads.data.Batches` as training draws it (the data set of
`jaxheads.train.detection.make_dataset`, the default training augmentation
`jaxheads.data.augment.augment`, batch 64), but in the caller's thread alone
(``prefetch=0``, ``num_workers=1``): one batch to warm up, then `jaxheads.bench.draw_batches`
of ``--batches`` batches from a fresh pipeline, timed as ``jaxheads bench`` times it. The
process's CPU seconds are recorded beside the wall time: equal, the cell used one core.
A cell's images per CPU second is its rate per core, also on a machine whose cores
other jobs share (where the wall-time rate measures the share it got as well).

The worker-process cells time the same VOC pipeline with ``Batches(processes=P)``
(P = ``--processes``, default all cores; ``prefetch=2``): after a batch that starts the
workers, ``--batches`` batches on the same pipeline, the wall time and the CPU
seconds of the caller's process alone: the caller's share per image (copying the
workers' examples into the batch) bounds the rate one process can receive.

Data sets: ``shapes`` and ``digits`` are drawn at the output size, with numpy on the
host; ``shapes-device`` and ``digits-device`` are the same kind of scene drawn and
augmented by one jitted program a batch (`jaxheads.data.DeviceBatches`, the default
`jaxheads.data.DeviceAugment`), here on the CPU backend, each batch waited for, after a
first batch that compiles it; ``voc`` is the set
``jaxheads data voc-synthetic`` writes (`jaxheads.data.write_synthetic_voc`), here at
500×375 (a typical VOC image), written to a temporary directory and decoded and resized
to each size; ``coco`` is the same JPEGs under a COCO-format JSON made from the VOC
annotations (`jaxheads.data.COCODataset` reads it), so its cell differs from ``voc``'s
only by the annotation reader. The cells of ``--augment-on-device`` (``voc`` and ``coco``)
time the host's share of `jaxheads.data.DeviceAugmentedBatches` (``jaxheads train
--augment-on-device``): the same pipelines with no augmentation (image files decoded and
not resized: `jaxheads.data.device_pipeline.host_share`), which the device resizes and
augments.

With ``--step-fraction`` (on by default) it also times one training step of
``small-yolov2`` at 96², batch 32, on a batch drawn beforehand, beside the time of drawing
that batch (host: ``shapes``'s `Batches`; device: ``shapes-device``'s jitted draw): the
``step_fraction`` section of the record.

``python -m benchmarks.pipeline_rates`` writes ``docs/results/bench/pipeline_rates.json``
(the processor, the load average at start and end, the versions) and prints the table
``docs/benchmarks.md`` quotes (`jaxheads.bench.pipeline_table`; ``jaxheads report``
rewrites it there). About four minutes on two shared cores (2026-12-07).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from jaxheads import zoo
from jaxheads.bench import draw_batches, interleaved, machine, pipeline_images_per_s, timing
from jaxheads.bench.pipeline_table import H200_IMAGES_PER_S, pipeline_rates_table
from jaxheads.bench.timing import load_average

COMMAND = "python -m benchmarks.pipeline_rates"
DEFAULT_JSON = os.path.join("docs", "results", "bench", "pipeline_rates.json")
VOC_SOURCE = (375, 500)  # (height, width) of the JPEGs on disk


def write_sets(folder: str) -> dict[str, str]:
    """The synthetic VOC set and a COCO JSON of the same images, under ``folder``."""
    from jaxheads.data import SyntheticVOC, VOCDataset, write_synthetic_voc
    from jaxheads.data.voc import VOC_CLASSES

    voc = os.path.join(folder, "VOC2007")
    write_synthetic_voc(voc, SyntheticVOC(images=128, image_size=VOC_SOURCE))
    records = VOCDataset(voc, split="trainval", image_size=32).records
    coco = {
        "images": [
            {"id": k, "file_name": f"{r.image_id}.jpg", "width": r.width, "height": r.height}
            for k, r in enumerate(records)
        ],
        "categories": [{"id": c + 1, "name": name} for c, name in enumerate(VOC_CLASSES)],
        "annotations": [
            {
                "id": len(records) * k + j,
                "image_id": k,
                "category_id": int(label) + 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "iscrowd": 0,
            }
            for k, r in enumerate(records)
            for j, ((x0, y0, x1, y1), label) in enumerate(
                zip(r.boxes.tolist(), r.labels.tolist(), strict=True)
            )
        ],
    }
    annotations = os.path.join(folder, "instances.json")
    with open(annotations, "w") as f:
        json.dump(coco, f)
    return {"voc": voc, "coco_images": os.path.join(voc, "JPEGImages"), "coco": annotations}


def dataset(name: str, size: int, paths: dict[str, str], examples: int):
    from jaxheads.train.detection import make_dataset

    if name == "voc":
        return make_dataset("voc", "train", image_size=size, data_dir=paths["voc"])
    if name == "coco":
        return make_dataset(
            "coco",
            "train",
            image_size=size,
            data_dir=paths["coco_images"],
            annotations=paths["coco"],
        )
    return make_dataset(name, "train", image_size=size, num_examples=examples)


class Waited:
    """An iterator of device batches that waits for each one (so timing holds its drawing)."""

    def __init__(self, batches):
        self.batches = batches

    def __next__(self):
        import jax

        return jax.block_until_ready(next(self.batches))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.batches.close()


def measure(
    name: str,
    size: int,
    paths: dict,
    *,
    batch: int,
    batches: int,
    augment_on_device: bool = False,
) -> dict:
    """One cell: images/s of ``batches`` batches on this thread, after one to warm up.

    ``augment_on_device``: the host's share of `jaxheads.data.DeviceAugmentedBatches`
    (``jaxheads train --augment-on-device``): the batches loaded with no augmentation
    (image files decoded and not resized), which the device resizes and augments.
    """
    from jaxheads.data import Batches
    from jaxheads.data.augment import augment
    from jaxheads.data.device_pipeline import host_share

    data = dataset(name, size, paths, examples=batch * (batches + 1))
    host_augment = None if augment_on_device else augment
    if augment_on_device:
        data = host_share(data)  # image files decoded only: the device resizes them

    def make():
        if zoo.dataset(name).on_device:
            return Waited(data.training_batches(batch, seed=0, augment=True))
        return Batches(data, batch, seed=0, augment=host_augment, prefetch=0, num_workers=1)

    draw_batches(make, 1)()  # first use: imports, caches, the OS's file cache
    cpu: dict[str, list[float]] = {}
    times = interleaved({"pipeline": draw_batches(make, batches)}, repeats=1, cpu=cpu)
    return {
        "dataset": name,
        "image_size": size,
        "images_per_s": pipeline_images_per_s(times["pipeline"], batch, batches),
        "wall_s": times["pipeline"][0],
        "cpu_s": cpu["pipeline"][0],
        "images_per_cpu_s": batch * batches / cpu["pipeline"][0],
        **({"augment_on_device": True} if augment_on_device else {}),
    }


def measure_processes(size: int, paths: dict, *, batch: int, batches: int, processes: int) -> dict:
    """VOC at ``size`` in ``processes`` worker processes: wall rate, the caller's CPU per image."""
    from jaxheads.data import Batches
    from jaxheads.data.augment import augment

    data = dataset("voc", size, paths, examples=0)
    with Batches(data, batch, seed=0, augment=augment, prefetch=2, processes=processes) as it:
        next(it)  # starts the workers (a spawned interpreter each)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(batches):
            next(it)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "dataset": "voc",
        "image_size": size,
        "processes": processes,
        "images_per_s": batch * batches / wall,
        "wall_s": wall,
        "caller_cpu_s": cpu,
        "caller_cpu_ms_per_image": 1e3 * cpu / (batch * batches),
    }


def step_fraction(*, model: str, size: int, batch: int, repeats: int) -> dict:
    """A training step's time on a batch drawn beforehand, beside the time to draw a batch."""
    import jax

    from jaxheads.data import Batches
    from jaxheads.data.augment import augment
    from jaxheads.train.detection import build_detector, detection_task, make_dataset
    from jaxheads.train.optim import make_optimizer
    from jaxheads.train.step import init_train_state, make_runner

    host = make_dataset("shapes", "train", image_size=size, num_examples=batch * 2)
    device = make_dataset("shapes-device", "train", image_size=size, num_examples=batch * 2)
    detector, init = build_detector(model, image_size=size, num_classes=host.num_classes)
    task = detection_task(detector, init, device, batch_size=batch, seed=0)
    optimizer = make_optimizer("adam", 1e-3)
    runner = make_runner("jit", task.loss_fn, optimizer, devices=jax.devices()[:1])
    state = [runner.place_state(init_train_state(*task.init(jax.random.key(0)), optimizer))]
    drawn = task.batches(0, 0, 1)
    placed = runner.place_batch(next(drawn))
    key = jax.random.key(1)

    def step():
        state[0], metrics = runner.step(state[0], placed, key)
        jax.block_until_ready(metrics)

    def draw_device():
        jax.block_until_ready(drawn.load(1))

    def draw_host():
        Batches(host, batch, seed=0, augment=augment, prefetch=0, num_workers=1).load(1)

    for warm in (step, draw_device, draw_host):
        warm()
    times = timing.interleaved(
        {"step": step, "device": draw_device, "host": draw_host}, repeats=repeats
    )
    ms = {name: timing.median(t) * 1e3 for name, t in times.items()}
    return {
        "model": model,
        "image_size": size,
        "batch": batch,
        "repeats": repeats,
        "step_ms": ms["step"],
        "draw_ms": {"shapes-device": ms["device"], "shapes": ms["host"]},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 416, 448])
    names = zoo.dataset_names()
    parser.add_argument("--datasets", nargs="+", default=names, choices=names)
    parser.add_argument("--batch", type=int, default=64, help="images per batch")
    parser.add_argument("--batches", type=int, default=3, help="timed batches per cell")
    parser.add_argument("--json", default=DEFAULT_JSON, help="write the result here")
    parser.add_argument(
        "--step-fraction",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time a training step beside the drawing of its batch",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes of the worker-process cells (0: none)",
    )
    parser.add_argument(
        "--augment-on-device",
        nargs="*",
        default=["voc", "coco"],
        choices=[n for n in names if not zoo.dataset(n).on_device],
        help="data sets also measured augmented on the device: the host's share",
    )
    parser.add_argument(
        "--process-sizes", type=int, nargs="*", default=[416, 448], help="their image sizes"
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    info = machine()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        paths = write_sets(folder)
        for size in args.sizes:
            for name in args.datasets:
                row = measure(name, size, paths, batch=args.batch, batches=args.batches)
                print(
                    f"{name} {size}²: {row['images_per_s']:.1f} images/s, "
                    f"{row['images_per_cpu_s']:.1f} per CPU second",
                    flush=True,
                )
                rows.append(row)
            for name in args.augment_on_device:
                row = measure(
                    name,
                    size,
                    paths,
                    batch=args.batch,
                    batches=args.batches,
                    augment_on_device=True,
                )
                print(
                    f"{name} {size}², augmented on the device: {row['images_per_s']:.1f} "
                    f"images/s, {row['images_per_cpu_s']:.1f} per CPU second",
                    flush=True,
                )
                rows.append(row)
        process_rows = []
        for size in args.process_sizes if args.processes else ():
            row = measure_processes(
                size, paths, batch=args.batch, batches=args.batches, processes=args.processes
            )
            print(
                f"voc {size}², {args.processes} processes: {row['images_per_s']:.1f} images/s, "
                f"caller {row['caller_cpu_ms_per_image']:.2f} CPU ms per image",
                flush=True,
            )
            process_rows.append(row)
    fraction = None
    if args.step_fraction:
        fraction = step_fraction(model="small-yolov2", size=96, batch=32, repeats=5)
        print(f"step fraction: {fraction}", flush=True)
    info["load_average_end"] = load_average()
    result = {
        "kind": "pipeline_rates",
        "command": COMMAND,
        "config": {
            "batch": args.batch,
            "batches": args.batches,
            "warmup_batches": 1,
            "augment": "jaxheads.data.augment.augment",
            "threads": 1,
            "processes": args.processes,
            "voc_source_size": list(VOC_SOURCE[::-1]),
            "feed_target_images_per_s": H200_IMAGES_PER_S,
        },
        "machine": info,
        "rows": rows,
        **({"step_fraction": fraction} if fraction else {}),
        "process_rows": process_rows,
        "seconds": time.perf_counter() - t0,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(pipeline_rates_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
