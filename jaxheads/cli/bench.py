"""``jaxheads bench``: one detector's training step measured on this machine's chip."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from jaxheads.bench import ChipBench
from jaxheads.cli.help import add_command, add_compilation_cache_arguments, field_default


def bench_command(args: argparse.Namespace) -> int:
    import json
    import shlex

    from jaxheads.bench import CHIP_BENCH_KIND, measure_chip, report

    # Every field of the record is a flag of the same name.
    config = ChipBench(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ChipBench)})
    try:
        result = measure_chip(config, log=lambda msg: print(msg, flush=True))
    except ValueError as err:
        print(f"jaxheads bench: {err}", file=sys.stderr)
        return 2
    print(report(result))
    if args.json:
        with open(args.json, "w") as f:
            record = {
                "kind": CHIP_BENCH_KIND,
                "command": "jaxheads " + shlex.join(getattr(args, "argv", ["bench"])),
                **result,
                "figures": result["figures"].to_json(),
            }
            json.dump(record, f, indent=1)
            f.write("\n")
        print(f"wrote {args.json}")
    return 0


def add_commands(sub) -> None:
    """``jaxheads bench``."""
    p = add_command(
        sub,
        "bench",
        "measure a training step, its MFU and the input pipeline on this chip",
        "Measure one detector's training step on this machine's first device: step time, "
        "images/s, compile time, FLOPs and MFU against a measured matmul peak (and the "
        "datasheet's on a known GPU or TPU), and the input pipeline's rate. The comparison "
        "with Keras 3 and Flax NNX is `python -m benchmarks.bench` in a source checkout.",
    )

    def flag(name: str, kind, help: str) -> None:
        default = field_default(ChipBench, name)
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=default, help=help)

    flag("model", str, "a detector of the registry (jaxheads summary --list)")
    flag("image_size", int, "square input side in pixels")
    flag("batch_size", int, "images per step")
    p.add_argument("--bf16", action="store_true", help="bfloat16 compute, float32 params")
    flag("steps", int, "steps per timed run")
    flag("repeats", int, "timed runs of each measurement; the figures are medians")
    flag("pipeline_batches", int, "batches drawn per timed run of the input pipeline")
    flag(
        "matmul_size",
        int,
        "side of the matmul whose rate is the peak; default: 8192 on an accelerator, 2048 on a CPU",
    )
    p.add_argument(
        "--json",
        metavar="PATH",
        help="write every figure, the machine and the command to PATH (under docs/results/, "
        "a record `jaxheads report` quotes)",
    )
    add_compilation_cache_arguments(p, measures_compilation=True)
    p.set_defaults(run=bench_command)
