"""Keras 3 models to `jaxheads.layers` graphs (`to_keras` in `jaxheads.interop.keras_export`
goes back).

Every Keras layer becomes one node of a `jaxheads.layers.graph` named as in
Keras (a layer with an ``activation=`` other than ``linear`` adds a node
``"<name>_activation"`` after it); weights keep their Keras layouts (Conv2D
``kernel [kh, kw, C_in / groups, F]``, Dense ``kernel [in, out]``, ConvLSTM2D
gates i, f, c, o), batch-norm ``gamma``/``beta`` become ``scale``/``bias`` and the
moving statistics the ``mean``/``var`` state.

Supported layers: InputLayer, Conv2D, Dense, BatchNormalization, LeakyReLU, ReLU,
Activation, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
GlobalMaxPooling2D, Flatten, Dropout, Reshape, ZeroPadding2D, Concatenate and
ConvLSTM2D, channels-last, in a Sequential or a single-input, single-output
functional model (branches and merges included; a layer called twice is not).
Any other layer, or an option these layers do not implement, is a `ValueError`
naming the layer and the option.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads import layers as L
from jaxheads._checks import fail
from jaxheads.layers.base import stateless

OP = "from_keras"


def _keras():
    try:
        import keras
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError(
            "jaxheads.interop needs Keras 3 and h5py: pip install 'jaxheads[interop]'"
        ) from err
    if int(keras.__version__.split(".")[0]) < 3:
        fail(OP, "Keras 3", f"Keras {keras.__version__}")
    return keras


def _mish(x):
    return x * jnp.tanh(jax.nn.softplus(x))


def identity(x):
    """Keras' ``linear`` activation."""
    return x


#: Keras activation names and the JAX functions that compute them (``linear``: none).
ACTIVATIONS: dict[str, Callable | None] = {
    "linear": None,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "softmax": functools.partial(jax.nn.softmax, axis=-1),
    "log_softmax": functools.partial(jax.nn.log_softmax, axis=-1),
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "softplus": jax.nn.softplus,
    "softsign": jax.nn.soft_sign,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "relu6": jax.nn.relu6,
    "hard_sigmoid": jax.nn.hard_sigmoid,
    "exponential": jnp.exp,
    "leaky_relu": functools.partial(jax.nn.leaky_relu, negative_slope=0.2),
    "mish": _mish,
}


class _Reader:
    """One Keras layer's config, weights and the checks of its options."""

    def __init__(self, klayer):
        self.layer = klayer
        self.config = klayer.get_config()
        self.kind = type(klayer).__name__
        self.where = f"{self.kind} layer {klayer.name!r}"
        self.weights = {
            w.name: np.asarray(v, np.float32)
            for w, v in zip(klayer.weights, klayer.get_weights(), strict=True)
        }

    def get(self, key, default=None):
        return self.config.get(key, default)

    def only(self, key, *allowed):
        """The option's value, which must be one of ``allowed`` (the first is the default)."""
        value = self.config.get(key, allowed[0])
        if isinstance(value, list):
            value = tuple(value)
        if value not in allowed:
            fail(
                OP, f"{key} in {list(allowed)} for {self.where} (option not supported)", repr(value)
            )
        return value

    def activation(self, key="activation"):
        name = self.config.get(key, "linear")
        if not isinstance(name, str) or name not in ACTIVATIONS:
            fail(
                OP,
                f"{key} among {sorted(ACTIVATIONS)} for {self.where} (option not supported)",
                repr(name),
            )
        return name

    def params(self, **names):
        """``{our leaf: Keras weight}`` for the Keras weights present."""
        return {
            ours: jnp.asarray(self.weights[theirs])
            for ours, theirs in names.items()
            if theirs in self.weights
        }


def ZeroPadding2D(padding, *, name: str | None = None):
    """Keras ``ZeroPadding2D``: ``[B, H, W, C] -> [B, H + t + b, W + l + r, C]``."""
    (t, b), (left, r) = padding

    def fn(p, x, ctx):
        return jnp.pad(x, ((0, 0), (t, b), (left, r), (0, 0)))

    config = {"padding": ((t, b), (left, r))}
    return stateless("ZeroPadding2D", fn, name=name, config=config)


