"""``.. jaxheads-cli::``: the ``--help`` of ``jaxheads`` and of every subcommand.

The text is what `jaxheads.cli.build_parser` prints at build time, so the page
cannot drift from the command line.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

# argparse wraps at the terminal's width; the page should not depend on the terminal.
HELP_COLUMNS = "88"


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """The parser, then each subcommand's parser, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def _help(parser: argparse.ArgumentParser) -> str:
    saved = {k: os.environ.get(k) for k in ("COLUMNS", "NO_COLOR")}
    os.environ.update(COLUMNS=HELP_COLUMNS, NO_COLOR="1")
    try:
        return parser.format_help()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class JaxheadsCli(SphinxDirective):
    """A section per command: its ``--help``, verbatim."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from jaxheads.cli import build_parser

        lines: list[str] = []
        for path, parser in _commands(build_parser()):
            title = " ".join(("jaxheads", *path))
            lines += [title, "-" * len(title), "", ".. code-block:: text", ""]
            lines += ["   " + line if line else "" for line in _help(parser).splitlines()]
            lines.append("")
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source="jaxheads --help"), container)
        return container.children


def setup(app):
    app.add_directive("jaxheads-cli", JaxheadsCli)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
