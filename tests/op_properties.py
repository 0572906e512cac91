"""Helpers and the generic property tests shared by the op test modules.

Each op module defines ``_cases() -> {name: (fn, (x, *params))}`` (a param may be
None: the op's optional argument left out) and binds the generic tests with::

    (test_vmap_equals_loop, test_gradients_are_finite,
     test_second_call_does_not_recompile, test_bfloat16_in_bfloat16_out) = property_tests(_cases)
"""

import contextlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compilations import compilations

BF16_RTOL = 2e-2  # bfloat16 keeps 8 significant bits (eps 2**-8); sums lose a few more.


@contextlib.contextmanager
def keras_numerics():
    """Keras' layers broadcast a rank-1 bias against rank-4 maps and mix dtypes.

    The strict promotion modes of tests/conftest.py are for our code, so they
    are relaxed around calls into Keras only.
    """
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        yield


def rel_err(ours, ref) -> float:
    """max |ours - ref| / max |ref| (float64)."""
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.max(np.abs(ours - ref), initial=0.0) / max(np.max(np.abs(ref)), 1e-6))


def raises(*parts):
    """pytest.raises(ValueError) whose message contains ``parts`` in order."""
    return pytest.raises(ValueError, match=".*".join(re.escape(p) for p in parts))


def property_tests(cases):
    """vmap == loop, finite grads, no recompilation, bfloat16 in/out — over ``cases()``."""
    names = sorted(cases())

    @pytest.mark.parametrize("name", names)
    def test_vmap_equals_loop(name):
        fn, (x, *params) = cases()[name]
        xs = np.stack([x, 0.5 * x + 0.1, -x])
        batched = jax.vmap(lambda xi: fn(xi, *params))(xs)
        looped = jax.tree.map(lambda *o: jnp.stack(o), *[fn(xi, *params) for xi in xs])
        for bo, lo in zip(jax.tree.leaves(batched), jax.tree.leaves(looped), strict=True):
            np.testing.assert_allclose(np.asarray(bo), np.asarray(lo), rtol=1e-6, atol=1e-6)

    @pytest.mark.parametrize("name", names)
    def test_gradients_are_finite(name, maybe_jit):
        fn, args = cases()[name]
        given = [i for i, a in enumerate(args) if a is not None]

        def loss(*arrays):
            full = list(args)
            for i, a in zip(given, arrays, strict=True):
                full[i] = a
            return sum(jnp.sum(o) for o in jax.tree.leaves(fn(*full)))

        grads = maybe_jit(jax.grad(loss, argnums=tuple(range(len(given)))))(
            *(args[i] for i in given)
        )
        for g, i in zip(grads, given, strict=True):
            assert g.shape == np.shape(args[i])
            assert np.all(np.isfinite(np.asarray(g)))

    @pytest.mark.parametrize("name", names)
    def test_second_call_does_not_recompile(name):
        fn, args = cases()[name]
        f = jax.jit(lambda *a: fn(*a))  # a fresh function, so a fresh compilation cache
        shifted = [None if a is None else a + 1 for a in args]
        with compilations("<lambda>") as compiled:
            f(*args)
            f(*shifted)
        assert len(compiled) == 1

    @pytest.mark.parametrize("name", names)
    def test_bfloat16_in_bfloat16_out(name):
        """The output is in x's dtype; further outputs (batch statistics) stay float32."""
        fn, (x, *params) = cases()[name]
        xb = jnp.asarray(x, jnp.bfloat16)
        out = fn(xb, *params)  # params stay float32: the op casts them to x's dtype
        ref = fn(np.asarray(xb, np.float32), *params)
        if isinstance(out, tuple):
            (out, *stats), (ref, *ref_stats) = out, ref
            for s, r in zip(stats, ref_stats, strict=True):
                assert s.dtype == jnp.float32
                np.testing.assert_allclose(np.asarray(s), np.asarray(r), rtol=1e-6)
        assert out.dtype == jnp.bfloat16
        assert rel_err(out, ref) <= BF16_RTOL

    return (
        test_vmap_equals_loop,
        test_gradients_are_finite,
        test_second_call_does_not_recompile,
        test_bfloat16_in_bfloat16_out,
    )
