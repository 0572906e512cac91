"""The step study's candidates compute the model's function (benchmarks/step_variants.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks.accelerator_models import detection_batch
from benchmarks.step_variants import (
    StepOptions,
    make_variant_step,
    space_to_depth_stem,
    stem_kernel,
    variant_detector,
    variant_state,
)
from jaxheads import ops
from jaxheads.train.detection import build_detector, detection_loss
from jaxheads.train.step import init_train_state


def test_stem_kernel_is_the_convolution_on_space_to_depth_input():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 12, 16, 3), np.float32))
    k = jnp.asarray(rng.standard_normal((3, 3, 3, 5), np.float32))
    y = ops.conv2d(x, k, padding=1)
    z = ops.conv2d(ops.space_to_depth(x, 2), stem_kernel(k), padding=1)
    # channels (a, b, f) of block (i, j) are pixel (2i + a, 2j + b): depth-to-space.
    back = z.reshape(2, 6, 8, 2, 2, 5).transpose(0, 1, 3, 2, 4, 5).reshape(y.shape)
    np.testing.assert_allclose(back, y, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tiny():
    detector, init = build_detector("yolov2-tiny-voc", image_size=64, num_classes=20)
    params, state = init(jax.random.key(0))
    rng = np.random.default_rng(1)
    # batch-norm parameters away from 1 and 0, so that a wrong statistic shows
    params = {
        n: {
            k: (
                {
                    kk: vv + 0.1 * rng.standard_normal(vv.shape).astype(np.float32)
                    for kk, vv in v.items()
                }
                if k == "batch_normalization"
                else v
            )
            for k, v in p.items()
        }
        for n, p in params.items()
    }
    batch = detection_batch(64, 2, 20)
    return detector, params, state, batch, _loss_and_grads(detector, params, state, batch)


def _loss_and_grads(detector, params, state, batch):
    loss_fn = detection_loss(detector, global_batch=2)

    def f(p):
        return loss_fn(p, state, batch, jax.random.key(0), None, jnp.int32(10))

    (loss, (new_state, _)), grads = jax.jit(jax.value_and_grad(f, has_aux=True))(params)
    return loss, new_state, grads


def _rel(a, b):
    a, b = jax.tree.leaves(a), jax.tree.leaves(b)
    return max(
        float(jnp.max(jnp.abs(x - y)) / (jnp.max(jnp.abs(y)) + 1e-30))
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize(
    "options",
    [
        StepOptions(space_to_depth=True),
        StepOptions(pad_channels=True),
        StepOptions(space_to_depth=True, pad_channels=True),
        StepOptions(remat="convs"),
        StepOptions(remat="nothing"),
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in vars(o).items() if v not in (False, "none")),
)
def test_variants_compute_the_same_loss_state_and_gradients(tiny, options):
    detector, params, state, batch, ref = tiny
    got = _loss_and_grads(variant_detector(detector, options), params, state, batch)
    # float32; the convolutions sum in another order (and the stem over zero taps).
    assert abs(float(got[0]) - float(ref[0])) <= 1e-5 * abs(float(ref[0]))
    assert _rel(got[1], ref[1]) <= 1e-5
    assert _rel(got[2], ref[2]) <= 1e-4


def test_stem_in_inference_mode_matches(tiny):
    detector, params, state, batch, _ = tiny
    stem = space_to_depth_stem(detector.layer.nodes[0].layer)
    x = jnp.asarray(batch["image"])
    first = detector.layer.nodes[0].name
    y, _ = detector.layer.nodes[0].layer.apply(params[first], state[first], x)
    y = ops.max_pool2d(y, 2, 2)
    z, _ = stem.apply(params[first], state[first], x)
    np.testing.assert_allclose(z, y, rtol=1e-5, atol=1e-5)


def test_bf16_params_step_keeps_a_float32_master(tiny):
    detector, params, state, batch, _ = tiny
    opt = optax.adam(1e-3)
    options = StepOptions(bf16_params=True)
    loss_fn = detection_loss(detector, global_batch=2, compute_dtype=jnp.bfloat16)
    step = jax.jit(make_variant_step(loss_fn, opt, options))
    carry = variant_state(init_train_state(params, state, opt), options)
    carry, metrics = step(carry, batch, jax.random.key(0))
    ts, low = carry
    assert {p.dtype for p in jax.tree.leaves(ts.params)} == {jnp.dtype(jnp.float32)}
    assert {p.dtype for p in jax.tree.leaves(low)} == {jnp.dtype(jnp.bfloat16)}
    assert bool(metrics["state_finite"]) and np.isfinite(float(metrics["loss"]))
    assert int(ts.step) == 1
    assert _rel(jax.tree.map(lambda p: p.astype(jnp.float32), low), ts.params) < 1e-2
