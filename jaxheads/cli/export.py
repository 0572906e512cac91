"""``jaxheads export``: a trained run as darknet's ``.cfg`` and ``.weights`` files
(`jaxheads.train.export`)."""

from __future__ import annotations

import argparse
import sys

from jaxheads.cli.help import add_command, add_compilation_cache_arguments
from jaxheads.train.export import export_workdir


def export_command(args: argparse.Namespace) -> int:
    try:
        done = export_workdir(args.workdir, args.out, force=args.force)
    except (OSError, ValueError) as err:
        said = str(err)
        print(
            f"jaxheads {said}" if said.startswith("export:") else f"jaxheads export: {said}",
            file=sys.stderr,
        )
        return 2
    print(
        f"{done.weights}: {done.model} at step {done.step} of {args.workdir} "
        f"({done.floats} floats, seen {done.seen}); cfg {done.cfg}"
    )
    return 0


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``jaxheads export``."""
    p.add_argument(
        "workdir", metavar="WORKDIR", help="a 'jaxheads train' work directory of a darknet model"
    )
    p.add_argument(
        "out",
        metavar="OUT",
        help="the .weights file to write; the cfg goes beside it (OUT.weights -> OUT.cfg)",
    )
    p.add_argument("--force", action="store_true", help="replace OUT and its .cfg when they exist")


def add_commands(sub) -> None:
    """``jaxheads export``."""
    p = add_command(
        sub,
        "export",
        "write a trained darknet model as darknet's .cfg and .weights",
        "Write the newest checkpoint of a 'jaxheads train' run of a darknet model "
        "(e.g. --model yolov2-tiny-voc) as files darknet loads: OUT (.weights: darknet's "
        "header 0.2.0 with seen = steps x batch size, then each layer's floats in "
        "darknet's order) and the cfg beside it (OUT.weights -> OUT.cfg: the model's cfg "
        "with the run's image size and classes). Only darknet models can be exported; "
        "another is refused, naming those that can. E.g. jaxheads export runs/tiny "
        "tiny.weights, then ./darknet detector test DATA tiny.cfg tiny.weights IMAGE",
    )
    add_export_arguments(p)
    add_compilation_cache_arguments(p)
    p.set_defaults(run=export_command)
