"""The command line explains itself: each subcommand described, each flag with help and default."""

import argparse

import pytest

import jaxheads
from jaxheads.cli import build_parser, main


def _subcommands(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_subcommand_has_a_description_and_every_flag_help():
    parser = build_parser()
    subs = _subcommands(parser)
    assert {"summary", "train", "evaluate", "compare", "bench", "export"} <= set(subs)
    for name, sub in subs.items():
        assert sub.description, name
        assert issubclass(sub.formatter_class, argparse.ArgumentDefaultsHelpFormatter), name
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)


@pytest.mark.parametrize("name", ["summary", "train", "evaluate", "compare", "bench", "export"])
def test_help_shows_defaults(name, capsys):
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    sub = _subcommands(build_parser())[name]
    shown = [
        a
        for a in sub._actions
        if a.option_strings and a.default not in (None, argparse.SUPPRESS) and not a.required
    ]
    assert " ".join(out.split()).count("(default:") >= len(shown), name
    # a flag left out means something its help says, never "None"
    assert "(default: None)" not in out and "None:" not in out
    if name == "train":
        flat = " ".join(out.split())
        assert "extends a finished run" in flat and "is fixed) (default: 1000)" in flat
        assert "--list-models" not in out and "(default: small-yolov2)" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"jaxheads {jaxheads.__version__}"


def test_a_command_prints_line_by_line_into_a_file_or_pipe(monkeypatch):
    """Redirected stdout is block-buffered: `compare --no-progress > log` used to write
    nothing until the study ended. While a command runs its lines are flushed as printed."""
    import io
    import sys

    import jaxheads.cli.summary as summary_module

    piped = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    assert piped.line_buffering is False
    seen = []
    monkeypatch.setattr(sys, "stdout", piped)
    monkeypatch.setattr(
        summary_module, "summary_command", lambda args: seen.append(piped.line_buffering) or 0
    )
    assert main(["summary", "yolov2"]) == 0
    assert seen == [True]
    assert piped.line_buffering is False  # put back as found
