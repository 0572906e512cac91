"""The ``jaxheads`` command line: every command's flags, and nothing else.

Each module holds one family of commands (`train`, `pretrain`, `export`, `study`,
`detect`, `darknet`, `summary`, `bench`): it parses the flags into the library's
records, whose fields give the flags their defaults, and calls the library. Only
this package reads a command line.
"""

from jaxheads.cli.help import HelpFormatter
from jaxheads.cli.main import build_parser, main

__all__ = ["HelpFormatter", "build_parser", "main"]
