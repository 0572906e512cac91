"""Darknet's image resizing and its inverse on boxes, in float32 NumPy.

The numbers of darknet's ``src/image.c`` and ``src/region_layer.c``, bit for bit:

* `resize_image` — darknet's own bilinear resize: corner-aligned (``scale = (in - 1) /
  (out - 1)``), horizontal pass then vertical, in float32. Its quirks are kept: the
  last column copies the last source column, and the last row is only the
  ``(1 - dy)`` share of its upper source row (near black when ``(out - 1)·scale``
  rounds just below ``in - 1``).
* `letterbox_size` / `letterbox_image` — the aspect-preserving size computed in
  integers (``new_h = h·net_w / w``), the image resized to it and centred (offsets
  ``(net - new) / 2``, integer division) on a 0.5 gray canvas.
* `correct_region_boxes` — maps relative ``(cx, cy, w, h)`` boxes on the letterboxed
  input back to relative boxes on the original image (``relative=1``).

Images are ``[H, W, C]`` (darknet stores ``C, H, W``; the values are the same).

>>> letterbox_size(500, 375, 416, 416)
(416, 312)
>>> letterbox_image(np.zeros((375, 500, 3), np.float32), 416, 416).shape
(416, 416, 3)
"""

from __future__ import annotations

import numpy as np

from jaxheads._checks import fail

__all__ = ["correct_region_boxes", "letterbox_image", "letterbox_size", "resize_image"]


def _taps(in_size: int, out_size: int):
    """Per output index: source index ``i``, weight ``d`` of ``i + 1``, and ``i + 1``.

    ``scale = (float)(in - 1) / (out - 1)``; ``s = k·scale``; ``i = (int)s``;
    ``d = s - i``, all in float32 as darknet computes them.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
        s = np.arange(out_size, dtype=np.float32) * scale
    if out_size == 1:  # darknet divides by zero here; its only row/column is the first
        s = np.zeros(1, np.float32)
    i = s.astype(np.int64)
    d = s - i.astype(np.float32)
    # (out - 2)·scale < in - 1 in exact arithmetic; the clamp only guards the index.
    return i, d, np.minimum(i + 1, in_size - 1)


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Darknet's ``resize_image``: ``[H, W, C]`` float32 to ``[height, width, C]``.

    Args:
      image: ``[H, W, C]`` float32.
      width, height: the output size (at least 1).

    Returns:
      ``[height, width, C]`` float32, equal bit for bit to darknet's output.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.dtype != np.float32 or min(image.shape) < 1:
        fail(
            "resize_image", "a float32 image [H, W, C]", f"dtype {image.dtype}, shape {image.shape}"
        )
    if min(width, height) < 1:
        fail("resize_image", "an output size of at least 1x1", f"{width}x{height}")
    in_h, in_w, c = image.shape
    # Horizontal: part[r, x] = (1 - dx)·im[r, ix] + dx·im[r, ix + 1]; the last column
    # (and every column of a one-column image) is the last source column. Rows are
    # gathered as [H, W·C] runs, twice as fast as gathering [H, W, C] on the middle axis.
    ix, dx, ix1 = _taps(in_w, width)
    flat = image.reshape(in_h, in_w * c)
    channels = np.arange(c)
    dx = np.repeat(dx, c)[None, :]
    part = (np.float32(1) - dx) * flat[:, (ix[:, None] * c + channels).reshape(-1)] + dx * flat[
        :, (ix1[:, None] * c + channels).reshape(-1)
    ]
    part[:, (width - 1) * c :] = flat[:, (in_w - 1) * c :]
    if in_w == 1:
        part[:] = np.tile(flat, (1, width))
    # Vertical: out[r] = (1 - dy)·part[iy] (+ dy·part[iy + 1] except on the last row or
    # for a one-row image).
    iy, dy, iy1 = _taps(in_h, height)
    dy = dy[:, None]
    out = (np.float32(1) - dy) * part[iy]
    if in_h > 1 and height > 1:
        out[:-1] += dy[:-1] * part[iy1[:-1]]
    return out.reshape(height, width, c)


def letterbox_size(width: int, height: int, net_width: int, net_height: int) -> tuple[int, int]:
    """The ``(new_w, new_h)`` darknet resizes a ``width × height`` image to.

    ``net_w / w < net_h / h`` (float32) gives ``(net_w, h·net_w / w)``, else
    ``(w·net_h / h, net_h)``, in integer division.
    """
    if np.float32(net_width) / np.float32(width) < np.float32(net_height) / np.float32(height):
        return net_width, (height * net_width) // width
    return (width * net_height) // height, net_height


def letterbox_image(image: np.ndarray, net_width: int, net_height: int) -> np.ndarray:
    """Darknet's ``letterbox_image``: ``[H, W, C]`` float32 to ``[net_height, net_width, C]``.

    The image is resized (`resize_image`) to `letterbox_size` and centred on a canvas
    of 0.5.

    Raises:
      ValueError: when the image is so elongated that a side would shrink to 0 pixels.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        fail("letterbox_image", "an image [H, W, C]", f"shape {image.shape}")
    h, w, c = image.shape
    new_w, new_h = letterbox_size(w, h, net_width, net_height)
    if min(new_w, new_h) < 1:
        fail(
            "letterbox_image",
            f"an image whose letterboxed size in {net_width}x{net_height} is at least 1x1 pixel",
            f"{w}x{h}, letterboxed to {new_w}x{new_h}",
        )
    boxed = np.full((net_height, net_width, c), 0.5, np.float32)
    dx, dy = (net_width - new_w) // 2, (net_height - new_h) // 2
    boxed[dy : dy + new_h, dx : dx + new_w] = resize_image(image, new_w, new_h)
    return boxed


def correct_region_boxes(
    boxes: np.ndarray, width: int, height: int, net_width: int, net_height: int
) -> np.ndarray:
    """Darknet's ``correct_region_boxes`` with ``relative=1``.

    Args:
      boxes: ``[N, 4]`` ``(cx, cy, w, h)`` relative to the letterboxed network input.
      width, height: the original image's size.
      net_width, net_height: the network input's size.

    Returns:
      ``[N, 4]`` float32 ``(cx, cy, w, h)`` relative to the original image. Darknet
      mixes float and double here (``(net_w - new_w)/2./net_w`` is a double); the
      same promotions are made, so the result matches it exactly.
    """
    boxes = np.asarray(boxes, np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        fail("correct_region_boxes", "boxes [N, 4] (cx, cy, w, h)", f"shape {boxes.shape}")
    new_w, new_h = letterbox_size(width, height, net_width, net_height)
    f32 = np.float32
    x = (boxes[:, 0].astype(np.float64) - (net_width - new_w) / 2.0 / net_width) / np.float64(
        f32(new_w) / f32(net_width)
    )
    y = (boxes[:, 1].astype(np.float64) - (net_height - new_h) / 2.0 / net_height) / np.float64(
        f32(new_h) / f32(net_height)
    )
    w = boxes[:, 2] * (f32(net_width) / f32(new_w))
    h = boxes[:, 3] * (f32(net_height) / f32(new_h))
    return np.stack([x.astype(np.float32), y.astype(np.float32), w, h], axis=1)
