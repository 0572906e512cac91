"""Image files, PIL images and arrays to ``[H, W, 3]`` float32 RGB in ``[0, 1]``.

The reading darknet's ``load_image_color`` does (``stb_image`` with 3 channels,
each byte divided by 255), made safe for files a user points at:

* 8-bit images: ``v / 255`` computed in double and rounded to float32, darknet's
  ``(float)data[i]/255.``.
* 16-bit grayscale PNGs (Pillow mode ``I;16``): ``v / 65535``. Pillow decodes
  16-bit RGB PNGs to their high bytes, which are then read as 8-bit.
* Grayscale is repeated on the three channels; alpha is dropped (as ``stb_image``
  with 3 channels does: colour values are kept, not composited); palette, CMYK,
  YCbCr, bilevel and the other Pillow modes are converted to RGB by Pillow.
* EXIF orientation is applied (`PIL.ImageOps.exif_transpose`), so a phone photo is
  upright, as a viewer shows it.
* An image of more than ``max_pixels`` pixels is refused from its header, before
  anything is decoded.

Every failure is an `ImageError` (a `ValueError`) naming the file.

>>> import numpy as np
>>> to_rgb_float(np.full((2, 3), 255, np.uint8)).shape
(2, 3, 3)
>>> float(to_rgb_float(np.full((1, 1), 65535, np.uint16))[0, 0, 0])
1.0
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Iterable

import numpy as np

from jaxheads._checks import not_a_regular_file

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageError",
    "expand_image_paths",
    "read_image",
    "to_rgb_float",
]

#: Images above this many pixels are refused (50 MP: 600 MB once in float32 RGB).
DEFAULT_MAX_PIXELS = 50_000_000
#: File name endings `expand_image_paths` picks up inside folders (case-insensitive).
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pnm",
)

# darknet's byte -> float: (float)byte / 255. (a double division rounded to float32).
_BYTE_TO_FLOAT = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)


class ImageError(ValueError):
    """An image that cannot be used; the message names it and says why."""


def _pil():
    try:
        from PIL import Image, ImageOps
    except ImportError as err:
        raise ImportError(
            "jaxheads.predict: expected Pillow to read images, got none: pip install Pillow "
            "(or the data extra: pip install 'jaxheads[data]')"
        ) from err
    return Image, ImageOps


def _from_pil(image, what: str, max_pixels: int) -> tuple[np.ndarray, object]:
    """A loaded PIL image to ``(float32 [H, W, 3], the upright 8-bit RGB PIL image)``."""
    _, ImageOps = _pil()
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(
            f"{what}: expected an image of at most {max_pixels:,} pixels "
            f"(raise --max-pixels to allow more), got {width}x{height} = "
            f"{width * height:,}"
        )
    if width < 1 or height < 1:
        raise ImageError(f"{what}: expected an image of at least 1x1 pixel, got {width}x{height}")
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image)
        if mode == "I" and (values.min() < 0 or values.max() > 65535):
            raise ImageError(
                f"{what}: expected 32-bit integer pixels in [0, 65535] (16-bit "
                f"data), got [{values.min()}, {values.max()}]"
            )
        gray = to_rgb_float(values.astype(np.uint16))
        shown = (np.asarray(values, np.float64) / 257.0).round().astype(np.uint8)
        return gray, _pil()[0].fromarray(shown).convert("RGB")
    if mode == "F":
        raise ImageError(
            f"{what}: expected an 8- or 16-bit image, got 32-bit float pixels (mode F)"
        )
    if mode in ("L", "RGB"):
        rgb = image.convert("RGB") if mode == "L" else image
    elif mode in ("LA", "La"):
        rgb = image.getchannel("L").convert("RGB")
    elif mode in ("RGBA", "RGBa", "RGBX"):
        rgb = image.convert("RGB")
    elif mode in ("P", "PA"):
        # A palette with transparency converts through RGBA to keep the colours.
        rgb = image.convert("RGBA").convert("RGB")
    else:  # CMYK, YCbCr, LAB, HSV, 1, ...
        rgb = image.convert("RGB")
    return _BYTE_TO_FLOAT[np.asarray(rgb)], rgb


def read_image(source, *, max_pixels: int = DEFAULT_MAX_PIXELS, keep_pil: bool = False):
    """Reads one image as darknet does, from a path, a PIL image or an array.

    Args:
      source: a file path (``str`` or ``os.PathLike``), a ``PIL.Image.Image`` or an
        array (see `to_rgb_float`).
      max_pixels: images with more pixels are refused.
      keep_pil: also return the upright 8-bit RGB PIL image (for drawing); None for
        arrays.

    Returns:
      ``[H, W, 3]`` float32 in ``[0, 1]``, or ``(that, PIL image)`` with ``keep_pil``.

    Raises:
      ImageError: naming the file when it is missing, unreadable, truncated, not an
        image, or too large.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        Image, _ = _pil()
        not_regular = not_a_regular_file(path)
        if not_regular:
            # Opening a FIFO or a device would block or read without end.
            raise ImageError(f"{path}: expected a regular image file, got {not_regular}")
        try:
            with warnings.catch_warnings():
                # The size is checked below against max_pixels, before decoding.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    w, h = image.size
                    if w * h > max_pixels:
                        raise ImageError(
                            f"{path}: expected an image of at most {max_pixels:,} pixels "
                            f"(raise --max-pixels to allow more), got {w}x{h} = {w * h:,}"
                        )
                    image.load()
                    pixels, rgb = _from_pil(image, path, max_pixels)
        except ImageError:
            raise
        except FileNotFoundError:
            raise ImageError(f"{path}: expected an image file, got no such file") from None
        except IsADirectoryError:
            raise ImageError(f"{path}: expected an image file, got a directory") from None
        except PermissionError:
            raise ImageError(f"{path}: expected a readable file, got permission denied") from None
        except Image.UnidentifiedImageError:
            raise ImageError(
                f"{path}: expected an image file, got data Pillow cannot identify"
            ) from None
        except Image.DecompressionBombError:
            limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
            raise ImageError(
                f"{path}: expected an image of at most {limit:,} pixels, Pillow's own "
                "limit (twice PIL.Image.MAX_IMAGE_PIXELS, which --max-pixels does not "
                "raise; set PIL.Image.MAX_IMAGE_PIXELS in Python to allow more), got a "
                "larger one"
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            # Pillow reports truncated and corrupt data as OSError (or SyntaxError for some
            # formats) while decoding.
            raise ImageError(
                f"{path}: expected a complete image file, got {type(err).__name__}: {err}"
            ) from None
        return (pixels, rgb) if keep_pil else pixels
    if hasattr(source, "getbands") and hasattr(source, "size"):  # a PIL image
        pixels, rgb = _from_pil(source, f"PIL image {source.mode} {source.size}", max_pixels)
        return (pixels, rgb) if keep_pil else pixels
    pixels = to_rgb_float(source, max_pixels=max_pixels)
    return (pixels, None) if keep_pil else pixels


def to_rgb_float(image, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An RGB(A) or grayscale array to ``[H, W, 3]`` float32 in ``[0, 1]``.

    Args:
      image: ``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` or ``[H, W, 4]`` (alpha dropped),
        channels in RGB order; ``uint8`` (divided by 255), ``uint16`` (by 65535) or
        floating (already in ``[0, 1]``).
      max_pixels: larger images are refused.

    Raises:
      ImageError: for other shapes or dtypes, floats outside ``[0, 1]`` or too many pixels.
    """
    a = np.asarray(image)
    shape_ok = a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))
    if a.ndim == 3 and shape_ok:
        a = a[:, :, :3] if a.shape[2] != 1 else a[:, :, 0]
    if not shape_ok or min(a.shape[:2], default=0) < 1:
        raise ImageError(
            f"to_rgb_float: expected an image array [H, W], [H, W, 1], [H, W, 3] "
            f"or [H, W, 4], got shape {np.shape(image)}"
        )
    if a.shape[0] * a.shape[1] > max_pixels:
        raise ImageError(
            f"to_rgb_float: expected an image of at most {max_pixels:,} pixels, "
            f"got {a.shape[1]}x{a.shape[0]}"
        )
    if a.dtype == np.uint8:
        out = _BYTE_TO_FLOAT[a]
    elif a.dtype == np.uint16:
        out = (a / 65535.0).astype(np.float32)
    elif np.issubdtype(a.dtype, np.floating):
        out = a.astype(np.float32)
        lo, hi = (float(out.min()), float(out.max())) if out.size else (0.0, 0.0)
        if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
            raise ImageError(f"to_rgb_float: expected float pixels in [0, 1], got [{lo}, {hi}]")
    else:
        raise ImageError(
            f"to_rgb_float: expected uint8, uint16 or float pixels, got dtype {a.dtype}"
        )
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return np.ascontiguousarray(out)


def expand_image_paths(patterns: Iterable[str | os.PathLike]) -> list[str]:
    """Files, folders (their image files, sorted, not recursive) and globs to a list of paths.

    A pattern that is neither an existing path nor a glob matching something is kept
    as it is, so that reading it reports the missing file by name; so is an entry
    of a folder or a glob with an image file's name that is not a regular file (a
    FIFO, a socket): reading it names it and says what it is.
    """
    paths: list[str] = []
    for pattern in patterns:
        pattern = os.fspath(pattern)
        if os.path.isdir(pattern):
            names = sorted(os.listdir(pattern))
            paths += [
                os.path.join(pattern, n)
                for n in names
                if n.lower().endswith(IMAGE_EXTENSIONS)
                and not os.path.isdir(os.path.join(pattern, n))
            ]
        elif os.path.exists(pattern) or not glob.has_magic(pattern):
            paths.append(pattern)
        else:
            matches = sorted(glob.glob(pattern, recursive=True))
            paths += [m for m in matches if not os.path.isdir(m)] or [pattern]
    return paths
