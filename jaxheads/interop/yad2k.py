"""YAD2K's converted YOLOv2 (``yolo.h5``) as the darknet YOLOv2 graph.

YAD2K's ``yad2k.py`` turns darknet's ``yolov2.cfg`` and ``.weights`` into a
Keras 2 model and saves it as HDF5: the layer groups ``conv2d_1`` ..
``conv2d_23`` (``kernel:0`` HWIO; ``bias:0`` on the last one only),
``batch_normalization_1`` .. ``_22`` (``gamma:0``, ``beta:0``, ``moving_mean:0``,
``moving_variance:0``, Keras' default epsilon 1e-3), ``leaky_re_lu_N`` (0.1),
``max_pooling2d_N``, and the passthrough as a ``Lambda`` named
``space_to_depth_x2`` computing TensorFlow's ``space_to_depth`` — not darknet's
``[reorg]`` order. `from_yad2k` builds the packaged ``yolov2`` cfg with the
widths read from the file, replaces ``[reorg]`` by `jaxheads.layers.SpaceToDepth`
and the batch-norm epsilon by the file's, and fills in the weights, so the
result computes what the Keras model computes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import jax.numpy as jnp
import numpy as np

from jaxheads import layers as L
from jaxheads._checks import fail
from jaxheads.darknet.build import build_model
from jaxheads.darknet.cfg import cfg_path, read_cfg
from jaxheads.darknet.net import DarknetNet

OP = "from_yad2k"
#: Keras' BatchNormalization default, which YAD2K keeps.
KERAS_BN_EPSILON = 1e-3


def _h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError("from_yad2k needs h5py: pip install 'jaxheads[interop]'") from err
    return h5py


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _suffix(name: str) -> int:
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _layer_weights(group) -> dict[str, np.ndarray]:
    """``{"kernel": array, ...}`` of one Keras 2 layer group."""
    out = {}
    for raw in group.attrs.get("weight_names", []):
        path = _text(raw)
        out[path.split("/")[-1].split(":")[0]] = np.asarray(group[path], np.float32)
    return out


def _read(path):
    """``(layer names, {name: weights}, model_config or None)`` of a Keras 2 HDF5 file."""
    h5py = _h5py()
    where = os.fspath(path)
    try:
        f = h5py.File(where, "r")
    except OSError as err:
        fail(OP, f"{where}: an HDF5 file", str(err).splitlines()[0][:200])
    with f:
        group = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in group.attrs:
            fail(
                OP,
                f"{where}: Keras' HDF5 layout (a 'layer_names' attribute, at the root "
                "or in 'model_weights')",
                f"groups {sorted(f.keys())[:10]}",
            )
        names = [_text(n) for n in group.attrs["layer_names"]]
        weights = {n: _layer_weights(group[n]) for n in names if n in group}
        config = f.attrs.get("model_config")
        config = json.loads(_text(config)) if config is not None else None
    return names, weights, config


def _config_layers(config) -> list[dict]:
    if not config:
        return []
    inner = config.get("config", {})
    return inner.get("layers", []) if isinstance(inner, dict) else []


def _image_size(config, image_size, where):
    if image_size is not None:
        return image_size
    for entry in _config_layers(config):
        if entry.get("class_name") == "InputLayer":
            shape = entry.get("config", {}).get("batch_input_shape") or []
            if len(shape) == 4 and shape[1] and shape[2]:
                return int(shape[1]), int(shape[2])
    fail(
        OP,
        f"{where}: an InputLayer with a fixed size in its model_config, or image_size=",
        "none (a fully convolutional file)",
    )


def _epsilon(config) -> float:
    for entry in _config_layers(config):
        if entry.get("class_name") == "BatchNormalization":
            return float(entry.get("config", {}).get("epsilon", KERAS_BN_EPSILON))
    return KERAS_BN_EPSILON


def _by_kind(names, pattern):
    return sorted((n for n in names if re.fullmatch(pattern, n)), key=_suffix)


def _sections(weights, convs, num_anchors):
    """The packaged yolov2 cfg with the file's filters and the last layer's classes."""
    sections = read_cfg(cfg_path("yolov2"))
    conv_at = [i for i, s in enumerate(sections) if s.type == "convolutional"]
    for i, name in zip(conv_at, convs, strict=True):
        s = sections[i]
        kernel = weights[name].get("kernel")
        if kernel is None or kernel.ndim != 4:
            fail(
                OP,
                f"a 4-D 'kernel' in group {name!r} (YOLOv2's {s.where})",
                None if kernel is None else kernel.shape,
            )
        if kernel.shape[0] != s.get_int("size"):
            fail(
                OP,
                f"a {s.get_int('size')}x{s.get_int('size')} kernel in group {name!r} "
                f"(YOLOv2's {s.where})",
                f"kernel shape {kernel.shape}",
            )
        sections[i] = dataclasses.replace(s, options={**s.options, "filters": str(kernel.shape[3])})
    last = weights[convs[-1]]["kernel"].shape[3]
    if last % num_anchors or last // num_anchors <= 5:
        fail(
            OP,
            f"the last convolution ({convs[-1]!r}) with {num_anchors}·(5 + classes) filters",
            last,
        )
    region = len(sections) - 1
    sections[region] = dataclasses.replace(
        sections[region],
        options={**sections[region].options, "classes": str(last // num_anchors - 5)},
    )
    return sections


def _graph(model, epsilon):
    """The darknet graph with TensorFlow's space_to_depth and Keras' batch-norm epsilon."""
    nodes = []
    for node in model.layer.nodes:
        layer = node.layer
        if layer.kind == "DarknetReorg":
            layer = L.SpaceToDepth(2, name="space_to_depth_x2")
        elif any(n.layer.kind == "BatchNormalization" for n in layer.nodes):
            layer = L.serial(
                *(
                    L.BatchNormalization(epsilon=epsilon)
                    if n.layer.kind == "BatchNormalization"
                    else n.layer
                    for n in layer.nodes
                ),
                name=layer.name,
            )
        nodes.append(L.Node(node.name, layer, node.inputs))
    return L.graph(nodes, name="yolov2_yad2k")


def from_yad2k(
    h5_path: str | os.PathLike, *, image_size: int | tuple[int, int] | None = None, anchors=None
) -> DarknetNet:
    """Reads YAD2K's ``yolo.h5`` into jaxheads' YOLOv2.

    Args:
      h5_path: a Keras 2 HDF5 file written by YAD2K's ``yad2k.py`` from a
        ``yolov2`` cfg (any widths and class count; 5 anchors).
      image_size: the input size; by default the file's InputLayer's.
      anchors: ``[5, 2]`` priors in grid cells (YAD2K keeps them apart, in
        ``yolo_anchors.txt``); by default ``yolov2.cfg``'s COCO anchors.

    Returns:
      A `jaxheads.darknet.DarknetNet` whose ``layer``, ``params`` and ``state``
      are the triple, with its `Head` for decoding.

    Raises:
      ValueError: a file that is not Keras HDF5, lacks YAD2K's groups
        (23 ``conv2d_N``, 22 ``batch_normalization_N``, ``space_to_depth_x2``),
        or holds a weight whose shape differs from the network's (named, with
        both shapes).
    """
    where = os.fspath(h5_path)
    names, weights, config = _read(h5_path)
    convs = _by_kind(names, r"conv2d(_\d+)?")
    norms = _by_kind(names, r"batch_normalization(_\d+)?")
    if len(convs) != 23 or len(norms) != 22 or "space_to_depth_x2" not in names:
        fail(
            OP,
            f"{where}: YAD2K's YOLOv2 groups (23 conv2d_N, 22 batch_normalization_N, "
            "space_to_depth_x2)",
            f"{len(convs)} conv2d, {len(norms)} batch_normalization, "
            f"space_to_depth_x2 {'present' if 'space_to_depth_x2' in names else 'absent'}",
        )
    size = _image_size(config, image_size, where)
    sections = _sections(weights, convs, num_anchors=5)
    if anchors is not None:
        anchors = np.asarray(anchors, np.float32)
        if anchors.shape != (5, 2):
            fail(OP, "anchors of shape (5, 2)", anchors.shape)
        region = sections[-1]
        # float32's shortest repr reads back to the same float32.
        written = ",".join(str(a) for a in anchors.ravel())
        sections[-1] = dataclasses.replace(region, options={**region.options, "anchors": written})
    model = build_model(sections, image_size=size, name="yolov2_yad2k")
    layer = _graph(model, _epsilon(config))
    _, template, template_state = L.abstract_init(layer, model.input_shape)
    params, state = {}, {}
    records = [r for r in model.layers if r.type == "convolutional"]
    with_norm = iter(norms)
    for record, conv in zip(records, convs, strict=True):
        w = weights[conv]
        node_p = template[record.name]
        if record.batch_normalize:
            bn = weights[next(with_norm)]
            leaf = {"kernel": w["kernel"]}
            norm = {"scale": bn.get("gamma"), "bias": bn.get("beta")}
            stats = {"mean": bn.get("moving_mean"), "var": bn.get("moving_variance")}
            got_p = {"conv2d": leaf, "batch_normalization": norm}
            got_s = {"batch_normalization": stats}
            want_s = template_state[record.name]
        else:
            got_p, got_s, want_s = {k: w.get(k) for k in node_p}, {}, {}
        for got, want, what in ((got_p, node_p, "params"), (got_s, want_s, "state")):
            _check_tree(got, want, f"{record.name} {what}", conv, norms, where)
        params[record.name] = _as_jax(got_p)
        if got_s:
            state[record.name] = _as_jax(got_s)
    return DarknetNet(dataclasses.replace(model, layer=layer), params, state)


def _check_tree(got, want, what, conv, norms, where, prefix=""):
    for key, spec in want.items():
        value = got.get(key)
        if isinstance(spec, dict):
            _check_tree(value or {}, spec, what, conv, norms, where, f"{prefix}{key}/")
            continue
        if value is None or tuple(value.shape) != tuple(spec.shape):
            fail(
                OP,
                f"{where}: {prefix}{key} of shape {tuple(spec.shape)} for YOLOv2's {what} "
                f"(from group {conv!r} or its batch normalization)",
                "none" if value is None else f"shape {tuple(value.shape)}",
            )


def _as_jax(tree):
    return {k: _as_jax(v) if isinstance(v, dict) else jnp.asarray(v) for k, v in tree.items()}
