"""Where a jaxheads training step lost to Flax, and what changed.

Three measurements on one network (default YOLOv2-tiny at 128², batch 16):

1. The compiled programs compared op by op (``compiled.as_text()``) with Keras':
   the FLOPs agree; what differs is the convolutions (on CPU jaxheads computes
   the layers with 32 input channels or more as products of patches, ``dot``),
   the max-pool gradients (which XLA:CPU runs as ``reduce-window`` +
   ``scatter``) and batch norm.
2. Convolutions, max pooling and batch norm alone, forward + backward at the
   network's own activation shapes: jaxheads' ops now (the per-layer choice
   between XLA's convolution and the product of patches, max pools as maxima of
   strided views, shifted one-pass batch moments) against the ops as they were
   (XLA's convolution everywhere, ``reduce_window`` with darknet's unread
   padding, two-pass moments as Keras computes them), the product of patches
   everywhere, ``reduce_window`` without the unread padding, the
   non-overlapping pools as a max over reshaped tiles (an intermediate
   version), and Flax's unshifted one-pass variance.
3. The whole step, now and with the ops as they were patched into
   ``jaxheads.ops`` while it is traced, against the Flax NNX step,
   interleaved, paired ratios.

``python -m benchmarks.profile_step [--network yolov2_tiny] [--image-size 128]
[--batch 16] [--repeats 12]``: about 3 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import re
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jaxheads.ops as jops
from benchmarks import networks as nw
from benchmarks.training import Contenders, JaxheadsTrainer, foreign_code
from jaxheads.bench import timing
from jaxheads.bench.figures import Figures
from jaxheads.ops import conv, normalization, pooling

# XLA:CPU expands select-and-scatter (max-pool gradients) into reduce-window + scatter.
HLO_OPS = ("convolution", "dot", "scatter", "reduce-window", "pad", "slice", "reduce", "fusion")


def hlo_ops(compiled) -> collections.Counter:
    """How often each op of `HLO_OPS` occurs in a compiled program's HLO text."""
    ops = re.findall(r"= [^=\n]*? ([a-z][a-z0-9-]*)\(", compiled.as_text())
    counts = collections.Counter(ops)
    return collections.Counter({op: counts[op] for op in HLO_OPS})


def untrimmed_max_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """`jaxheads.ops.max_pool2d` as it was: the padding as given, read or not.

    Darknet's 2×2/2 ``[maxpool]`` pads ``size - 1 = 1`` pixel; on an even map the
    last window ends at the border, so that pad only costs a ``pad`` op and a
    larger gradient map.
    """
    dims, strides, _ = pooling._window("max_pool2d", x, pool_size, strides, padding)
    pads = pooling.normalize_padding("max_pool2d", padding)
    pads = pads if isinstance(pads, str) else ((0, 0), *pads, (0, 0))
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, dims, strides, pads)


def reduce_window_max_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """`jaxheads.ops.max_pool2d` as ``reduce_window`` on the trimmed padding."""
    dims, strides, pads = pooling._window("max_pool2d", x, pool_size, strides, padding)
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, dims, strides, pads)


def tiled_max_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """`jaxheads.ops.max_pool2d` in between: non-overlapping windows as a max over tiles.

    ``[B, H/k, k, W/k, k, C]``, reduced over the two window axes, with a custom JVP
    that finds the first maximum by a ``min`` over window positions; overlapping
    windows fell back to ``reduce_window``.
    """
    dims, steps, pads = pooling._window("max_pool2d", x, pool_size, strides, padding)
    (kh, kw), (h, w) = dims[1:3], x.shape[1:3]
    if steps == dims and (pads == "VALID" or (pads == "SAME" and h % kh == w % kw == 0)):
        return _tile_max(x[:, : h - h % kh, : w - w % kw], (kh, kw))
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, dims, steps, pads)


def _tiles(x, window):
    b, h, w, c = x.shape
    return jnp.reshape(x, (b, h // window[0], window[0], w // window[1], window[1], c))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _tile_max(x, window):
    return jnp.max(_tiles(x, window), axis=(2, 4))


@_tile_max.defjvp
def _tile_max_jvp(window, primals, tangents):
    (x,), (t,) = primals, tangents
    tiles = _tiles(x, window)
    y = jnp.max(tiles, axis=(2, 4))
    size = window[0] * window[1]
    order = np.arange(size, dtype=np.int32).reshape(1, 1, window[0], 1, window[1], 1)
    first = jnp.min(jnp.where(tiles == y[:, :, None, :, None], order, size), axis=(2, 4))
    chosen = order == first[:, :, None, :, None]
    return y, jnp.sum(jnp.where(chosen, _tiles(t, window), 0), axis=(2, 4))


def two_pass_moments(x, *, axis_name=None):
    """`jaxheads.ops.batch_moments` as it was: ``E[(x − E[x])²]``, as Keras computes it."""
    axes = tuple(range(x.ndim - 1))
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=axes, keepdims=True)
    if axis_name is not None:
        mean = lax.pmean(mean, axis_name)
    var = jnp.mean(jnp.square(x32 - mean), axis=axes)
    if axis_name is not None:
        var = lax.pmean(var, axis_name)
    return jnp.reshape(mean, var.shape), var


def unshifted_moments(x, *, axis_name=None):
    """``E[x²] − E[x]²`` (Flax's ``use_fast_variance``): one pass, cancels when |mean| ≫ std."""
    axes = tuple(range(x.ndim - 1))
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=axes)
    square = jnp.mean(jnp.square(x32), axis=axes)
    if axis_name is not None:
        mean, square = lax.pmean(mean, axis_name), lax.pmean(square, axis_name)
    return mean, jnp.maximum(square - jnp.square(mean), 0.0)


