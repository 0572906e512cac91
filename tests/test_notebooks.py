"""The Colab notebooks in colab/ run headless, cell by cell, without an error.

Each notebook is executed with nbclient in a fresh IPython kernel. The kernel is
described by a kernel spec written to a temporary directory for this interpreter
(``sys.executable``), so it imports the same installed ``jaxheads`` whatever
``python3`` kernels the machine has registered. It runs on CPU
(``JAX_PLATFORMS=cpu``) in a temporary working directory. Training notebooks get
tiny values in their ``parameters``-tagged cell, as papermill would inject them.
"""

from __future__ import annotations

import base64
import os
import pathlib
import re

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

pytestmark = [pytest.mark.slow]

COLAB = pathlib.Path(__file__).resolve().parent.parent / "colab"
KERNEL = "jaxheads-test-python"
CELL_TIMEOUT_S = 300

# train_and_compare.ipynb with about the smallest run that still trains, evaluates and compares
# (two heads, one seed) on two CPU devices, the batch split over both: about 2 minutes.
TINY_TRAINING = {
    "STUDY": "heads",
    "PROFILE": "quick",
    "STEPS": 2,
    "BATCH_SIZE": 4,
    "IMAGE_SIZE": 32,
    "SEEDS": 1,
    "HEADS": "yolov1_fc,gap",
    "WORKDIR": "runs",
    "CPU_DEVICES": 2,
}


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory) -> KernelSpecManager:
    """A kernel spec manager that knows one kernel: this interpreter running ipykernel."""
    kernels = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(path=kernels / KERNEL, overrides={"display_name": "jaxheads tests"})
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def with_parameters(nb, values: dict) -> None:
    """Appends ``NAME = value`` lines to the cell tagged ``parameters``, in place.

    Every name must already be assigned in that cell, so a renamed parameter fails
    here instead of being silently ignored.
    """
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "expected exactly one cell tagged 'parameters'"
    cell = cells[0]
    for name in values:
        assert re.search(rf"^{name}\s*=", cell.source, re.M), f"{name} not in the parameters cell"
    lines = [f"{name} = {value!r}" for name, value in values.items()]
    cell.source += "\n\n# Injected by tests/test_notebooks.py\n" + "\n".join(lines) + "\n"


def execute(name: str, kernel_specs: KernelSpecManager, cwd: pathlib.Path, parameters=None):
    """Runs colab/<name> and returns the executed notebook; raises on the first failing cell."""
    nb = nbformat.read(COLAB / name, as_version=4)
    if parameters:
        with_parameters(nb, parameters)
    km = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
    client = NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=120,
        resources={"metadata": {"path": str(cwd)}},
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "KERAS_BACKEND": "jax"}
    # nbclient leaves a kernel manager it was given running; cleanup_kc shuts it down.
    client.execute(env=env, cleanup_kc=True)
    return nb


def text_of(nb) -> str:
    """Everything the notebook printed or displayed as text."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            for mime in ("text/plain", "text/markdown"):
                parts.append(out.get("data", {}).get(mime, ""))
    return "\n".join(parts)


def pngs_of(nb) -> list[bytes]:
    return [
        base64.b64decode(out["data"]["image/png"])
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]


def test_notebooks_are_stored_without_outputs():
    for path in sorted(COLAB.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (path.name, cell.id)


def test_quickstart(kernel_specs, tmp_path):
    nb = execute("quickstart.ipynb", kernel_specs, tmp_path)
    text = text_of(nb)
    for number in ("4,198,400", "205,524,992", "50,983,561", "211,547,582", "1,506,750"):
        assert number in text, number
    assert "dense == 1x1 conv2d: True" in text
    assert "Flatten + Dense: 16 of 16 outputs changed" in text
    assert "same layout: False" in text


def test_train_and_compare(kernel_specs, tmp_path):
    nb = execute("train_and_compare.ipynb", kernel_specs, tmp_path, TINY_TRAINING)
    text = text_of(nb)
    assert "2 CPU device(s)" in text
    assert "trained 2 steps" in text and "VOC2010 mAP@0.5" in text
    compare = tmp_path / "runs" / "compare"
    assert (compare / "results.json").is_file() and (compare / "results.md").is_file()
    assert "jaxheads compare --config heads --profile quick" in text
    # The table is rendered once (the command's own printout of it is not repeated).
    assert text.count("| head | params |") == 1 and "results: " in text
    plots = sorted(compare.glob("*.png"))
    # The loss curve, then every plot of the comparison.
    assert plots and len(pngs_of(nb)) == 1 + len(plots)
