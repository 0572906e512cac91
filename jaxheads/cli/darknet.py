"""``jaxheads darknet ...``: darknet's own file commands (`jaxheads.darknet.commands`)."""

from __future__ import annotations

import argparse
import sys

from jaxheads.cli.help import HelpFormatter, add_command
from jaxheads.darknet.commands import partial


def _partial_command(args: argparse.Namespace) -> int:
    try:
        floats = partial(args.cfg, args.weights, args.out, args.n)
    except (OSError, ValueError) as err:
        print(f"jaxheads darknet partial: {err}", file=sys.stderr)
        return 2
    print(f"{args.out}: layers 0..{args.n - 1} of {args.cfg}, {floats} floats")
    return 0


def add_darknet_arguments(p: argparse.ArgumentParser) -> None:
    """The subcommands of ``jaxheads darknet``."""
    sub = p.add_subparsers(
        dest="darknet_command",
        required=True,
        metavar="COMMAND",
        help="what to do with darknet files",
    )
    q = sub.add_parser(
        "partial",
        help="write the first N layers of a .weights file (darknet's partial)",
        description=(
            "Writes the weights of layers 0..N-1 of WEIGHTS (a full or partial file for CFG) "
            "to OUT, byte for byte as darknet's `./darknet partial CFG WEIGHTS OUT N`: header "
            "version 0.2.0 with seen 0. E.g. YOLOv2's backbone: jaxheads darknet partial "
            "darknet19_448 darknet19_448.weights darknet19_448.conv.23 23"
        ),
        formatter_class=HelpFormatter,
    )
    q.add_argument("cfg", help="a .cfg file, or a packaged cfg's name (e.g. darknet19_448)")
    q.add_argument("weights", help="the .weights file to cut (full or partial)")
    q.add_argument("out", help="the .weights file to write")
    q.add_argument("n", type=int, help="how many leading layers to keep")
    q.set_defaults(run=_partial_command)


def add_commands(sub) -> None:
    """``jaxheads darknet``."""
    p = add_command(
        sub,
        "darknet",
        "darknet file commands (partial: the first N layers)",
        "Darknet .weights file tools: 'partial' writes the first N layers of a file "
        "exactly as darknet's own 'partial' does.",
    )
    add_darknet_arguments(p)
