"""`jaxheads.layers` graphs to Keras 3 functional models: `from_keras` backwards.

`to_keras` rebuilds each layer from what it records (`jaxheads.layers.Layer.config`)
as the Keras layer of the same kind and name, and copies its weights into Keras'
(Conv2D and Dense ``kernel``/``bias``; batch norm ``scale``/``bias`` as
``gamma``/``beta`` and the ``mean``/``var`` state as the moving statistics;
ConvLSTM2D's three weights). The layers are those `from_keras` reads: Conv2D,
Dense, BatchNormalization, LeakyReLU, ReLU and Activation (an activation Keras
names), MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
GlobalMaxPooling2D, Flatten, Dropout, Reshape, ZeroPadding2D, Concatenate and
ConvLSTM2D, in a `graph` or `serial` (branches, merges and nested models, whose
layers are inlined as ``"<model>_<layer>"``). The ``"<name>_activation"`` node
`from_keras` adds after a Conv2D or Dense becomes that layer's ``activation=``
again, so Keras → `from_keras` → `to_keras` gives back the same layers.

A layer with no Keras equivalent (darknet's ``[reorg]``, ``[local]``, a head's
decoding layers, an activation Keras has no name for) or an option Keras
lacks (explicit paddings) is a `ValueError` naming the layer.
"""

from __future__ import annotations

import functools
from collections import Counter

import numpy as np

from jaxheads._checks import fail
from jaxheads.interop.keras import ACTIVATIONS, _keras, identity, keras_relu
from jaxheads.layers import INPUT

OP = "to_keras"
_MODELS = ("Functional", "Sequential")


def _keras_padding(kind: str, name: str, padding) -> str:
    if padding not in ("SAME", "VALID"):
        fail(
            OP,
            f"padding 'same' or 'valid' for {kind} layer {name!r} (Keras' {kind} has no "
            "explicit padding)",
            repr(padding),
        )
    return padding.lower()


def activation_name(fn) -> str | None:
    """The Keras name of an activation function (``"linear"`` for the identity), or None."""
    if fn is identity:
        return "linear"
    return next((k for k, f in ACTIVATIONS.items() if f is fn and f is not None), None)


def _named(cfg: dict, name: str, kind: str) -> str:
    fn = cfg["fn"]
    found = activation_name(fn)
    if found is None:
        fn_name = getattr(fn, "__name__", type(fn).__name__)
        fail(
            OP,
            f"an activation Keras names ({', '.join(sorted(ACTIVATIONS))}) for {kind} "
            f"layer {name!r}",
            fn_name,
        )
    return found


# --- one builder per kind: (config, name, activation) -> Keras layer ---------------------


def _conv2d(keras, cfg, name, activation):
    return keras.layers.Conv2D(
        cfg["filters"],
        cfg["kernel_size"],
        strides=cfg["strides"],
        padding=_keras_padding("Conv2D", name, cfg["padding"]),
        dilation_rate=cfg["dilation_rate"],
        groups=cfg["groups"],
        use_bias=cfg["use_bias"],
        activation=activation,
        name=name,
    )


def _dense(keras, cfg, name, activation):
    return keras.layers.Dense(
        cfg["units"], use_bias=cfg["use_bias"], activation=activation, name=name
    )


def _batch_norm(keras, cfg, name, _):
    return keras.layers.BatchNormalization(
        momentum=cfg["momentum"],
        epsilon=cfg["epsilon"],
        center=cfg["center"],
        scale=cfg["scale"],
        name=name,
    )


def _activation(keras, cfg, name, _):
    fn = cfg["fn"]
    if isinstance(fn, functools.partial) and fn.func is keras_relu:
        return keras.layers.ReLU(**fn.keywords, name=name)
    return keras.layers.Activation(_named(cfg, name, "Activation"), name=name)


def _pool(cls: str):
    def build(keras, cfg, name, _):
        padding = _keras_padding(cls, name, cfg["padding"])
        return getattr(keras.layers, cls)(
            cfg["pool_size"], strides=cfg["strides"], padding=padding, name=name
        )

    return build


def _conv_lstm(keras, cfg, name, _):
    return keras.layers.ConvLSTM2D(
        cfg["filters"],
        cfg["kernel_size"],
        strides=cfg["strides"],
        padding=_keras_padding("ConvLSTM2D", name, cfg["padding"]),
        dilation_rate=cfg["dilation_rate"],
        return_sequences=cfg["return_sequences"],
        go_backwards=cfg["go_backwards"],
        use_bias=cfg["use_bias"],
        name=name,
    )


def _plain(cls: str, *options: str):
    def build(keras, cfg, name, _):
        return getattr(keras.layers, cls)(**{k: cfg[k] for k in options}, name=name)

    return build


BUILDERS = {
    "Conv2D": _conv2d,
    "Dense": _dense,
    "BatchNormalization": _batch_norm,
    "LeakyReLU": _plain("LeakyReLU", "negative_slope"),
    "Activation": _activation,
    "MaxPooling2D": _pool("MaxPooling2D"),
    "AveragePooling2D": _pool("AveragePooling2D"),
    "GlobalAveragePooling2D": _plain("GlobalAveragePooling2D", "keepdims"),
    "GlobalMaxPooling2D": _plain("GlobalMaxPooling2D", "keepdims"),
    "Flatten": _plain("Flatten"),
    "Dropout": _plain("Dropout", "rate"),
    "Reshape": _plain("Reshape", "target_shape"),
    "ZeroPadding2D": _plain("ZeroPadding2D", "padding"),
    "Concatenate": _plain("Concatenate", "axis"),
    "ConvLSTM2D": _conv_lstm,
}

