"""Sphinx configuration of the jaxheads API reference.

Build it from the repository root (what CI runs)::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs/api /tmp/apidocs-html

Every page is written by hand only down to an ``automodule`` directive; what
follows it is read from the docstrings by autodoc, and napoleon turns their
Google-style sections (``Args:``, ``Returns:``, ``Raises:``) into fields. The
small extensions in ``_ext/`` generate the command-line page (``cli_help``),
list the constants a package re-exports (``constants``) and fix what autodoc
cannot see of NamedTuples and Flax modules (``signatures``).
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The checkout being documented, even if another copy of jaxheads is installed.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(pathlib.Path(__file__).parent / "_ext"))

import jaxheads  # noqa: E402

project = "jaxheads"
release = version = jaxheads.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "cli_help",
    "constants",
    "signatures",
]

# The docstrings write `name` for a name in the code, as Markdown does: make it a
# cross-reference to that name where the reference documents it, code otherwise.
default_role = "py:obj"

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# A field's type is in the class signature already; as a field type, a bare annotation
# such as ``Head`` would be looked up by its last name, which two modules share.
napoleon_attr_annotations = False

autodoc_member_order = "bysource"  # __all__'s order, or the file's
autodoc_typehints = "signature"
# Defaults as written in the source (``glorot_uniform``, ``VOC_ANCHORS``), not their repr.
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "undoc-members": True}
# Keras and h5py are imported inside jaxheads.interop's functions only, so the modules
# import without them; the mocks keep it so if that ever changes.
autodoc_mock_imports = ["keras", "h5py"]

html_theme = "furo"
html_title = f"jaxheads {release}"
exclude_patterns = ["_build", "_ext"]
