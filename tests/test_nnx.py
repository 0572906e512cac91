"""NNX modules: same params => same output as the pure layer; modes and state handling."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from layer_cases import CASES, ROWS

import jaxheads.nnx as jnnx
from jaxheads import layers as L


@pytest.mark.parametrize("make,shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_module_equals_pure_function(make, shape):
    layer = make()
    module = jnnx.LayerModule(layer, (None, *shape[1:]), rngs=nnx.Rngs(0))
    _, params, state = module.pure()
    x = jax.random.normal(jax.random.key(1), shape)
    np.testing.assert_array_equal(module(x), layer.apply(params, state, x)[0])


@pytest.mark.parametrize("kind,args,kwargs,shape", [r[1:] for r in ROWS],
                         ids=[r[0] for r in ROWS])
def test_named_module_equals_pure_layer(kind, args, kwargs, shape):
    module = getattr(jnnx, kind)(*args, input_shape=(None, *shape[1:]), rngs=nnx.Rngs(0),
                                 **kwargs)
    assert type(module).__name__ == kind
    layer, params, state = module.pure()
    assert layer.kind == kind and layer == getattr(L, kind)(*args, **kwargs)._replace(
        init=layer.init, apply=layer.apply)
    x = jax.random.normal(jax.random.key(1), shape)
    np.testing.assert_array_equal(module(x), getattr(L, kind)(*args, **kwargs).apply(
        params, state, x)[0])


def test_every_layer_has_a_named_module():
    leaf_layers = {"Activation", "AveragePooling2D", "BatchNormalization", "Concatenate",
                   "Conv2D", "ConvLSTM2D", "DarknetReorg", "Dense", "Dropout", "Flatten",
                   "GlobalAveragePooling2D", "GlobalMaxPooling2D", "LeakyReLU",
                   "LocallyConnected2D", "MaxPooling2D", "Reshape", "SpaceToDepth"}
    assert set(jnnx.WRAPPED) == leaf_layers
    for name, cls in jnnx.WRAPPED.items():
        assert cls.__name__ == name and issubclass(cls, jnnx.LayerModule)


def test_named_module_builds_the_layer_with_its_hyperparameters():
    m = jnnx.Conv2D(7, 3, strides=2, padding="same", input_shape=(None, 9, 9, 4),
                    rngs=nnx.Rngs(0))
    assert m.output_shape == (None, 5, 5, 7)
    assert m.params["kernel"][...].shape == (3, 3, 4, 7)
    x = jnp.ones((2, 9, 9, 4))
    _, params, _ = m.pure()
    np.testing.assert_array_equal(m(x), L.Conv2D(7, 3, strides=2, padding="same").apply(
        params, {}, x)[0])


def test_train_and_eval_modes():
    m = jnnx.LayerModule(L.serial(L.BatchNormalization(), L.Dropout(0.5)), (None, 3),
                         rngs=nnx.Rngs(params=0, dropout=1))
    x = jnp.arange(12.0).reshape(4, 3)
    y_eval = m(x)
    np.testing.assert_array_equal(m.state["batch_normalization"]["mean"][...], jnp.zeros(3))
    m.train()
    y1, y2 = m(x), m(x)
    assert not np.array_equal(y1, y2)  # a fresh dropout key per call
    assert float(m.state["batch_normalization"]["mean"][...][0]) != 0.0
    m.eval()
    assert m(x).shape == y_eval.shape


def test_optax_training_step_with_nnx():
    model = jnnx.LayerModule(L.serial(L.Conv2D(4, 3), L.BatchNormalization(), L.Flatten(),
                                      L.Dense(1)), (None, 6, 6, 2), rngs=nnx.Rngs(0))
    model.train()
    opt = nnx.Optimizer(model, optax.sgd(0.05), wrt=nnx.Param)
    x = jax.random.normal(jax.random.key(0), (8, 6, 6, 2))
    t = jnp.sum(x, axis=(1, 2, 3))[:, None] * 0.1

    @nnx.jit
    def step(model, opt):
        def loss_fn(m):
            return jnp.mean((m(x) - t) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt)) for _ in range(20)]
    assert losses[-1] < losses[0] * 0.5


def test_heads_and_models_wrap_as_nnx_modules():
    from jaxheads.heads import yolov1_fc, yolov2
    from jaxheads.models import small_detector

    for layer, shape in [
        (yolov1_fc(side=2, num_classes=3, hidden=8).layer, (None, 2, 2, 4)),
        (yolov2(anchors=((1.0, 1.0),), num_classes=2, width=8).layer, (None, 2, 2, 4)),
        (small_detector("yolov2-passthrough", image_size=32).layer, (None, 32, 32, 3)),
    ]:
        module = jnnx.LayerModule(layer, shape, rngs=nnx.Rngs(0))
        _, params, state = module.pure()
        x = jax.random.normal(jax.random.key(0), (2, *shape[1:]))
        np.testing.assert_array_equal(module(x), layer.apply(params, state, x)[0])
