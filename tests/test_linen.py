"""Linen modules: each equals its pure layer; collections and flags as Linen's own; training."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from layer_cases import ROWS

import jaxheads.linen as jlinen
from jaxheads import layers as L


def _equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.parametrize("kind,args,kwargs,shape", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_linen_module_equals_pure_layer(kind, args, kwargs, shape):
    pure = getattr(L, kind)(*args, **kwargs)
    fields = dict(
        zip(
            [f for f in getattr(jlinen, kind).__dataclass_fields__ if f not in ("parent", "name")],
            args,
            strict=False,
        )
    )
    module = getattr(jlinen, kind)(**fields, **kwargs)
    x = jax.random.normal(jax.random.key(1), shape)
    variables = module.init(
        {"params": jax.random.key(0), "dropout": jax.random.key(3)},
        x,
        **({"deterministic": True} if kind == "Dropout" else {}),
        **({"use_running_average": True} if kind == "BatchNormalization" else {}),
    )
    params, state = variables.get("params", {}), variables.get("batch_stats", {})
    assert set(variables) <= {"params", "batch_stats"}
    _, params0, state0 = pure.init(jax.random.key(0), (None, *shape[1:]))
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, params0)
    _equal(state, state0)
    if kind == "BatchNormalization":
        y, updates = module.apply(variables, x, use_running_average=False, mutable=["batch_stats"])
        want, want_state = pure.apply(params, state, x, train=True)
        np.testing.assert_array_equal(y, want)
        _equal(updates["batch_stats"], want_state)
        y = module.apply(variables, x, use_running_average=True)
    elif kind == "Dropout":
        key = jax.random.key(5)
        y = module.apply(variables, x, deterministic=False, rngs={"dropout": key})
        # Linen derives the key from the collection and the module path, as for nn.Dropout.
        np.testing.assert_array_equal(
            y, nn.Dropout(*args).apply({}, x, deterministic=False, rngs={"dropout": key})
        )
        assert 0 < int(jnp.sum(y == 0)) < y.size
        y = module.apply(variables, x, deterministic=True)
    else:
        y = module.apply(variables, x)
    np.testing.assert_array_equal(y, pure.apply(params, state, x)[0])


def test_flags_follow_linen_batch_norm_and_dropout():
    x = jax.random.normal(jax.random.key(0), (8, 5)) * 2.0 + 1.0
    ours = jlinen.BatchNormalization(momentum=0.9, epsilon=1e-5)
    theirs = nn.BatchNorm(momentum=0.9, epsilon=1e-5)
    v_ours = ours.init(jax.random.key(0), x, use_running_average=False)
    v_theirs = theirs.init(jax.random.key(0), x, use_running_average=False)
    # init leaves the statistics at their start, as nn.BatchNorm does.
    np.testing.assert_array_equal(v_ours["batch_stats"]["mean"], jnp.zeros(5))
    y1, s1 = ours.apply(v_ours, x, use_running_average=False, mutable=["batch_stats"])
    y2, s2 = theirs.apply(v_theirs, x, use_running_average=False, mutable=["batch_stats"])
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s1["batch_stats"]["mean"], s2["batch_stats"]["mean"], rtol=1e-6)
    np.testing.assert_allclose(s1["batch_stats"]["var"], s2["batch_stats"]["var"], rtol=1e-6)
    with pytest.raises(ValueError, match="use_running_average"):
        ours.apply(v_ours, x)  # neither attribute nor argument, as nn.BatchNorm
    drop = jlinen.Dropout(0.5)
    key = jax.random.key(7)
    np.testing.assert_array_equal(
        drop.apply({}, x, deterministic=False, rngs={"dropout": key}),
        nn.Dropout(0.5).apply({}, x, deterministic=False, rngs={"dropout": key}),
    )
    np.testing.assert_array_equal(jlinen.Dropout(0.5, deterministic=True).apply({}, x), x)


class Model(nn.Module):
    """jaxheads' Linen layers beside Linen's own, with batch norm from both."""

    @nn.compact
    def __call__(self, x, train: bool):
        x = jlinen.Conv2D(8, 3, padding="same", use_bias=False)(x)
        x = jlinen.BatchNormalization(use_running_average=not train, momentum=0.9)(x)
        x = jlinen.LeakyReLU(0.1)(x)
        x = nn.Conv(8, (3, 3), use_bias=False)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = jlinen.MaxPooling2D(2)(nn.relu(x))
        x = jlinen.Dropout(0.2, deterministic=not train)(jlinen.Flatten()(x))
        return jlinen.Dense(2)(x)


def test_linen_model_trains_with_optax_and_batch_stats_move():
    model = Model()
    x = jax.random.normal(jax.random.key(0), (8, 8, 8, 3))
    t = jnp.stack([jnp.mean(x, axis=(1, 2, 3)), jnp.std(x, axis=(1, 2, 3))], axis=1)
    variables = model.init(jax.random.key(1), x, train=False)
    params, stats = variables["params"], variables["batch_stats"]
    assert {"Conv2D_0", "BatchNormalization_0", "Conv_0", "BatchNorm_0", "Dense_0"} <= set(params)
    assert set(stats) == {"BatchNormalization_0", "BatchNorm_0"}
    tx = optax.sgd(0.01, momentum=0.9)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, stats, opt_state, key):
        def loss_fn(p):
            y, updates = model.apply(
                {"params": p, "batch_stats": stats},
                x,
                train=True,
                mutable=["batch_stats"],
                rngs={"dropout": key},
            )
            return jnp.mean((y - t) ** 2), updates["batch_stats"]

        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss

    start = stats
    losses = []
    for i in range(8):
        params, stats, opt_state, loss = step(params, stats, opt_state, jax.random.key(i))
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    for name in ("BatchNormalization_0", "BatchNorm_0"):
        assert not np.allclose(stats[name]["mean"], start[name]["mean"]), name
    y = model.apply({"params": params, "batch_stats": stats}, x, train=False)
    np.testing.assert_array_equal(
        y, model.apply({"params": params, "batch_stats": stats}, x, train=False)
    )


def test_layer_module_wraps_a_model():
    layer = L.serial(L.Conv2D(4, 3), L.BatchNormalization(), L.Flatten(), L.Dense(2))
    module = jlinen.LayerModule(layer)
    x = jax.random.normal(jax.random.key(0), (4, 6, 6, 3))
    variables = module.init(jax.random.key(0), x)
    _, params0, state0 = layer.init(jax.random.key(0), (None, 6, 6, 3))
    assert jax.tree.map(jnp.shape, variables["params"]) == jax.tree.map(jnp.shape, params0)
    _equal(variables["batch_stats"], state0)
    np.testing.assert_array_equal(
        module.apply(variables, x), layer.apply(variables["params"], state0, x)[0]
    )
    y, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
    want, want_state = layer.apply(variables["params"], state0, x, train=True)
    np.testing.assert_array_equal(y, want)
    _equal(updates["batch_stats"], want_state)
    # Dropout inside draws from the "dropout" rng collection.
    dropping = jlinen.LayerModule(L.serial(L.Dense(6), L.Dropout(0.5)))
    v = dropping.init(jax.random.key(0), x[:, 0, 0])
    a, b = (
        dropping.apply(v, x[:, 0, 0], train=True, rngs={"dropout": jax.random.key(k)})
        for k in (1, 2)
    )
    assert not np.array_equal(a, b) and 0 < int(jnp.sum(a == 0)) < a.size
    np.testing.assert_array_equal(dropping.apply(v, x[:, 0, 0]), dropping.apply(v, x[:, 0, 0]))


def test_every_hyperparameter_of_the_pure_layer_is_a_field_of_the_module():
    """`from_attributes` keeps a layer's default where a module lacks the attribute."""
    import dataclasses
    import inspect

    checked = 0
    for name in dir(jlinen):
        module = getattr(jlinen, name)
        if not (isinstance(module, type) and issubclass(module, nn.Module)):
            continue
        if not hasattr(L, name):
            continue
        fields = {f.name for f in dataclasses.fields(module)}
        missing = [
            p.name
            for p in inspect.signature(getattr(L, name)).parameters.values()
            if p.name != "name"
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and p.name not in fields
        ]
        assert not missing, (name, missing)
        checked += 1
    assert checked >= 17