#: Our leaf names -> Keras' weight names (batch norm's differ; its state is Keras' weights).
_BN_WEIGHTS = {"scale": "gamma", "bias": "beta", "mean": "moving_mean", "var": "moving_variance"}


def _set_weights(klayer, kind: str, params, state) -> None:
    ours = {**params, **state}
    if kind == "BatchNormalization":
        ours = {_BN_WEIGHTS[k]: v for k, v in ours.items()}
    names = [w.name for w in klayer.weights]
    if sorted(names) != sorted(ours):
        fail(
            OP,
            f"params and state for {kind} layer {klayer.name!r} with Keras' weights {names}",
            sorted(ours),
        )
    klayer.set_weights([np.asarray(ours[n], np.float32) for n in names])


def _leaf(keras, layer, x, params, state, name, activation=None):
    cfg = dict(layer.config)
    if layer.kind not in BUILDERS or (layer.kind != "Flatten" and not cfg):
        fail(
            OP,
            f"a layer with a Keras equivalent ({', '.join(BUILDERS)}, in a graph or serial) "
            "recording its options",
            f"{layer.kind} layer {name!r}",
        )
    klayer = BUILDERS[layer.kind](keras, cfg, name, activation)
    y = klayer(x)
    if params or state or klayer.weights:
        _set_weights(klayer, layer.kind, params, state)
    return y


def _folded(layer) -> dict[str, str]:
    """``{conv or dense node: its "<name>_activation" node}`` that become one Keras layer.

    Only when nothing else reads the layer's output, so no one sees the value before
    the activation.
    """
    nodes = layer.nodes
    outputs = dict(layer.config).get("outputs", ())
    outputs = (outputs,) if isinstance(outputs, str) else outputs
    reads = Counter(
        i for n in nodes for i in ((n.inputs,) if isinstance(n.inputs, str) else n.inputs)
    )
    fold = {}
    for a, b in zip(nodes, nodes[1:], strict=False):
        if (
            a.layer.kind in ("Conv2D", "Dense")
            and b.name == f"{a.name}_activation"
            and b.layer.kind == "Activation"
            and b.inputs == a.name
            and reads[a.name] == 1
            and a.name not in outputs
            and activation_name(dict(b.layer.config).get("fn")) is not None
        ):
            fold[a.name] = b.name
    return fold


def _graph(keras, layer, x, params, state, prefix: str):
    values = {INPUT: x}
    fold = _folded(layer)
    folded = set(fold.values())
    for node in layer.nodes:
        if node.name in folded:
            continue
        inputs = node.inputs
        src = values[inputs] if isinstance(inputs, str) else [values[i] for i in inputs]
        name = prefix + node.name
        p, s = params.get(node.name, {}), state.get(node.name, {})
        if node.layer.kind in _MODELS:
            values[node.name] = _graph(keras, node.layer, src, p, s, f"{name}_")
            continue
        activation = None
        if node.name in fold:
            act = next(n for n in layer.nodes if n.name == fold[node.name])
            activation = activation_name(dict(act.layer.config)["fn"])
        values[node.name] = _leaf(keras, node.layer, src, p, s, name, activation)
        if node.name in fold:
            values[fold[node.name]] = values[node.name]
    outputs = dict(layer.config)["outputs"]
    return values[outputs] if isinstance(outputs, str) else [values[o] for o in outputs]


def to_keras(layer, params, state, input_shape=None):
    """A `jaxheads.layers` layer and its weights as a Keras 3 functional model.

    Args:
      layer: a `graph` or `serial` of the layers `from_keras` gives (see the
        module docstring), nested ones included, or one such layer.
      params, state: its params and state (`from_keras`'s, or trained ones).
      input_shape: the input's shape, batch first (e.g. ``(None, 32, 32, 3)``);
        by default the one the layer records (`from_keras`'s graphs record the
        Keras model's).

    Returns:
      A ``keras.Model`` named as ``layer`` whose ``model(x, training=False)`` is
      ``layer.apply(params, state, x)[0]``, its layers named as the nodes.

    Raises:
      ValueError: a layer with no Keras equivalent or an option Keras lacks (the
        layer named), weights that do not fit, or no input shape.
    """
    keras = _keras()
    shape = dict(layer.config).get("input_shape") if input_shape is None else input_shape
    if shape is None:
        fail(
            OP,
            f"input_shape (batch first, e.g. (None, 32, 32, 3)) for {layer.kind} layer "
            f"{layer.name!r}, which records none",
            None,
        )
    x = keras.Input(shape=tuple(shape[1:]))
    if layer.kind in _MODELS:
        y = _graph(keras, layer, x, params, state, "")
    else:
        y = _leaf(keras, layer, x, params, state, layer.name)
    return keras.Model(x, y, name=layer.name)
