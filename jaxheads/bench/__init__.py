"""Measuring a chip: a training step's time and FLOPs, its compilation, the input pipeline.

``jaxheads bench`` runs `measure_chip`; the parts (interleaved timing, a measured matmul
peak and the datasheet peaks, XLA's FLOP counts, `Figure` records) serve the
side-by-side against Keras 3 and Flax NNX in a source checkout's ``benchmarks/`` too.
"""

from jaxheads.bench.chip import (
    CHIP_BENCH_KIND,
    ChipBench,
    draw_batches,
    machine,
    measure_chip,
    pipeline_images_per_s,
    report,
)
from jaxheads.bench.figures import FIELDS, Figure, Figures
from jaxheads.bench.flops import cost_flops, forward_flops
from jaxheads.bench.peak import datasheet_peak, matmul
from jaxheads.bench.timing import interleaved, load_average, median, timed, wall

__all__ = [
    "CHIP_BENCH_KIND",
    "FIELDS",
    "ChipBench",
    "Figure",
    "Figures",
    "cost_flops",
    "datasheet_peak",
    "draw_batches",
    "forward_flops",
    "interleaved",
    "load_average",
    "machine",
    "matmul",
    "measure_chip",
    "median",
    "pipeline_images_per_s",
    "report",
    "timed",
    "wall",
]
