"""Combinators: a whole model is itself one `Layer`.

`graph` wires named nodes, each fed by earlier nodes (darknet's ``[route]``
and Keras' functional API); `serial` is the graph in which each node feeds the
next (Keras ``Sequential``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax

from jaxheads._checks import fail
from jaxheads.layers.base import Layer

#: The name by which a `graph`'s nodes refer to the graph's input.
INPUT = "input"


class Node(NamedTuple):
    """One node of a `graph`: a named layer and the names of the nodes it reads.

    ``inputs`` is one name, several names (the layer then receives a list of
    arrays, e.g. `Concatenate`), or ``None`` for the previous node. The model's
    input is called ``"input"``.
    """

    name: str
    layer: Layer
    inputs: str | tuple[str, ...] | None = None


def unique_names(layers: Sequence[Layer]) -> list[str]:
    """Keras-style unique names: ``conv2d, conv2d_1, conv2d_2, ...``."""
    seen: dict[str, int] = {}
    names = []
    for layer in layers:
        n = seen.get(layer.name, 0)
        names.append(layer.name if n == 0 else f"{layer.name}_{n}")
        seen[layer.name] = n + 1
    if len(set(names)) != len(names):
        fail("serial", "unique layer names", names)
    return names


def _resolve(nodes: Sequence) -> tuple[Node, ...]:
    """Fills in default inputs and checks that every input is an earlier node."""
    resolved, known, previous = [], {INPUT}, INPUT
    for raw in nodes:
        node = raw if isinstance(raw, Node) else Node(*raw)
        if node.name in known:
            fail("graph", f"a unique node name (not {INPUT!r})", repr(node.name))
        inputs = previous if node.inputs is None else node.inputs
        inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        for source in inputs:
            if source not in known:
                fail(
                    "graph",
                    f"node {node.name!r} to read earlier nodes {sorted(known)}",
                    repr(source),
                )
        resolved.append(Node(node.name, node.layer, inputs if len(inputs) > 1 else inputs[0]))
        known.add(node.name)
        previous = node.name
    return tuple(resolved)


def _gather(values: dict, inputs):
    return values[inputs] if isinstance(inputs, str) else [values[i] for i in inputs]


def init_nodes(nodes: tuple[Node, ...], key, input_shape):
    """Runs every node's init in order: returns ({name: output_shape}, params, state)."""
    shapes, params, state = {INPUT: input_shape}, {}, {}
    keys = jax.random.split(key, max(len(nodes), 1))
    for node, k in zip(nodes, keys, strict=False):
        shape, p, s = node.layer.init(k, _gather(shapes, node.inputs))
        shapes[node.name] = shape
        if p:
            params[node.name] = p
        if s:
            state[node.name] = s
    return shapes, params, state


def graph(
    nodes: Sequence[Node | tuple],
    *,
    outputs: str | Sequence[str] | None = None,
    name: str = "model",
    input_shape: tuple | None = None,
) -> Layer:
    """A directed acyclic graph of layers as one `Layer`.

    Args:
      nodes: `Node`s (or ``(name, layer[, inputs])`` tuples) in execution order.
      outputs: the node(s) whose values the model returns; the last node by
        default. Several names return a tuple.
      name: the model's name.
      input_shape: the input's shape (batch first) when the model has one, as a
        Keras model does; only recorded (`Layer.config`), for
        `jaxheads.interop.to_keras`.

    Params and state are dicts keyed by node name (nodes without any are left
    out). Dropout keys are derived per node with `jax.random.fold_in`.
    """
    nodes = _resolve(nodes)
    if not nodes:
        fail("graph", "at least one node", "none")
    outputs = nodes[-1].name if outputs is None else outputs
    names = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    for out in names:
        if out not in {n.name for n in nodes}:
            fail("graph", "outputs naming nodes of the graph", repr(out))

    def pick(values):
        return values[outputs] if isinstance(outputs, str) else tuple(values[o] for o in names)

    def init(key, input_shape):
        shapes, params, state = init_nodes(nodes, key, input_shape)
        return pick(shapes), params, state

    def apply(params, state, x, *, train=False, key=None, axis_name=None):
        values, new_state = {INPUT: x}, {}
        for i, node in enumerate(nodes):
            k = None if key is None else jax.random.fold_in(key, i)
            y, s = node.layer.apply(
                params.get(node.name, {}),
                state.get(node.name, {}),
                _gather(values, node.inputs),
                train=train,
                key=k,
                axis_name=axis_name,
            )
            values[node.name] = y
            if s:
                new_state[node.name] = s
        return pick(values), new_state

    config = (("outputs", outputs if isinstance(outputs, str) else names),)
    if input_shape is not None:
        config += (("input_shape", tuple(input_shape)),)
    return Layer(init, apply, name, "Functional", nodes, config)


def serial(*layers: Layer, name: str = "sequential") -> Layer:
    """Keras ``Sequential``: each layer feeds the next. Names are made unique Keras-style."""
    nodes = [Node(n, layer) for n, layer in zip(unique_names(layers), layers, strict=True)]
    model = graph(nodes, name=name)
    return model._replace(kind="Sequential")
