"""A darknet cfg and ``.weights`` written as the HDF5 file YAD2K's ``yad2k.py`` saves.

``yad2k.py`` (github.com/allanzelener/YAD2K, Keras 2.0.3) walks the cfg's
sections in order and builds a Keras functional model: a convolution becomes
``Conv2D`` (``padding="same"`` when ``pad=1``, no bias when batch-normalized),
then ``BatchNormalization`` (gamma = darknet's scales, beta = its biases, then
its rolling mean and variance), then ``LeakyReLU(alpha=0.1)`` when the activation
is leaky; a ``[maxpool]`` a ``MaxPooling2D(padding="same")``; a ``[route]`` of
several layers ``concatenate`` in the route's order; ``[reorg]`` a ``Lambda``
named ``space_to_depth_x2``. Keras names each layer ``<snake_case class>_<n>``
(``conv2d_1``, ``batch_normalization_1``, ``leaky_re_lu_1``, ``max_pooling2d_1``,
``concatenate_1``, ``input_1``) and ``model.save`` writes ``model_config`` and
``model_weights`` (``layer_names`` in Keras 2's order: by depth from the output,
then by the order a depth-first walk from the output meets them; each layer's
``weight_names`` such as ``conv2d_1/kernel:0``, each array at
``model_weights/<layer>/<weight name>``).

This module writes that file from the cfg and weights directly, without Keras,
so that `jaxheads.interop.from_yad2k` is tested on the layout ``yad2k.py`` writes.
"""

import json

import h5py
import numpy as np

KERAS_VERSION = b"2.0.3"


def _sections(cfg_text: str) -> list[tuple[str, dict[str, str]]]:
    sections = []
    for raw in cfg_text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("["):
            sections.append((line.strip("[]"), {}))
        elif "=" in line:
            key, value = line.split("=", 1)
            sections[-1][1][key.strip()] = value.strip()
    return sections


class _Model:
    """Keras 2 layers as yad2k.py creates them: names, configs, inputs and weights."""

    def __init__(self):
        self.layers = {}  # name -> {"class_name", "config", "inbound", "weights", "shape"}
        self.counts = {}

    def add(self, class_name, prefix, inbound, shape, config=None, weights=(), name=None):
        if name is None:
            self.counts[prefix] = self.counts.get(prefix, 0) + 1
            name = f"{prefix}_{self.counts[prefix]}"
        self.layers[name] = {
            "class_name": class_name,
            "config": {"name": name, "trainable": True, **(config or {})},
            "inbound": list(inbound),
            "weights": [(f"{name}/{w}:0", np.asarray(v, np.float32)) for w, v in weights],
            "shape": shape,
        }
        return name

    def keras_order(self, output: str) -> list[str]:
        """Keras 2's ``Container.layers``: depth from the output down, then walk order."""
        walk, depth = {}, {}

        def visit(name):
            if name not in walk:
                walk[name] = len(walk)
            for parent in self.layers[name]["inbound"]:
                visit(parent)

        visit(output)
        for name in reversed(self._topological(output)):
            for parent in self.layers[name]["inbound"]:
                depth[parent] = max(depth.get(parent, 0), depth.get(name, 0) + 1)
        return sorted(walk, key=lambda n: (-depth.get(n, 0), walk[n]))

    def _topological(self, output):
        order, seen = [], set()

        def visit(name):
            if name in seen:
                return
            seen.add(name)
            for parent in self.layers[name]["inbound"]:
                visit(parent)
            order.append(name)

        visit(output)
        return order


def _floats(f, count):
    return np.frombuffer(f.read(4 * count), "<f4", count)


