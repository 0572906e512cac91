"""Padding arguments shared by the windowed ops (conv, pooling, local)."""

from __future__ import annotations

import numpy as np

from jaxheads._checks import fail

Padding = str | int | tuple[tuple[int, int], tuple[int, int]]


def normalize_padding(op: str, padding: Padding) -> str | tuple[tuple[int, int], tuple[int, int]]:
    """Returns ``"SAME"``, ``"VALID"`` or explicit ``((top, bottom), (left, right))``.

    An int ``p`` pads every side by ``p``: darknet's ``pad=1`` (padding ``size // 2``
    on both sides) differs from Keras ``"same"`` when the stride is 2, where
    ``"same"`` puts the odd pixel at the bottom/right only.
    """
    if isinstance(padding, str):
        if padding.lower() not in ("same", "valid"):
            fail(
                op,
                'padding "same", "valid", an int or ((top, bottom), (left, right))',
                repr(padding),
            )
        return padding.upper()
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        if padding < 0:
            fail(op, "a non-negative padding", repr(padding))
        return ((int(padding), int(padding)), (int(padding), int(padding)))
    try:
        (t, b), (l, r) = padding
        pads = tuple((int(a), int(c)) for a, c in ((t, b), (l, r)))
    except (TypeError, ValueError):
        fail(op, 'padding "same", "valid", an int or ((top, bottom), (left, right))', repr(padding))
    if any(p < 0 for side in pads for p in side):
        fail(op, "non-negative padding", repr(padding))
    return pads


def check_window_fits(
    op: str, spatial: tuple[int, int], window: tuple[int, int], padding, what: str = "kernel"
) -> None:
    """With explicit or valid padding, the (dilated) window must fit the padded input."""
    if padding == "SAME":
        return
    pads = ((0, 0), (0, 0)) if padding == "VALID" else padding
    for axis, name in ((0, "height"), (1, "width")):
        padded = spatial[axis] + pads[axis][0] + pads[axis][1]
        if window[axis] > padded:
            fail(
                op,
                f"a {what} {name} <= the padded input {name} ({padded})",
                f"{what} {window} on input spatial shape {spatial} with padding {padding}",
            )


def trim_unread_padding(spatial: tuple[int, int], window: tuple[int, int], strides, padding):
    """Drops bottom/right padding that no window reads; the output shape is unchanged.

    Darknet pads ``size - 1`` for ``[maxpool]`` and ``size // 2`` on both sides for
    strided ``[convolutional]`` layers; on an even map the last window of a stride-2
    op ends before that padding, which would then cost a ``pad`` op and a larger
    gradient map for nothing. ``"SAME"`` and ``"VALID"`` pass through.

    >>> trim_unread_padding((8, 8), (2, 2), (2, 2), ((0, 1), (0, 1)))
    'VALID'
    >>> trim_unread_padding((8, 8), (3, 3), (2, 2), ((1, 1), (1, 1)))
    ((1, 0), (1, 0))
    """
    if isinstance(padding, str):
        return padding
    trimmed = []
    for n, k, s, (lo, hi) in zip(spatial, window, strides, padding, strict=True):
        last_end = (n + lo + hi - k) // s * s + k  # one past the last padded index read
        trimmed.append((lo, min(hi, max(0, last_end - lo - n))))
    trimmed = tuple(trimmed)
    return "VALID" if trimmed == ((0, 0), (0, 0)) else trimmed
