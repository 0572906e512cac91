"""PASCAL VOC detection data from a VOCdevkit directory.

The layout is the devkit's: ``VOC{year}/ImageSets/Main/{split}.txt`` lists the
image ids, ``VOC{year}/Annotations/{id}.xml`` holds each image's size and
objects, and ``VOC{year}/JPEGImages/{id}.jpg`` the image. Every annotation is
read and checked when the data set is made, so a broken file fails at once
with its path and field in the message; images are decoded when an example is
asked for.

Coordinates: VOC's ``bndbox`` holds 1-based pixel indices, ``xmin`` the first
and ``xmax`` the last column of the object, inclusive. In continuous 0-based
coordinates, where pixel column ``c`` covers [c, c + 1), the box is
``(xmin - 1, ymin - 1, xmax, ymax)``, so (1, 1, W, H) is the whole image (as
Detectron2 reads VOC). The boxes are then divided by the image's width and
height. Images are resized to ``image_size`` x ``image_size`` with a plain
(aspect-distorting) resize, not a letterbox: normalised boxes are unchanged by
it, as in darknet's and most YOLO training pipelines.

JPEG decoding needs Pillow unless a ``read_image`` function is given; simplejpeg, when
installed, decodes JPEGs to the same pixels, faster.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import NamedTuple

import numpy as np

from jaxheads._checks import check_positive_int, pair
from jaxheads.data.augment import resize
from jaxheads.data.pipeline import DetectionDataset, pad_targets

__all__ = [
    "VOC_CLASSES",
    "VOCDataset",
    "VOCRecord",
    "check_relative_name",
    "parse_voc_xml",
    "read_rgb",
]

#: The devkit's order (VOCcode/VOCinit.m), which every VOC label file uses.
VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

ImageReader = Callable[[Path], np.ndarray]


# Pillow modes of one 16-bit channel (a 16-bit grayscale PNG opens as one of these).
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _read_jpeg_simplejpeg(path: str | os.PathLike) -> np.ndarray | None:
    """[H, W, 3] uint8 from simplejpeg, or None: not installed, not a JPEG, or refused.

    simplejpeg and Pillow both decode with libjpeg-turbo's defaults (the exact
    integer DCT, fancy upsampling), so the pixels are the same; simplejpeg skips
    Pillow's image object and copies, about three times faster. A file it refuses
    (CMYK, RGB-coded, a damaged file, ...) goes to Pillow, which converts it or says
    why not.
    """
    try:
        import simplejpeg
    except ImportError:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        # Only YCbCr and gray files: Pillow reads CMYK (often Adobe's, inverted) its own way.
        if simplejpeg.decode_jpeg_header(data)[2] not in ("YCbCr", "Gray"):
            return None
        return simplejpeg.decode_jpeg(data, colorspace="RGB")
    except (ValueError, RuntimeError):
        return None


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decodes an image file (JPEG, PNG, ...) to [H, W, 3] RGB with Pillow.

    A JPEG is decoded by simplejpeg when it is installed (the ``data`` extra),
    to the same pixels as Pillow's (see `_read_jpeg_simplejpeg`).

    8-bit images of any mode (grayscale, palette, CMYK, with alpha, ...) are
    converted to RGB uint8 (alpha is dropped). 16-bit grayscale images (16-bit
    PNGs) are returned as float32 in [0, 1], i.e. divided by 65535, repeated on
    three channels; Pillow's 8-bit conversion would clip them to white.

    Raises:
      ImportError: when Pillow is not installed.
      FileNotFoundError: when ``path`` does not exist.
      ValueError: naming the file, when it is not an image Pillow can decode
        (corrupt, truncated, or another kind of file).
    """
    decoded = _read_jpeg_simplejpeg(path)
    if decoded is not None:
        return decoded
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(
            "read_rgb: expected Pillow to decode images, got none: pip install Pillow "
            "(or pass read_image=... to the data set)"
        ) from error
    try:
        with Image.open(path) as image:
            if image.mode in _SIXTEEN_BIT_MODES:
                values = np.asarray(image, dtype=np.float64)
                if values.size and (values.min() < 0 or values.max() > 65535):
                    raise ValueError(f"values in [0, 65535], got [{values.min()}, {values.max()}]")
                gray = (values / 65535).astype(np.float32)
                return np.repeat(gray[:, :, None], 3, axis=2)
            if image.mode == "F":
                return image_to_float("read_rgb", Path(path), np.asarray(image, np.float32))
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(
            f"read_rgb: expected a decodable image in {path}, got {type(error).__name__}: {error}"
        ) from None