def _build(sections, weights_file) -> tuple[_Model, str]:
    model = _Model()
    net = sections[0][1]
    height, width = int(net["height"]), int(net["width"])
    prev = model.add(
        "InputLayer",
        "input",
        [],
        (height, width, 3),
        {"batch_input_shape": [None, height, width, 3], "dtype": "float32", "sparse": False},
    )
    outputs = [prev]  # yad2k.py's all_layers: the input, then one entry per section
    decay = float(net.get("decay", 5e-4))
    for kind, s in sections[1:]:
        shape = model.layers[prev]["shape"]
        if kind == "convolutional":
            filters, size, stride = int(s["filters"]), int(s["size"]), int(s["stride"])
            bn = "batch_normalize" in s
            bias = _floats(weights_file, filters)
            if bn:
                scale, mean, var = (_floats(weights_file, filters) for _ in range(3))
            kernel = _floats(weights_file, filters * shape[2] * size * size)
            kernel = kernel.reshape(filters, shape[2], size, size).transpose(2, 3, 1, 0)
            padding = "same" if int(s["pad"]) == 1 else "valid"
            h, w = shape[0], shape[1]
            if padding == "same":
                h, w = -(-h // stride), -(-w // stride)
            else:
                h, w = (h - size) // stride + 1, (w - size) // stride + 1
            prev = model.add(
                "Conv2D",
                "conv2d",
                [prev],
                (h, w, filters),
                {
                    "filters": filters,
                    "kernel_size": [size, size],
                    "strides": [stride, stride],
                    "padding": padding,
                    "data_format": "channels_last",
                    "dilation_rate": [1, 1],
                    "activation": "linear",
                    "use_bias": not bn,
                    "kernel_regularizer": {"class_name": "L1L2", "config": {"l2": decay}},
                },
                [("kernel", kernel)] + ([] if bn else [("bias", bias)]),
            )
            if bn:
                prev = model.add(
                    "BatchNormalization",
                    "batch_normalization",
                    [prev],
                    (h, w, filters),
                    {"axis": -1, "momentum": 0.99, "epsilon": 0.001, "center": True},
                    [
                        ("gamma", scale),
                        ("beta", bias),
                        ("moving_mean", mean),
                        ("moving_variance", var),
                    ],
                )
            if s["activation"] == "leaky":
                prev = model.add(
                    "LeakyReLU", "leaky_re_lu", [prev], (h, w, filters), {"alpha": 0.1}
                )
            elif s["activation"] != "linear":
                raise ValueError(f"yad2k.py converts leaky and linear only, not {s['activation']}")
            outputs.append(prev)
        elif kind == "maxpool":
            size, stride = int(s["size"]), int(s["stride"])
            pooled = (-(-shape[0] // stride), -(-shape[1] // stride), shape[2])
            config = {"pool_size": [size, size], "strides": [stride, stride], "padding": "same"}
            prev = model.add("MaxPooling2D", "max_pooling2d", [prev], pooled, config)
            outputs.append(prev)
        elif kind == "route":
            routed = [outputs[int(i)] for i in s["layers"].split(",")]
            if len(routed) > 1:
                depth = sum(model.layers[r]["shape"][2] for r in routed)
                joined = (*model.layers[routed[0]]["shape"][:2], depth)
                prev = model.add("Concatenate", "concatenate", routed, joined, {"axis": -1})
            else:
                prev = routed[0]
            outputs.append(prev)
        elif kind == "reorg":
            assert int(s["stride"]) == 2, "yad2k.py converts [reorg] stride=2 only"
            moved = (shape[0] // 2, shape[1] // 2, shape[2] * 4)
            config = {"function": ["space_to_depth_x2", None, None], "function_type": "lambda"}
            prev = model.add("Lambda", "lambda", [prev], moved, config, name="space_to_depth_x2")
            outputs.append(prev)
        elif kind not in ("region", "net", "cost", "softmax"):
            raise ValueError(f"yad2k.py does not convert [{kind}]")
    return model, outputs[-1]


def convert_like_yad2k_py(cfg_path, weights_path, h5_path) -> list[str]:
    """Writes the file ``yad2k.py cfg weights h5`` saves; returns its ``layer_names``.

    As ``yad2k.py``, the weights file is read after a 16-byte header (darknet's
    files before version 0.2, whose ``seen`` is an int32).
    """
    with open(cfg_path) as f:
        sections = _sections(f.read())
    with open(weights_path, "rb") as f:
        header = np.frombuffer(f.read(16), "<i4")
        if header[0] * 10 + header[1] >= 2:
            raise ValueError(f"yad2k.py reads a 16-byte header; {weights_path} is {header[:2]}")
        model, output = _build(sections, f)
        if f.read():
            raise ValueError(f"{weights_path} holds more floats than {cfg_path} reads")
    names = model.keras_order(output)
    config = {
        "class_name": "Model",
        "config": {
            "name": "model_1",
            "layers": [
                {
                    "name": n,
                    "class_name": model.layers[n]["class_name"],
                    "config": model.layers[n]["config"],
                    "inbound_nodes": (
                        [[[p, 0, 0, {}] for p in model.layers[n]["inbound"]]]
                        if model.layers[n]["inbound"]
                        else []
                    ),
                }
                for n in names
            ],
            "input_layers": [[names[0], 0, 0]],
            "output_layers": [[output, 0, 0]],
        },
    }
    with h5py.File(h5_path, "w") as f:
        f.attrs["keras_version"] = KERAS_VERSION
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode("utf8")
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [n.encode("utf8") for n in names]
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = KERAS_VERSION
        for n in names:
            g = group.create_group(n)
            weights = model.layers[n]["weights"]
            g.attrs["weight_names"] = [w.encode("utf8") for w, _ in weights]
            for w, value in weights:
                g.create_dataset(w, data=value)
    return names


def reduced_yolov2_cfg(text: str, *, divide: int, size: int, classes: int) -> str:
    """``yolov2.cfg`` at ``size`` with every width but the last divided by ``divide``."""
    sections = _sections(text)
    last = max(i for i, (kind, _) in enumerate(sections) if kind == "convolutional")
    num = int(sections[-1][1]["num"])
    out = []
    for i, (kind, s) in enumerate(sections):
        s = dict(s)
        if kind == "net":
            s.update(width=str(size), height=str(size))
        elif kind == "convolutional":
            filters = num * (5 + classes) if i == last else int(s["filters"]) // divide
            s["filters"] = str(filters)
        elif kind == "region":
            s["classes"] = str(classes)
        out.append(f"[{kind}]\n" + "".join(f"{k}={v}\n" for k, v in s.items()))
    return "\n".join(out)
