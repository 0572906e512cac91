"""Tests for `jaxheads.ops.normalization`: inference and training batch norm.

Parity is against Keras 3 ``BatchNormalization`` given the same gamma, beta and
moving statistics: ``training=False`` against `batch_norm`; ``training=True``
against `batch_norm_train`, and Keras' moving statistics after that one call
against `update_moving_stats`. Relative error is
``max|ours - keras| / max(max|keras|, 1e-6)``, bounded by 1e-5: Keras computes
``x·inv + (beta − mean·inv)`` and its variance as ``E[x²] − E[x]²``, we
compute ``(x − mean)·inv + beta`` and ``E[(x − mean)²]``, so float32 rounding
differs.
"""

import functools

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from op_properties import keras_numerics, property_tests, raises, rel_err

from jaxheads.ops import batch_moments, batch_norm, batch_norm_train, update_moving_stats

SEEDS = range(5)
RTOL = 1e-5


@functools.cache
def _case(seed):
    """Random rank-2 or rank-4 input and parameters; Keras outputs in both modes."""
    rng = np.random.default_rng(seed)
    rank4 = seed % 2 == 0
    c = int(rng.integers(1, 9))
    shape = (
        (int(rng.integers(2, 5)), *rng.integers(1, 8, size=2), c)
        if rank4
        else (int(rng.integers(2, 17)), c)
    )
    x = (3.0 * rng.standard_normal(shape) + rng.standard_normal(c)).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, c).astype(np.float32) if seed % 3 else None
    bias = rng.standard_normal(c).astype(np.float32) if seed % 4 else None
    mean = rng.standard_normal(c).astype(np.float32)
    var = rng.uniform(0.1, 3.0, c).astype(np.float32)
    cfg = dict(epsilon=float(rng.choice([1e-3, 1e-5])), momentum=float(rng.uniform(0.5, 0.999)))
    params = dict(scale=scale, bias=bias, mean=mean, var=var)

    refs = {}
    for training in (False, True):
        layer = keras.layers.BatchNormalization(
            momentum=cfg["momentum"],
            epsilon=cfg["epsilon"],
            center=bias is not None,
            scale=scale is not None,
        )
        with keras_numerics():
            layer.build(shape)
            layer.set_weights([w for w in (scale, bias, mean, var) if w is not None])
            refs[training] = np.asarray(layer(x, training=training))
            moving = (np.asarray(layer.moving_mean.value), np.asarray(layer.moving_variance.value))
    return x, params, cfg, refs[False], refs[True], moving


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_norm_matches_keras_inference(seed, maybe_jit):
    x, p, cfg, ref, _, _ = _case(seed)
    fn = maybe_jit(functools.partial(batch_norm, epsilon=cfg["epsilon"]))
    y = fn(x, p["scale"], p["bias"], p["mean"], p["var"])
    assert y.dtype == jnp.float32
    assert rel_err(y, ref) <= RTOL


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_norm_train_matches_keras_training(seed, maybe_jit):
    x, p, cfg, _, ref, (keras_mean, keras_var) = _case(seed)
    y, mean, var = maybe_jit(functools.partial(batch_norm_train, epsilon=cfg["epsilon"]))(
        x, p["scale"], p["bias"]
    )
    assert rel_err(y, ref) <= RTOL
    update = maybe_jit(functools.partial(update_moving_stats, momentum=cfg["momentum"]))
    new_mean, new_var = update(p["mean"], p["var"], mean, var)
    assert new_mean.dtype == new_var.dtype == jnp.float32
    assert rel_err(new_mean, keras_mean) <= RTOL
    assert rel_err(new_var, keras_var) <= RTOL


# ------------------------------------------------------------ closed-form values


def test_batch_norm_train_closed_form(maybe_jit):
    x = jnp.array([[1.0, 10.0], [3.0, 10.0]])  # column moments: mean (2, 10), var (1, 0)
    y, mean, var = maybe_jit(functools.partial(batch_norm_train, epsilon=0.25))(
        x, jnp.array([2.0, 1.0]), jnp.array([0.0, 5.0])
    )
    np.testing.assert_array_equal(np.asarray(mean), [2.0, 10.0])
    np.testing.assert_array_equal(np.asarray(var), [1.0, 0.0])  # biased: divides by 2, not 1
    # (x - mean) / sqrt(var + 0.25) * scale + bias, exact in binary for these values.
    expected = [[-2 / np.sqrt(1.25), 5.0], [2 / np.sqrt(1.25), 5.0]]
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-6)


def test_batch_norm_inference_closed_form(maybe_jit):
    y = maybe_jit(functools.partial(batch_norm, epsilon=0.0))(
        jnp.full((2, 3, 3, 1), 7.0),
        jnp.array([3.0]),
        jnp.array([1.0]),
        jnp.array([5.0]),
        jnp.array([4.0]),
    )
    np.testing.assert_array_equal(np.asarray(y), np.full((2, 3, 3, 1), 4.0))  # (7-5)/2·3+1


def test_update_moving_stats_closed_form():
    m, v = update_moving_stats(
        jnp.zeros(2), jnp.ones(2), jnp.full(2, 10.0), jnp.full(2, 3.0), momentum=0.75
    )
    np.testing.assert_allclose(np.asarray(m), [2.5, 2.5], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(v), [1.5, 1.5], rtol=1e-6)


# ---------------------------------------------------------- cross-replica stats