def keras_relu(x, *, max_value, negative_slope, threshold):
    """Keras' ``ReLU`` layer: ``x`` above ``threshold`` (else 0), clipped at ``max_value``,
    minus ``negative_slope·relu(threshold − x)``. `from_keras` binds the options with
    `functools.partial`, whose keywords `to_keras` reads back."""
    y = jnp.where(x > threshold, x, jnp.zeros_like(x))
    if max_value is not None:
        y = jnp.clip(y, 0.0, max_value)
    return y - negative_slope * jax.nn.relu(threshold - x)


# --- one converter per Keras class: reader -> (layer, params, state, activation name) ------


def _conv2d(r):
    r.only("data_format", "channels_last")
    r.only("lora_rank", None)
    layer = L.Conv2D(
        r.get("filters"),
        tuple(r.get("kernel_size")),
        strides=tuple(r.get("strides")),
        padding=r.only("padding", "valid", "same"),
        dilation_rate=tuple(r.get("dilation_rate")),
        groups=r.get("groups", 1),
        use_bias=r.get("use_bias"),
        name=r.layer.name,
    )
    return layer, r.params(kernel="kernel", bias="bias"), {}, r.activation()


def _dense(r):
    r.only("lora_rank", None)
    layer = L.Dense(r.get("units"), use_bias=r.get("use_bias"), name=r.layer.name)
    return layer, r.params(kernel="kernel", bias="bias"), {}, r.activation()


def _batch_norm(r):
    axis = r.get("axis")
    rank = len(r.layer.input.shape) if axis not in (-1, [-1]) else None
    if rank is not None and axis not in (rank - 1, [rank - 1]):
        fail(OP, f"axis -1 (the channels) for {r.where} (option not supported)", repr(axis))
    r.only("renorm", False)
    layer = L.BatchNormalization(
        momentum=r.get("momentum"),
        epsilon=r.get("epsilon"),
        center=r.get("center"),
        scale=r.get("scale"),
        name=r.layer.name,
    )
    state = {
        "mean": jnp.asarray(r.weights["moving_mean"]),
        "var": jnp.asarray(r.weights["moving_variance"]),
    }
    return layer, r.params(scale="gamma", bias="beta"), state, "linear"


def _leaky_relu(r):
    return L.LeakyReLU(float(r.get("negative_slope")), name=r.layer.name), {}, {}, "linear"


def _relu_layer(r):
    fn = functools.partial(
        keras_relu,
        max_value=r.get("max_value"),
        negative_slope=float(r.get("negative_slope", 0.0)),
        threshold=float(r.get("threshold", 0.0)),
    )
    return L.Activation(fn, name=r.layer.name), {}, {}, "linear"


def _activation(r):
    fn = ACTIVATIONS[r.activation()] or identity
    return L.Activation(fn, name=r.layer.name), {}, {}, "linear"


def _pool(cls):
    def convert(r):
        r.only("data_format", "channels_last")
        pool = tuple(r.get("pool_size"))
        strides = r.get("strides")
        layer = cls(
            pool,
            pool if strides is None else tuple(strides),
            r.only("padding", "valid", "same"),
            name=r.layer.name,
        )
        return layer, {}, {}, "linear"

    return convert


def _global_pool(cls):
    def convert(r):
        r.only("data_format", "channels_last")
        return cls(keepdims=bool(r.get("keepdims", False)), name=r.layer.name), {}, {}, "linear"

    return convert


def _flatten(r):
    r.only("data_format", "channels_last", None)
    return L.Flatten(name=r.layer.name), {}, {}, "linear"


def _dropout(r):
    # Dropout is the identity at inference whatever its noise_shape.
    return L.Dropout(float(r.get("rate")), name=r.layer.name), {}, {}, "linear"


def _reshape(r):
    target = tuple(r.get("target_shape"))
    if -1 in target:
        target = tuple(r.layer.output.shape[1:])
    return L.Reshape(target, name=r.layer.name), {}, {}, "linear"


def _zero_padding(r):
    r.only("data_format", "channels_last")
    padding = r.get("padding")
    pads = tuple(tuple(int(v) for v in side) for side in padding)
    return ZeroPadding2D(pads, name=r.layer.name), {}, {}, "linear"


def _concatenate(r):
    return L.Concatenate(int(r.get("axis")), name=r.layer.name), {}, {}, "linear"


def _conv_lstm(r):
    r.only("data_format", "channels_last")
    r.only("activation", "tanh")
    r.only("recurrent_activation", "sigmoid")
    r.only("return_state", False)
    r.only("stateful", False)
    layer = L.ConvLSTM2D(
        r.get("filters"),
        tuple(r.get("kernel_size")),
        strides=tuple(r.get("strides")),
        padding=r.only("padding", "valid", "same"),
        dilation_rate=tuple(r.get("dilation_rate")),
        return_sequences=bool(r.get("return_sequences")),
        go_backwards=bool(r.get("go_backwards")),
        use_bias=r.get("use_bias"),
        name=r.layer.name,
    )
    params = r.params(kernel="kernel", recurrent_kernel="recurrent_kernel", bias="bias")
    return layer, params, {}, "linear"


