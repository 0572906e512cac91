"""The files that name a leg of CI (.ci/run) name the one that does what they say."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
ORDINALS = {1: "first", 2: "second"}


def _oldest_pins_leg() -> int:
    """The number of the leg of .ci/run that installs with .ci/oldest.txt as constraints."""
    leg = None
    for line in (ROOT / ".ci" / "run").read_text().splitlines():
        header = re.match(r"# --- leg (\d+):", line)
        if header:
            leg = int(header.group(1))
        if line.startswith("export PIP_CONSTRAINT=") and ".ci/oldest.txt" in line:
            assert leg is not None, "PIP_CONSTRAINT is set before the first leg's header"
            return leg
    raise AssertionError(".ci/run sets no PIP_CONSTRAINT to .ci/oldest.txt")


def test_the_oldest_pins_leg_is_named_by_its_number():
    word = ORDINALS[_oldest_pins_leg()]
    for name in ("pyproject.toml", ".ci/oldest.txt"):
        named = re.findall(r"CI's (\w+) leg", (ROOT / name).read_text())
        assert named == [word], f"{name} calls the oldest-pins leg {named}, .ci/run {word!r}"
