"""Starting a run from other weights (``--init``) and keeping layers fixed (``--freeze``).

Weights are matched **by name**: every parameter (and batch-norm statistic) of
the new model whose path (``backbone/stage1_1_conv/kernel``) also exists in the
source is copied from it; a path whose shapes differ is a `ValueError` naming
the layer and both shapes, raised before anything is written. Paths the source
lacks (a new head) keep their fresh initialisation. A source that shares no
path with the model is refused, since it is certainly the wrong file.

A *layer* here is a group of parameters under one parent path
(``backbone/stage1_1_conv``), in the model's order; ``--freeze N`` fixes the
first N of them (`trainable_mask`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable

import jax
import numpy as np

from jaxheads._checks import fail

SEP = "/"


@dataclasses.dataclass(frozen=True)
class Weights:
    """Weights to start from.

    Attributes:
      params, state: nested dicts of host arrays.
      source: where they came from (a path and what it is).
      sha256: a checksum of their values (names, shapes, dtypes and bytes).
      step: the checkpoint's step, for work directories.
    """

    params: dict
    state: dict
    source: str
    sha256: str
    step: int | None = None


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


def _unflatten_like(template, flat: dict[str, np.ndarray]):
    def walk(prefix, node):
        if isinstance(node, dict):
            return {k: walk(f"{prefix}{SEP}{k}" if prefix else str(k), v) for k, v in node.items()}
        return flat[prefix]

    return walk("", template)


def checksum(params, state) -> str:
    """SHA-256 of every array's path, shape, dtype and bytes, in path order."""
    h = hashlib.sha256()
    for name, tree in (("params", params), ("state", state)):
        for path, a in sorted(flatten(jax.device_get(tree)).items()):
            a = np.ascontiguousarray(a)
            h.update(f"{name}/{path}:{a.shape}:{a.dtype}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def transfer(params, state, weights: Weights, *, what: str = "--init"):
    """``(params, state, report)``: the model's params and state with ``weights`` copied in.

    Args:
      params, state: the freshly initialised model's (nested dicts).
      weights: the source.
      what: the option named in errors.

    Returns:
      The new params and state, and ``{"copied": [...layer paths], "initialised":
      [...layer paths]}``.

    Raises:
      ValueError: a shared path with another shape (the first, in the model's
        order, with both shapes), or no shared path at all.
    """
    _check_layers_whole(params, weights, what)
    out = []
    copied, fresh = [], []
    for tree, source in ((params, weights.params), (state, weights.state)):
        flat, src = flatten(tree), flatten(source)
        for path, a in flat.items():
            layer = path.rsplit(SEP, 1)[0]
            if path not in src:
                fresh.append(layer)
                continue
            b = src[path]
            if tuple(np.shape(a)) != tuple(np.shape(b)):
                fail(what, f"layer {layer!r} of {weights.source} to have the model's shape "
                     f"{tuple(np.shape(a))} for {path.rsplit(SEP, 1)[1]!r}",
                     f"shape {tuple(np.shape(b))}")
            flat[path] = np.asarray(b, dtype=np.asarray(a).dtype)
            copied.append(layer)
        out.append(_unflatten_like(tree, flat))
    copied = list(dict.fromkeys(copied))
    fresh = [p for p in dict.fromkeys(fresh) if p not in copied]
    if not copied:
        example = next(iter(flatten(params)), "")
        fail(what, f"weights sharing layer names with the model (e.g. {example!r})",
             f"none in {weights.source} (its layers: {list(flatten(weights.params))[:3]} ...)")
    return out[0], out[1], {"copied": copied, "initialised": fresh}


def _leaves_by_layer(tree) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in flatten(tree):
        layer, leaf = path.rsplit(SEP, 1) if SEP in path else ("", path)
        out.setdefault(layer, set()).add(leaf)
    return out


def _check_layers_whole(params, weights: Weights, what: str) -> None:
    """A layer found in both must have the same parameters (a conv with a bias is not one
    without): half a layer copied is a different model, never what was meant."""
    mine, theirs = _leaves_by_layer(params), _leaves_by_layer(weights.params)
    for layer, leaves in mine.items():
        if layer in theirs and theirs[layer] != leaves:
            fail(what, f"layer {layer!r} of {weights.source} to hold the model's parameters "
                 f"{sorted(leaves)}", f"{sorted(theirs[layer])}")


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
    return _unflatten_like(params, flat)


def frozen_state_mask(state, frozen_layers: set[str]):
    """True for the state leaves (batch-norm statistics) of ``frozen_layers``."""
    flat = {p: p.rsplit(SEP, 1)[0] in frozen_layers for p in flatten(state)}
    return _unflatten_like(state, flat)


def load_workdir(path: str, model_init: Callable[[dict], tuple]) -> Weights:
    """The newest readable checkpoint of a jaxheads work directory.

    Args:
      path: the work directory (with ``config.json`` and ``checkpoints/``).
      model_init: ``config -> (task, run_config)``, rebuilding the run that
        wrote the directory from its ``config.json`` (for the template).
    """
    from jaxheads.train.loop import restore_params

    config_path = os.path.join(path, "config.json")
    try:
        with open(config_path) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        fail("--init", f"a jaxheads work directory with a readable {config_path}", str(err))
    task, cfg = model_init(config)
    params, state, step = restore_params(path, task, cfg)
    params, state = jax.device_get((params, state))
    return Weights(params, state, f"{os.path.abspath(path)} (step {step})",
                   checksum(params, state), step)