# `conv.PATCHES_MIN_CHANNELS` patched to this: no layer has so many input channels.
XLA_CONVOLUTIONS_ONLY = 2**31


@contextlib.contextmanager
def patched(max_pool2d=None, batch_moments=None, patches_min_channels=None):
    """Replaces the ops (and the convolutions' choice) the layers use while a step is traced."""
    old = jops.max_pool2d, normalization.batch_moments, conv.PATCHES_MIN_CHANNELS
    jops.max_pool2d = max_pool2d or old[0]
    normalization.batch_moments = batch_moments or old[1]
    conv.PATCHES_MIN_CHANNELS = patches_min_channels or old[2]
    try:
        yield
    finally:
        jops.max_pool2d, normalization.batch_moments, conv.PATCHES_MIN_CHANNELS = old


VARIANTS = {
    "jaxheads": {},
    "XLA convolutions everywhere": {"patches_min_channels": XLA_CONVOLUTIONS_ONLY},
    "as it was: XLA convolutions, unread pool pads, two-pass BN": {
        "patches_min_channels": XLA_CONVOLUTIONS_ONLY,
        "max_pool2d": untrimmed_max_pool2d,
        "batch_moments": two_pass_moments,
    },
    "reduce_window pools (unread pads dropped)": {"max_pool2d": reduce_window_max_pool2d},
    "tiled pools (in between)": {"max_pool2d": tiled_max_pool2d},
}


def _layer_inputs(network: nw.Network, batch: int):
    """The shapes entering each convolution, max pool and batch norm of the network."""
    side, c = network.image_size, 3
    convs, pools, norms = [], [], []
    for layer in network.spec:
        if isinstance(layer, nw.Conv):
            convs.append(((batch, side, side, c), layer))
            c = layer.filters
            if layer.batch_norm:
                norms.append((batch, side, side, c))
        elif isinstance(layer, nw.MaxPool):
            pools.append(((batch, side, side, c), layer))
            if layer.padding == "valid":
                side = (side - layer.size) // layer.stride + 1
        elif isinstance(layer, nw.Flatten):
            break
    return convs, pools, norms


