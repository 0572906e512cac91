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
