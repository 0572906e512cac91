"""Dropping padding no window reads (`jaxheads.ops._padding.trim_unread_padding`).

The windowed ops trim bottom/right padding that their last window never
reaches. The reference is the same `jax.lax` op with the padding as given:
values and gradients must be equal, and the trimmed padding must really be
gone from the compiled program.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

from jaxheads.ops import avg_pool2d, conv2d, max_pool2d
from jaxheads.ops._padding import trim_unread_padding

NHWC = ("NHWC", "HWIO", "NHWC")


@st.composite
def windowed(draw):
    n = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    if any(n[a] + sum(pads[a]) < k[a] for a in (0, 1)):
        pads = tuple((lo, hi + k[a]) for a, (lo, hi) in enumerate(pads))
    return n, k, s, pads


def _out(n, k, s, pads):
    return tuple((n[a] + sum(pads[a]) - k[a]) // s[a] + 1 for a in (0, 1))


@settings(max_examples=200, deadline=None)
@given(windowed())
def test_trim_keeps_the_output_shape_and_only_removes_unread_pads(case):
    n, k, s, pads = case
    trimmed = trim_unread_padding(n, k, s, pads)
    new = ((0, 0), (0, 0)) if trimmed == "VALID" else trimmed
    assert _out(n, k, s, new) == _out(n, k, s, pads)
    for a in (0, 1):
        assert new[a][0] == pads[a][0] and new[a][1] <= pads[a][1]
        # Minimal: one pixel less would lose the last window's last row/column.
        if new[a][1] > 0:
            shorter = list(new)
            shorter[a] = (new[a][0], new[a][1] - 1)
            assert _out(n, k, s, shorter)[a] < _out(n, k, s, pads)[a]


def _max_ref(x, k, s, pads):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, *k, 1), (1, *s, 1), ((0, 0), *pads, (0, 0)))


def _avg_ref(x, k, s, pads):
    dims, steps, full = (1, *k, 1), (1, *s, 1), ((0, 0), *pads, (0, 0))
    total = lax.reduce_window(x, 0.0, lax.add, dims, steps, full)
    count = lax.reduce_window(jnp.ones_like(x), 0.0, lax.add, dims, steps, full)
    return total / count


def _conv_ref(x, w, s, pads):
    return lax.conv_general_dilated(x, w, s, pads, dimension_numbers=NHWC)


@settings(max_examples=40, deadline=None)
@given(windowed(), st.integers(0, 2**31 - 1))
def test_ops_equal_lax_with_the_padding_as_given(case, seed):
    n, k, s, pads = case
    rng = np.random.default_rng(seed)
    # Integers: ties in max pooling are common, so gradient routing is tested too.
    # Float sums (conv, avg) may be ordered differently by XLA: 1e-5.
    x = jnp.asarray(rng.integers(-3, 4, (2, *n, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((*k, 3, 2)), jnp.float32)
    pairs = [
        (lambda x: max_pool2d(x, k, s, pads), lambda x: _max_ref(x, k, s, pads)),
        (lambda x: avg_pool2d(x, k, s, pads), lambda x: _avg_ref(x, k, s, pads)),
        (lambda x: conv2d(x, w, strides=s, padding=pads), lambda x: _conv_ref(x, w, s, pads)),
    ]
    for ours, ref in pairs:
        np.testing.assert_allclose(ours(x), ref(x), rtol=1e-5, atol=1e-5)
        cot = jnp.asarray(rng.standard_normal(ref(x).shape), jnp.float32)
        _, vjp_ours = jax.vjp(ours, x)
        _, vjp_ref = jax.vjp(ref, x)
        np.testing.assert_allclose(vjp_ours(cot)[0], vjp_ref(cot)[0], rtol=1e-5, atol=1e-5)


def _padded_maps_in_compiled(fn, x):
    """Lines of fn's and its gradient's compiled programs with a map larger than x's 8×8."""
    texts = [
        jax.jit(fn).lower(x).compile().as_text(),
        jax.jit(jax.grad(lambda x: jnp.sum(fn(x)))).lower(x).compile().as_text(),
    ]
    return [
        line for t in texts for line in t.splitlines() if re.search(r"\[1,(9,\d+|\d+,9),4\]", line)
    ]


def test_darknet_maxpool_on_an_even_map_is_computed_without_its_padding():
    # darknet [maxpool] size=2 stride=2 pads size - 1 = 1 at the bottom/right; no window reads it.
    x = jnp.ones((1, 8, 8, 4))
    pads = ((0, 1), (0, 1))
    assert _padded_maps_in_compiled(lambda x: _max_ref(x, (2, 2), (2, 2), pads), x)
    assert not _padded_maps_in_compiled(lambda x: max_pool2d(x, 2, 2, pads), x)
