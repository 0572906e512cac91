"""Study files: the packaged studies by name, any other one by its path.

A study file is Python with ``get_config(profile) -> StudyConfig`` (and, for a
study that trains nothing, ``run(config, workdir, *, progress)``). The packaged
studies are the files of the source tree's ``experiments/``, which a wheel installs
as ``jaxheads/experiments/``; ``heads`` is the default. A name never reads the
current directory: a file there runs only when given as a path
(``./experiments/heads.py``).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

DEFAULT_STUDY = "heads"


def studies_dir() -> Path:
    """The packaged studies' directory.

    ``jaxheads/experiments/`` in an installed wheel; ``experiments/`` beside the
    ``jaxheads`` package in a source tree (and so in an editable install).
    """
    package = Path(__file__).resolve().parents[1]  # jaxheads/
    installed = package / "experiments"
    return installed if installed.is_dir() else package.parent / "experiments"


def packaged_studies() -> list[str]:
    """The names of the packaged studies (``["fc_head", "heads", "heads_digits", ...]``)."""
    folder = studies_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def is_path(config: str | os.PathLike) -> bool:
    """Whether ``config`` names a file (a separator or a ``.py`` suffix), not a packaged study."""
    text = os.fspath(config)
    return (
        isinstance(config, os.PathLike) or text.endswith(".py") or "/" in text or (os.sep in text)
    )


def study_path(config: str | os.PathLike | None = None) -> Path:
    """The file a ``--config`` value means: a packaged study by name, or a path.

    Raises:
      ValueError: an unknown study name (the known ones listed, the closest suggested).
      FileNotFoundError: a path with no file, named.
    """
    config = DEFAULT_STUDY if config is None else config
    if is_path(config):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(
                f"jaxheads compare: expected a study config file at {path.resolve()}, got none"
            )
        return path
    known = packaged_studies()
    if config not in known:
        close = difflib.get_close_matches(str(config), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"jaxheads compare: expected a packaged study in {known} or a path to a .py "
            f"file, got {config!r}{hint}"
        )
    return studies_dir() / f"{config}.py"


def load_study(config: str | os.PathLike | None = None) -> ModuleType:
    """Loads a study file as a module (see `study_path`).

    It defines ``get_config(profile) -> StudyConfig`` (a training study, run by
    `jaxheads.study.run_study`), or ``run(workdir, *, progress)`` alone (a study that
    trains nothing and writes its own report).
    """
    path = study_path(config)
    name = f"jaxheads_study_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)) and not callable(
        getattr(module, "run", None)
    ):
        raise ValueError(
            f"jaxheads compare: expected get_config(profile) or run(workdir) in {path}, got neither"
        )
    return module
