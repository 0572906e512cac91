"""Keras-style model summaries for layers, models and any Flax NNX module.

Parameter counts follow Keras: a layer's ``Param #`` counts its params and its
state (batch norm's running mean and variance); the totals split them into
trainable (params) and non-trainable (state). Everything is computed
abstractly, so a 270M-parameter model costs no memory.
"""

from __future__ import annotations

import sys

import jax

from jaxheads._checks import fail
from jaxheads.layers.base import Layer, abstract_init, count, snake_case
from jaxheads.layers.combinators import INPUT, init_nodes


def _fmt_shape(shape) -> str:
    if shape and isinstance(shape[0], (tuple, list)):
        return "[" + ", ".join(_fmt_shape(s) for s in shape) + "]"
    return (
        "("
        + ", ".join("None" if d is None else str(d) for d in shape)
        + (",)" if len(shape) == 1 else ")")
    )


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
        rows.append(
            (f"{prefix}{node.name} ({node.layer.kind})", _fmt_shape(shapes[node.name]), n, wiring)
        )
    return rows


def _layer_rows(model: Layer, input_shape, prefix: str, expand_nested: bool):
    """Rows, param counts and itemsize of a pure layer with its input shape."""
    out_shape, params, state = abstract_init(model, tuple(input_shape))
    if model.nodes:
        rows = _node_rows(model, tuple(input_shape), prefix, expand_nested)
    else:
        name = prefix.rstrip("/") or model.name
        rows = [(f"{name} ({model.kind})", _fmt_shape(out_shape), count(params) + count(state), "")]
    itemsize = max({leaf.dtype.itemsize for leaf in jax.tree.leaves((params, state))} or {4})
    return rows, count(params), count(state), itemsize


def _nnx_rows(module, expand_nested: bool):
    """One row per NNX module that holds variables of its own, Flax's and jaxheads' alike.

    A `jaxheads.nnx.LayerModule` knows its input shape, so its rows carry
    output shapes (and its nested layers with ``expand_nested``); other modules
    are traced by nothing, so their output shape is ``?``.
    """
    from flax import nnx

    from jaxheads.nnx import LayerModule

    def is_stat(path, x):
        return isinstance(x, nnx.Variable) and not isinstance(x, (nnx.Param, nnx.RngState))

    def counts(m):
        params, stats = nnx.state(m, nnx.Param), nnx.state(m, is_stat)
        return count(params), count(stats), jax.tree.leaves((params, stats))

    rows, trainable, non_trainable, leaves = [], 0, 0, []
    inside_wrapper = set()
    for path, m in nnx.iter_modules(module):
        if any(path[: len(p)] == p for p in inside_wrapper):
            continue
        name = "/".join(str(p) for p in path) or snake_case(type(m).__name__)
        if isinstance(m, LayerModule):
            inside_wrapper.add(path)
            prefix = f"{name}/" if expand_nested or not m.layer.nodes else ""
            if m.layer.nodes and not expand_nested:
                p, s, _ = counts(m)
                rows.append((f"{name} ({m.layer.kind})", _fmt_shape(m.output_shape), p + s, ""))
            else:
                rows += _layer_rows(m.layer, m.input_shape, prefix, expand_nested)[0]
            p, s, lv = counts(m)
            trainable, non_trainable, leaves = trainable + p, non_trainable + s, leaves + lv
            continue
        p, s, lv = counts(m)
        for _, child in nnx.iter_children(m):
            if isinstance(child, nnx.Module):
                cp, cs, _ = counts(child)
                p, s = p - cp, s - cs
        children = any(isinstance(c, nnx.Module) for _, c in nnx.iter_children(m))
        if children and not p + s:
            continue
        rows.append((f"{name} ({type(m).__name__})", "?", p + s, ""))
        trainable, non_trainable = trainable + p, non_trainable + s
        leaves += [leaf for leaf in lv if leaf is not None]
    itemsize = max({leaf.dtype.itemsize for leaf in leaves} or {4})
    return rows, trainable, non_trainable, itemsize


def summary(model, input_shape=None, *, expand_nested: bool = False, line_length: int = 98) -> str:
    """A Keras-style summary table of a layer, a model or any Flax NNX module.

    Args:
      model: a `jaxheads.layers.Layer` (then ``input_shape`` is required), a
        `jaxheads.nnx.LayerModule` (which knows its input shape), or any
        `flax.nnx.Module`: one row per module holding variables, jaxheads' and
        Flax's layers alike (their output shape is ``?``: nothing is run).
      input_shape: input shape with the batch first, ``None`` allowed there.
      expand_nested: list the layers inside nested models instead of one row each.
      line_length: total width of the table.

    Returns:
      The table as a string, ending with the ``Total params``, ``Trainable
      params`` (`nnx.Param`) and ``Non-trainable params`` (running statistics)
      lines.

    >>> from jaxheads import layers
    >>> print(summary(layers.Dense(4096), (None, 7, 7, 1024)).splitlines()[-3])
    Total params: 4,198,400 (16.02 MB)
    """
    if isinstance(model, Layer):
        if input_shape is None:
            fail("summary", "an input_shape for a Layer, e.g. (None, 224, 224, 3)", None)
        rows, trainable, non_trainable, nbytes = _layer_rows(model, input_shape, "", expand_nested)
        title = model.name
    elif _is_nnx_module(model):
        layer, known = getattr(model, "layer", None), getattr(model, "input_shape", None)
        if isinstance(layer, Layer) and known is not None:  # a LayerModule
            shape = known if input_shape is None else input_shape
            rows, trainable, non_trainable, nbytes = _layer_rows(layer, shape, "", expand_nested)
            title = layer.name
        else:
            rows, trainable, non_trainable, nbytes = _nnx_rows(model, expand_nested)
            title = type(model).__name__
    else:
        fail("summary", "a jaxheads Layer or a Flax NNX module", type(model).__name__)
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
    lines = [f'Model: "{title}"', "_" * width, line(head), "=" * width]
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


def _is_nnx_module(model) -> bool:
    # Flax is imported only when a module is summarised: layers need no Flax.
    flax_nnx = sys.modules.get("flax.nnx")
    return flax_nnx is not None and isinstance(model, flax_nnx.Module)
