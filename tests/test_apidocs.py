"""The API reference (docs/api) documents every public module and every public name.

A module's public names are its ``__all__``; a module without one exports what it
defines (functions, classes, constants) and, for a package, what its ``__init__``
imports from inside itself. The first test reads the .rst sources only; the second
builds the reference with warnings as errors and looks every name up in Sphinx's
inventory (``objects.inv``): the ``test`` extra brings Sphinx, and without it these tests
fail rather than skip. This build is the one CI makes of the reference.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pathlib
import pkgutil
import re
import subprocess
import sys
import tomllib
import zlib

import pytest

import jaxheads

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "api"


def _public_modules() -> list[str]:
    """``jaxheads`` and every module or package directly under it not named ``_...``."""
    names = [m.name for m in pkgutil.iter_modules(jaxheads.__path__) if not m.name.startswith("_")]
    return ["jaxheads"] + [f"jaxheads.{name}" for name in sorted(names)]


def _public_names(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        return list(module.__all__)
    is_package = hasattr(module, "__path__")
    names: list[str] = []
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
        elif isinstance(node, ast.ImportFrom) and is_package:
            inside = node.level > 0 or (node.module or "").startswith(module_name + ".")
            if inside:
                names += [alias.asname or alias.name for alias in node.names]
    return [name for name in names if not name.startswith("_")]


def _automodules() -> set[str]:
    text = "\n".join(p.read_text() for p in DOCS.glob("*.rst"))
    return set(re.findall(r"^\.\. automodule:: (\S+)", text, flags=re.M))


def test_the_test_extra_brings_what_the_reference_build_needs():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]
    assert set(extras["docs"]) <= set(extras["test"]), "the test extra lacks the docs extra"


def test_every_public_module_has_a_page():
    missing = sorted(set(_public_modules()) - _automodules())
    assert not missing, f"no automodule directive in docs/api for {missing}"


def _read_inventory(path: pathlib.Path) -> set[str]:
    """The object names in a Sphinx ``objects.inv`` (version 2: four header lines, zlib)."""
    data = path.read_bytes()
    for _ in range(4):
        data = data[data.index(b"\n") + 1 :]
    names = set()
    for line in zlib.decompress(data).decode().splitlines():
        name, role = line.split(" ", 2)[:2]
        if role.startswith("py:"):
            names.add(name)
    return names


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> pathlib.Path:
    """The HTML reference, built with warnings as errors (``-W --keep-going``)."""
    if importlib.util.find_spec("sphinx") is None:
        pytest.fail("Sphinx is missing; the test extra brings it: pip install -e '.[test]'")
    out = tmp_path_factory.mktemp("apidocs-html")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    done = subprocess.run(
        [*cmd, "-d", str(out / ".doctrees"), str(DOCS), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"the reference does not build cleanly:\n{done.stderr}"
    return out


@pytest.fixture(scope="module")
def inventory(built) -> set[str]:
    return _read_inventory(built / "objects.inv")


def _documented_elsewhere(module_name: str, name: str, inventory: set[str]) -> bool:
    """The package's re-exports are documented in the module they come from."""
    obj = getattr(importlib.import_module(module_name), name)
    for entry in inventory:
        home, _, last = entry.rpartition(".")
        if last == name and home in sys.modules and getattr(sys.modules[home], name, None) is obj:
            return True
    return False


@pytest.mark.slow
@pytest.mark.parametrize("module_name", _public_modules())
def test_every_public_name_is_in_the_built_reference(module_name, inventory):
    assert module_name in inventory, f"{module_name} has no page"
    missing = [
        name
        for name in _public_names(module_name)
        if f"{module_name}.{name}" not in inventory
        and not (module_name == "jaxheads" and _documented_elsewhere(module_name, name, inventory))
    ]
    assert not missing, f"{module_name} exports names the reference lacks: {missing}"


@pytest.mark.slow
def test_the_cli_page_has_every_subcommands_help(built):
    from jaxheads.cli import build_parser

    page = (built / "cli.html").read_text()
    (subcommands,) = [
        action.choices for action in build_parser()._actions if isinstance(action.choices, dict)
    ]
    assert subcommands
    for name in subcommands:
        assert f"usage: jaxheads {name}" in page, f"docs/api/cli.rst lacks jaxheads {name} --help"
