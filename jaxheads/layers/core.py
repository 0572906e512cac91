"""The leaf layers: each wraps one op from `jaxheads.ops` as an init/apply pair.

Constructors take hyperparameters only, use Keras' names and defaults (except
where noted), and return a `Layer`. Default initialisers are Keras' own:
Glorot-uniform kernels, zero biases, ones/zeros for batch-norm scale/bias,
zeros/ones for its running mean/var.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxheads import ops
from jaxheads._checks import check_positive_int, check_real, fail, pair
from jaxheads.layers.base import Layer, is_multi, leaf, stateless
from jaxheads.ops._padding import normalize_padding
from jaxheads.ops.local import local_output_size

glorot_uniform = jax.nn.initializers.glorot_uniform()
zeros = jax.nn.initializers.zeros


def _channels(op: str, input_shape) -> int:
    if is_multi(input_shape) or len(input_shape) < 2 or input_shape[-1] is None:
        fail(op, "an input shape with a known last axis, e.g. (None, H, W, C)", repr(input_shape))
    return int(input_shape[-1])


def _kernel_params(
    key, kernel_shape, out, use_bias, kernel_init, bias_shape=None, dtype=jnp.float32
):
    k_kernel, k_bias = jax.random.split(key)
    params = {"kernel": kernel_init(k_kernel, kernel_shape, dtype)}
    if use_bias:
        params["bias"] = zeros(k_bias, bias_shape or (out,), dtype)
    return params


def Dense(
    features: int,
    *,
    use_bias: bool = True,
    kernel_init: Callable = glorot_uniform,
    name: str | None = None,
) -> Layer:
    """Keras ``Dense``: contracts the last axis only (see `jaxheads.ops.dense`).

    Params: ``kernel [in, features]``, ``bias [features]``.
    """
    check_positive_int("Dense", "features", features)

    def make(key, input_shape):
        c = _channels("Dense", input_shape)
        return _kernel_params(key, (c, features), features, use_bias, kernel_init)

    return stateless(
        "Dense",
        lambda p, x, ctx: ops.dense(x, p["kernel"], p.get("bias")),
        name=name,
        make_params=make,
        config={"units": features, "use_bias": use_bias},
    )


def Flatten(*, name: str | None = None) -> Layer:
    """Keras ``Flatten``: ``[B, ...] -> [B, prod(...)]`` (H, W, C order)."""
    return stateless("Flatten", lambda p, x, ctx: ops.flatten(x), name=name)


def Reshape(target_shape: tuple[int, ...], *, name: str | None = None) -> Layer:
    """Keras ``Reshape``: ``[B, ...] -> [B, *target_shape]`` (row-major)."""
    if not isinstance(target_shape, (tuple, list)) or any(
        not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in target_shape
    ):
        fail("Reshape", "target_shape to be a tuple of positive ints", repr(target_shape))
    target_shape = tuple(int(d) for d in target_shape)

    def fn(p, x, ctx):
        if math.prod(x.shape[1:]) != math.prod(target_shape):
            fail(
                "Reshape",
                f"an input with {math.prod(target_shape)} values per example "
                f"for target_shape {target_shape}",
                f"shape {x.shape}",
            )
        return jnp.reshape(x, (x.shape[0], *target_shape))

    return stateless("Reshape", fn, name=name, config={"target_shape": target_shape})


def GlobalAveragePooling2D(*, keepdims: bool = False, name: str | None = None) -> Layer:
    """Keras ``GlobalAveragePooling2D``: ``[B, H, W, C] -> [B, C]``."""
    return stateless(
        "GlobalAveragePooling2D",
        lambda p, x, ctx: ops.global_avg_pool2d(x, keepdims=keepdims),
        name=name,
        config={"keepdims": keepdims},
    )


def GlobalMaxPooling2D(*, keepdims: bool = False, name: str | None = None) -> Layer:
    """Keras ``GlobalMaxPooling2D``: ``[B, H, W, C] -> [B, C]``."""
    return stateless(
        "GlobalMaxPooling2D",
        lambda p, x, ctx: ops.global_max_pool2d(x, keepdims=keepdims),
        name=name,
        config={"keepdims": keepdims},
    )


def Conv2D(
    filters: int,
    kernel_size,
    *,
    strides=1,
    padding="valid",
    dilation_rate=1,
    groups: int = 1,
    use_bias: bool = True,
    kernel_init: Callable = glorot_uniform,
    name: str | None = None,
) -> Layer:
    """Keras ``Conv2D`` (padding defaults to ``"valid"`` as in Keras).

    ``padding`` also takes an int (darknet's symmetric pad) or explicit pairs.
    Params: ``kernel [kh, kw, C_in / groups, filters]``, ``bias [filters]``.
    """
    check_positive_int("Conv2D", "filters", filters)
    kh, kw = pair("Conv2D", "kernel_size", kernel_size)
    config = {
        "filters": filters,
        "kernel_size": (kh, kw),
        "strides": pair("Conv2D", "strides", strides),
        "dilation_rate": pair("Conv2D", "dilation_rate", dilation_rate),
    }
    check_positive_int("Conv2D", "groups", groups)
    if filters % groups:
        fail("Conv2D", f"filters divisible by groups={groups}", filters)
    config.update(padding=normalize_padding("Conv2D", padding), groups=groups, use_bias=use_bias)

    def make(key, input_shape):
        c = _channels("Conv2D", input_shape)
        if c % groups:
            fail("Conv2D", f"input channels divisible by groups={groups}", c)
        return _kernel_params(key, (kh, kw, c // groups, filters), filters, use_bias, kernel_init)

    def fn(p, x, ctx):
        return ops.conv2d(
            x,
            p["kernel"],
            p.get("bias"),
            strides=strides,
            padding=padding,
            dilation=dilation_rate,
            groups=groups,
        )

    return stateless("Conv2D", fn, name=name, make_params=make, config=config)


def _pooling_config(op: str, pool_size, strides, padding) -> dict:
    """The checked options of a pooling layer (``strides`` None: the pool size, as Keras)."""
    size = pair(op, "pool_size", pool_size)
    return {
        "pool_size": size,
        "strides": size if strides is None else pair(op, "strides", strides),
        "padding": normalize_padding(op, padding),
    }


def MaxPooling2D(pool_size=2, strides=None, padding="valid", *, name: str | None = None) -> Layer:
    """Keras ``MaxPooling2D`` (see `jaxheads.ops.max_pool2d` for darknet's 2×2/1)."""
    config = _pooling_config("MaxPooling2D", pool_size, strides, padding)
    return stateless(
        "MaxPooling2D",
        lambda p, x, ctx: ops.max_pool2d(x, pool_size, strides, padding),
        name=name,
        config=config,
    )


def AveragePooling2D(pool_size, strides=None, padding="valid", *, name: str | None = None) -> Layer:
    """Keras ``AveragePooling2D`` (``pool_size`` is required, as in Keras 3)."""
    config = _pooling_config("AveragePooling2D", pool_size, strides, padding)
    return stateless(
        "AveragePooling2D",
        lambda p, x, ctx: ops.avg_pool2d(x, pool_size, strides, padding),
        name=name,
        config=config,
    )


def BatchNormalization(
    *,
    momentum: float = 0.99,
    epsilon: float = 1e-3,
    center: bool = True,
    scale: bool = True,
    name: str | None = None,
) -> Layer:
    """Keras ``BatchNormalization`` over the last axis.

    Params: ``scale [C]`` (gamma), ``bias [C]`` (beta). State: ``mean [C]``,
    ``var [C]`` (moving statistics, non-trainable as in Keras). With
    ``train=True`` it normalises with the batch statistics — across replicas
    when ``axis_name`` is given — and returns the updated moving statistics.
    """
    check_real("BatchNormalization", "momentum", momentum, low=0, high=1)
    check_real("BatchNormalization", "epsilon", epsilon, low=0, low_open=True)

    def make(key, input_shape):
        c = _channels("BatchNormalization", input_shape)
        params = {}
        if scale:
            params["scale"] = jnp.ones((c,), jnp.float32)
        if center:
            params["bias"] = jnp.zeros((c,), jnp.float32)
        return params, {"mean": jnp.zeros((c,), jnp.float32), "var": jnp.ones((c,), jnp.float32)}

    def forward(p, s, x, ctx):
        if not ctx.train:
            y = ops.batch_norm(
                x, p.get("scale"), p.get("bias"), s["mean"], s["var"], epsilon=epsilon
            )
            return y, s
        y, mean, var = ops.batch_norm_train(
            x, p.get("scale"), p.get("bias"), epsilon=epsilon, axis_name=ctx.axis_name
        )
        new_mean, new_var = ops.update_moving_stats(
            s["mean"], s["var"], mean, var, momentum=momentum
        )
        return y, {"mean": new_mean, "var": new_var}

    config = {"momentum": momentum, "epsilon": epsilon, "center": center, "scale": scale}
    return leaf("BatchNormalization", make, forward, name=name, config=config)


def LeakyReLU(negative_slope: float = 0.3, *, name: str | None = None) -> Layer:
    """Keras ``LeakyReLU``; 0.3 is Keras' default slope (darknet's ``leaky`` is 0.1)."""
    check_real("LeakyReLU", "negative_slope", negative_slope)
    return stateless(
        "LeakyReLU",
        lambda p, x, ctx: ops.leaky_relu(x, negative_slope),
        name=name,
        config={"negative_slope": negative_slope},
    )


def Activation(fn: Callable, *, name: str | None = None) -> Layer:
    """Keras ``Activation``: applies ``fn`` elementwise (e.g. ``jax.nn.relu``)."""
    if not callable(fn):
        fail("Activation", "a callable fn, e.g. jax.nn.relu", repr(fn))
    return stateless(
        "Activation",
        lambda p, x, ctx: fn(x),
        name=name or getattr(fn, "__name__", "activation"),
        config={"fn": fn},
    )


def Identity(*, name: str | None = None) -> Layer:
    """Keras ``Identity``: ``x -> x`` (darknet's ``[route]`` of one layer, its ``[cost]``)."""
    return stateless("Identity", lambda p, x, ctx: x, name=name)


def FlatSoftmax(temperature: float = 1.0, *, name: str | None = None) -> Layer:
    """Darknet's ``[softmax]`` (``groups=1``): `jaxheads.ops.flat_softmax`, ``[B, ...]`` kept."""
    check_real("FlatSoftmax", "temperature", temperature, low=0, low_open=True)
    return stateless(
        "Softmax", lambda p, x, ctx: ops.flat_softmax(x, temperature), name=name or "softmax"
    )


def DarknetCrop(
    crop_height: int, crop_width: int, *, adjust: bool = True, name: str | None = None
) -> Layer:
    """Darknet's ``[crop]`` at inference: the centre window, then ``x·2 − 1`` (``adjust``).

    ``[B, H, W, C] -> [B, crop_height, crop_width, C]`` (see `jaxheads.ops.center_crop`).
    Darknet's training-time random crop, flip and colour jitter are augmentation and
    are not reproduced.
    """
    check_positive_int("DarknetCrop", "crop_height", crop_height)
    check_positive_int("DarknetCrop", "crop_width", crop_width)

    def fn(p, x, ctx):
        y = ops.center_crop(x, crop_height, crop_width)
        return y * 2 - 1 if adjust else y

    return stateless("DarknetCrop", fn, name=name or "crop")


def Dropout(rate: float, *, name: str | None = None) -> Layer:
    """Keras ``Dropout``; ``rate`` is the DROP probability. Active only with ``train=True``."""
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate <= 1:
        fail("Dropout", "rate (the drop probability) in [0, 1]", repr(rate))
    return stateless(
        "Dropout",
        lambda p, x, ctx: ops.dropout(x, rate, key=ctx.key, deterministic=not ctx.train),
        name=name,
        config={"rate": rate},
    )


def SpaceToDepth(block_size: int = 2, *, name: str | None = None) -> Layer:
    """TensorFlow/YAD2K ``space_to_depth`` (see `jaxheads.ops.space_to_depth`)."""
    check_positive_int("SpaceToDepth", "block_size", block_size)
    return stateless("SpaceToDepth", lambda p, x, ctx: ops.space_to_depth(x, block_size), name=name)


def DarknetReorg(stride: int = 2, *, name: str | None = None) -> Layer:
    """Darknet's ``[reorg]`` order (see `jaxheads.ops.darknet_reorg`)."""
    check_positive_int("DarknetReorg", "stride", stride)
    return stateless(
        "DarknetReorg", lambda p, x, ctx: ops.darknet_reorg(x, stride), name=name or "reorg"
    )


def Concatenate(axis: int = -1, *, name: str | None = None) -> Layer:
    """Keras ``Concatenate`` of a list of inputs (darknet ``[route]`` with several layers)."""
    if not isinstance(axis, int) or isinstance(axis, bool):
        fail("Concatenate", "axis to be an int", repr(axis))

    def fn(p, xs, ctx):
        if not isinstance(xs, (list, tuple)) or len(xs) < 1:
            fail("Concatenate", "a list of arrays", type(xs).__name__)
        ranks = {x.ndim for x in xs}
        if len(ranks) != 1:
            fail("Concatenate", "inputs of equal rank", [tuple(x.shape) for x in xs])
        return jnp.concatenate(xs, axis=axis)

    return stateless("Concatenate", fn, name=name, config={"axis": axis})


def LocallyConnected2D(
    filters: int,
    kernel_size,
    *,
    strides=1,
    padding="valid",
    use_bias: bool = True,
    kernel_init: Callable = glorot_uniform,
    name: str | None = None,
) -> Layer:
    """Keras 2 ``LocallyConnected2D`` / darknet ``[local]``: unshared weights per cell.

    Params: ``kernel [out_h, out_w, C_in·kh·kw, filters]`` (patch axis
    channel-major), ``bias [out_h, out_w, filters]``.
    """
    check_positive_int("LocallyConnected2D", "filters", filters)
    kh, kw = pair("LocallyConnected2D", "kernel_size", kernel_size)
    sh, sw = pair("LocallyConnected2D", "strides", strides)
    pads = normalize_padding("LocallyConnected2D", padding)

    def make(key, input_shape):
        c = _channels("LocallyConnected2D", input_shape)
        h, w = input_shape[1:3]
        oh = local_output_size(h, kh, sh, pads if isinstance(pads, str) else pads[0])
        ow = local_output_size(w, kw, sw, pads if isinstance(pads, str) else pads[1])
        if oh < 1 or ow < 1:
            fail(
                "LocallyConnected2D",
                "a kernel that fits the padded input",
                f"kernel {(kh, kw)} on input shape {input_shape} with padding {padding!r}",
            )
        # Glorot over one location's fan-in/fan-out, as Keras 2 did.
        k_kernel, k_bias = jax.random.split(key)
        kernel = kernel_init(
            k_kernel,
            (oh * ow, c * kh * kw, filters),
            jnp.float32,
        ).reshape(oh, ow, c * kh * kw, filters)
        params = {"kernel": kernel}
        if use_bias:
            params["bias"] = zeros(k_bias, (oh, ow, filters), jnp.float32)
        return params

    def fn(p, x, ctx):
        return ops.locally_connected2d(
            x, p["kernel"], p.get("bias"), kernel_size=(kh, kw), strides=(sh, sw), padding=padding
        )

    return stateless("LocallyConnected2D", fn, name=name, make_params=make)


def ConvLSTM2D(
    filters: int,
    kernel_size,
    *,
    strides=1,
    padding="valid",
    dilation_rate=1,
    return_sequences: bool = False,
    go_backwards: bool = False,
    use_bias: bool = True,
    unit_forget_bias: bool = True,
    name: str | None = None,
) -> Layer:
    """Keras ``ConvLSTM2D`` on ``[B, T, H, W, C]``; gates i, f, c, o.

    Params: ``kernel [kh, kw, C, 4F]`` (Glorot), ``recurrent_kernel [kh, kw, F, 4F]``
    (orthogonal), ``bias [4F]`` (ones for the forget gate with ``unit_forget_bias``).
    """
    check_positive_int("ConvLSTM2D", "filters", filters)
    kh, kw = pair("ConvLSTM2D", "kernel_size", kernel_size)
    config = {
        "filters": filters,
        "kernel_size": (kh, kw),
        "strides": pair("ConvLSTM2D", "strides", strides),
        "padding": normalize_padding("ConvLSTM2D", padding),
        "dilation_rate": pair("ConvLSTM2D", "dilation_rate", dilation_rate),
        "return_sequences": return_sequences,
        "go_backwards": go_backwards,
        "use_bias": use_bias,
    }

    def make(key, input_shape):
        c = _channels("ConvLSTM2D", input_shape)
        k1, k2 = jax.random.split(key)
        params = {
            "kernel": glorot_uniform(k1, (kh, kw, c, 4 * filters), jnp.float32),
            "recurrent_kernel": jax.nn.initializers.orthogonal()(
                k2, (kh, kw, filters, 4 * filters), jnp.float32
            ),
        }
        if use_bias:
            forget = 1.0 if unit_forget_bias else 0.0
            params["bias"] = jnp.concatenate(
                [jnp.zeros(filters), jnp.full(filters, forget), jnp.zeros(2 * filters)]
            ).astype(jnp.float32)
        return params

    def fn(p, x, ctx):
        return ops.conv_lstm2d(
            x,
            p["kernel"],
            p["recurrent_kernel"],
            p.get("bias"),
            strides=strides,
            padding=padding,
            dilation=dilation_rate,
            return_sequences=return_sequences,
            go_backwards=go_backwards,
        )

    return stateless("ConvLSTM2D", fn, name=name, make_params=make, config=config)
