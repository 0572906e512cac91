"""Boxes and labels drawn on an image with Pillow, in darknet's class colours.

A class's colour is darknet's ``get_color`` at ``offset = class·123457 % classes``
(``src/image.c``): a ramp through magenta, blue, cyan, green, yellow and red.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["class_color", "draw_detections"]

# darknet's colors[6][3] in src/image.c.
_RAMP = ((1, 0, 1), (0, 0, 1), (0, 1, 1), (0, 1, 0), (1, 1, 0), (1, 0, 0))


def class_color(class_id: int, num_classes: int) -> tuple[int, int, int]:
    """Darknet's colour of a class, as 8-bit RGB.

    >>> class_color(0, 20)
    (255, 0, 255)
    """
    offset = class_id * 123457 % num_classes
    ratio = np.float32(offset) / np.float32(num_classes) * np.float32(5)
    i, j = math.floor(ratio), math.ceil(ratio)
    ratio -= np.float32(i)
    rgb = []
    for channel in range(3):
        value = (1 - ratio) * _RAMP[i][channel] + ratio * _RAMP[j][channel]
        rgb.append(int(round(float(value) * 255)))
    return tuple(rgb)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def draw_detections(
    image,
    boxes: np.ndarray,
    class_ids: np.ndarray,
    scores: np.ndarray,
    names: tuple[str, ...],
    num_classes: int | None = None,
):
    """A copy of ``image`` with each detection's box and ``"label 82%"`` drawn on it.

    Args:
      image: a PIL image (converted to RGB).
      boxes: ``[K, 4]`` xyxy in the image's pixels.
      class_ids: ``[K]`` int.
      scores: ``[K]`` in ``[0, 1]``.
      names: the class names.
      num_classes: for the colours (default ``len(names)``).

    Returns:
      A new RGB PIL image.
    """
    from PIL import ImageDraw

    out = image.convert("RGB")
    if out is image:
        out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    # darknet draws im.h·.006 pixels wide and labels im.h·.03 high; at least 2 and 10 here.
    width = max(2, int(h * 0.006))
    font = _font(max(10, int(h * 0.03)))
    classes = num_classes or len(names)
    # Worst first, so the best box is drawn on top.
    for k in np.argsort(np.asarray(scores), kind="stable"):
        x1, y1, x2, y2 = (float(v) for v in boxes[k])
        left, top = int(min(max(x1, 0), w - 1)), int(min(max(y1, 0), h - 1))
        right, bottom = int(min(max(x2, 0), w - 1)), int(min(max(y2, 0), h - 1))
        color = class_color(int(class_ids[k]), classes)
        draw.rectangle((left, top, right, bottom), outline=color, width=width)
        text = f"{names[int(class_ids[k])]} {float(scores[k]) * 100:.0f}%"
        tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), text, font=font)
        tw, th = tx1 - tx0 + 4, ty1 - ty0 + 4
        # Above the box when it fits, else inside its top edge.
        ty = top - th if top - th >= 0 else top
        tx = min(left, max(0, w - tw))
        draw.rectangle((tx, ty, tx + tw, ty + th), fill=color)
        brightness = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
        draw.text(
            (tx + 2 - tx0, ty + 2 - ty0),
            text,
            fill=(0, 0, 0) if brightness > 128 else (255, 255, 255),
            font=font,
        )
    return out
