"""Trace-time argument checks shared by every op, layer and head.

Each check raises `ValueError` with one message form:
``"<op>: expected <what>, got <what was received>"`` so that a user reading the
error knows which function complained, what it wanted and what it was given.
They read only static shapes and dtypes, so they cost nothing under `jit`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np


def fail(op: str, expected: str, got: object) -> None:
    """Raises the library's standard `ValueError`."""
    raise ValueError(f"{op}: expected {expected}, got {got}")


def shape_of(x) -> tuple[int, ...]:
    return tuple(np.shape(x))


def check_rank(op: str, name: str, x, rank: int | Sequence[int], layout: str = "") -> None:
    """Checks that ``x`` has the given rank (or one of several ranks)."""
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    if np.ndim(x) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        layout = f" {layout}" if layout else ""
        fail(op, f"{name} of rank {want}{layout}", f"shape {shape_of(x)} (rank {np.ndim(x)})")


def check_min_rank(op: str, name: str, x, rank: int) -> None:
    if np.ndim(x) < rank:
        fail(op, f"{name} of rank >= {rank}", f"shape {shape_of(x)} (rank {np.ndim(x)})")


def check_floating(op: str, name: str, x) -> None:
    """Checks that ``x`` has a floating dtype (float16/bfloat16/float32/float64)."""
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.floating):
        fail(op, f"{name} with a floating dtype", f"dtype {dtype}")


def check_dim(op: str, name: str, x, axis: int, size: int, what: str = "") -> None:
    """Checks one axis of ``x`` against an expected size."""
    actual = shape_of(x)[axis]
    if actual != size:
        what = f" ({what})" if what else ""
        fail(op, f"{name}.shape[{axis}] == {size}{what}", f"shape {shape_of(x)}")


def check_shape(op: str, name: str, x, shape: Sequence[int | None]) -> None:
    """Checks a full shape; ``None`` entries match any size."""
    actual = shape_of(x)
    if len(actual) != len(shape) or any(
        s is not None and s != a for s, a in zip(shape, actual, strict=False)
    ):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        fail(op, f"{name} of shape {want}", f"shape {actual}")


def check_positive_int(op: str, name: str, value) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        fail(op, f"{name} to be a positive integer", repr(value))


def check_real(op: str, name: str, value, *, low: float | None = None,
               high: float | None = None, low_open: bool = False) -> float:
    """Checks a finite real number within ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    bounds = ""
    if low is not None or high is not None:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        bounds = f" in {'(' if low_open else '['}{lo}, {hi}]"
    if (not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool)
            or not np.isfinite(value)
            or (low is not None and (value < low or (low_open and value == low)))
            or (high is not None and value > high)):
        fail(op, f"{name} to be a finite number{bounds}", repr(value))
    return float(value)


def pair(op: str, name: str, value) -> tuple[int, int]:
    """Normalises an int or a pair of ints to a pair of positive ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        fail(op, f"{name} to be a positive int or a pair of positive ints", repr(value))
    value = tuple(value)
    if len(value) != 2 or any(
        not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1 for v in value
    ):
        fail(op, f"{name} to be a positive int or a pair of positive ints", repr(value))
    return (int(value[0]), int(value[1]))


def cast_like(x, *arrays):
    """Casts ``arrays`` to the dtype of ``x``: ops compute in the input's dtype.

    Parameters stored in float32 are used in bfloat16 when the activations are
    bfloat16 (mixed precision), and the strict dtype-promotion mode never sees
    a mixed-dtype expression.
    """
    out = tuple(None if a is None else jnp.asarray(a).astype(jnp.result_type(x)) for a in arrays)
    return out[0] if len(out) == 1 else out
