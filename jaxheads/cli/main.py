"""The ``jaxheads`` command: its parser, made of every command family's."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxheads.cli import bench, darknet, detect, export, pretrain, study, summary, train
from jaxheads.cli.help import HelpFormatter

#: The command families, in the order ``jaxheads --help`` lists their commands.
FAMILIES = (summary, train, export, pretrain, study, darknet, detect, bench)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``jaxheads`` and every subcommand."""
    from jaxheads import __version__

    parser = argparse.ArgumentParser(
        prog="jaxheads",
        description="Detection heads and layers as pure JAX functions.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"jaxheads {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for family in FAMILIES:
        family.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``jaxheads ARGV``; its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command as typed, for the records a command writes
    if hasattr(args, "compilation_cache"):  # a command that compiles
        from jaxheads.train.compilation_cache import use_compilation_cache

        use_compilation_cache(args.compilation_cache)
    return args.run(args)
