"""What a wheel carries: every package of the source tree, the studies inside jaxheads.

CI builds the wheel and installs it alone (.ci/run); these tests check the list it is
built from, which setuptools takes as given: a package missing from it would be left out
of the wheel and fail only for users who install one.
"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setuptools_table():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_the_wheel_lists_every_package_of_the_source_tree():
    packages = sorted(
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "jaxheads").rglob("__init__.py")
    )
    listed = _setuptools_table()["packages"]
    assert sorted(set(listed) - {"jaxheads.experiments"}) == packages
    assert len(listed) == len(set(listed))


def test_the_studies_are_installed_inside_jaxheads_not_as_a_top_level_package():
    table = _setuptools_table()
    assert table["package-dir"] == {"jaxheads.experiments": "experiments"}
    assert "jaxheads.experiments" in table["packages"]
    assert (ROOT / "experiments" / "__init__.py").is_file()
    assert not any(name.split(".")[0] != "jaxheads" for name in table["packages"])
