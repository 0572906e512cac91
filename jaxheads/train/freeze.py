"""Layers by name, and keeping the first of them fixed (``--freeze``).

A *layer* is a group of parameters under one parent path
(``backbone/stage1_1_conv``), in the model's order; ``--freeze N`` fixes the
first N of them (`trainable_mask`), their batch-norm statistics too
(`frozen_state_mask`).
"""

from __future__ import annotations

import numpy as np

from jaxheads._checks import fail

SEP = "/"


def flatten(tree) -> dict[str, np.ndarray]:
    """``{"a/b/kernel": array}`` for a nested dict of arrays, in the tree's order."""
    out = {}

    def walk(prefix, node):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}{SEP}{k}" if prefix else str(k), v)
        elif node is not None:
            out[prefix] = node

    walk("", tree)
    return out


def unflatten_like(template, flat: dict[str, np.ndarray]):
    """A nested dict shaped as ``template`` holding ``flat``'s values (`flatten`'s inverse)."""

    def walk(prefix, node):
        if isinstance(node, dict):
            return {k: walk(f"{prefix}{SEP}{k}" if prefix else str(k), v) for k, v in node.items()}
        return flat[prefix]

    return walk("", template)


def layer_paths(params) -> list[str]:
    """The model's layers (parents of parameter leaves), in order."""
    return list(dict.fromkeys(p.rsplit(SEP, 1)[0] for p in flatten(params)))


def trainable_mask(params, freeze: int):
    """A pytree of bools like ``params``: False for the leaves of the first ``freeze`` layers."""
    layers = layer_paths(params)
    if not isinstance(freeze, int) or isinstance(freeze, bool) or not 0 <= freeze <= len(layers):
        fail("--freeze", f"a number of layers in 0..{len(layers)}", repr(freeze))
    frozen = set(layers[:freeze])
    flat = {p: p.rsplit(SEP, 1)[0] not in frozen for p in flatten(params)}
    return unflatten_like(params, flat)


def frozen_state_mask(state, frozen_layers: set[str]):
    """True for the state leaves (batch-norm statistics) of ``frozen_layers``."""
    flat = {p: p.rsplit(SEP, 1)[0] in frozen_layers for p in flatten(state)}
    return unflatten_like(state, flat)
