"""Keras-named layers take Keras 3's defaults (read from Keras' own signatures); ops say clearly
what they need: static structural arguments, a batch axis, the NHWC layout."""

import functools
import inspect

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from op_properties import raises

import jaxheads.linen as jlinen
import jaxheads.nnx as jnnx
from jaxheads import layers as L
from jaxheads import ops

# Where jaxheads names a hyperparameter differently from Keras.
RENAMED = {"features": "units", "fn": "activation", "kernel_init": "kernel_initializer"}
# Ours only: the NNX modules' eager shapes and Flax's mode flags and streams.
OURS_ONLY = {
    "name",
    "in_features",
    "num_features",
    "input_size",
    "rngs",
    "use_running_average",
    "deterministic",
    "rng_collection",
    "axis_name",
}
KERAS_NAMED = sorted(
    n for n in L.__all__ if n[0].isupper() and hasattr(keras.layers, n) and n not in ("Layer",)
)


def _normal(value):
    """Keras spells ``1`` as ``(1, 1)`` and ``"valid"`` in lower case; so do we, or not."""
    if isinstance(value, tuple) and value and len(set(value)) == 1:
        return value[0]
    return value.lower() if isinstance(value, str) else value


def _signature(obj):
    if isinstance(obj, type) and hasattr(obj, "__dataclass_fields__"):  # a Linen module
        fields = obj.__dataclass_fields__
        return {
            n: (inspect.Parameter.empty if f.default is f.default_factory is None else f.default)
            for n, f in fields.items()
            if n not in ("parent", "name")
        }
    fn = obj.__init__ if isinstance(obj, type) else obj
    return {
        n: p.default
        for n, p in inspect.signature(fn).parameters.items()
        if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _linen_default(field):
    import dataclasses

    return inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default


def test_keras_named_layers_are_audited():
    assert {
        "Conv2D",
        "Dense",
        "LeakyReLU",
        "MaxPooling2D",
        "BatchNormalization",
        "ConvLSTM2D",
        "Dropout",
    } <= set(KERAS_NAMED)


APIS = {"layers": L, "nnx": jnnx, "linen": jlinen}
# Keras-named layers with no options at all: nothing to compare, and no module in NNX or
# Linen (an identity needs none there).
NO_OPTIONS = {"Flatten", "Identity"}


def test_nnx_and_linen_have_every_keras_named_layer_with_options():
    for api in ("nnx", "linen"):
        missing = {k for k in KERAS_NAMED if not hasattr(APIS[api], k)}
        assert missing <= {"Identity"}, (api, missing)


@pytest.mark.parametrize(
    ("kind", "api"), [(k, a) for a in APIS for k in KERAS_NAMED if hasattr(APIS[a], k)]
)
def test_defaults_are_keras_3_defaults(kind, api):
    keras_sig = {
        n: p.default
        for n, p in inspect.signature(getattr(keras.layers, kind).__init__).parameters.items()
    }
    if api == "linen":
        cls = getattr(jlinen, kind)
        ours = {
            n: _linen_default(f)
            for n, f in cls.__dataclass_fields__.items()
            if n not in ("parent", "name")
        }
    else:
        ours = _signature(getattr(APIS[api], kind))
    compared = 0
    for name, default in ours.items():
        if name in OURS_ONLY:
            continue
        theirs = RENAMED.get(name, name)
        assert theirs in keras_sig, f"{kind}.{name} has no Keras counterpart"
        want = keras_sig[theirs]
        if theirs == "kernel_initializer":  # Keras names it, we pass the function
            assert want == "glorot_uniform" and default is L.core.glorot_uniform
        elif want is inspect.Parameter.empty:
            assert default is inspect.Parameter.empty, f"{kind}.{name}: required in Keras"
        else:
            assert _normal(default) == _normal(want), (kind, name, default, want)
        compared += 1
    assert compared or kind in NO_OPTIONS


def test_op_defaults_are_keras_ops_defaults():
    conv = inspect.signature(keras.ops.conv).parameters
    ours = inspect.signature(ops.conv2d).parameters
    assert ours["padding"].default == conv["padding"].default == "valid"
    assert ours["strides"].default == conv["strides"].default == 1
    leaky = inspect.signature(keras.ops.leaky_relu).parameters["negative_slope"].default
    assert inspect.signature(ops.leaky_relu).parameters["negative_slope"].default == leaky
    # The darknet models keep darknet's 0.1 whatever the default.
    from jaxheads.darknet import sections

    assert sections.LEAKY_SLOPE == 0.1


X = jnp.ones((2, 8, 8, 4))
K = jnp.ones((3, 3, 4, 5))


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: jax.jit(ops.conv2d)(X, K, strides=2), "strides"),
        (lambda: jax.jit(lambda x, s: ops.conv2d(x, K, dilation=s))(X, 2), "dilation"),
        (lambda: jax.jit(lambda x, p: ops.conv2d(x, K, padding=p))(X, 1), "padding"),
        (lambda: jax.jit(lambda x, g: ops.conv2d(x, K, groups=g))(X, 1), "groups"),
        (lambda: jax.jit(ops.max_pool2d)(X, 2), "pool_size"),
        (lambda: jax.jit(lambda x, s: ops.avg_pool2d(x, 2, s))(X, 2), "strides"),
        (lambda: jax.jit(ops.space_to_depth)(X, 2), "block_size"),
        (lambda: jax.jit(ops.global_avg_pool2d)(X, keepdims=True), "keepdims"),
        (lambda: jax.jit(functools.partial(ops.dropout, key=jax.random.key(0)))(X, 0.5), "rate"),
    ],
)
def test_traced_structural_arguments_are_named(call, name):
    with raises(
        f"expected {name} as a static Python value",
        "static_argnames",
        "functools.partial",
        "a JAX array of shape ()",
    ):
        call()


