"""The README's two commands are the ones CI and newcomers actually run."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)


def test_readme_test_command_is_what_ci_runs():
    test_commands = [c for c in _commands() if "pytest" in c]
    assert test_commands, "README.md shows no test command"
    assert test_commands[0] in (ROOT / ".ci" / "run").read_text()


def test_readme_main_command_installs_and_runs():
    main = _commands()[0]
    assert main.startswith("pip install -e .") and "jaxheads " in main
