"""Starting a run from other weights (``--init``).

Weights are matched **by name**: every parameter (and batch-norm statistic) of
the new model whose path (``backbone/stage1_1_conv/kernel``) also exists in the
source is copied from it; a path whose shapes differ is a `ValueError` naming
the layer and both shapes, raised before anything is written. Paths the source
lacks (a new head) keep their fresh initialisation. A source that shares no
path with the model is refused, since it is certainly the wrong file.
Which layers ``--freeze`` keeps fixed: `jaxheads.train.freeze`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import jax
import numpy as np

from jaxheads._checks import fail
from jaxheads.train.freeze import SEP, flatten, unflatten_like


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
                fail(
                    what,
                    f"layer {layer!r} of {weights.source} to have the model's shape "
                    f"{tuple(np.shape(a))} for {path.rsplit(SEP, 1)[1]!r}",
                    f"shape {tuple(np.shape(b))}",
                )
            flat[path] = np.asarray(b, dtype=np.asarray(a).dtype)
            copied.append(layer)
        out.append(unflatten_like(tree, flat))
    copied = list(dict.fromkeys(copied))
    fresh = [p for p in dict.fromkeys(fresh) if p not in copied]
    if not copied:
        example = next(iter(flatten(params)), "")
        fail(
            what,
            f"weights sharing layer names with the model (e.g. {example!r})",
            f"none in {weights.source} (its layers: {list(flatten(weights.params))[:3]} ...)",
        )
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
            fail(
                what,
                f"layer {layer!r} of {weights.source} to hold the model's parameters "
                f"{sorted(leaves)}",
                f"{sorted(theirs[layer])}",
            )


def load_darknet(
    path: str, model: str, *, image_size: int, num_classes: int, wrap: str | None = None
) -> Weights:
    """The layers a darknet ``.weights`` file (full or partial) holds, named as the model's.

    Args:
      path: the file.
      model: a detector of `jaxheads.zoo` built from a darknet cfg (its cfg reads the file).
      image_size, num_classes: the model's, as it will be trained.
      wrap: the node name under which the detector holds the darknet graph's params
        (``[detection]`` models), or None.
    """
    from jaxheads import zoo
    from jaxheads.darknet import load

    darknet = zoo.darknet_names()
    if model not in darknet:
        fail("--init", f"a darknet model (one of {darknet}) for a .weights file", repr(model))
    cfg = zoo.entry(model).cfg
    net = load(cfg, path, image_size=image_size, num_classes=num_classes, partial=True)
    names = [layer.name for layer in net.model.layers[: net.layers_from_file]]
    params = {k: v for k, v in net.params.items() if k in names}
    state = {k: v for k, v in net.state.items() if k in names}
    if wrap:
        params, state = {wrap: params}, ({wrap: state} if state else {})
    params, state = jax.device_get((params, state))
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return Weights(
        params, state, f"{os.path.abspath(path)} (darknet, {net.layers_from_file} layers)", digest
    )


def load_keras(path: str) -> Weights:
    """A Keras 3 model file's weights, by its layers' names (`jaxheads.interop.from_keras`)."""
    from jaxheads.interop import from_keras

    _, params, state = from_keras(path)
    params, state = jax.device_get((params, state))
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return Weights(params, state, f"{os.path.abspath(path)} (Keras)", digest)


def with_init(
    task,
    path: str | None,
    *,
    model: str | None = None,
    image_size: int | None = None,
    num_classes: int | None = None,
):
    """``(task, record)``: ``task`` whose init copies the weights at ``path`` in.

    ``path`` is a jaxheads work directory (its newest checkpoint), a darknet
    ``.weights`` file (full or partial; ``model`` must be a darknet model) or a
    Keras ``.keras``/``.h5`` file. The weights are read and checked now, so that a
    wrong ``--init`` fails before anything is written. ``record`` (None without
    ``path``) says where they came from, their checksum and what was copied.
    """
    import dataclasses

    if path is None:
        return task, None
    if not os.path.exists(path):
        fail(
            "--init",
            "a work directory, a .weights file or a Keras file",
            f"{path!r} (no such file or directory)",
        )
    if not (os.path.isdir(path) or os.path.isfile(path)):
        fail("--init", "a work directory or a regular weights file", f"{path!r} (neither)")
    params, state = task.init(jax.random.key(0))
    if os.path.isdir(path):
        weights = load_workdir(path)
    elif path.endswith(".weights"):
        wrap = None
        if (
            isinstance(params, dict)
            and len(params) == 1
            and not any(k[0].isdigit() for k in params)
        ):
            wrap = next(iter(params))
        weights = load_darknet(
            path, model or "", image_size=image_size, num_classes=num_classes, wrap=wrap
        )
    elif path.endswith((".keras", ".h5")):
        weights = load_keras(path)
    else:
        fail("--init", "a work directory, a darknet .weights file or a .keras/.h5 file", repr(path))
    _, _, report = transfer(params, state, weights)  # raises on a mismatch

    def init(key):
        params, state = task.init(key)
        return transfer(params, state, weights)[:2]

    record = {
        "path": weights.source,
        "sha256": weights.sha256,
        "layers_copied": len(report["copied"]),
        "layers_initialised": report["initialised"],
    }
    return dataclasses.replace(task, init=init), record


def load_workdir(path: str) -> Weights:
    """The newest readable checkpoint of a jaxheads work directory, its run rebuilt from its
    ``config.json`` for the template (`jaxheads.train.restore.restore_checkpoint`)."""
    from jaxheads.train.restore import restore_checkpoint

    _, _, params, state, step = restore_checkpoint(path, op="--init")
    params, state = jax.device_get((params, state))
    return Weights(
        params, state, f"{os.path.abspath(path)} (step {step})", checksum(params, state), step
    )
