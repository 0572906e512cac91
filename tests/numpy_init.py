"""Params for tests without compiling JAX's random initialisers."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads import layers as L


def numpy_init(layer, input_shape, seed=0):
    """``layer.init`` run abstractly, then filled from NumPy.

    Shapes and structure come from the layer's own init; the values come from
    NumPy because compiling JAX's random initialisers for every new shape
    would dominate the run time on CPU.
    """
    out_shape, params, state = L.abstract_init(layer, input_shape)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name in ("scale", "var"):
            value = rng.uniform(0.5, 1.5, leaf.shape)
        elif name == "kernel":
            value = rng.normal(0.0, 1.0 / math.sqrt(math.prod(leaf.shape[:-1])), leaf.shape)
        else:
            value = rng.normal(0.0, 0.5, leaf.shape)
        return jnp.asarray(value, leaf.dtype)

    fill_all = jax.tree_util.tree_map_with_path
    return out_shape, fill_all(fill, params), fill_all(fill, state)
