"""Tests for `jaxheads.ops.center_crop` (darknet's ``crop_layer.c`` at inference)."""

import jax.numpy as jnp
import numpy as np
from op_properties import raises

from jaxheads.ops import center_crop


def test_center_crop_takes_darknets_window(maybe_jit):
    x = np.arange(2 * 7 * 6 * 3, dtype=np.float32).reshape(2, 7, 6, 3)
    y = maybe_jit(center_crop, static_argnames=("height", "width"))(x, height=4, width=3)
    # forward_crop_layer: the window starts at ((H - h) // 2, (W - w) // 2).
    np.testing.assert_array_equal(y, x[:, 1:5, 1:4, :])


def test_center_crop_refuses_a_window_larger_than_the_input():
    with raises("center_crop", "an input at least 5x3", "shape (1, 4, 4, 2)"):
        center_crop(jnp.zeros((1, 4, 4, 2)), 5, 3)
