"""Keras-style model summaries for layers, models and NNX modules.

Parameter counts follow Keras: a layer's ``Param #`` counts its params and its
state (batch norm's running mean and variance); the totals split them into
trainable (params) and non-trainable (state). Everything is computed
abstractly, so a 270M-parameter model costs no memory.
"""

from __future__ import annotations

import jax

from jaxheads._checks import fail
from jaxheads.layers.base import Layer, abstract_init, count
from jaxheads.layers.combinators import INPUT, init_nodes


def _fmt_shape(shape) -> str:
    if shape and isinstance(shape[0], (tuple, list)):
        return "[" + ", ".join(_fmt_shape(s) for s in shape) + "]"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (
        ",)" if len(shape) == 1 else ")")


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"


def _node_rows(layer: Layer, input_shape, prefix: str, expand_nested: bool) -> list[tuple]:
    box = {}

    def run(key):
        shapes, params, state = init_nodes(layer.nodes, key, input_shape)
        box["shapes"] = shapes
        return params, state

    params, state = jax.eval_shape(run, jax.random.key(0))
    shapes = box["shapes"]
    rows = []
    for i, node in enumerate(layer.nodes):
        inputs = (node.inputs,) if isinstance(node.inputs, str) else node.inputs
        previous = INPUT if i == 0 else layer.nodes[i - 1].name
        in_shape = shapes[inputs[0]] if len(inputs) == 1 else [shapes[n] for n in inputs]
        if expand_nested and node.layer.nodes:
            rows += _node_rows(node.layer, in_shape, f"{prefix}{node.name}/", expand_nested)
            continue
        wiring = "" if inputs == (previous,) else ", ".join(inputs)
        n = count(params.get(node.name, {})) + count(state.get(node.name, {}))
        rows.append((f"{prefix}{node.name} ({node.layer.kind})", _fmt_shape(shapes[node.name]),
                     n, wiring))
    return rows


def summary(model, input_shape=None, *, expand_nested: bool = False,
            line_length: int = 98) -> str:
    """A Keras-style summary table of a layer, a model or a `jaxheads.nnx` module.

    Args:
      model: a `jaxheads.layers.Layer` (then ``input_shape`` is required) or a
        `jaxheads.nnx.LayerModule` (which knows its input shape).
      input_shape: input shape with the batch first, ``None`` allowed there.
      expand_nested: list the layers inside nested models instead of one row each.
      line_length: total width of the table.

    Returns:
      The table as a string, ending with the ``Total params``, ``Trainable
      params`` and ``Non-trainable params`` lines.

    >>> from jaxheads import layers
    >>> print(summary(layers.Dense(4096), (None, 7, 7, 1024)).splitlines()[-3])
    Total params: 4,198,400 (16.02 MB)
    """
    if not isinstance(model, Layer):
        layer = getattr(model, "layer", None)
        if not isinstance(layer, Layer):
            fail("summary", "a jaxheads Layer or jaxheads.nnx module", type(model).__name__)
        input_shape = model.input_shape if input_shape is None else input_shape
        model = layer
    if input_shape is None:
        fail("summary", "an input_shape for a Layer, e.g. (None, 224, 224, 3)", None)
    out_shape, params, state = abstract_init(model, tuple(input_shape))
    if model.nodes:
        rows = _node_rows(model, tuple(input_shape), "", expand_nested)
    else:
        rows = [(f"{model.name} ({model.kind})", _fmt_shape(out_shape),
                 count(params) + count(state), "")]
    wired = any(r[3] for r in rows)
    widths = [0.40, 0.28, 0.14, 0.18] if wired else [0.47, 0.33, 0.20]
    cols = [max(12, int(line_length * w)) for w in widths]
    head = ["Layer (type)", "Output Shape", "Param #", "Connected to"][: len(cols)]

    def line(cells):
        out = []
        for i, (cell, width) in enumerate(zip(cells, cols, strict=False)):
            text = str(cell)
            out.append(text.rjust(width - 2) + "  " if i == 2 else text.ljust(width))
        return "".join(out).rstrip()

    width = sum(cols)
    trainable, non_trainable = count(params), count(state)
    itemsize = {leaf.dtype.itemsize for leaf in jax.tree.leaves((params, state))} or {4}
    nbytes = max(itemsize)
    lines = [f'Model: "{model.name}"', "_" * width, line(head), "=" * width]
    for r in rows:
        lines += [line((r[0], r[1], f"{r[2]:,}", r[3])[: len(cols)]), "_" * width]
    lines[-1] = "=" * width
    lines += [
        f"Total params: {trainable + non_trainable:,} "
        f"({_fmt_bytes((trainable + non_trainable) * nbytes)})",
        f"Trainable params: {trainable:,} ({_fmt_bytes(trainable * nbytes)})",
        f"Non-trainable params: {non_trainable:,} ({_fmt_bytes(non_trainable * nbytes)})",
    ]
    return "\n".join(lines)
