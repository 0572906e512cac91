"""``jaxheads bench``: throughput against Keras 3, Flax NNX and the hardware."""

from __future__ import annotations

import argparse
import sys

from jaxheads.cli.help import add_command, add_compilation_cache_arguments


def bench_command(args: argparse.Namespace) -> int:
    # The benchmarks live beside the package in a source checkout (benchmarks/), not in it.
    from pathlib import Path

    import jaxheads

    root = Path(jaxheads.__file__).resolve().parents[1]
    if not (root / "benchmarks" / "bench.py").is_file():
        print(
            f"jaxheads bench: needs the benchmarks/ folder of a source checkout; "
            f"none beside the package in {root}",
            file=sys.stderr,
        )
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.bench import run_from_args

    return run_from_args(args)


#: The sections of ``jaxheads bench`` (``benchmarks/bench.py`` runs them, in this order).
BENCH_SECTIONS = ("train", "e2e", "infer", "evaluate", "scaling", "detect")


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``jaxheads bench``, which ``python -m benchmarks.bench`` takes too.

    They live here because the package cannot import ``benchmarks/`` (a source
    checkout's folder) to build its command line.
    """
    parser.add_argument(
        "--quick", action="store_true", help="reduced sizes: a few minutes on a 2-core CPU"
    )
    parser.add_argument("--json", metavar="PATH", help="write every figure to PATH")
    parser.add_argument(
        "--only",
        metavar="SECTIONS",
        help=f"comma-separated subset of {','.join(BENCH_SECTIONS)}; default: all of them",
    )


def add_commands(sub) -> None:
    """``jaxheads bench``."""
    p = add_command(
        sub,
        "bench",
        "throughput against Keras 3, Flax NNX and the hardware",
        "Measure training and inference throughput against Keras 3 and Flax NNX "
        "(needs the benchmarks/ folder of a source checkout).",
    )
    add_bench_arguments(p)
    add_compilation_cache_arguments(p, measures_compilation=True)
    p.set_defaults(run=bench_command)
