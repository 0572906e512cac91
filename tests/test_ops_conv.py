"""Tests for `jaxheads.ops.conv`: `conv2d`.

Parity is against Keras 3 ``Conv2D`` given the same kernel and bias, over seeded
random shapes, kernel sizes, strides, dilations, groups and paddings.
Relative error is ``max|ours - keras| / max(max|keras|, 1e-6)``; the bound is
1e-4 because a convolution sums up to kh·kw·C_in float32 products and XLA may
order that sum differently for Keras' call and ours.

On CPU, layers with at least `PATCHES_MIN_CHANNELS` input channels are computed
as a product of patches (`patch_conv2d`) instead of XLA's convolution: those are
tested against Keras too, for values and gradients, and the compiled programs
are checked for which lowering each platform gets.
"""

import functools

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from jax import export, lax
from op_properties import keras_numerics, property_tests, raises, rel_err

from jaxheads.ops import conv2d
from jaxheads.ops.conv import NHWC, PATCHES_MIN_CHANNELS, patch_conv2d

SEEDS = range(8)
RTOL = 1e-4


def _random_conv(rng, min_channels=1):
    """One random Conv2D configuration that Keras accepts, with matching arrays.

    With ``min_channels`` > 1: no groups and C_in in [min_channels, 2·min_channels).
    """
    groups = int(rng.choice([1, 1, 2, 3])) if min_channels == 1 else 1
    c_in = groups * int(
        rng.integers(1, 4) if min_channels == 1 else rng.integers(min_channels, 2 * min_channels)
    )
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


# ------------------------------------------------- CPU: the product of patches


@functools.cache
def _patch_case(seed):
    """A random geometry with enough input channels for the patch lowering."""
    rng = np.random.default_rng(200 + seed)
    x, kernel, bias, cfg = _random_conv(rng, min_channels=PATCHES_MIN_CHANNELS)
    if seed % 3 == 2:
        pad = tuple(tuple(int(p) for p in rng.integers(0, 3, size=2)) for _ in "hw")
        ref = _keras_conv(x, kernel, bias, padding="valid", zero_pad=pad, **cfg)
        return x, kernel, bias, dict(cfg, padding=pad), ref
    cfg["padding"] = ("same", "valid")[seed % 3]
    return x, kernel, bias, cfg, _keras_conv(x, kernel, bias, **cfg)


@pytest.mark.parametrize("seed", range(6))
def test_patch_lowering_matches_keras(seed, maybe_jit):
    x, kernel, bias, cfg, ref = _patch_case(seed)
    assert x.shape[3] >= PATCHES_MIN_CHANNELS and cfg["groups"] == 1
    y = maybe_jit(functools.partial(conv2d, **cfg))(x, kernel, bias)
    assert rel_err(y, ref) <= RTOL, cfg


@pytest.mark.parametrize("seed", range(6))
def test_patch_lowering_gradients_match_xla_convolution(seed):
    x, kernel, _, cfg, _ = _patch_case(seed)

    pads = cfg["padding"].upper() if isinstance(cfg["padding"], str) else cfg["padding"]

    def ref(x, k):
        return lax.conv_general_dilated(
            x, k, cfg["strides"], pads, rhs_dilation=cfg["dilation"], dimension_numbers=NHWC
        )

    def ours(x, k):
        return conv2d(
            x, k, strides=cfg["strides"], padding=cfg["padding"], dilation=cfg["dilation"]
        )

    cot = np.random.default_rng(seed).standard_normal(ref(x, kernel).shape).astype(np.float32)
    grads_ref = jax.vjp(ref, x, kernel)[1](cot)
    grads = jax.jit(lambda x, k, c: jax.vjp(ours, x, k)[1](c))(x, kernel, cot)
    for g, r in zip(grads, grads_ref, strict=True):
        assert rel_err(g, r) <= RTOL, cfg


def test_patch_conv2d_is_xla_convolution_with_taps_in_hwio_order():
    # One-hot kernels pick single taps: any misplaced tap, stride or dilation shows
    # as a wrong input pixel, exactly (no sums to reorder).
    x = np.arange(2 * 9 * 11 * 2, dtype=np.float32).reshape(2, 9, 11, 2)
    for i, j, c in [(0, 0, 0), (1, 2, 1), (2, 1, 0)]:
        k = np.zeros((3, 3, 2, 1), np.float32)
        k[i, j, c] = 1.0
        for strides, dilation, pads in [
            ((1, 1), (1, 1), "SAME"),
            ((2, 3), (1, 1), ((1, 0), (2, 1))),
            ((1, 1), (2, 1), "VALID"),
        ]:
            ours = patch_conv2d(x, k, strides=strides, padding=pads, dilation=dilation)
            ref = lax.conv_general_dilated(
                x, k, strides, pads, rhs_dilation=dilation, dimension_numbers=NHWC
            )
            np.testing.assert_array_equal(ours, ref)


