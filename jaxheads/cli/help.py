"""What every command shares: the help that shows defaults, and where defaults come from."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from collections.abc import Callable


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, but not a required flag's or a ``None``: those flags' help
    says what leaving them out means (``(default: None)`` says nothing)."""

    def _get_help_string(self, action):
        if action.default is None or action.required:
            return action.help
        return super()._get_help_string(action)


def add_command(sub, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` shows every flag's default."""
    return sub.add_parser(
        name, help=summary, description=description, formatter_class=HelpFormatter
    )


def field_default(record: type, name: str):
    """The default of the dataclass field ``record.name``: a flag's default, so that the
    shell and a Python caller of the library start the same run."""
    (field,) = [f for f in dataclasses.fields(record) if f.name == name]
    return field.default


def keyword_default(function: Callable, name: str):
    """The default of the keyword argument ``name`` of a library ``function``."""
    return inspect.signature(function).parameters[name].default


def add_compilation_cache_arguments(
    p: argparse.ArgumentParser, *, measures_compilation: bool = False
) -> None:
    """``--compilation-cache DIR`` and ``--no-compilation-cache``, of every command that
    compiles (`jaxheads.train.compilation_cache`; `jaxheads.cli.main` applies them).

    A command that ``measures_compilation`` (``jaxheads bench``) keeps the cache off unless
    ``--compilation-cache`` is given: a program loaded from it would be timed as compiled.
    """
    from jaxheads.train.compilation_cache import ENV_VAR

    group = p.add_mutually_exclusive_group()
    keep = "keep compiled programs in DIR, so that a later run of the same shapes loads them"
    group.add_argument(
        "--compilation-cache",
        default="off" if measures_compilation else None,
        metavar="DIR",
        help=f"{keep} (its compile times are then load times)"
        if measures_compilation
        else f"{keep}; default: ${ENV_VAR} (a directory, or off), else JAX's own "
        "JAX_COMPILATION_CACHE_DIR, else $XDG_CACHE_HOME/jaxheads/jax-compilation-cache",
    )
    group.add_argument(
        "--no-compilation-cache",
        dest="compilation_cache",
        action="store_const",
        const="off",
        help="compile everything afresh and keep nothing",
    )
