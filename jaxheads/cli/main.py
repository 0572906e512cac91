"""The ``jaxheads`` command: its parser, made of every command family's."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from jaxheads.cli import (
    bench,
    darknet,
    data,
    detect,
    export,
    pretrain,
    report,
    study,
    summary,
    train,
)
from jaxheads.cli.help import HelpFormatter

#: The command families, in the order ``jaxheads --help`` lists their commands.
FAMILIES = (summary, train, export, pretrain, study, report, darknet, detect, data, bench)


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
    stdout = sys.stdout  # restored as found, even if a command replaces sys.stdout
    buffered = hasattr(stdout, "reconfigure") and getattr(stdout, "line_buffering", 1) is False
    if buffered:
        # Progress lines reach a file or a pipe as they are printed, not when the run ends.
        stdout.reconfigure(line_buffering=True)
    args.argv = argv  # the command as typed, for the records a command writes
    if hasattr(args, "compilation_cache"):  # a command that compiles
        from jaxheads.train.compilation_cache import use_compilation_cache

        use_compilation_cache(args.compilation_cache)
    prefix = f"jaxheads {args.command}: warning:"

    def one_line(message, category, filename, lineno, file=None, line=None):
        # A recovered fault is one line on stderr, not Python's two with a source line.
        print(prefix, " ".join(str(message).split()), file=file or sys.stderr)

    def quiet_closed_loop(unraisable):
        # A checkpoint that fails to restore (and is set aside, with a warning) leaves
        # tensorstore reads in flight whose callbacks then find orbax's event loop closed.
        error = unraisable.exc_value
        if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
            previous_hook(unraisable)

    previous_hook = sys.unraisablehook
    sys.unraisablehook = quiet_closed_loop
    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line
            return args.run(args)
    finally:
        sys.unraisablehook = previous_hook
        if buffered:
            stdout.reconfigure(line_buffering=False)