def micro(network: nw.Network, batch: int, repeats: int) -> dict[str, float]:
    """Wall and CPU milliseconds of every conv / pool / batch norm of the network, fwd + bwd."""
    convs, pools, norms = _layer_inputs(network, batch)
    rng = np.random.default_rng(0)
    conv_x = [
        (
            jnp.asarray(rng.standard_normal(s, dtype=np.float32)),
            jnp.asarray(0.1 * rng.standard_normal((c.size, c.size, s[3], c.filters), np.float32)),
        )
        for s, c in convs
    ]
    pool_x = [jnp.asarray(rng.standard_normal(s, dtype=np.float32)) for s, _ in pools]
    norm_x = [jnp.asarray(rng.standard_normal(s, dtype=np.float32)) for s in norms]
    # The darknet builder's explicit pads: size - 1 in total, the odd pixel after.
    darknet_pads = [((0, p.size - 1), (0, p.size - 1)) for _, p in pools]

    def pool_fn(impl, pads):
        def total(xs):
            return sum(
                jnp.sum(jnp.square(impl(x, p.size, p.stride, pad)))
                for x, (_, p), pad in zip(xs, pools, pads, strict=True)
            )

        return jax.jit(jax.grad(total))

    def conv_fn(min_channels):
        # One program per layer, run one after the other as in the network: in one
        # program XLA would overlap independent layers and hide how each one uses
        # the cores.
        def layer(xk, c):
            with patched(patches_min_channels=min_channels):
                return jnp.sum(jnp.square(jops.conv2d(*xk, padding=c.size // 2)))

        return [jax.jit(jax.grad(functools.partial(layer, c=c))) for _, c in convs]

    def bn_fn(moments):
        def total(xs):
            out = 0.0
            for x in xs:
                mean, var = moments(x)
                y = (x - mean) * lax.rsqrt(var + 1e-6)
                out = out + jnp.sum(jnp.square(y) * x)
            return out

        return jax.jit(jax.grad(total))

    runs = {
        "convolution (jaxheads: products of patches from 32 input channels)": (
            conv_fn(None),
            conv_x,
        ),
        "convolution, XLA's everywhere (as it was)": (conv_fn(XLA_CONVOLUTIONS_ONLY), conv_x),
        "convolution, products of patches everywhere": (conv_fn(1), conv_x),
        "max pool (jaxheads: maxima of strided views)": (
            pool_fn(pooling.max_pool2d, darknet_pads),
            pool_x,
        ),
        "max pool, darknet pads as given (as it was)": (
            pool_fn(untrimmed_max_pool2d, darknet_pads),
            pool_x,
        ),
        "max pool, reduce_window, unread pads dropped": (
            pool_fn(reduce_window_max_pool2d, darknet_pads),
            pool_x,
        ),
        "max pool, non-overlapping as a max over tiles (in between)": (
            pool_fn(tiled_max_pool2d, darknet_pads),
            pool_x,
        ),
        "batch norm (jaxheads: shifted one-pass moments)": (
            bn_fn(normalization.batch_moments),
            norm_x,
        ),
        "batch norm, two-pass moments (Keras; as it was)": (bn_fn(two_pass_moments), norm_x),
        "batch norm, unshifted one-pass moments (Flax)": (bn_fn(unshifted_moments), norm_x),
    }
    calls = {}
    for name, (fns, xs) in runs.items():
        if not isinstance(fns, list):  # one program for all layers of the kind
            fns, xs = [fns], [xs]
        programs = [(fn.lower(x).compile(), x) for fn, x in zip(fns, xs, strict=True)]

        def call(programs=programs):
            for compiled, x in programs:
                jax.block_until_ready(compiled(x))

        call()
        calls[name] = call
    cpu: dict[str, list[float]] = {}
    times = timing.interleaved(calls, repeats=repeats, cpu=cpu)
    return {
        name: (timing.median(t) * 1e3, timing.median(cpu[name]) * 1e3) for name, t in times.items()
    }


def whole_step(network: nw.Network, batch: int, repeats: int, contenders: Contenders):
    """Step milliseconds of each variant and its paired speedup over Flax NNX."""
    params, state = nw.numpy_init(network)
    calls = {}
    for name, patch in VARIANTS.items():
        with patched(**patch):
            trainer = JaxheadsTrainer(network, params, state)
            placed = trainer.place(contenders.host_batch)
            trainer.compile(placed)
        jax.block_until_ready(trainer(placed))
        calls[name] = lambda t=trainer, b=placed: jax.block_until_ready(t(b))

    def flax():
        with foreign_code():
            jax.block_until_ready(contenders.flax(contenders.flax_batch))

    calls["Flax NNX"] = flax
    cpu: dict[str, list[float]] = {}
    times = timing.interleaved(calls, repeats=repeats, cpu=cpu)
    out = {}
    for name, t in times.items():
        paired = [f / j for j, f in zip(t, times["Flax NNX"], strict=True)]
        cpu_ratio = timing.median(cpu["Flax NNX"]) / timing.median(cpu[name])
        out[name] = (timing.median(t) * 1e3, statistics.median(paired), cpu_ratio)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="yolov2_tiny", choices=sorted(nw.NETWORKS))
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=12)
    args = parser.parse_args(argv)
    network = nw.NETWORKS[args.network](args.image_size)
    print(f"{network.title}, batch {args.batch}; load average {timing.load_average()}")

    contenders = Contenders(network, args.batch)
    with foreign_code():
        keras = contenders.keras_stateless.compiled
    ours, theirs = hlo_ops(contenders.jaxheads.compiled), hlo_ops(keras)
    print("\n| HLO op | jaxheads | Keras stateless |\n|---|---|---|")
    for op in HLO_OPS:
        print(f"| {op} | {ours[op]} | {theirs[op]} |")
    flops = [
        Figures(contenders.figures).value("train", "xla_flops_per_step", framework=fw)
        for fw in ("jaxheads", "keras_stateless")
    ]
    print(f"| XLA GFLOP | {flops[0] / 1e9:.3f} | {flops[1] / 1e9:.3f} |")

    print("\n| forward + backward, all layers of the kind | ms | CPU ms |\n|---|---|---|")
    for name, (ms, cpu_ms) in micro(network, args.batch, args.repeats).items():
        print(f"| {name} | {ms:.1f} | {cpu_ms:.1f} |")

    print(
        "\n| whole training step | ms | speedup vs Flax NNX (paired median) | same, CPU time |"
        "\n|---|---|---|---|"
    )
    steps = whole_step(network, args.batch, args.repeats, contenders)
    for name, (ms, speedup, cpu_speedup) in steps.items():
        print(f"| {name} | {ms:.0f} | {speedup:.3f}× | {cpu_speedup:.3f}× |")
    print(f"\nload average at the end {timing.load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
