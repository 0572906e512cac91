"""What autodoc shows of a class: the signature a user calls, each field once.

Three things autodoc cannot see on its own in this code base:

* ``typing.NamedTuple`` builds ``__new__`` in a namespace of its own, so under
  ``from __future__ import annotations`` its field types stay bare strings (``Head``,
  which two modules define); the class's own type hints name the right class.
* Flax NNX modules are built through their metaclass's ``__call__(*args, **kwargs)``,
  which autodoc would show instead of the hyperparameters of ``__init__``.
* A default whose repr is not Python (``<factory>``, ``<function ...>``, Flax's parent
  sentinel) makes Sphinx give up parsing the signature and print it raw; it is shown as
  ``...``.

And the dataclasses and NamedTuples describe their fields in their docstring's
``Attributes:`` section (napoleon makes each an entry), so autodoc's own listing of
them as undocumented members is left out.
"""

from __future__ import annotations

import inspect
import re
import typing

from sphinx.util.inspect import stringify_signature


def _resolved(sig: inspect.Signature, hints: dict) -> inspect.Signature:
    params = [
        param.replace(annotation=hints.get(name, param.annotation))
        for name, param in sig.parameters.items()
    ]
    return sig.replace(parameters=params, return_annotation=inspect.Signature.empty)


def _class_signature(cls: type) -> inspect.Signature | None:
    try:
        if issubclass(cls, tuple) and hasattr(cls, "_fields"):
            return _resolved(inspect.signature(cls), typing.get_type_hints(cls))
        if type(cls).__call__ is not type.__call__ and "__init__" in vars(cls):
            init = cls.__init__
            sig = inspect.signature(init)
            sig = sig.replace(parameters=list(sig.parameters.values())[1:])  # self
            return _resolved(sig, typing.get_type_hints(init))
    except (NameError, TypeError, ValueError):
        return None
    return None


def _parsable_defaults(signature: str) -> str:
    """``= <...>`` defaults, nested brackets included, replaced by ``= ...``."""
    out, i = [], 0
    for match in re.finditer(r"= <", signature):
        if match.start() < i:
            continue
        depth, j = 0, match.end() - 1
        while j < len(signature):
            depth += {"<": 1, ">": -1}.get(signature[j], 0)
            if depth == 0:
                break
            j += 1
        out += [signature[i : match.start()], "= ..."]
        i = j + 1
    return "".join(out) + signature[i:]


def process_signature(app, what, name, obj, options, signature, return_annotation):
    new = signature
    if what == "class" and isinstance(obj, type):
        sig = _class_signature(obj)
        if sig is not None:
            new = stringify_signature(sig, unqualified_typehints=True)
    if new:
        new = _parsable_defaults(new)
    if new == signature:
        return None
    return new, return_annotation


def skip_class_fields(app, what, name, obj, skip, options):
    """A class's data fields are left to its docstring; methods and properties stay.

    A function stored in a class body as a field's default (named otherwise than the
    field, such as ``kernel_init = glorot_uniform``) is a field too.
    """
    if what != "class":
        return None
    if inspect.isfunction(obj):
        return True if obj.__name__ != name else None
    if not (callable(obj) or isinstance(obj, property)):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-signature", process_signature)
    app.connect("autodoc-skip-member", skip_class_fields)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
