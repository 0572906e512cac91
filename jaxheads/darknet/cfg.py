"""Darknet ``.cfg`` files: text to a list of sections, and typed option lookup.

A cfg file is a list of ``[type]`` headers, each followed by ``key=value``
lines. As in darknet's ``read_cfg`` (``src/parser.c``), all whitespace inside a
line is dropped (so ``anchors =  0.57, 0.67`` reads as ``0.57,0.67``), lines
starting with ``#`` or ``;`` and blank lines are ignored, and the first
occurrence of a repeated key wins. Darknet's aliases (``[conv]``, ``[conn]``,
``[max]``, ``[avg]``, ``[soft]``, ``[network]``) are read as their full names.

Unlike darknet, which prints a warning and carries on, every malformed line,
unknown section and unreadable value raises `ValueError` naming the section,
its darknet layer index and its line number. Reading is bounded: a file over
`MAX_CFG_BYTES` or holding NUL bytes (not a text file) is refused before it is
parsed, and an error quotes at most `MAX_ECHO` characters of a line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from jaxheads._checks import fail, not_a_regular_file

#: Section types this package builds (``net`` is the network's header, not a layer).
SUPPORTED = (
    "net",
    "crop",
    "convolutional",
    "maxpool",
    "avgpool",
    "local",
    "connected",
    "dropout",
    "route",
    "reorg",
    "softmax",
    "cost",
    "detection",
    "region",
)

_ALIASES = {
    "network": "net",
    "conv": "convolutional",
    "conn": "connected",
    "max": "maxpool",
    "avg": "avgpool",
    "soft": "softmax",
}

#: The cfg files shipped with the package (see ``jaxheads/darknet/cfg/README.md``).
CFG_NAMES = (
    "yolov1",
    "yolov1-paper",
    "yolov1-paper-tiny",
    "yolov1-tiny",
    "yolov2",
    "yolov2-tiny",
    "yolov2-tiny-voc",
    "yolov2-voc",
    "darknet19",
    "darknet19_448",
    "extraction",
    "tiny",
)

_REQUIRED = object()

#: The largest cfg read, in bytes (darknet's largest, densenet201.cfg, is under 30 KB).
MAX_CFG_BYTES = 1 << 20
#: The most characters of a line or value an error message quotes.
MAX_ECHO = 80


def _echo(text: str) -> str:
    """``repr`` of ``text``, cut to `MAX_ECHO` characters with the length said."""
    if len(text) <= MAX_ECHO:
        return repr(text)
    return f"{text[:MAX_ECHO]!r}... ({len(text)} characters)"


@dataclass(frozen=True)
class Section:
    """One ``[type]`` block of a cfg file.

    Attributes:
      type: the canonical type, e.g. ``"convolutional"`` (aliases resolved).
      options: ``{key: value}`` with whitespace removed, first occurrence kept.
      line: 1-based line number of the ``[type]`` header.
      index: darknet's layer index (the ``[net]`` section is not a layer: -1).
    """

    type: str
    options: dict[str, str] = field(default_factory=dict)
    line: int = 0
    index: int = -1

    @property
    def where(self) -> str:
        """``"layer 3 [maxpool] (line 40)"``: how errors name this section."""
        at = "the [net] section" if self.type == "net" else f"layer {self.index} [{self.type}]"
        return f"{at} (line {self.line})"

    def _raw(self, key: str, default):
        if key in self.options:
            return self.options[key]
        if default is _REQUIRED:
            fail("darknet cfg", f"option {key!r} in {self.where}", "none")
        return None

    def get_int(self, key: str, default=_REQUIRED) -> int:
        """An integer option (``default`` when absent; absent and no default raises)."""
        raw = self._raw(key, default)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            fail("darknet cfg", f"an integer for {key!r} in {self.where}", _echo(raw))

    def get_float(self, key: str, default=_REQUIRED) -> float:
        """A float option (darknet reads ``.5`` and ``5`` alike)."""
        raw = self._raw(key, default)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            fail("darknet cfg", f"a number for {key!r} in {self.where}", _echo(raw))

    def get_str(self, key: str, default=_REQUIRED) -> str:
        raw = self._raw(key, default)
        return default if raw is None else raw

    def get_list(self, key: str, kind=float, default=_REQUIRED) -> tuple:
        """A comma-separated list, e.g. ``steps=400000,450000``."""
        raw = self._raw(key, default)
        if raw is None:
            return default
        try:
            return tuple(kind(v) for v in raw.split(",") if v != "")
        except ValueError:
            fail(
                "darknet cfg",
                f"a comma-separated list of {kind.__name__} for {key!r} in {self.where}",
                _echo(raw),
            )


def parse_cfg(text: str) -> list[Section]:
    """Parses cfg text into sections.

    Args:
      text: the contents of a ``.cfg`` file.

    Returns:
      The sections in file order; the first must be ``[net]``.

    Raises:
      ValueError: text over `MAX_CFG_BYTES` or holding NUL characters, an
        unknown section type, an option outside any section, a line that is
        not ``key=value``, or a missing ``[net]`` header.

    >>> [s.type for s in parse_cfg("[net]\\nwidth=8\\n[maxpool]\\nsize=2")]
    ['net', 'maxpool']
    """
    if not isinstance(text, str):
        fail("parse_cfg", "cfg text as a str", type(text).__name__)
    if len(text) > MAX_CFG_BYTES:
        fail("parse_cfg", f"cfg text of at most {MAX_CFG_BYTES} characters", len(text))
    if "\0" in text:
        fail("parse_cfg", "text without NUL characters", f"one at offset {text.index(chr(0))}")
    sections: list[Section] = []
    layer_index = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"\s+", "", raw)
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]"):
                fail(
                    "parse_cfg",
                    f"a section header like [convolutional] at line {number}",
                    _echo(raw.strip()),
                )
            kind = line[1:-1].lower()
            kind = _ALIASES.get(kind, kind)
            index = -1 if kind == "net" else layer_index
            if kind not in SUPPORTED:
                fail(
                    "parse_cfg",
                    f"a supported section type ({', '.join(SUPPORTED)})",
                    f"[{kind[:MAX_ECHO]}] as layer {index} at line {number}",
                )
            if kind == "net" and sections:
                fail("parse_cfg", "[net] only as the first section", f"[net] at line {number}")
            if kind != "net":
                layer_index += 1
            sections.append(Section(kind, {}, number, index))
            continue
        if not sections:
            fail(
                "parse_cfg",
                "options inside a section",
                f"{_echo(raw.strip())} before any [section] at line {number}",
            )
        key, sep, value = line.partition("=")
        if not sep or not key:
            fail(
                "parse_cfg",
                f"a key=value line in {sections[-1].where}",
                f"{_echo(raw.strip())} at line {number}",
            )
        sections[-1].options.setdefault(key, value)
    if not sections or sections[0].type != "net":
        got = f"[{sections[0].type}] at line {sections[0].line}" if sections else "no sections"
        fail("parse_cfg", "a [net] (or [network]) section first", got)
    return sections


def read_cfg_text(path: str | os.PathLike) -> str:
    """The text of a cfg file, read as `read_cfg` reads it (bounded, UTF-8, no NUL bytes)."""
    what = not_a_regular_file(path)
    if what:
        fail("read_cfg", f"{os.fspath(path)}: a regular cfg file", what)
    with open(path, "rb") as f:
        data = f.read(MAX_CFG_BYTES + 1)
    where = os.fspath(path)
    if len(data) > MAX_CFG_BYTES:
        fail("read_cfg", f"{where}: a cfg file of at most {MAX_CFG_BYTES} bytes", "a larger file")
    if b"\0" in data:
        fail("read_cfg", f"{where}: a text file", f"a NUL byte at offset {data.index(0)}")
    try:
        return data.decode("utf-8-sig")  # a BOM, as Windows editors write, is not text
    except UnicodeDecodeError as err:
        got = f"byte {data[err.start]:#04x} at offset {err.start}"
        fail("read_cfg", f"{where}: UTF-8 text", got)


def read_cfg(path: str | os.PathLike) -> list[Section]:
    """Reads and parses a cfg file (see `parse_cfg`).

    At most `MAX_CFG_BYTES` + 1 bytes are read: a larger file, one with NUL
    bytes or one that is not UTF-8 is refused before parsing.
    """
    return parse_cfg(read_cfg_text(path))


def _line_end(raw: str) -> str:
    return raw[len(raw.rstrip("\r\n")) :] or "\n"


def with_options(text: str, sections: Sequence[Section]) -> str:
    """``text`` rewritten with the option values of ``sections``, everything else kept.

    ``sections`` are the sections of ``text`` with options changed or added, e.g.
    a built model's (`jaxheads.darknet.DarknetModel.sections`, the image size and
    classes overridden). A changed option's line becomes ``key=value`` (its first
    occurrence, the one darknet reads); an added option gets a line after its
    section's header; comments, blank lines and every other line stay as written.
    `parse_cfg` of the result gives the options of ``sections``.

    >>> text = "[net]\\n# the input\\nwidth = 416\\n\\n[region]\\nclasses=20\\n"
    >>> built = parse_cfg(text)
    >>> built[0].options.update(width="64", height="64")
    >>> built[1].options["classes"] = "3"
    >>> print(with_options(text, built), end="")
    [net]
    height=64
    # the input
    width=64
    <BLANKLINE>
    [region]
    classes=3

    Raises:
      ValueError: ``sections`` are not those of ``text`` (other types or count).
    """
    original = parse_cfg(text)
    if [s.type for s in original] != [s.type for s in sections]:
        fail(
            "with_options",
            f"the sections of the text, {[s.type for s in original]}",
            [s.type for s in sections],
        )
    pending = [
        {k: v for k, v in new.options.items() if old.options.get(k) != v}
        for old, new in zip(original, sections, strict=True)
    ]
    out, current = [], -1
    for raw in text.splitlines(keepends=True):
        line = re.sub(r"\s+", "", raw)
        if line.startswith("["):
            current += 1
            out.append(raw if raw.endswith(("\n", "\r")) else raw + "\n")
            added = {
                k: v for k, v in pending[current].items() if k not in original[current].options
            }
            out += [f"{k}={v}{_line_end(raw)}" for k, v in added.items()]
            for k in added:
                del pending[current][k]
            continue
        key, sep, _ = line.partition("=")
        if line and line[0] not in "#;" and sep and key in pending[current]:
            out.append(f"{key}={pending[current].pop(key)}{_line_end(raw)}")
            continue
        out.append(raw)
    return "".join(out)


def cfg_path(name: str) -> str:
    """Path of a cfg file shipped with the package, e.g. ``cfg_path("yolov2-voc")``.

    ``name`` is one of `CFG_NAMES`; the ``.cfg`` suffix is optional.
    """
    stem = name[:-4] if name.endswith(".cfg") else name
    if stem not in CFG_NAMES:
        fail("cfg_path", f"one of {list(CFG_NAMES)}", repr(name))
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "cfg", f"{stem}.cfg")
