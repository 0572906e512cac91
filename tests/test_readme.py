"""The README's two commands are the ones CI and newcomers actually run."""

import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)


def _test_command() -> str:
    test_commands = [c for c in _commands() if "pytest" in c]
    assert test_commands, "README.md shows no test command"
    return test_commands[0]


def _ci_test_line() -> str:
    """The line of .ci/run that runs the README's test command."""
    command = _test_command()
    lines = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if command in ln]
    assert len(lines) == 1, f".ci/run runs {command!r} on {len(lines)} lines, not one"
    return lines[0]


def test_readme_test_command_is_what_ci_runs():
    assert _ci_test_line().startswith(_test_command())


def _stub(directory: pathlib.Path, name: str, status: int) -> None:
    """An executable ``name`` that logs its call and exits with ``status``."""
    path = directory / name
    path.write_text(f'#!/bin/sh\necho {name} >> "$STUB_LOG"\nexit {status}\n')
    path.chmod(0o755)


@pytest.mark.parametrize(
    "pip_status, python_status, calls",
    [(3, 0, ["pip"]), (0, 5, ["pip", "python"]), (0, 0, ["pip", "python"])],
    ids=["install-fails", "suite-fails", "both-pass"],
)
def test_ci_fails_when_either_step_of_the_test_command_fails(
    tmp_path, pip_status, python_status, calls
):
    # `set -e` does not stop at a failure left of `&&`: the line in .ci/run must end the
    # script itself, with the failing step's status, and never run the suite after a
    # failed install.
    _stub(tmp_path, "pip", pip_status)
    _stub(tmp_path, "python", python_status)
    log = tmp_path / "calls"
    script = f"set -euo pipefail\n{_ci_test_line()}\necho after the test command\n"
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env={**env, "STUB_LOG": str(log)},
        capture_output=True,
        text=True,
    )
    assert log.read_text().split() == calls
    expected = pip_status or python_status
    assert done.returncode == expected, done.stderr
    assert ("after the test command" in done.stdout) == (expected == 0)


def test_readme_main_command_installs_and_runs():
    main = _commands()[0]
    assert main.startswith("pip install -e .") and "jaxheads " in main


def _local_links(path: pathlib.Path) -> list[pathlib.Path]:
    """The files a Markdown document links to or shows, outside the web."""
    targets = re.findall(r"\]\(([^)\s]+)\)", path.read_text())
    return [
        (path.parent / t.split("#")[0]).resolve()
        for t in targets
        if not re.match(r"[a-z]+:", t) and not t.startswith("#")
    ]


def test_readme_is_a_front_page_that_reaches_every_page_of_docs():
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 250
    pages = {*ROOT.glob("docs/*.md"), *ROOT.glob("docs/studies/*.md")}
    seen, todo = set(), [readme]
    while todo:
        doc = todo.pop()
        for target in _local_links(doc):
            assert target.exists(), f"{doc.relative_to(ROOT)} links to a missing {target}"
            if target.suffix == ".md" and target not in seen and target in pages:
                seen.add(target)
                todo.append(target)
    assert pages <= seen, f"not reachable from README.md: {sorted(pages - seen)}"