def image_to_float(op: str, path: Path, image: np.ndarray) -> np.ndarray:
    """A decoded image as [H, W, 3] float32 in [0, 1].

    uint8 is divided by 255 and uint16 by 65535; a float image must already be
    finite and within [0, 1]. Other dtypes are refused.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{op}: expected an [H, W, 3] image in {path}, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255)
    if image.dtype == np.uint16:
        return (image.astype(np.float64) / 65535).astype(np.float32)
    if image.dtype == bool:
        return image.astype(np.float32)
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(
            f"{op}: expected a uint8, uint16 or float image in {path}, got dtype {image.dtype}"
        )
    image = image.astype(np.float32)
    if image.size and not (np.all(np.isfinite(image)) and image.min() >= 0 and image.max() <= 1):
        raise ValueError(
            f"{op}: expected a float image with finite values in [0, 1] in {path}, got values "
            f"in [{np.nanmin(image) if not np.all(np.isnan(image)) else 'nan'}, "
            f"{np.nanmax(image) if not np.all(np.isnan(image)) else 'nan'}]"
        )
    return image


def annotated_example(
    op: str,
    path: Path,
    image: np.ndarray,
    record,
    *,
    max_boxes: int,
    image_size: int | tuple[int, int],
    size_from: str,
    canvas: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """The example of an image on disk and its annotation (VOC's and COCO's ``example``).

    Args:
      op: the data set, for errors.
      path: the image file; ``image`` is what was read from it.
      record: its annotation: ``width``, ``height`` (pixels), ``boxes`` [N, 4] xyxy in
        pixels, ``labels`` [N], ``difficult`` [N].
      max_boxes: the objects an example holds, padded.
      image_size: the side (or ``(height, width)``) the image is resized to.
      size_from: where the annotated size comes from, for errors.
      canvas: (H, W): instead of resizing, the decoded image as uint8 in the top left
        corner of a zero [H, W, 3] canvas, with ``source_size`` [2] int32 (its height
        and width): what `jaxheads.data.DeviceAugmentedBatches` resizes on the device.
        A uint16 or float image is rounded to uint8.

    Returns:
      ``image`` float32 resized to ``image_size`` (or the canvas), and the targets of
      `pad_targets`: boxes normalised to the image, padded to ``max_boxes``.

    Raises:
      ValueError: the image is not the size its annotation gives.
    """
    image = np.asarray(image)
    if canvas is not None and image.dtype == np.uint8 and image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if canvas is None or image.dtype != np.uint8 or image.shape[2:] != (3,):
        image = image_to_float(op, path, image)  # else kept as decoded: the device converts it
    if image.shape[:2] != (record.height, record.width):
        raise ValueError(
            f"{op}: expected the image {path} to be {record.width}x{record.height} as "
            f"{size_from}, got {image.shape[1]}x{image.shape[0]}"
        )
    scale = np.array([record.width, record.height] * 2, np.float32)
    out = pad_targets(
        record.boxes / scale, record.labels, max_boxes, difficult=record.difficult, op=op
    )
    if canvas is None:
        out["image"] = resize(image, image_size, pillow=True)
        return out
    h, w = image.shape[:2]
    if h > canvas[0] or w > canvas[1]:
        raise ValueError(
            f"{op}: expected the image {path} to fit a {canvas[1]}x{canvas[0]} canvas, got {w}x{h}"
        )
    out["image"] = np.zeros((*canvas, 3), np.uint8)
    out["image"][:h, :w] = image if image.dtype == np.uint8 else np.round(image * 255)
    out["source_size"] = np.array([h, w], np.int32)
    return out


def largest_image(records) -> tuple[int, int]:
    """(H, W): the largest ``height`` and ``width`` of ``records`` (annotations)."""
    return max(r.height for r in records), max(r.width for r in records)


class VOCRecord(NamedTuple):
    """One parsed annotation file.

    Attributes:
      image_id: the id, e.g. ``"000005"``.
      width: the image width in pixels, from ``size/width``.
      height: the image height in pixels, from ``size/height``.
      boxes: [N, 4] float32 xyxy in continuous 0-based pixels (see the module docstring).
      labels: [N] int32 indices into `VOC_CLASSES`.
      difficult: [N] bool.
    """

    image_id: str
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray


def _text(path: Path, node: ET.Element, field: str, where: str = "") -> str:
    found = node.find(field)
    if found is None or found.text is None or not found.text.strip():
        raise ValueError(f"VOCDataset: expected <{field}>{where} in {path}, got none")
    return found.text.strip()


def _number(path: Path, node: ET.Element, field: str, where: str = "") -> float:
    text = _text(path, node, field, where)
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value):
        raise ValueError(
            f"VOCDataset: expected a finite number in <{field}>{where} in {path}, got {text!r}"
        )
    return value


def _size(path: Path, node: ET.Element, field: str) -> int:
    value = _number(path, node, field, " in <size>")
    if value != int(value) or not 1 <= value <= _MAX_SIDE:
        raise ValueError(
            f"VOCDataset: expected an integer in [1, {_MAX_SIDE}] in <{field}> in <size> in "
            f"{path}, got {value!r}"
        )
    return int(value)


# <difficult> as the devkit writes it (0/1) and as other tools do (true/false).
_FLAGS = {"0": False, "1": True, "false": False, "true": True}
_MAX_SIDE = 2**31 - 1


def _difficult(path: Path, obj: ET.Element, where: str) -> bool:
    flag = obj.find("difficult")
    if flag is None or flag.text is None or not flag.text.strip():
        return False
    text = flag.text.strip().lower()
    if text not in _FLAGS:
        raise ValueError(
            f"VOCDataset: expected 0, 1, true or false in <difficult>{where} in {path}, "
            f"got {flag.text.strip()!r}"
        )
    return _FLAGS[text]


def is_file(path: Path) -> bool:
    """`Path.is_file`, False also for names the system refuses (too long, ...)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def check_relative_name(op: str, what: str, name: str) -> None:
    """Refuses a file name that would leave its folder (``..``, absolute, NUL bytes)."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if (
        not name
        or "\0" in name
        or pure.is_absolute()
        or ".." in pure.parts
        or PureWindowsPath(name).drive
    ):
        raise ValueError(
            f"{op}: expected {what} to be a relative name inside its folder (no '..', not "
            f"absolute), got {name!r}"
        )


def parse_voc_xml(path: str | os.PathLike, class_names: tuple[str, ...] = VOC_CLASSES) -> VOCRecord:
    """Reads one VOC annotation file.

    Raises:
      FileNotFoundError: when the file does not exist.
      ValueError: naming the file and the field, when the XML is malformed, a
        field is missing or not a number, a class name is unknown, or a box is
        inverted or outside the image.
    """
    path = Path(path)
    if not is_file(path):
        raise FileNotFoundError(f"VOCDataset: expected the annotation file {path}, got none")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise ValueError(f"VOCDataset: expected well-formed XML in {path}, got {error}") from None
    size = root.find("size")
    if size is None:
        raise ValueError(f"VOCDataset: expected <size> in {path}, got none")
    width = _size(path, size, "width")
    height = _size(path, size, "height")
    boxes, labels, difficult = [], [], []
    for k, obj in enumerate(root.iter("object")):
        where = f" of <object> {k}"
        name = _text(path, obj, "name", where)
        if name not in class_names:
            raise ValueError(
                f"VOCDataset: expected a class name in <name>{where} in {path} "
                f"(one of {len(class_names)} known), got {name!r}"
            )
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise ValueError(f"VOCDataset: expected <bndbox>{where} in {path}, got none")
        xmin, ymin, xmax, ymax = (
            _number(path, bndbox, f, f" in <bndbox>{where}")
            for f in ("xmin", "ymin", "xmax", "ymax")
        )
        if not (1 <= xmin <= xmax <= width and 1 <= ymin <= ymax <= height):
            raise ValueError(
                f"VOCDataset: expected 1 <= xmin <= xmax <= {width} and 1 <= ymin <= ymax <= "
                f"{height} in <bndbox>{where} in {path}, got {(xmin, ymin, xmax, ymax)}"
            )
        difficult.append(_difficult(path, obj, where))
        boxes.append((xmin - 1, ymin - 1, xmax, ymax))
        labels.append(class_names.index(name))
    return VOCRecord(
        image_id=path.stem,
        width=width,
        height=height,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        labels=np.asarray(labels, np.int32),
        difficult=np.asarray(difficult, bool),
    )


class VOCDataset(DetectionDataset):
    """PASCAL VOC detection (see the module docstring for the conventions).

    Args:
      root: the ``VOC{year}`` directory (with ``Annotations``, ``ImageSets``,
        ``JPEGImages``), or the ``VOCdevkit`` directory when ``year`` is given.
      split: the ``ImageSets/Main/{split}.txt`` to read (``"train"``, ``"val"``,
        ``"trainval"``, ``"test"``).
      year: e.g. ``"2007"``: reads ``root/VOC{year}``.
      image_size: the output H = W, or (H, W).
      max_boxes: M, the padded number of box rows. An image with more (kept)
        objects is an error rather than a silent truncation, so that an
        evaluation sees every ground truth; raise it if a split needs more.
      keep_difficult: True keeps ``difficult`` objects, flagged in
        ``example["difficult"]``, as the VOC evaluation needs; False drops them.
      read_image: decodes a file to [H, W, 3] (uint8, or float in [0, 1]);
        default `read_rgb` (Pillow).

    ``example(i)`` returns ``image`` [H, W, 3] float32, ``boxes`` [M, 4]
    normalised xyxy, ``labels`` [M] int32, ``mask`` [M] bool and
    ``difficult`` [M] bool. ``records[i]`` holds the pixel-space annotation.

    Raises:
      FileNotFoundError: a missing directory, split file, annotation or image.
      ValueError: malformed XML, a missing field, an unknown class name, a box
        outside the image or inverted, too many objects for ``max_boxes``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "trainval",
        year: str | int | None = None,
        image_size: int | tuple[int, int] = 416,
        max_boxes: int = 64,
        keep_difficult: bool = True,
        *,
        read_image: ImageReader | None = None,
    ):
        op = "VOCDataset"
        self.image_size = pair(op, "image_size", image_size)
        check_positive_int(op, "max_boxes", max_boxes)
        self.max_boxes = int(max_boxes)
        self.class_names = VOC_CLASSES
        self.keep_difficult = keep_difficult
        self.read_image = read_image or read_rgb
        root = Path(root)
        self.root = root / f"VOC{year}" if year is not None else root
        if not self.root.is_dir():
            raise FileNotFoundError(f"{op}: expected the directory {self.root}, got none")
        split_file = self.root / "ImageSets" / "Main" / f"{split}.txt"
        if not is_file(split_file):
            raise FileNotFoundError(f"{op}: expected the split file {split_file}, got none")
        try:
            text = split_file.read_text()
        except UnicodeDecodeError as error:
            raise ValueError(f"{op}: expected a text file at {split_file}, got {error}") from None
        ids = [line.split()[0] for line in text.splitlines() if line.strip()]
        if not ids:
            raise ValueError(f"{op}: expected image ids in {split_file}, got none")
        for image_id in ids:
            check_relative_name(op, f"an image id in {split_file}", image_id)
        self.records: list[VOCRecord] = []
        for image_id in ids:
            record = parse_voc_xml(self.root / "Annotations" / f"{image_id}.xml")
            if not keep_difficult:
                keep = ~record.difficult
                record = record._replace(
                    boxes=record.boxes[keep],
                    labels=record.labels[keep],
                    difficult=record.difficult[keep],
                )
            if record.labels.shape[0] > self.max_boxes:
                raise ValueError(
                    f"{op}: expected at most max_boxes={self.max_boxes} objects in "
                    f"{self.root / 'Annotations' / f'{image_id}.xml'}, got {record.labels.shape[0]}"
                )
            image_path = self.image_path(record)
            if not is_file(image_path):
                raise FileNotFoundError(f"{op}: expected the image {image_path}, got none")
            self.records.append(record)

    def image_path(self, record: VOCRecord) -> Path:
        return self.root / "JPEGImages" / f"{record.image_id}.jpg"

    def __len__(self) -> int:
        return len(self.records)

    def example(self, i: int, canvas: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        """Example ``i`` (``canvas``: decoded, not resized; see `annotated_example`)."""
        record = self.records[self._index(i)]
        path = self.image_path(record)
        return annotated_example(
            "VOCDataset",
            path,
            self.read_image(path),
            record,
            max_boxes=self.max_boxes,
            image_size=self.image_size,
            size_from="<size> says",
            canvas=canvas,
        )

    def largest_image(self) -> tuple[int, int]:
        """(H, W): the largest height and width of the annotated images."""
        return largest_image(self.records)
