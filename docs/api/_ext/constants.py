"""``.. jaxheads-constants:: MODULE``: the constants a module exports.

autodoc documents a module's functions and classes from its ``__all__``, but a constant
only where its assignment carries a ``#:`` comment in that very module: the constants a
package re-exports from its submodules, and those without a comment, would be left out.
This directive lists each of those as an ``autodata`` entry under the module's own name,
with the ``#:`` comment of the module that defines it, and its value where that is short.
A module without ``__all__`` exports the public names it assigns.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

# Longer values (dicts of cfg names, tables of activations) are read in the source.
MAX_VALUE_CHARS = 60


def exported_constants(module_name: str) -> list[str]:
    """The public names of a module whose values are data, not code or modules."""
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        names = list(module.__all__)
    else:
        names = []
        for node in ast.parse(inspect.getsource(module)).body:
            if isinstance(node, ast.Assign):
                names += [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.append(node.target.id)
        names = [name for name in names if not name.startswith("_")]
    return [
        name
        for name in names
        if not (
            inspect.ismodule(value := getattr(module, name))
            or inspect.isclass(value)
            or callable(value)
        )
    ]


def _undocumented_by_autodoc(module_name: str, names: list[str]) -> list[str]:
    """Leave out the constants with a ``#:`` comment in the module itself: autodoc has them."""
    own = ModuleAnalyzer.for_module(module_name).find_attr_docs()
    return [name for name in names if ("", name) not in own]


def _comment(name: str, value: object) -> list[str]:
    """The ``#:`` comment of ``name`` in the jaxheads module that assigns it, if any."""
    for module_name, module in sorted(sys.modules.items()):
        if not module_name.startswith("jaxheads") or getattr(module, name, None) is not value:
            continue
        try:
            docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
        except Exception:  # noqa: BLE001 -- a module without source has no comments
            continue
        if ("", name) in docs:
            return [line for line in docs[("", name)] if line]
    return []


class JaxheadsConstants(SphinxDirective):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module_name = self.arguments[0]
        module = importlib.import_module(module_name)
        lines: list[str] = []
        for name in _undocumented_by_autodoc(module_name, exported_constants(module_name)):
            value = getattr(module, name)
            lines.append(f".. autodata:: {module_name}.{name}")
            if len(repr(value)) > MAX_VALUE_CHARS:
                lines.append("   :no-value:")
            lines.append("")
            lines += ["   " + line for line in _comment(name, value)]
            lines.append("")
        container = nodes.section()
        container.document = self.state.document
        source = f"constants of {module_name}"
        nested_parse_with_titles(self.state, StringList(lines, source=source), container)
        return container.children


def _drop_type_docstring(app, what, name, obj, options, lines):
    """A constant's docstring is not its type's (``dict()`` -> new empty dictionary...)."""
    type_doc = inspect.getdoc(type(obj))
    if what == "data" and type_doc and lines and lines[0].strip() == type_doc.splitlines()[0]:
        lines.clear()


def setup(app):
    app.add_directive("jaxheads-constants", JaxheadsConstants)
    # Before napoleon (priority 500) rewrites the lines.
    app.connect("autodoc-process-docstring", _drop_type_docstring, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
