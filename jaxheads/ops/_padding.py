"""Padding arguments shared by the windowed ops (conv, pooling, local)."""

from __future__ import annotations

import numpy as np
from jax import lax

from jaxheads._checks import check_static, fail

Padding = str | int | tuple[tuple[int, int], tuple[int, int]]


def normalize_padding(op: str, padding: Padding) -> str | tuple[tuple[int, int], tuple[int, int]]:
    """Returns ``"SAME"``, ``"VALID"`` or explicit ``((top, bottom), (left, right))``.

    An int ``p`` pads every side by ``p``: darknet's ``pad=1`` (padding ``size // 2``
    on both sides) differs from Keras ``"same"`` when the stride is 2, where
    ``"same"`` puts the odd pixel at the bottom/right only.
    """
    check_static(op, "padding", padding)
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


def pad_map(x, window, strides, padding, value):
    """``x`` [B, H, W, C] padded as ``padding`` asks, with ``value``.

    ``padding`` is ``"SAME"``, ``"VALID"`` or ``((top, bottom), (left, right))``
    (as `normalize_padding` / `trim_unread_padding` return it); ``window`` is the
    (dilated) window ``(h, w)``, ``strides`` ``(sh, sw)``. The ops that read a padded
    map as strided views (max pooling, the convolution as a product of patches)
    pad it here once.
    """
    if padding == "VALID":
        return x
    if padding == "SAME":
        padding = lax.padtype_to_pads(x.shape[1:3], window, strides, "SAME")
    if not any(lo or hi for lo, hi in padding):
        return x
    config = [(0, 0, 0), *((lo, hi, 0) for lo, hi in padding), (0, 0, 0)]
    return lax.pad(x, np.array(value, x.dtype), config)
