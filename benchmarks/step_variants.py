"""The training step with the candidate changes of the step study, each behind a switch.

`StepOptions` names them; `variant_detector` rewrites a darknet detector's graph for
the ones that change the model's program (space-to-depth of the input, channels
padded to multiples of 8, ``jax.checkpoint``), and `make_variant_step` builds the
jitted step, with the parameters kept in bfloat16 for the forward and a float32
master copy when asked. Every option computes the same function up to rounding
(``tests/test_step_variants.py``); only where the work lands changes.

Batch norm's statistics need no candidate: `jaxheads.ops.batch_moments` already takes
them in one shifted pass, in float32 over the bfloat16 activations.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxheads import layers as L
from jaxheads import ops
from jaxheads._checks import fail
from jaxheads.train.step import all_finite, make_step

REMAT_POLICIES = ("none", "convs", "nothing")


@dataclasses.dataclass(frozen=True)
class StepOptions:
    """Switches of the step study; the defaults are today's step.

    Attributes:
      bf16_params: the forward reads a bfloat16 copy of the parameters, refreshed by
        the update from a float32 master copy (no float32 → bfloat16 casts of the
        kernels in the forward, nor of their gradients back).
      space_to_depth: the first convolution (3×3, stride 1, 3 channels at 416²) and the
        2×2/2 max pool after it computed on the space-to-depth input (12 channels at
        208²) with re-arranged kernels: `space_to_depth_stem`.
      pad_channels: the input's channels and the last convolution's outputs padded
        with zeros to multiples of 8 (3 → 8, or 12 → 16 with space-to-depth; 125 → 128).
      remat: ``jax.checkpoint`` around every layer: ``"none"``; ``"convs"`` keeps the
        convolutions' outputs and recomputes batch norm and the activations;
        ``"nothing"`` recomputes each layer.
    """

    bf16_params: bool = False
    space_to_depth: bool = False
    pad_channels: bool = False
    remat: str = "none"

    def __post_init__(self):
        if self.remat not in REMAT_POLICIES:
            fail("StepOptions", f"remat in {REMAT_POLICIES}", repr(self.remat))


# --- space-to-depth of the first layer --------------------------------------------------------


def _tap_selection() -> np.ndarray:
    """``S[u, p, a, d]``: 1 where the s2d row offset ``u`` and phase ``p`` hold the tap ``d``.

    An output row ``2i + a`` of a 3×3, stride-1, pad-1 convolution reads input rows
    ``2i + a + d - 1`` (``d`` in 0..2); in space-to-depth coordinates that row is
    block row ``i + u - 1`` at phase ``p`` with ``2(u - 1) + p = a + d - 1``.
    """
    s = np.zeros((3, 2, 2, 3), np.float32)
    for u in range(3):
        for p in range(2):
            for a in range(2):
                d = 2 * (u - 1) + p - a + 1
                if 0 <= d < 3:
                    s[u, p, a, d] = 1.0
    return s


def stem_kernel(kernel: jax.Array) -> jax.Array:
    """A 3×3 stride-1 kernel ``[3, 3, C, F]`` as a 3×3 kernel ``[3, 3, 4C, 4F]`` on s2d input.

    Input channels in `jaxheads.ops.space_to_depth`'s order ``(p, q, c)``; outputs
    ``(a, b, f)``: the original output pixel ``(2i + a, 2j + b)``'s channel ``f``.
    """
    if kernel.shape[:2] != (3, 3):
        fail("stem_kernel", "a 3×3 kernel [3, 3, C, F]", f"shape {kernel.shape}")
    c, f = kernel.shape[2:]
    sel = jnp.asarray(_tap_selection(), kernel.dtype)
    k = jnp.einsum("upay,vqbx,yxcf->uvpqcabf", sel, sel, kernel)
    return k.reshape(3, 3, 4 * c, 4 * f)


def space_to_depth_stem(conv_node: L.Layer, in_channels_to: int | None = None) -> L.Layer:
    """``conv (3×3/1, pad 1) → batch norm → leaky → max pool 2×2/2`` on s2d input.

    The convolution runs on ``space_to_depth(x)`` (``[B, H/2, W/2, 4C]``) with
    `stem_kernel`, giving the four output phases of each 2×2 block as channels
    ``(a, b, f)``; batch norm takes its statistics over the phases too (the same
    pixels as before), and the max pool is the maximum over the phases. Same params
    and state as ``conv_node`` (a darknet Sequential of Conv2D, BatchNormalization,
    LeakyReLU); its output is the pool's, ``[B, H/2, W/2, F]``.
    """
    names = [n.name for n in conv_node.nodes]
    kinds = [n.layer.kind for n in conv_node.nodes]
    config = dict(conv_node.nodes[0].layer.config) if conv_node.nodes else {}
    if (
        kinds != ["Conv2D", "BatchNormalization", "LeakyReLU"]
        or config.get("kernel_size") != (3, 3)
        or config.get("strides") != (1, 1)
        or config.get("padding") != ((1, 1), (1, 1))
    ):
        fail("space_to_depth_stem", "a 3×3/1 pad-1 conv, batch norm and leaky", kinds)
    bn = dict(conv_node.nodes[1].layer.config)
    slope = dict(conv_node.nodes[2].layer.config)["negative_slope"]

    def init(key, input_shape):
        shape, params, state = conv_node.init(key, input_shape)
        return (shape[0], shape[1] // 2, shape[2] // 2, shape[3]), params, state

    def apply(params, state, x, *, train=False, key=None, axis_name=None):
        del key
        kernel = stem_kernel(params[names[0]]["kernel"])
        z = ops.space_to_depth(x, 2)
        if in_channels_to is not None and z.shape[3] < in_channels_to:
            extra = in_channels_to - z.shape[3]
            z = jnp.pad(z, ((0, 0), (0, 0), (0, 0), (0, extra)))
            kernel = jnp.pad(kernel, ((0, 0), (0, 0), (0, extra), (0, 0)))
        y = ops.conv2d(z, kernel, padding=1)
        b, h, w, c4 = y.shape
        y = y.reshape(b, h, w, 4, c4 // 4)  # phases (a, b), then channels
        p, s = params[names[1]], state[names[1]]
        if train:
            y, mean, var = ops.batch_norm_train(
                y, p["scale"], p["bias"], epsilon=bn["epsilon"], axis_name=axis_name
            )
            mean, var = ops.update_moving_stats(
                s["mean"], s["var"], mean, var, momentum=bn["momentum"]
            )
            s = {"mean": mean, "var": var}
        else:
            y = ops.batch_norm(y, p["scale"], p["bias"], s["mean"], s["var"], epsilon=bn["epsilon"])
        y = jnp.max(ops.leaky_relu(y, slope), axis=3)
        return y, {names[1]: s}

    return L.Layer(init, apply, "space_to_depth_stem", "SpaceToDepthStem")


# --- channels padded to multiples of 8 --------------------------------------------------------


def _round8(n: int) -> int:
    return 8 * math.ceil(n / 8)


def padded_input(layer: L.Layer, conv_key: str | None) -> L.Layer:
    """``layer`` (a first convolution) on its input padded with zero channels to a multiple of 8.

    ``conv_key``: the Conv2D's key in the layer's params (None: the layer is the Conv2D).
    """

    def apply(params, state, x, **kw):
        extra = _round8(x.shape[3]) - x.shape[3]
        if extra:
            x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, extra)))
            p = params if conv_key is None else params[conv_key]
            p = {**p, "kernel": jnp.pad(p["kernel"], ((0, 0), (0, 0), (0, extra), (0, 0)))}
            params = p if conv_key is None else {**params, conv_key: p}
        return layer.apply(params, state, x, **kw)

    return layer._replace(apply=apply)


def padded_output(layer: L.Layer) -> L.Layer:
    """A Conv2D leaf with its filters padded with zeros to a multiple of 8, the output sliced."""
    if layer.kind != "Conv2D":
        fail("padded_output", "a Conv2D layer", layer.kind)

    def apply(params, state, x, **kw):
        f = params["kernel"].shape[3]
        extra = _round8(f) - f
        if extra:
            params = {
                k: jnp.pad(v, [(0, 0)] * (v.ndim - 1) + [(0, extra)]) for k, v in params.items()
            }
        y, s = layer.apply(params, state, x, **kw)
        return y[..., :f], s

    return layer._replace(apply=apply)


# --- jax.checkpoint around each layer ---------------------------------------------------------


def _save_convs(prim, *_, **__) -> bool:
    return prim is lax.conv_general_dilated_p


def checkpointed(layer: L.Layer, remat: str) -> L.Layer:
    """``layer`` with its apply under ``jax.checkpoint`` (policy by `REMAT_POLICIES` name)."""
    policy = {"convs": _save_convs, "nothing": jax.checkpoint_policies.nothing_saveable}[remat]

    def apply(params, state, x, *, train=False, key=None, axis_name=None):
        def run(params, state, x, key):
            return layer.apply(params, state, x, train=train, key=key, axis_name=axis_name)

        return jax.checkpoint(run, policy=policy)(params, state, x, key)

    return layer._replace(apply=apply)


# --- the detector and the step ----------------------------------------------------------------


def variant_detector(detector, options: StepOptions):
    """The detector with its graph rewritten for ``options`` (same params and state)."""
    nodes = list(detector.layer.nodes)
    if options.space_to_depth:
        if nodes[1].layer.kind != "MaxPooling2D" or dict(nodes[1].layer.config)["strides"] != (
            2,
            2,
        ):
            fail("variant_detector", "a 2×2/2 max pool after the first convolution", nodes[1].name)
        stem = space_to_depth_stem(nodes[0].layer, 16 if options.pad_channels else None)
        nodes[0] = nodes[0]._replace(layer=stem)
        nodes[1] = nodes[1]._replace(layer=L.Identity(name=nodes[1].name))
    elif options.pad_channels:
        first = nodes[0].layer
        key = None if first.kind == "Conv2D" else first.nodes[0].name
        nodes[0] = nodes[0]._replace(layer=padded_input(first, key))
    if options.pad_channels and nodes[-1].layer.kind == "Conv2D":
        nodes[-1] = nodes[-1]._replace(layer=padded_output(nodes[-1].layer))
    if options.remat != "none":
        nodes = [n._replace(layer=checkpointed(n.layer, options.remat)) for n in nodes]
    graph = L.graph(nodes, name=detector.layer.name)
    return detector._replace(layer=graph)


def make_variant_step(loss_fn, optimizer, options: StepOptions):
    """The pure step ``(ts, batch, key) -> (ts, metrics)`` for ``options``.

    With ``bf16_params`` the state is ``(TrainState, bf16 params)``: the loss reads the
    bfloat16 copy, its gradients are taken in bfloat16 and widened to float32 for the
    optimizer, which updates the float32 master and writes the next copy in the same
    fusion. Otherwise it is `jaxheads.train.step.make_step`'s step.
    """
    step = make_step(loss_fn, optimizer)
    if not options.bf16_params:
        return step

    def master_step(carry, batch, key):
        ts, low = carry
        key = jax.random.fold_in(key, ts.step)

        def objective(p):
            return loss_fn(p, ts.state, batch, key, None, ts.step)

        (loss, (new_state, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(low)
        grads = jax.tree.map(lambda g, m: g.astype(m.dtype), grads, ts.params)
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, ts.opt_state, ts.params)
        params = optax.apply_updates(ts.params, updates)
        new_ts = ts._replace(step=ts.step + 1, params=params, state=new_state, opt_state=opt_state)
        new_low = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
        return (new_ts, new_low), {**metrics, "loss": loss, "state_finite": all_finite(new_ts)}

    return master_step


def variant_state(ts, options: StepOptions):
    """The step's state for ``options`` from a `jaxheads.train.step.TrainState`."""
    if not options.bf16_params:
        return ts
    return ts, jax.tree.map(lambda p: p.astype(jnp.bfloat16), ts.params)
