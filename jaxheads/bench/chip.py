"""One detector's training step on this machine's first device, measured.

`measure_chip` builds the run ``jaxheads train`` would build for a `ChipBench`
(`jaxheads.train.detection.build_experiment` on the procedural shapes data, the
optimizer of `jaxheads.train.RunConfig`'s defaults, the ``jit`` runner) and
measures:

* ``compile``: the step's lowering and compile time (``lower_s``, ``compile_s``);
* ``train``: the step alone on one placed batch (``step_ms``, ``images_per_s``),
  its FLOPs (XLA's count of the compiled step, or 3× the forward pass's count at
  the batch where XLA's is smaller: XLA:GPU leaves out the convolutions it hands
  to cuDNN), and the model FLOPs utilisation ``mfu`` against a square matmul's
  rate measured in the same interleaving (and, on a GPU or TPU it knows, against
  the datasheet's bf16 peak);
* ``pipeline``: `jaxheads.data.Batches` alone (``images_per_s``, its start
  included: ``pipeline_batches`` batches from a fresh pipeline), and the step
  fed by it as the training loop feeds it (``fed_images_per_s``,
  ``fraction_of_step``: 1.0 when the pipeline never keeps the step waiting).

Command and run time: ``jaxheads bench --model small-yolov2 --image-size 96
--batch-size 16`` takes about a minute on a 2-core CPU; the defaults (YOLOv2-tiny
416², batch 16) are meant for an accelerator. The side-by-side against Keras 3 and
Flax NNX is ``python -m benchmarks.bench`` in a source checkout.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from jaxheads.bench import timing
from jaxheads.bench.figures import Figures
from jaxheads.bench.flops import cost_flops, forward_flops
from jaxheads.bench.peak import datasheet_peak, matmul


@dataclasses.dataclass(frozen=True)
class ChipBench:
    """What `measure_chip` measures.

    Attributes:
      model: a detector of the registry (``jaxheads summary --list``).
      image_size: the square input side in pixels.
      batch_size: images per step.
      bf16: bfloat16 compute, float32 params (as ``jaxheads train --bf16``).
      steps: steps per timed run.
      repeats: timed runs of each contender; the figures are their medians.
      pipeline_batches: batches drawn per timed run of the input pipeline.
      matmul_size: the side of the square matmul that stands for the chip's peak
        (None: 8192 on a GPU or TPU, 2048 on a CPU).
    """

    model: str = "yolov2-tiny"
    image_size: int = 416
    batch_size: int = 16
    bf16: bool = False
    steps: int = 5
    repeats: int = 5
    pipeline_batches: int = 10
    matmul_size: int | None = None


def machine() -> dict:
    """What the numbers were measured on: the device, the CPU, the versions, the load."""
    import flax
    import jax
    import jaxlib
    import optax

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
        "flax": flax.__version__,
        "optax": optax.__version__,
        "load_average_start": timing.load_average(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _run(config: ChipBench):
    """The detector, its task and the jit runner with its placed state, as training builds them."""
    import jax

    from jaxheads.train.detection import DetectionExperiment, build_experiment
    from jaxheads.train.loop import RunConfig
    from jaxheads.train.optim import make_optimizer
    from jaxheads.train.step import init_train_state, make_runner

    experiment = DetectionExperiment(
        model=config.model,
        image_size=config.image_size,
        batch_size=config.batch_size,
        bf16=config.bf16,
        train_examples=config.batch_size * max(2, config.pipeline_batches),
        val_examples=1,
    )
    run = RunConfig(workdir="")  # its optimizer's defaults; nothing is written
    detector, task, _ = build_experiment(experiment, seed=run.seed)
    optimizer = make_optimizer(
        run.optimizer,
        run.learning_rate,
        momentum=run.momentum,
        weight_decay=run.weight_decay,
        clip_norm=run.clip_norm,
    )
    runner = make_runner("jit", task.loss_fn, optimizer, devices=jax.devices()[:1])
    params, state = task.init(jax.random.key(run.seed))
    ts = runner.place_state(init_train_state(params, state, optimizer))
    return detector, task, runner, ts


def draw_batches(
    make: Callable[[], AbstractContextManager[Iterator]], n: int
) -> Callable[[], None]:
    """One timed run of an input pipeline: ``n`` batches from a fresh ``make()``.

    A fresh pipeline each run, its start included: batches a prefetch thread made
    while something else was timed would otherwise come free. ``make`` returns a
    `jaxheads.data.Batches` (or any iterator that is its own context manager).
    """

    def draw() -> None:
        with make() as fresh:
            for _ in range(n):
                next(fresh)

    return draw


def pipeline_images_per_s(times: list[float], batch_size: int, n: int) -> float:
    """Images per second of `draw_batches` runs of ``n`` batches that took ``times`` s."""
    return batch_size * n / timing.median(times)


def measure_chip(config: ChipBench, *, log: Callable[[str], object] = print) -> dict:
    """Measures `ChipBench`'s detector on the first device.

    Returns:
      ``{"machine", "config", "figures", "wall_s"}``: `machine`'s fields, the
      config's, and the `Figures` (sections ``compile``, ``train``, ``pipeline``,
      ``peak``; ``model`` the registry name, ``batch`` the batch size).
    """
    import jax
    import jax.numpy as jnp

    start = time.perf_counter()
    info = machine()
    log(
        f"jaxheads bench: {config.model} {config.image_size}², batch {config.batch_size} on "
        f"{info['platform']} ({info['device_kind']}); load average {info['load_average_start']}"
    )
    dtype = "bfloat16" if config.bf16 else "float32"
    figures = Figures()

    def add(section, metric, value, framework="jaxheads"):
        figures.add(
            section,
            metric,
            value,
            model=config.model,
            framework=framework,
            batch=config.batch_size,
            dtype=dtype,
        )

    detector, task, runner, ts = _run(config)
    batches = task.batches(0, 0, 1)
    batch = runner.place_batch(next(batches))
    key = jax.random.key(1)
    lowered, lower_s = timing.timed(lambda: runner.lower(ts, batch, key))
    compiled, compile_s = timing.timed(lowered.compile)
    add("compile", "lower_s", lower_s)
    add("compile", "compile_s", compile_s)

    state = [ts]

    def steps(n: int, fed: bool) -> Callable[[], None]:
        def run():
            metrics = None
            for _ in range(n):
                placed = runner.place_batch(next(batches)) if fed else batch
                state[0], metrics = compiled(state[0], placed, key)
            jax.block_until_ready(metrics)

        return run

    accelerator = jax.default_backend() != "cpu"
    n = config.matmul_size or (8192 if accelerator else 2048)
    product, product_flops = matmul(n, jnp.bfloat16 if config.bf16 else jnp.float32)
    steps(1, fed=False)()  # the first run of the executable: allocation, autotuning
    times = timing.interleaved(
        {
            "step": steps(config.steps, fed=False),
            "fed": steps(config.steps, fed=True),
            "pipeline": draw_batches(lambda: task.batches(0, 0, 1), config.pipeline_batches),
            "matmul": product,
        },
        repeats=config.repeats,
    )
    b = config.batch_size
    step_s = timing.median(times["step"]) / config.steps
    fed_s = timing.median(times["fed"]) / config.steps
    batches.close()
    add("train", "step_ms", step_s * 1e3)
    add("train", "images_per_s", b / step_s)
    add(
        "pipeline",
        "images_per_s",
        pipeline_images_per_s(times["pipeline"], b, config.pipeline_batches),
    )
    add("pipeline", "fed_images_per_s", b / fed_s)
    add("pipeline", "fraction_of_step", step_s / fed_s)

    xla = cost_flops(compiled.cost_analysis())
    model = 3.0 * b * forward_flops(detector.layer, detector.input_shape)
    flops = xla if xla >= model else model  # NaN too
    peak = product_flops / timing.median(times["matmul"])
    add("train", "xla_flops_per_step", xla)
    add("train", "model_flops_per_step", model)
    add("train", "achieved_flops_per_s", flops / step_s)
    add("peak", "matmul_flops_per_s", peak, framework=None)
    add("train", "mfu", flops / step_s / peak)
    datasheet = datasheet_peak(info["device_kind"]) if accelerator else None
    if datasheet:
        figures.add("peak", "datasheet_flops_per_s", datasheet, dtype="bfloat16")
        add("train", "mfu_vs_datasheet_bf16", flops / step_s / datasheet)
    info["load_average_end"] = timing.load_average()
    return {
        "machine": info,
        "config": dataclasses.asdict(config),
        "figures": figures,
        "wall_s": time.perf_counter() - start,
    }


#: The ``kind`` of ``jaxheads bench --json``'s record (`jaxheads.bench.chip_table`).
CHIP_BENCH_KIND = "chip_bench"

#: The lines of `report`: (section, metric, label, format).
REPORTED = (
    ("train", "step_ms", "training step", "{:.2f} ms"),
    ("train", "images_per_s", "training images/s", "{:.1f}"),
    ("compile", "lower_s", "lowering", "{:.2f} s"),
    ("compile", "compile_s", "compilation", "{:.2f} s"),
    ("train", "achieved_flops_per_s", "achieved", "{:.3g} FLOP/s"),
    ("peak", "matmul_flops_per_s", "matmul peak (measured)", "{:.3g} FLOP/s"),
    ("train", "mfu", "MFU (against the matmul)", "{:.1%}"),
    ("train", "mfu_vs_datasheet_bf16", "MFU (against the datasheet bf16)", "{:.1%}"),
    ("pipeline", "images_per_s", "input pipeline alone, images/s", "{:.1f}"),
    ("pipeline", "fed_images_per_s", "step fed by the pipeline, images/s", "{:.1f}"),
    ("pipeline", "fraction_of_step", "fed ÷ step alone", "{:.2f}"),
)


def report(result: dict) -> str:
    """`measure_chip`'s result as a Markdown table, one figure a row."""
    m, c = result["machine"], result["config"]
    lines = [
        f"{c['model']} {c['image_size']}², batch {c['batch_size']}, "
        f"{'bfloat16' if c['bf16'] else 'float32'} on {m['device_kind']} ({m['platform']}), "
        f"jax {m['jax']}",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    for section, metric, label, fmt in REPORTED:
        found = result["figures"].select(section=section, metric=metric)
        if found:
            lines.append(f"| {label} | {fmt.format(found[0].value)} |")
    return "\n".join(lines)