CONVERTERS = {
    "Conv2D": _conv2d,
    "Dense": _dense,
    "BatchNormalization": _batch_norm,
    "LeakyReLU": _leaky_relu,
    "ReLU": _relu_layer,
    "Activation": _activation,
    "MaxPooling2D": _pool(L.MaxPooling2D),
    "AveragePooling2D": _pool(L.AveragePooling2D),
    "GlobalAveragePooling2D": _global_pool(L.GlobalAveragePooling2D),
    "GlobalMaxPooling2D": _global_pool(L.GlobalMaxPooling2D),
    "Flatten": _flatten,
    "Dropout": _dropout,
    "Reshape": _reshape,
    "ZeroPadding2D": _zero_padding,
    "Concatenate": _concatenate,
    "ConvLSTM2D": _conv_lstm,
}


def _convert(klayer):
    kind = type(klayer).__name__
    if kind not in CONVERTERS:
        what = "nested models" if hasattr(klayer, "layers") else "this layer"
        fail(
            OP,
            f"a layer among InputLayer, {', '.join(CONVERTERS)} ({what} not supported)",
            f"{kind} layer {klayer.name!r}",
        )
    return CONVERTERS[kind](_Reader(klayer))


def _inputs(klayer, names):
    """The node names feeding a functional model's layer."""
    nodes = klayer._inbound_nodes
    if len(nodes) != 1:
        fail(
            OP,
            f"each layer called once (option not supported: shared layers), "
            f"{type(klayer).__name__} layer {klayer.name!r}",
            f"{len(nodes)} calls",
        )
    sources = []
    for tensor in nodes[0].input_tensors:
        op = tensor._keras_history.operation
        sources.append(L.INPUT if type(op).__name__ == "InputLayer" else names[op.name])
    return sources[0] if len(sources) == 1 else tuple(sources)


def from_keras(model_or_path):
    """A Keras 3 model as ``(layer, params, state)``.

    Args:
      model_or_path: a built ``keras.Sequential`` or functional ``keras.Model``,
        or the path of a ``.keras`` file holding one.

    Returns:
      ``(layer, params, state)`` with ``layer.apply(params, state, x)[0]``
      equal to ``model(x, training=False)`` for ``x`` of ``model.input_shape``.

    Raises:
      ValueError: a layer or an option not supported (named), several inputs
        or outputs, a layer called twice, or an unbuilt model.
    """
    keras = _keras()
    if isinstance(model_or_path, (str, os.PathLike)):
        model = keras.saving.load_model(model_or_path)
    else:
        model = model_or_path
    if not isinstance(model, keras.Model):
        fail(OP, "a keras.Model or the path of a .keras file", type(model).__name__)
    if not model.built:
        fail(OP, f"a built model (call it once or give it an Input) for {model.name!r}", "unbuilt")
    sequential = isinstance(model, keras.Sequential)
    if not sequential and (len(model.inputs) != 1 or len(model.outputs) != 1):
        fail(
            OP,
            f"one input and one output in model {model.name!r} (option not supported)",
            f"{len(model.inputs)} inputs, {len(model.outputs)} outputs",
        )
    nodes, params, state, names = [], {}, {}, {}
    for klayer in model.layers:
        if type(klayer).__name__ == "InputLayer":
            continue
        layer, p, s, activation = _convert(klayer)
        inputs = None if sequential else _inputs(klayer, names)
        nodes.append(L.Node(klayer.name, layer, inputs))
        if p:
            params[klayer.name] = p
        if s:
            state[klayer.name] = s
        names[klayer.name] = klayer.name
        if activation != "linear":
            act = f"{klayer.name}_activation"
            nodes.append(L.Node(act, L.Activation(ACTIVATIONS[activation], name=act)))
            names[klayer.name] = act
    if not nodes:
        fail(OP, f"at least one layer in model {model.name!r}", "none")
    outputs = None
    if not sequential:
        outputs = names[model.outputs[0]._keras_history.operation.name]
    shape = tuple(model.input_shape)
    return L.graph(nodes, outputs=outputs, name=model.name, input_shape=shape), params, state