def _hlo_ops(fn, *args, platform=None):
    """(convolutions, dots) in fn's and its gradient's programs as lowered, before XLA.

    Lowered, not compiled: what our code chose, not what XLA's simplifier made of it
    (jax 0.10.0's XLA:CPU turns a 1×1 convolution's kernel gradient into a dot).
    """
    grad = jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=tuple(range(len(args))))
    if platform is None:
        texts = [jax.jit(f).lower(*args).as_text() for f in (fn, grad)]
    else:
        texts = [
            export.export(jax.jit(f), platforms=[platform])(*args).mlir_module() for f in (fn, grad)
        ]
    return (
        sum(t.count("stablehlo.convolution") for t in texts),
        sum(t.count("stablehlo.dot_general") for t in texts),
    )


# The padding conv2d defaulted to before it took Keras' "valid".
SAME = functools.partial(conv2d, padding="same")


def _maps(c_in, groups=1, ksize=3):
    x = jnp.ones((2, 6, 6, c_in))
    return x, jnp.ones((ksize, ksize, c_in // groups, 8))


@pytest.mark.parametrize("ksize", [1, 3])
def test_cpu_computes_wide_layers_as_products_and_narrow_ones_as_convolutions(ksize):
    wide = _hlo_ops(SAME, *_maps(PATCHES_MIN_CHANNELS, ksize=ksize))
    assert wide[0] == 0 and wide[1] >= 3, wide  # forward, input and kernel gradients
    narrow = _hlo_ops(SAME, *_maps(PATCHES_MIN_CHANNELS - 1, ksize=ksize))
    assert narrow[0] == 3 and narrow[1] == 0, narrow
    grouped = _hlo_ops(functools.partial(SAME, groups=2), *_maps(2 * PATCHES_MIN_CHANNELS, 2))
    assert grouped[0] == 3 and grouped[1] == 0, grouped


@pytest.mark.parametrize("platform", ["cuda", "rocm", "tpu"])
def test_accelerators_keep_xla_convolution(platform):
    convs, dots = _hlo_ops(SAME, *_maps(4 * PATCHES_MIN_CHANNELS), platform=platform)
    assert convs == 3 and dots == 0, (convs, dots)


# ------------------------------------------------------------ closed-form values


def test_conv2d_constant_weights(maybe_jit):
    # A 3×3 all-ones kernel over 2 all-ones channels sums 18 inputs inside the map;
    # "same" zero padding leaves 8 at corners (2×2 window) and 12 on edges.
    y = maybe_jit(SAME)(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 1)), jnp.ones(1))
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
    y = np.asarray(SAME(x, k, groups=2))
    first = np.asarray(SAME(x[..., :2], k[..., :3]))
    np.testing.assert_allclose(y[..., :3], first, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------ transformation properties


def _cases():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 6, 4)).astype(np.float32)
    k = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    xw = rng.standard_normal((2, 6, 6, PATCHES_MIN_CHANNELS)).astype(np.float32)

    def fan_in_scaled(shape):
        # Outputs of order 1, as with a network's initialiser: the generic tests' 1e-6
        # tolerance is then float32's rounding of sums of a few hundred products.
        return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[:3]))).astype(np.float32)

    return {
        "same_stride2_groups2": (
            functools.partial(conv2d, strides=2, padding="same", groups=2),
            (x, k, b),
        ),
        "valid_dilation2": (
            functools.partial(conv2d, padding="valid", dilation=2),
            (x, rng.standard_normal((2, 2, 4, 3)).astype(np.float32)),
        ),
        "patches_darknet_pad_stride2": (
            functools.partial(conv2d, strides=2, padding=1),
            (xw, fan_in_scaled((3, 3, PATCHES_MIN_CHANNELS, 4)), b),
        ),
        "patches_1x1": (
            conv2d,
            (xw, fan_in_scaled((1, 1, PATCHES_MIN_CHANNELS, 3))),
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
