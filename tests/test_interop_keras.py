"""`jaxheads.interop.from_keras` and `to_keras` against Keras 3 itself (JAX backend), same weights.

Tolerances: relative error (max |ours − Keras| / max |Keras|) 1e-5, 1e-4 for
models with convolutions or ConvLSTM2D (float32 sums in another order).
"""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxheads import layers as L
from jaxheads.interop import from_keras, to_keras


@pytest.fixture(autouse=True)
def keras_numerics():
    """Keras' own code broadcasts and promotes implicitly; ours runs strict inside `_check`."""
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        yield


def rel_err(ours, theirs):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    return np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-30)


def _randomize(model, seed=0):
    """Random weights everywhere, batch-norm statistics included (positive variances)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for w in layer.weights:
            if w.name == "moving_variance":
                values.append(rng.uniform(0.5, 2.0, w.shape))
            else:
                values.append(rng.normal(0, 0.5, w.shape))
        if values:
            layer.set_weights([v.astype(np.float32) for v in values])


def _check(model, x, tol):
    layer, params, state = from_keras(model)
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        ours, new_state = layer.apply(params, state, jnp.asarray(x), train=False)
    theirs = np.asarray(model(x, training=False))
    assert ours.shape == theirs.shape
    assert rel_err(ours, theirs) <= tol, rel_err(ours, theirs)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    return layer, params, state


def _x(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# --- random models (each layer's weights and batch-norm statistics drawn), with the input
# shape they are checked on and the tolerance.


def sequential_conv_model():
    model = keras.Sequential(
        [
            keras.Input((12, 12, 4)),
            keras.layers.ZeroPadding2D(((1, 2), (0, 1))),
            keras.layers.Conv2D(8, 3, strides=2, padding="same", groups=2, activation="relu"),
            keras.layers.BatchNormalization(epsilon=1e-4),
            keras.layers.LeakyReLU(negative_slope=0.2),
            keras.layers.Conv2D(6, 3, dilation_rate=2, padding="same", use_bias=False),
            keras.layers.BatchNormalization(center=False),
            keras.layers.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2),
            keras.layers.AveragePooling2D(2, padding="same"),
            keras.layers.MaxPooling2D(2, strides=1),
            keras.layers.Dropout(0.5),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="tanh"),
            keras.layers.Reshape((2, -1)),
            keras.layers.Dense(3),
            keras.layers.Activation("softmax"),
        ]
    )
    _randomize(model)
    return model


def dense_model():
    model = keras.Sequential(
        [
            keras.Input((7,)),
            keras.layers.Dense(16, activation="gelu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(8, activation="swish"),
            keras.layers.Activation("elu"),
            keras.layers.Dense(5, activation="sigmoid"),
        ]
    )
    _randomize(model, seed=3)
    return model


def branching_model():
    inp = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="stem")(inp)
    b = keras.layers.MaxPooling2D(2)(a)
    b = keras.layers.Conv2D(5, 1)(b)
    c = keras.layers.Conv2D(4, 3, strides=2, padding="same")(a)
    c = keras.layers.BatchNormalization()(c)
    c = keras.layers.LeakyReLU(negative_slope=0.1)(c)
    d = keras.layers.Concatenate()([c, b])
    e = keras.layers.GlobalMaxPooling2D()(d)
    f = keras.layers.GlobalAveragePooling2D(keepdims=True)(d)
    f = keras.layers.Flatten()(f)
    out = keras.layers.Concatenate(axis=-1)([f, e])
    out = keras.layers.Dense(3, activation="softmax")(out)
    model = keras.Model(inp, out)
    _randomize(model, seed=4)
    return model


def conv_lstm_model():
    model = keras.Sequential(
        [
            keras.Input((2, 4, 4, 2)),
            keras.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True, go_backwards=True),
        ]
    )
    _randomize(model, seed=5)
    return model


RANDOM_MODELS = {
    "sequential_conv": (sequential_conv_model, (3, 12, 12, 4), 1e-4),
    "dense": (dense_model, (4, 7), 1e-5),
    "branching": (branching_model, (2, 8, 8, 3), 1e-4),
    "conv_lstm": (conv_lstm_model, (2, 2, 4, 4, 2), 1e-4),
}


def test_sequential_convolutional_model():
    model = sequential_conv_model()
    layer, params, state = _check(model, _x((3, 12, 12, 4)), 1e-4)
    assert layer.kind == "Functional"
    # Keras numbers its default names process-wide: read them off the model.
    bn = [lyr.name for lyr in model.layers if isinstance(lyr, keras.layers.BatchNormalization)]
    assert set(state) == set(bn)
    assert set(params[bn[1]]) == {"scale"}  # center=False: no beta


def test_dense_model_is_within_1e_5():
    _check(dense_model(), _x((4, 7)), 1e-5)


def test_functional_model_with_branches():
    layer, _, _ = _check(branching_model(), _x((2, 8, 8, 3)), 1e-4)
    names = [n.name for n in layer.nodes]
    assert names[:2] == ["stem", "stem_activation"]


def test_conv_lstm_model():
    _check(conv_lstm_model(), _x((2, 2, 4, 4, 2)), 1e-4)


def test_keras_file_path(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((5, 5, 2)),
            keras.layers.Conv2D(3, 3),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
        ]
    )
    _randomize(model, seed=6)
    path = tmp_path / "m.keras"
    model.save(path)
    layer, params, state = from_keras(str(path))
    x = _x((2, 5, 5, 2))
    ours, _ = layer.apply(params, state, jnp.asarray(x))
    theirs = np.asarray(model(x, training=False))
    assert rel_err(ours, theirs) <= 1e-4


@pytest.mark.parametrize(
    "make,match",
    [
        (
            lambda: keras.layers.Conv2DTranspose(2, 3, name="up"),
            r"a layer among InputLayer, Conv2D.*got Conv2DTranspose layer 'up'",
        ),
        (
            lambda: keras.layers.Conv2D(2, 1, data_format="channels_first", name="cf"),
            r"data_format in \['channels_last'\] for Conv2D layer 'cf'.*got 'channels_first'",
        ),
        (
            lambda: keras.layers.Conv2D(2, 3, activation="hard_silu", name="hs"),
            r"activation among .* for Conv2D layer 'hs'.*got 'hard_silu'",
        ),
        (
            lambda: keras.layers.Dense(2, lora_rank=1, name="lo"),
            r"lora_rank in \[None\] for Dense layer 'lo'.*got 1",
        ),
        (
            lambda: keras.layers.BatchNormalization(axis=1, name="bn1"),
            r"axis -1 .* for BatchNormalization layer 'bn1'.*got 1",
        ),
        (
            lambda: keras.layers.ConvLSTM2D(2, 3, activation="relu", name="cl"),
            r"activation in \['tanh'\] for ConvLSTM2D layer 'cl'",
        ),
    ],
)
def test_unsupported_layers_and_options_are_named(make, match):
    shape = (3, 6, 6, 2) if "ConvLSTM" in match else (6, 6, 2)
    model = keras.Sequential([keras.Input(shape), make()])
    with pytest.raises(ValueError, match=match):
        from_keras(model)


def test_unsupported_model_shapes():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="inner")
    outer = keras.Sequential([keras.Input((4,)), inner])
    with pytest.raises(ValueError, match=r"nested models not supported.*'inner'"):
        from_keras(outer)
    a, b = keras.Input((4,)), keras.Input((4,))
    two = keras.Model([a, b], keras.layers.Concatenate()([a, b]))
    with pytest.raises(ValueError, match=r"one input and one output.*got 2 inputs, 1 outputs"):
        from_keras(two)
    shared = keras.layers.Dense(4, name="shared")
    inp = keras.Input((4,))
    twice = keras.Model(inp, shared(shared(inp)))
    with pytest.raises(ValueError, match=r"each layer called once.*'shared', got 2 calls"):
        from_keras(twice)
    with pytest.raises(ValueError, match=r"a keras.Model or the path of a .keras file"):
        from_keras(42)


# --- to_keras: back to Keras.


def _keras_layers(model):
    return [lyr for lyr in model.layers if type(lyr).__name__ != "InputLayer"]


@pytest.mark.parametrize("name", sorted(RANDOM_MODELS))
def test_keras_from_keras_to_keras_is_the_same_model(name):
    make, shape, tol = RANDOM_MODELS[name]
    model = make()
    layer, params, state = from_keras(model)
    back = to_keras(layer, params, state)
    x = _x(shape)
    theirs = np.asarray(model(x, training=False))
    again = np.asarray(back(x, training=False))
    assert again.shape == theirs.shape and rel_err(again, theirs) <= tol, rel_err(again, theirs)
    # The same layers, names, options and weights (bitwise), activations folded back in.
    for a, b in zip(_keras_layers(model), _keras_layers(back), strict=True):
        assert type(a) is type(b) and a.name == b.name
        for option in ("activation", "strides", "padding", "groups", "negative_slope", "axis"):
            assert a.get_config().get(option) == b.get_config().get(option), (a.name, option)
        assert [w.name for w in a.weights] == [w.name for w in b.weights]
        for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
            assert np.array_equal(u, v), a.name
    # And once more into jaxheads: the same tree.
    layer2, params2, state2 = from_keras(back)
    assert [n.name for n in layer2.nodes] == [n.name for n in layer.nodes]
    same = jax.tree.map(np.array_equal, (params, state), (params2, state2))
    assert all(jax.tree.leaves(same))


def test_jaxheads_layers_nested_into_one_keras_model():
    """A model written with `jaxheads.layers` (a nested block, batch-norm state), no Keras first."""
    block = L.serial(L.Conv2D(6, 3, padding="same"), L.BatchNormalization(), L.LeakyReLU(0.1))
    layer = L.serial(
        block,
        L.MaxPooling2D(2),
        L.Conv2D(4, 1),
        L.GlobalAveragePooling2D(),
        L.Dense(3),
        name="net",
    )
    shape = (None, 8, 8, 3)
    _, params, state = layer.init(jax.random.key(0), shape)
    rng = np.random.default_rng(7)
    state = jax.tree.map(lambda a: jnp.asarray(rng.uniform(0.5, 2.0, a.shape), jnp.float32), state)
    model = to_keras(layer, params, state, input_shape=shape)
    x = _x((2, 8, 8, 3))
    ours, _ = layer.apply(params, state, jnp.asarray(x))
    assert rel_err(model(x, training=False), ours) <= 1e-4
    names = [lyr.name for lyr in _keras_layers(model)]
    assert names[:3] == [
        "sequential_conv2d",
        "sequential_batch_normalization",
        "sequential_leaky_re_lu",
    ]
    assert model.name == "net"


@pytest.mark.parametrize(
    "layer,match",
    [
        (
            L.serial(L.Conv2D(4, 3, padding="same"), L.DarknetReorg(2)),
            r"to_keras: expected a layer with a Keras equivalent .*got DarknetReorg layer 'reorg'",
        ),
        (
            L.serial(L.LocallyConnected2D(2, 3, name="local")),
            r"got LocallyConnected2D layer 'local'",
        ),
        (
            L.serial(L.Conv2D(4, 3, padding=1, name="pad1")),
            r"padding 'same' or 'valid' for Conv2D layer 'pad1'.*got \(\(1, 1\), \(1, 1\)\)",
        ),
        (
            L.serial(L.Activation(lambda x: x * 2, name="twice")),
            r"an activation Keras names .* for Activation layer 'twice'.*got <lambda>",
        ),
    ],
)
def test_layers_without_a_keras_equivalent_are_named(layer, match):
    _, params, state = layer.init(jax.random.key(0), (None, 6, 6, 2))
    with pytest.raises(ValueError, match=match):
        to_keras(layer, params, state, input_shape=(None, 6, 6, 2))


def test_a_graph_without_an_input_shape_asks_for_one():
    layer = L.serial(L.Dense(2), name="mlp")
    _, params, state = layer.init(jax.random.key(0), (None, 3))
    with pytest.raises(ValueError, match=r"input_shape .* for Sequential layer 'mlp'"):
        to_keras(layer, params, state)
    assert to_keras(layer, params, state, input_shape=(None, 3)).output_shape == (None, 2)
