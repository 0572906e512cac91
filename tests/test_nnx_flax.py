"""jaxheads NNX modules inside Flax models: training with optax, nnx transforms, summaries."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxheads
import jaxheads.nnx as jnnx


class Mixed(nnx.Module):
    """Flax's and jaxheads' layers side by side, each with batch norm and dropout."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv = jnnx.Conv2D(3, 8, 3, padding="same", use_bias=False, rngs=rngs)
        self.bn = jnnx.BatchNormalization(8, momentum=0.9, rngs=rngs)
        self.flax_conv = nnx.Conv(8, 8, (3, 3), use_bias=False, rngs=rngs)
        self.flax_bn = nnx.BatchNorm(8, momentum=0.9, rngs=rngs)
        self.pool = jnnx.MaxPooling2D(2)
        self.flatten = jnnx.Flatten()
        self.drop = jnnx.Dropout(0.2, rngs=rngs)
        self.flax_drop = nnx.Dropout(0.2, rngs=rngs)
        self.head = jnnx.Dense(4 * 4 * 8, 2, rngs=rngs)

    def __call__(self, x):
        x = jnnx.LeakyReLU(0.1)(self.bn(self.conv(x)))
        x = nnx.relu(self.flax_bn(self.flax_conv(x)))
        return self.head(self.flax_drop(self.drop(self.flatten(self.pool(x)))))


def _data():
    x = jax.random.normal(jax.random.key(0), (8, 8, 8, 3))
    t = jnp.stack([jnp.mean(x, axis=(1, 2, 3)), jnp.std(x, axis=(1, 2, 3))], axis=1)
    return x, t


@nnx.jit
def _step(model, optimizer, x, t):
    def loss_fn(m):
        return jnp.mean((m(x) - t) ** 2)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def test_mixed_model_trains_with_optax_and_both_batch_norms_move():
    model = Mixed(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.01, momentum=0.9), wrt=nnx.Param)
    x, t = _data()
    params = nnx.to_flat_state(nnx.clone(nnx.state(model, nnx.Param)))
    stats = nnx.to_flat_state(nnx.clone(nnx.state(model, nnx.BatchStat)))
    assert {path[0] for path, _ in stats} == {"bn", "flax_bn"}
    losses = [float(_step(model, optimizer, x, t)) for _ in range(8)]
    assert losses[-1] < losses[0]
    # Every param and every running statistic moved, Flax's and jaxheads' alike.
    for kind, before in ((nnx.Param, params), (nnx.BatchStat, stats)):
        after = dict(nnx.to_flat_state(nnx.state(model, kind)))
        for path, var in before:
            assert not np.allclose(after[path][...], var[...]), path
    model.eval()
    y = model(x)
    means = [np.asarray(model.bn.mean[...]), np.asarray(model.flax_bn.mean[...])]
    np.testing.assert_array_equal(model(x), y)  # no dropout, statistics frozen
    np.testing.assert_array_equal(model.bn.mean[...], means[0])
    np.testing.assert_array_equal(model.flax_bn.mean[...], means[1])


def test_tabulate_and_summary_see_both_kinds_of_layer():
    model = Mixed(nnx.Rngs(0))
    table = nnx.tabulate(model, jnp.ones((2, 8, 8, 3)), console_kwargs={"width": 400})
    for name in ("Conv2D", "BatchNormalization", "BatchNorm", "Conv", "MaxPooling2D", "Dense"):
        assert name in table
    text = jaxheads.summary(model)
    params = 3 * 3 * 3 * 8 + 2 * 8 + 3 * 3 * 8 * 8 + 2 * 8 + 128 * 2 + 2
    stats = 2 * 8 + 2 * 8
    assert f"Total params: {params + stats:,}" in text
    assert f"Trainable params: {params:,}" in text
    assert f"Non-trainable params: {stats:,}" in text
    for row in ("conv (Conv2D)", "flax_conv (Conv)", "flax_bn (BatchNorm)", "pool (MaxPooling2D)"):
        assert row in text


class Block(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense = jnnx.Dense(4, 4, rngs=rngs)
        self.bn = jnnx.BatchNormalization(4)
        self.flax_dense = nnx.Linear(4, 4, rngs=rngs)

    def __call__(self, x):
        return self.flax_dense(jnnx.LeakyReLU()(self.bn(self.dense(x))))


def test_vmap_builds_a_stack_that_scan_runs():
    @nnx.split_rngs(splits=3)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create(rngs):
        return Block(rngs)

    stack = create(nnx.Rngs(0))
    assert stack.dense.kernel.shape == (3, 4, 4)
    assert stack.bn.mean.shape == (3, 4)

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def forward(x, block):
        return block(x)

    x = jax.random.normal(jax.random.key(1), (5, 4))
    y = forward(x, stack)
    # The same as running the three blocks one after another.
    graphdef, state = nnx.split(create(nnx.Rngs(0)))
    want = x
    for i in range(3):
        block = nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state))
        want = block(want)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
    assert not np.allclose(stack.bn.mean[...], 0.0)  # training updated every block's stats


def test_vmap_over_the_batch_and_jit_agree():
    conv = jnnx.Conv2D(2, 3, 3, padding="same", rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (4, 5, 5, 2))
    per_example = nnx.vmap(lambda m, xi: m(xi[None])[0], in_axes=(None, 0))(conv, x)
    np.testing.assert_allclose(
        per_example, nnx.jit(lambda m, x: m(x))(conv, x), rtol=1e-6, atol=1e-6
    )
