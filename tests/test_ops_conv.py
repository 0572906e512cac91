"""Tests for `jaxheads.ops.conv`: `conv2d`.

Parity is against Keras 3 ``Conv2D`` given the same kernel and bias, over seeded
random shapes, kernel sizes, strides, dilations, groups and paddings.
Relative error is ``max|ours - keras| / max(max|keras|, 1e-6)``; the bound is
1e-4 because a convolution sums up to kh·kw·C_in float32 products and XLA may
order that sum differently for Keras' call and ours.
"""

import functools

import jax.numpy as jnp
import keras
import numpy as np
import pytest
from op_properties import keras_numerics, property_tests, raises, rel_err

from jaxheads.ops import conv2d

SEEDS = range(8)
RTOL = 1e-4


def _random_conv(rng):
    """One random Conv2D configuration that Keras accepts, with matching arrays."""
    groups = int(rng.choice([1, 1, 2, 3]))
    c_in = groups * int(rng.integers(1, 4))
    c_out = groups * int(rng.integers(1, 4))
    ksize = tuple(int(k) for k in rng.integers(1, 5, size=2))
    if rng.random() < 0.4:  # Keras forbids strides > 1 together with dilation > 1
        dilation, strides = tuple(int(d) for d in rng.integers(1, 4, size=2)), (1, 1)
    else:
        dilation, strides = (1, 1), tuple(int(s) for s in rng.integers(1, 4, size=2))
    window = [(k - 1) * d + 1 for k, d in zip(ksize, dilation, strict=True)]
    h, w = (int(rng.integers(max(v, 3), 13)) for v in window)
    x = rng.standard_normal((2, h, w, c_in)).astype(np.float32)
    kernel = rng.standard_normal((*ksize, c_in // groups, c_out)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    cfg = dict(strides=strides, dilation=dilation, groups=groups)
    return x, kernel, bias, cfg


def _keras_conv(x, kernel, bias, *, strides, dilation, groups, padding, zero_pad=None):
    layer = keras.layers.Conv2D(
        kernel.shape[3],
        kernel.shape[:2],
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        groups=groups,
        # The weights are overwritten below; Keras' default random initialiser
        # compiles anew for every kernel shape, seconds each on a busy CPU.
        kernel_initializer="zeros",
    )
    with keras_numerics():
        if zero_pad is not None:
            x = keras.layers.ZeroPadding2D(zero_pad)(x)
        layer.build(x.shape)
        layer.set_weights([kernel, bias])
        return np.asarray(layer(x))


@functools.cache
def _case(seed):
    rng = np.random.default_rng(seed)
    x, kernel, bias, cfg = _random_conv(rng)
    cfg["padding"] = str(rng.choice(["same", "valid"]))
    return x, kernel, bias, cfg, _keras_conv(x, kernel, bias, **cfg)


@pytest.mark.parametrize("seed", SEEDS)
def test_conv2d_matches_keras(seed, maybe_jit):
    x, kernel, bias, cfg, ref = _case(seed)
    y = maybe_jit(functools.partial(conv2d, **cfg))(x, kernel, bias)
    assert y.dtype == jnp.float32
    assert rel_err(y, ref) <= RTOL, cfg


@functools.cache
def _explicit_case(seed):
    """Int (darknet ``pad``) and ((t, b), (l, r)) padding against ZeroPadding2D + valid."""
    rng = np.random.default_rng(100 + seed)
    x, kernel, bias, cfg = _random_conv(rng)
    if seed % 2:
        padding = zero_pad = int(rng.integers(0, 3))
    else:
        padding = zero_pad = tuple(tuple(int(p) for p in rng.integers(0, 3, size=2)) for _ in "hw")
    ref = _keras_conv(x, kernel, bias, padding="valid", zero_pad=zero_pad, **cfg)
    return x, kernel, bias, dict(cfg, padding=padding), ref


@pytest.mark.parametrize("seed", range(4))
def test_conv2d_explicit_padding_matches_keras_zero_padding(seed, maybe_jit):
    x, kernel, bias, cfg, ref = _explicit_case(seed)
    y = maybe_jit(functools.partial(conv2d, **cfg))(x, kernel, bias)
    assert rel_err(y, ref) <= RTOL, cfg


# ------------------------------------------------------------ closed-form values


def test_conv2d_constant_weights(maybe_jit):
    # A 3×3 all-ones kernel over 2 all-ones channels sums 18 inputs inside the map;
    # "same" zero padding leaves 8 at corners (2×2 window) and 12 on edges.
    y = maybe_jit(conv2d)(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 1)), jnp.ones(1))
    expected = np.array([[9, 13, 13, 9], [13, 19, 19, 13], [13, 19, 19, 13], [9, 13, 13, 9]])
    np.testing.assert_array_equal(np.asarray(y)[0, :, :, 0], expected.astype(np.float32))


