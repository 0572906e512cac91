"""Layers: shape inference, jit/vmap behaviour, and whole models against Keras 3."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from compilations import compilations
from layer_cases import CASES

from jaxheads import layers as L


def _random(shape, seed=0):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


@pytest.mark.parametrize("make,shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_init_shape_matches_apply(make, shape, maybe_jit):
    layer = make()
    out_shape, params, state = layer.init(jax.random.key(0), (None, *shape[1:]))
    y, new_state = maybe_jit(layer.apply)(params, state, _random(shape))
    assert out_shape == (None, *y.shape[1:])
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize("make,shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_jit_matches_eager_and_vmap_matches_loop(make, shape):
    layer = make()
    _, params, state = layer.init(jax.random.key(1), shape)
    xs = _random((3, *shape), seed=2)

    def f(x):
        return layer.apply(params, state, x)[0]

    eager = [f(x) for x in xs]
    np.testing.assert_allclose(jax.vmap(f)(xs), np.stack(eager), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(f)(xs[0]), eager[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make,shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_gradients_are_finite_and_no_recompile(make, shape):
    layer = make()
    _, params, state = layer.init(jax.random.key(0), shape)

    @jax.jit
    def loss(p, x, key):
        y, _ = layer.apply(p, state, x, train=True, key=key)
        return jnp.sum(y**2)

    x = _random(shape)
    grad = jax.grad(loss.__wrapped__)(params, x, jax.random.key(3))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grad))
    x2, keys = x + 1, (jax.random.key(4), jax.random.key(5))
    with compilations("loss") as compiled:
        loss(params, x, keys[0])
        loss(params, x2, keys[1])
    assert len(compiled) == 1


@pytest.mark.parametrize("make,shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_gradients_under_jit(make, shape):
    """Reverse mode inside jit, as a training step uses it (pooling once failed here)."""
    layer = make()
    _, params, state = layer.init(jax.random.key(0), shape)
    x = _random(shape)
    grad = jax.jit(
        jax.grad(lambda p, x: jnp.sum(layer.apply(p, state, x)[0] ** 2), argnums=(0, 1))
    )(params, x)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grad))


def test_closed_form_values_with_constant_init():
    ones = jax.nn.initializers.ones
    layer = L.serial(
        L.Conv2D(2, 3, padding="valid", kernel_init=ones), L.Flatten(), L.Dense(1, kernel_init=ones)
    )
    _, params, state = layer.init(jax.random.key(0), (None, 4, 4, 1))
    y, _ = layer.apply(params, state, jnp.ones((1, 4, 4, 1)))
    # Each conv output is 3*3*1 = 9; 2x2 cells x 2 filters = 8 values; dense sums them.
    assert float(y[0, 0]) == 72.0


def test_dropout_uses_key_only_in_training():
    layer = L.Dropout(0.5)
    x = jnp.ones((1000,))
    y, _ = layer.apply({}, {}, x)
    np.testing.assert_array_equal(y, x)
    y1, _ = layer.apply({}, {}, x, train=True, key=jax.random.key(0))
    y2, _ = layer.apply({}, {}, x, train=True, key=jax.random.key(1))
    assert set(np.unique(np.asarray(y1))) <= {0.0, 2.0}
    assert not np.array_equal(y1, y2)
    with pytest.raises(ValueError, match="dropout: expected a PRNG `key`"):
        layer.apply({}, {}, x, train=True)


def test_batchnorm_state_is_returned_not_hidden():
    layer = L.BatchNormalization(momentum=0.5)
    _, params, state = layer.init(jax.random.key(0), (None, 3))
    x = jnp.array([[1.0, 2.0, 3.0], [3.0, 6.0, 9.0]])
    _, same = layer.apply(params, state, x)
    assert same is state
    _, new = layer.apply(params, state, x, train=True)
    np.testing.assert_allclose(new["mean"], 0.5 * 0 + 0.5 * jnp.array([2.0, 4.0, 6.0]))
    np.testing.assert_allclose(new["var"], 0.5 * 1 + 0.5 * jnp.array([1.0, 4.0, 9.0]))
    np.testing.assert_array_equal(state["mean"], jnp.zeros(3))


def test_serial_names_like_keras():
    model = L.serial(L.Dense(2), L.Dense(2), L.Flatten(), L.Dense(1, name="out"))
    assert [n.name for n in model.nodes] == ["dense", "dense_1", "flatten", "out"]
    _, params, _ = model.init(jax.random.key(0), (None, 3))
    assert sorted(params) == ["dense", "dense_1", "out"]


def test_graph_routes_and_concatenates():
    model = L.graph(
        [
            ("a", L.Conv2D(4, 1)),
            ("s2d", L.SpaceToDepth(2)),
            ("b", L.MaxPooling2D(2), "input"),
            ("cat", L.Concatenate(), ("s2d", "b")),
        ],
        outputs=("cat", "a"),
    )
    (cat_shape, a_shape), params, _ = model.init(jax.random.key(0), (None, 4, 4, 3))
    assert cat_shape == (None, 2, 2, 19) and a_shape == (None, 4, 4, 4)
    x = _random((2, 4, 4, 3))
    (cat, a), _ = model.apply(params, {}, x)
    np.testing.assert_allclose(cat[..., 16:], L.MaxPooling2D(2).apply({}, {}, x)[0])
    np.testing.assert_allclose(cat[..., :16], L.SpaceToDepth(2).apply({}, {}, a)[0])


def test_graph_rejects_unknown_inputs_and_duplicates():
    with pytest.raises(ValueError, match="graph: expected node 'b' to read earlier nodes"):
        L.graph([("a", L.Dense(1)), ("b", L.Dense(1), "c")])
    with pytest.raises(ValueError, match="graph: expected a unique node name"):
        L.graph([("a", L.Dense(1)), ("a", L.Dense(1))])
    with pytest.raises(ValueError, match="graph: expected outputs naming nodes"):
        L.graph([("a", L.Dense(1))], outputs="z")


def test_bad_input_shape_at_init():
    with pytest.raises(ValueError, match="Dense: expected an input shape with a known last axis"):
        L.Dense(3).init(jax.random.key(0), (None, None))
    with pytest.raises(ValueError, match="LocallyConnected2D: expected a kernel that fits"):
        L.LocallyConnected2D(3, 5).init(jax.random.key(0), (None, 3, 3, 1))
    with pytest.raises(ValueError, match="Reshape: expected an input with 10 values"):
        L.Reshape((10,)).init(jax.random.key(0), (None, 3, 3))


# --- whole models against Keras 3 with the same weights -------------------------------------


def _keras_to_params(keras_model, model, params, state):
    """Copies Keras weights into our params/state, layer by layer, in model order."""
    params, state = jax.tree.map(lambda a: a, (params, state))
    keras_layers = [k for k in keras_model.layers if not isinstance(k, keras.layers.InputLayer)]
    for node, klayer in zip(model.nodes, keras_layers, strict=True):
        w = [jnp.asarray(v) for v in klayer.get_weights()]
        if node.layer.kind == "BatchNormalization":
            params[node.name] = {"scale": w[0], "bias": w[1]}
            state[node.name] = {"mean": w[2], "var": w[3]}
        elif w:
            params[node.name] = dict(zip(["kernel", "bias"], w, strict=False))
    return params, state


def _randomize_bn(keras_model, rng):
    for layer in keras_model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.get_weights()[0].shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, c),
                    rng.normal(size=c),
                    rng.normal(size=c),
                    rng.uniform(0.5, 2.0, c),
                ]
            )


def test_sequential_model_matches_keras():
    rng = np.random.default_rng(0)
    model = L.serial(
        L.Conv2D(8, 3, padding="same"),
        L.BatchNormalization(),
        L.LeakyReLU(0.1),
        L.MaxPooling2D(2),
        L.Conv2D(6, 3, strides=2, padding="valid"),
        L.BatchNormalization(),
        L.LeakyReLU(0.1),
        L.Flatten(),
        L.Dense(7),
    )
    km = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Conv2D(8, 3, padding="same"),
            keras.layers.BatchNormalization(),
            keras.layers.LeakyReLU(negative_slope=0.1),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(6, 3, strides=2, padding="valid"),
            keras.layers.BatchNormalization(),
            keras.layers.LeakyReLU(negative_slope=0.1),
            keras.layers.Flatten(),
            keras.layers.Dense(7),
        ]
    )
    _randomize_bn(km, rng)
    shape, params, state = model.init(jax.random.key(0), (None, 12, 12, 3))
    assert shape == tuple(km.output_shape)
    params, state = _keras_to_params(km, model, params, state)
    assert L.count(params) + L.count(state) == km.count_params()
    assert L.count(state) == sum(int(np.prod(w.shape)) for w in km.non_trainable_weights)
    x = rng.normal(size=(4, 12, 12, 3)).astype(np.float32)
    ours, _ = model.apply(params, state, jnp.asarray(x))
    with jax.numpy_rank_promotion("allow"):  # Keras' own code broadcasts implicitly
        theirs = np.asarray(km(x, training=False))
        theirs_train = np.asarray(km(x, training=True))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    ours_train, new_state = model.apply(params, state, jnp.asarray(x), train=True)
    np.testing.assert_allclose(ours_train, theirs_train, rtol=1e-4, atol=1e-4)


def test_functional_model_with_passthrough_matches_keras():
    rng = np.random.default_rng(1)
    inp = keras.Input((8, 8, 3))
    convs = {
        "a": keras.layers.Conv2D(4, 3, padding="same"),
        "c": keras.layers.Conv2D(5, 1),
        "d": keras.layers.Conv2D(2, 1),
    }
    a = convs["a"](inp)
    b = keras.layers.MaxPooling2D(2)(a)
    c = convs["c"](b)
    d = convs["d"](a)
    d = keras.layers.Reshape((4, 2, 4, 2, 2))(d)  # space_to_depth by hand, TF order
    d = keras.layers.Permute((1, 3, 2, 4, 5))(d)
    d = keras.layers.Reshape((4, 4, 8))(d)
    out = keras.layers.Concatenate()([d, c])
    km = keras.Model(inp, out)
    model = L.graph(
        [
            ("a", L.Conv2D(4, 3, padding="same")),
            ("b", L.MaxPooling2D(2)),
            ("c", L.Conv2D(5, 1)),
            ("d", L.Conv2D(2, 1), "a"),
            ("s2d", L.SpaceToDepth(2)),
            ("cat", L.Concatenate(), ("s2d", "c")),
        ]
    )
    _, params, state = model.init(jax.random.key(0), (None, 8, 8, 3))
    for name, klayer in convs.items():
        params[name] = dict(
            zip(["kernel", "bias"], map(jnp.asarray, klayer.get_weights()), strict=True)
        )
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    ours, _ = model.apply(params, state, jnp.asarray(x))
    with jax.numpy_rank_promotion("allow"):  # Keras' own code broadcasts implicitly
        theirs = np.asarray(km(x))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