def test_cross_replica_stats_equal_full_batch():
    """Under vmap(axis_name=...) each replica normalises with the global batch's moments."""
    rng = np.random.default_rng(7)
    shape = (4, 3, 5, 6, 3)  # [replicas, per-replica batch, H, W, C]
    x = (2.0 * rng.standard_normal(shape) + 1.0).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, 3).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    y, mean, var = jax.vmap(
        lambda xr: batch_norm_train(xr, scale, bias, axis_name="replica"), axis_name="replica"
    )(x)
    y_full, mean_full, var_full = batch_norm_train(x.reshape(-1, *shape[2:]), scale, bias)
    for r in range(shape[0]):  # every replica holds the same global moments
        np.testing.assert_allclose(np.asarray(mean[r]), np.asarray(mean_full), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(np.asarray(var[r]), np.asarray(var_full), rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(y).reshape(y_full.shape), np.asarray(y_full), rtol=1e-6, atol=1e-6
    )
    # Without axis_name the replicas' own moments differ from the global ones.
    local = jax.vmap(lambda xr: batch_norm_train(xr, scale, bias)[1])(x)
    assert not np.allclose(np.asarray(local), np.asarray(mean_full)[None], atol=1e-3)


def test_cross_replica_stats_under_shard_map():
    """The same across devices: a batch sharded over 4 CPU devices (tests/conftest.py)."""
    if jax.device_count() < 4:
        pytest.skip("needs 4 devices (jax_num_cpu_devices)")
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((4,), ("batch",), devices=jax.devices()[:4])
    rng = np.random.default_rng(8)
    x = (2.0 * rng.standard_normal((8, 3, 3, 2)) - 1.0).astype(np.float32)
    scale, bias = np.array([1.5, 0.5], np.float32), np.array([0.0, 1.0], np.float32)
    sharded = jax.jit(
        jax.shard_map(
            lambda xs: batch_norm_train(xs, scale, bias, axis_name="batch"),
            mesh=mesh,
            in_specs=P("batch"),
            out_specs=(P("batch"), P(), P()),
        )
    )
    y, mean, var = sharded(jax.device_put(x, jax.sharding.NamedSharding(mesh, P("batch"))))
    y_full, mean_full, var_full = batch_norm_train(x, scale, bias)
    np.testing.assert_allclose(np.asarray(mean), np.asarray(mean_full), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(var), np.asarray(var_full), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_full), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------ transformation properties


def _cases():
    rng = np.random.default_rng(1)
    x = (2.0 * rng.standard_normal((3, 4, 4, 5)) + 0.5).astype(np.float32)
    s, b, m = (rng.standard_normal(5).astype(np.float32) for _ in range(3))
    v = rng.uniform(0.5, 2.0, 5).astype(np.float32)
    return {
        "batch_norm": (batch_norm, (x, s, b, m, v)),
        "batch_norm_no_scale_no_bias": (batch_norm, (x, None, None, m, v)),
        "batch_norm_train": (batch_norm_train, (x, s, b)),
    }


(
    test_vmap_equals_loop,
    test_gradients_are_finite,
    test_second_call_does_not_recompile,
    test_bfloat16_in_bfloat16_out,
) = property_tests(_cases)

# ------------------------------------------------------------------- bad inputs


X = np.zeros((2, 4, 4, 3), np.float32)
C = np.ones(3, np.float32)


def test_rejects_wrong_rank():
    with raises("batch_norm", "x of rank >= 2", "shape (3,) (rank 1)"):
        batch_norm(C, C, C, C, C)
    with raises("batch_norm_train", "x of rank >= 2", "shape (3,) (rank 1)"):
        batch_norm_train(C, C, C)
    with raises("batch_norm", "mean of rank 1 [C]", "shape (1, 3)"):
        batch_norm(X, C, C, C[None], C)


def test_rejects_integer_input():
    with raises("batch_norm", "floating dtype", "int32"):
        batch_norm(X.astype(np.int32), C, C, C, C)
    with raises("batch_norm_train", "floating dtype", "int32"):
        batch_norm_train(X.astype(np.int32), C, C)


def test_rejects_mismatched_channels():
    with raises("batch_norm", "scale.shape[0] == 3", "shape (4,)"):
        batch_norm(X, np.ones(4, np.float32), C, C, C)
    with raises("batch_norm", "var.shape[0] == 3", "shape (2,)"):
        batch_norm(X, C, C, C, np.ones(2, np.float32))
    with raises("batch_norm_train", "bias.shape[0] == 3", "shape (5,)"):
        batch_norm_train(X, C, np.ones(5, np.float32))


def test_rejects_missing_statistics():
    with raises("batch_norm", "mean of shape [C]", "None"):
        batch_norm(X, C, C, None, C)


def test_update_moving_stats_rejects_bad_inputs():
    with raises("update_moving_stats", "var of shape (3)", "shape (4,)"):
        update_moving_stats(C, C, C, np.ones(4, np.float32))
    with raises("update_moving_stats", "momentum in [0, 1]", "1.5"):
        update_moving_stats(C, C, C, C, momentum=1.5)


def test_batch_moments_do_not_cancel_when_the_mean_dwarfs_the_spread():
    # E[x²] - E[x]² in float32 loses every digit here; the shifted one pass keeps them.
    rng = np.random.default_rng(0)
    x = (1000.0 + 0.1 * rng.standard_normal((8, 5, 5, 3))).astype(np.float32)
    mean, var = batch_moments(jnp.asarray(x))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(var, x64.var(axis=(0, 1, 2)), rtol=1e-4)
    naive = np.mean(np.square(x), axis=(0, 1, 2)) - np.square(np.mean(x, axis=(0, 1, 2)))
    assert np.max(np.abs(naive - x64.var(axis=(0, 1, 2))) / x64.var(axis=(0, 1, 2))) > 1e-2