def test_conv2d_same_vs_darknet_pad_at_stride_2():
    """On an even map at stride 2, "same" pads the bottom/right only; darknet's pad=1 both."""
    x = jnp.arange(16, dtype=jnp.float32).reshape(1, 4, 4, 1)
    k = jnp.zeros((3, 3, 1, 1)).at[0, 0].set(1.0)  # picks the top-left of each window
    same = np.asarray(conv2d(x, k, strides=2, padding="same"))[0, :, :, 0]
    darknet = np.asarray(conv2d(x, k, strides=2, padding=1))[0, :, :, 0]
    np.testing.assert_array_equal(same, [[0, 2], [8, 10]])
    np.testing.assert_array_equal(darknet, [[0, 0], [0, 5]])


def test_conv2d_groups_are_independent():
    """With groups=2 the first half of the outputs sees only the first half of the inputs."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 5, 5, 4)).astype(np.float32)
    k = rng.standard_normal((3, 3, 2, 6)).astype(np.float32)
    y = np.asarray(conv2d(x, k, groups=2))
    first = np.asarray(conv2d(x[..., :2], k[..., :3]))
    np.testing.assert_allclose(y[..., :3], first, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------ transformation properties


def _cases():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 6, 4)).astype(np.float32)
    k = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    return {
        "same_stride2_groups2": (
            functools.partial(conv2d, strides=2, padding="same", groups=2),
            (x, k, b),
        ),
        "valid_dilation2": (
            functools.partial(conv2d, padding="valid", dilation=2),
            (x, rng.standard_normal((2, 2, 4, 3)).astype(np.float32)),
        ),
    }


(
    test_vmap_equals_loop,
    test_gradients_are_finite,
    test_second_call_does_not_recompile,
    test_bfloat16_in_bfloat16_out,
) = property_tests(_cases)

# ------------------------------------------------------------------- bad inputs


X = np.zeros((1, 6, 6, 4), np.float32)
K = np.zeros((3, 3, 4, 8), np.float32)


def test_rejects_wrong_rank():
    with raises("conv2d", "x of rank 4", "shape (6, 6, 4) (rank 3)"):
        conv2d(X[0], K)
    with raises("conv2d", "kernel of rank 4", "shape (3, 4, 8) (rank 3)"):
        conv2d(X, K[0])


def test_rejects_integer_input():
    with raises("conv2d", "floating dtype", "int32"):
        conv2d(X.astype(np.int32), K)


def test_rejects_kernel_channels():
    with raises("conv2d", "kernel.shape[2] == 4", "(3, 3, 3, 8)"):
        conv2d(X, np.zeros((3, 3, 3, 8), np.float32))


def test_rejects_bias_size():
    with raises("conv2d", "bias.shape[0] == 8", "shape (4,)"):
        conv2d(X, K, np.zeros(4, np.float32))


def test_rejects_kernel_larger_than_input_with_valid_padding():
    with raises("conv2d", "kernel height <= the padded input height (6)", "(7, 3)"):
        conv2d(X, np.zeros((7, 3, 4, 8), np.float32), padding="valid")
    # A 3×3 kernel at dilation 3 spans 7 pixels.
    with raises("conv2d", "dilated kernel height <= the padded input height (6)", "(7, 7)"):
        conv2d(X, K, padding="valid", dilation=3)


def test_rejects_bad_padding():
    with raises("conv2d", 'padding "same", "valid"', "'full'"):
        conv2d(X, K, padding="full")
    with raises("conv2d", "non-negative padding", "-1"):
        conv2d(X, K, padding=-1)


def test_rejects_groups_not_dividing_channels():
    with raises("conv2d", "dividing C_in=4", "3"):
        conv2d(X, np.zeros((3, 3, 1, 6), np.float32), groups=3)
    with raises("conv2d", "C_out divisible by groups=2", "(3, 3, 2, 5)"):
        conv2d(X, np.zeros((3, 3, 2, 5), np.float32), groups=2)


def test_rejects_bad_strides():
    with raises("conv2d", "strides to be a positive int", "(0, 0)"):
        conv2d(X, K, strides=0)
