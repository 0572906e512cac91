"""FLOP counts from XLA's cost analysis: a program's, and a layer's forward pass."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxheads.layers import abstract_init
from jaxheads.layers.base import is_multi


def cost_flops(cost) -> float:
    """The FLOPs of XLA's cost analysis ``cost`` (``compiled.cost_analysis()``), NaN if none."""
    # jax returns a dict of costs, older versions a list with one dict per program.
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    value = (cost or {}).get("flops")
    return float(value) if value is not None and value >= 0 else math.nan


def forward_flops(layer, input_shape, params=None, state=None) -> float:
    """FLOPs of ``layer.apply`` on one image (batch 1), from XLA's cost analysis.

    The program analysed is the one lowered for a TPU, whatever machine runs this:
    the count is the model's, not this machine's lowering of it. (On CPU `conv2d`
    computes wide layers as products of patches, whose count would include the
    kernel taps that fall on the zero padding; a convolution's count leaves them
    out.) Lowering needs no TPU; where it fails, the local compiled program counts.

    Args:
      layer: a `jaxheads.layers.Layer`.
      input_shape: its input shape, batch first (``None`` allowed), or a list of them.
      params, state: its params and state (arrays or ShapeDtypeStructs); computed
        abstractly when None.
    """
    if params is None:
        _, params, state = abstract_init(layer, input_shape)

    def one(shape):
        return jax.ShapeDtypeStruct((1, *shape[1:]), jnp.float32)

    x = [one(s) for s in input_shape] if is_multi(input_shape) else one(input_shape)
    fn = jax.jit(lambda p, s, x: layer.apply(p, s, x)[0])
    try:
        traced = fn.trace(params, state, x)
        flops = cost_flops(traced.lower(lowering_platforms=("tpu",)).cost_analysis())
    except Exception:  # noqa: BLE001 — a jax without cross-platform lowering: count locally
        flops = math.nan
    if math.isfinite(flops):
        return flops
    lowered = fn.lower(params, state, x)
    flops = cost_flops(lowered.compile().cost_analysis())
    return flops if math.isfinite(flops) else cost_flops(lowered.cost_analysis())
