"""NNX modules: each equals its pure layer; Flax's manners (signatures, modes, Rngs streams)."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from layer_cases import CASES, ROWS

import jaxheads.nnx as jnnx
from jaxheads import layers as L

SHAPED = ("Dense", "Conv2D", "ConvLSTM2D", "LocallyConnected2D")


def build(kind, args, kwargs, shape, rngs):
    """The NNX module of a `layer_cases` row: in_features first where the layer has params."""
    cls = getattr(jnnx, kind)
    if kind in SHAPED:
        extra = {"input_size": shape[1:3]} if kind == "LocallyConnected2D" else {}
        return cls(shape[-1], *args, **kwargs, **extra, rngs=rngs)
    if kind == "BatchNormalization":
        return cls(shape[-1], *args, **kwargs, rngs=rngs)
    if kind == "Dropout":
        return cls(*args, **kwargs, rngs=rngs)
    return cls(*args, **kwargs)


def _equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.parametrize("kind,args,kwargs,shape", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_named_module_equals_pure_layer(kind, args, kwargs, shape):
    module = build(kind, args, kwargs, shape, nnx.Rngs(0))
    assert type(module).__name__ == kind
    pure = getattr(L, kind)(*args, **kwargs)
    # Eager construction creates the params the pure layer's init creates from the same key.
    _, params0, state0 = pure.init(nnx.Rngs(0).params(), (None, *shape[1:]))
    layer, params, state = module.pure()
    assert layer.kind == kind
    _equal(params, params0)
    _equal(state, state0)
    x = jax.random.normal(jax.random.key(1), shape)
    key = jax.random.key(2)
    # Training mode is the default.
    want, want_state = pure.apply(params, state, x, train=True, key=key)
    got = module(x, rngs=key) if kind == "Dropout" else module(x)
    np.testing.assert_array_equal(got, want)
    _equal(module.pure()[2], want_state)
    module.eval()
    np.testing.assert_array_equal(module(x), pure.apply(params, want_state, x)[0])
    _equal(module.pure()[2], want_state)  # evaluation leaves the statistics alone


@pytest.mark.parametrize("make,shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_layer_module_equals_pure_layer(make, shape):
    layer = make()
    module = jnnx.LayerModule(layer, (None, *shape[1:]), rngs=nnx.Rngs(0))
    module.eval()
    _, params, state = module.pure()
    x = jax.random.normal(jax.random.key(1), shape)
    np.testing.assert_array_equal(module(x), layer.apply(params, state, x)[0])


def _signature(cls):
    params = dict(inspect.signature(cls.__init__).parameters)
    del params["self"]
    return params


def test_every_leaf_layer_has_a_named_module_with_named_hyperparameters():
    leaves = {r[1] for r in ROWS} | {"Concatenate"}
    assert leaves <= set(jnnx.__all__)
    for kind in leaves:
        cls = getattr(jnnx, kind)
        assert issubclass(cls, jnnx.LeafModule) and cls.__name__ == kind
        params = _signature(cls)
        assert not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params.values())
        assert "input_shape" not in params
        has_params = kind in SHAPED or kind == "BatchNormalization"
        assert ("rngs" in params) == (has_params or kind == "Dropout"), kind
        if has_params:
            first = next(iter(params))
            assert first == ("num_features" if kind == "BatchNormalization" else "in_features")
    sig = _signature(jnnx.Conv2D)
    assert list(sig)[:3] == ["in_features", "filters", "kernel_size"]
    assert sig["padding"].default == "valid" and sig["rngs"].kind == inspect.Parameter.KEYWORD_ONLY
    assert _signature(jnnx.LeakyReLU)["negative_slope"].default == 0.3


def test_variables_are_attributes_named_as_flax_leaves():
    conv = jnnx.Conv2D(4, 7, 3, strides=2, padding="same", use_bias=False, rngs=nnx.Rngs(0))
    assert isinstance(conv.kernel, nnx.Param) and conv.kernel.shape == (3, 3, 4, 7)
    assert conv.bias is None
    bn = jnnx.BatchNormalization(5, center=False)
    assert bn.bias is None and isinstance(bn.scale, nnx.Param)
    assert isinstance(bn.mean, nnx.BatchStat) and isinstance(bn.var, nnx.BatchStat)
    paths = {path for path, _ in nnx.to_flat_state(nnx.state(bn, nnx.BatchStat))}
    assert paths == {("mean",), ("var",)}


def test_training_mode_is_the_default_until_eval():
    bn = jnnx.BatchNormalization(3)
    drop = jnnx.Dropout(0.5, rngs=nnx.Rngs(1))
    assert bn.use_running_average is False and drop.deterministic is False
    x = jnp.arange(12.0).reshape(4, 3)
    bn(x)
    np.testing.assert_allclose(bn.mean[...], 0.01 * jnp.mean(x, axis=0), rtol=1e-6)
    assert not np.array_equal(drop(x), drop(x))  # active, with a fresh key per call
    block = nnx.Sequential(bn, drop)
    block.eval()
    assert bn.use_running_average is True and drop.deterministic is True
    mean = np.asarray(bn.mean[...])
    np.testing.assert_array_equal(drop(x), x)
    bn(x)
    np.testing.assert_array_equal(bn.mean[...], mean)
    block.train()
    assert bn.use_running_average is False and drop.deterministic is False
    view = nnx.view(block, deterministic=True, use_running_average=True)
    assert view.layers[0].use_running_average and view.layers[1].deterministic
    # A call's argument wins over the mode.
    np.testing.assert_array_equal(drop(x, deterministic=True), x)


def test_batch_norm_and_dropout_match_flax_modules():
    x = jax.random.normal(jax.random.key(0), (8, 5)) * 3.0 + 1.0
    ours = jnnx.BatchNormalization(5, momentum=0.9, epsilon=1e-5)
    flax_bn = nnx.BatchNorm(5, momentum=0.9, epsilon=1e-5, rngs=nnx.Rngs(0))
    for _ in range(2):
        np.testing.assert_allclose(ours(x), flax_bn(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.mean[...], flax_bn.mean[...], rtol=1e-6)
    np.testing.assert_allclose(ours.var[...], flax_bn.var[...], rtol=1e-6)
    ours.eval()
    flax_bn.eval()
    np.testing.assert_allclose(ours(x), flax_bn(x), rtol=1e-5, atol=1e-5)
    # Same Rngs, same stream fallback ("dropout" served by "default"), same masks.
    a, b = jnnx.Dropout(0.5, rngs=nnx.Rngs(3)), nnx.Dropout(0.5, rngs=nnx.Rngs(3))
    for _ in range(2):
        np.testing.assert_array_equal(a(x), b(x))


def test_rngs_with_only_a_params_stream():
    rngs = nnx.Rngs(params=0)
    conv = jnnx.Conv2D(2, 3, 3, rngs=rngs)
    assert conv(jnp.ones((1, 5, 5, 2))).shape == (1, 3, 3, 3)
    drop = jnnx.Dropout(0.5, rngs=rngs)
    x = jnp.ones((4, 6))
    with pytest.raises(
        ValueError,
        match="Dropout: expected a 'dropout' key for dropout in "
        "training mode: build it with rngs=nnx.Rngs",
    ):
        drop(x)
    assert drop(x, rngs=jax.random.key(0)).shape == x.shape
    assert drop(x, rngs=nnx.Rngs(dropout=1)).shape == x.shape
    drop.eval()
    np.testing.assert_array_equal(drop(x), x)
    model = jnnx.LayerModule(L.serial(L.Dense(4), L.Dropout(0.5)), (None, 6), rngs=rngs)
    with pytest.raises(ValueError, match="LayerModule: expected a 'dropout' key"):
        model(x)
    assert model(x, rngs=jax.random.key(1)).shape == (4, 4)
    model.eval()
    assert model(x).shape == (4, 4)


def test_layer_module_modes_and_state():
    m = jnnx.LayerModule(
        L.serial(L.BatchNormalization(), L.Dropout(0.5)),
        (None, 3),
        rngs=nnx.Rngs(params=0, dropout=1),
    )
    x = jnp.arange(12.0).reshape(4, 3)
    y1, y2 = m(x), m(x)
    assert not np.array_equal(y1, y2)
    assert float(m.state["batch_normalization"]["mean"][...][0]) != 0.0
    m.eval()
    mean = np.asarray(m.state["batch_normalization"]["mean"][...])
    np.testing.assert_array_equal(m(x), m(x))
    np.testing.assert_array_equal(m.state["batch_normalization"]["mean"][...], mean)
    with pytest.raises(ValueError, match="use_running_average == deterministic"):
        m(x, deterministic=False)


def test_heads_wrap_as_nnx_modules():
    from jaxheads.heads import yolov1_fc

    layer, shape = yolov1_fc(side=2, num_classes=3, hidden=8).layer, (None, 2, 2, 4)
    module = jnnx.LayerModule(layer, shape, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (2, *shape[1:]))
    assert not np.array_equal(module(x), module(x))  # its dropout is active while training
    module.eval()
    _, params, state = module.pure()
    np.testing.assert_array_equal(module(x), layer.apply(params, state, x)[0])


def _hyperparameters(make_layer):
    return [
        p.name
        for p in inspect.signature(make_layer).parameters.values()
        if p.name != "name" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def test_every_hyperparameter_of_the_pure_layer_can_be_set_on_the_module():
    """`from_attributes` keeps a layer's default where a module lacks the attribute: a
    module that forgot one would silently ignore the user's setting."""
    modules = [
        getattr(jnnx, n) for n in dir(jnnx) if getattr(getattr(jnnx, n), "_pure_layer", None)
    ]
    assert len(modules) >= 17
    for module in modules:
        accepted = set(inspect.signature(module.__init__).parameters)
        renames = module._layer_renames
        missing = [
            p
            for p in _hyperparameters(module._pure_layer)
            if p not in accepted and renames.get(p) not in accepted
        ]
        assert not missing, (module.__name__, missing)