def test_static_structural_arguments_work_under_jit():
    conv = jax.jit(ops.conv2d, static_argnames=("strides", "padding"))
    assert conv(X, K, strides=2, padding="same").shape == (2, 4, 4, 5)
    assert jax.jit(functools.partial(ops.max_pool2d, pool_size=2))(X).shape == (2, 4, 4, 4)


@pytest.mark.parametrize(
    "op",
    [
        lambda x: ops.conv2d(x, K),
        lambda x: ops.max_pool2d(x),
        lambda x: ops.avg_pool2d(x),
        lambda x: ops.global_avg_pool2d(x),
        lambda x: ops.space_to_depth(x),
        lambda x: ops.darknet_reorg(x),
        lambda x: ops.locally_connected2d(x, jnp.ones((6, 6, 36, 2)), None, kernel_size=3),
    ],
)
def test_rank_3_input_is_told_to_add_the_batch_axis(op):
    with raises("of rank 4 [B, H, W, C]", "shape (8, 8, 4) (rank 3)", "x[None]", "jax.vmap"):
        op(X[0])
    # As the message says: a batch axis, or inside a mapped function.
    one = op(X[:1])
    per_example = jax.vmap(lambda xi: op(xi[None])[0])(X)
    np.testing.assert_allclose(per_example[:1], one, rtol=1e-6, atol=1e-6)


def test_nchw_input_is_told_the_layout_is_nhwc():
    images = jnp.ones((2, 3, 32, 32))  # NCHW RGB
    for op in (ops.max_pool2d, ops.avg_pool2d, ops.global_max_pool2d, ops.space_to_depth):
        with raises(
            "NHWC layout [B, H, W, C]",
            "shape (2, 3, 32, 32), which looks NCHW",
            "jnp.transpose(x, (0, 2, 3, 1))",
        ):
            op(images)
    with raises(
        "conv2d: expected x in the NHWC layout with C = 3 last",
        "channels first (NCHW)",
        "jnp.transpose(x, (0, 2, 3, 1))",
    ):
        ops.conv2d(images, jnp.ones((3, 3, 3, 8)))
    with raises("batch_norm: expected x in the NHWC layout with C = 3 last (the size of its"):
        ops.batch_norm(images, None, None, jnp.zeros(3), jnp.ones(3))
    # The same values in NHWC are accepted.
    nhwc = jnp.transpose(images, (0, 2, 3, 1))
    assert ops.conv2d(nhwc, jnp.ones((3, 3, 3, 8))).shape == (2, 30, 30, 8)
