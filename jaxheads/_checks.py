"""Trace-time argument checks shared by every op, layer and head.

Each check raises `ValueError` with one message form:
``"<op>: expected <what>, got <what was received>"`` so that a user reading the
error knows which function complained, what it wanted and what it was given.
They read only static shapes and dtypes, so they cost nothing under `jit`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def fail(op: str, expected: str, got: object) -> None:
    """Raises the library's standard `ValueError`."""
    raise ValueError(f"{op}: expected {expected}, got {got}")


def shape_of(x) -> tuple[int, ...]:
    return tuple(np.shape(x))


def check_rank(op: str, name: str, x, rank: int | Sequence[int], layout: str = "") -> None:
    """Checks that ``x`` has the given rank (or one of several ranks).

    A batch-first layout (``"[B, ..."``) missing exactly its batch axis is told
    how to add it: one example, or a function mapped with `jax.vmap`.
    """
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    if np.ndim(x) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        hint = ""
        if layout.startswith("[B,") and np.ndim(x) == max(ranks) - 1:
            hint = (
                "; the batch axis is missing: add it with x[None] for one example, or, "
                "in a function mapped with jax.vmap, add it inside and take [0] of the result"
            )
        layout = f" {layout}" if layout else ""
        fail(op, f"{name} of rank {want}{layout}", f"shape {shape_of(x)} (rank {np.ndim(x)}){hint}")


def looks_nchw(shape) -> bool:
    """True for a rank-4 shape that reads as an NCHW image batch: ``[B, 1 or 3, S, S]``, S >= 16.

    As NHWC it would be a 1- or 3-row map with as many channels as columns,
    which no layer of this library makes; as NCHW it is a grey or RGB image.
    """
    return len(shape) == 4 and shape[1] in (1, 3) and shape[2] == shape[3] >= 16


def check_nhwc(op: str, name: str, x) -> None:
    """Checks a ``[B, H, W, C]`` map: its rank, and that it does not look NCHW."""
    check_rank(op, name, x, 4, "[B, H, W, C]")
    if looks_nchw(shape_of(x)):
        fail(
            op,
            f"{name} in the NHWC layout [B, H, W, C] (channels last)",
            f"shape {shape_of(x)}, which looks NCHW (channels first): transpose it with "
            "jnp.transpose(x, (0, 2, 3, 1))",
        )


def check_channels_last(
    op: str, name: str, x, channels: int, source: str = "the kernel's input channels"
) -> None:
    """With ``channels`` known (from ``source``), tells an NCHW input that the layout is NHWC."""
    shape = shape_of(x)
    if shape[-1] != channels and len(shape) >= 4 and shape[1] == channels:
        fail(
            op,
            f"{name} in the NHWC layout with C = {channels} last ({source})",
            f"shape {shape}, channels first (NCHW): transpose it with "
            "jnp.transpose(x, (0, 2, 3, 1))",
        )


def check_static(op: str, name: str, value) -> None:
    """Structural arguments (strides, padding, sizes) fix shapes: they must be Python values.

    Under `jax.jit` every argument is traced unless it is static, so
    ``jax.jit(conv2d)(x, k, strides=2)`` would hand this op an array.
    """
    arrays = [leaf for leaf in jax.tree.leaves(value) if isinstance(leaf, jax.Array)]
    if arrays:
        leaf = arrays[0]
        fail(
            op,
            f"{name} as a static Python value (int, tuple or str): it fixes shapes, so "
            f"under jax.jit mark it static (jax.jit(f, static_argnames={name!r})) or bind it "
            "with functools.partial",
            f"a JAX array of shape {tuple(leaf.shape)} and dtype "
            f"{leaf.dtype} (a traced value under jit)",
        )


def check_min_rank(op: str, name: str, x, rank: int) -> None:
    if np.ndim(x) < rank:
        fail(op, f"{name} of rank >= {rank}", f"shape {shape_of(x)} (rank {np.ndim(x)})")


def check_nonempty(op: str, name: str, x, axes: Sequence[int], what: str) -> None:
    """Checks that the axes ``axes`` of ``x`` (e.g. the batch, the map) are not empty."""
    shape = shape_of(x)
    if any(shape[a] == 0 for a in axes):
        fail(op, f"{name} with a non-empty {what}", f"shape {shape}")


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
    check_static(op, name, value)
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        fail(op, f"{name} to be a positive integer", repr(value))


def check_real(
    op: str,
    name: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    dtype=None,
) -> float:
    """Checks a finite real number within ``[low, high]`` (``(low, high]`` with ``low_open``).

    With ``dtype`` (a floating dtype the value will be cast to) it must also be finite there.
    """
    bounds = ""
    if low is not None or high is not None:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        bounds = f" in {'(' if low_open else '['}{lo}, {hi}]"
    if (
        not isinstance(value, (int, float, np.integer, np.floating))
        or isinstance(value, bool)
        or not np.isfinite(value)
        or (low is not None and (value < low or (low_open and value == low)))
        or (high is not None and value > high)
    ):
        fail(op, f"{name} to be a finite number{bounds}", repr(value))
    if dtype is not None and abs(float(value)) > float(jnp.finfo(dtype).max):
        fail(op, f"{name} to be a finite number in {jnp.dtype(dtype).name}", repr(value))
    return float(value)


def pair(op: str, name: str, value) -> tuple[int, int]:
    """Normalises an int or a pair of ints to a pair of positive ints."""
    check_static(op, name, value)
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


def not_a_regular_file(path) -> str | None:
    """What ``path`` is when it exists and is not a regular file (``"a FIFO (named
    pipe)"``), else None. Opening a FIFO blocks and a device reads without end, so
    files a user names are checked with this (a ``stat``, which never blocks) first."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None  # missing or unreadable: opening it says so by name
    if stat.S_ISREG(mode):
        return None
    for test, what in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return what
    return "not a regular file"
