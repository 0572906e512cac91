"""COCO-format detection data: an annotation json and a directory of images.

The json is COCO's ``instances_*.json`` (or any file in its format):
``images`` (``id``, ``file_name``, ``width``, ``height``), ``categories``
(``id``, ``name``) and ``annotations`` (``image_id``, ``category_id``, ``bbox``
= [x, y, width, height] in pixels, optional ``iscrowd``). It is read and
checked when the data set is made; an error names the file and the field,
e.g. ``annotations[12].bbox``. Images are decoded when an example is asked for.

Choices, stated once:

  * Labels are contiguous: the categories sorted by ``id`` get labels 0, 1, ...
    (COCO's 80 ids run 1..90 with gaps); ``class_names`` are their names in that
    order and ``category_ids[label]`` maps back for a results file. Ids must
    be unique (duplicate category or image ids are an error, not an overwrite).
  * Images are listed in increasing ``id`` order, all of them, including those
    without annotations (negatives).
  * ``iscrowd`` regions are kept as ``difficult`` boxes (``keep_crowd=True``): an
    evaluation can then ignore detections on them, as COCOeval does; with
    ``keep_crowd=False`` they are dropped.
  * ``iscrowd`` is 0, 1, true or false; anything else (e.g. the string ``"0"``,
    which pycocotools would read as crowd) is an error. Box values must be
    finite (JSON's ``NaN``/``Infinity`` are refused, naming the annotation).
  * ``file_name`` must stay inside ``image_dir``: ``..`` or an absolute path is
    an error.
  * A box may stick out of its image by up to one pixel (COCO's float boxes
    do) and is clipped to it; further out is an error. A box with zero width or
    height is skipped (and counted in ``num_skipped``); a negative one is an error.
  * Boxes are divided by the image's width and height, and images resized to
    ``image_size`` with a plain resize (see `jaxheads.data.voc`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxheads._checks import check_positive_int, pair
from jaxheads.data.pipeline import DetectionDataset
from jaxheads.data.voc import (
    ImageReader,
    annotated_example,
    check_relative_name,
    is_file,
    largest_image,
    read_rgb,
)

__all__ = ["COCO_CLASSES", "COCODataset", "COCORecord"]

#: COCO's 80 category names in the order of their ids (darknet's data/coco.names): what a
#: COCO run's classes are called when its annotation file cannot be read.
COCO_CLASSES = (
    "person",
    "bicycle",
    "car",
    "motorbike",
    "aeroplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "sofa",
    "pottedplant",
    "bed",
    "diningtable",
    "toilet",
    "tvmonitor",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)

_OP = "COCODataset"
_EDGE_TOLERANCE = 1.0  # pixels a box may stick out of its image before it is an error
_MAX_SIDE = 2**31 - 1


class COCORecord(NamedTuple):
    """One image and its annotations.

    Attributes:
      image_id: COCO's image ``id``.
      file_name: the image's file name, relative to ``image_dir``.
      width: the image width in pixels.
      height: the image height in pixels.
      boxes: [N, 4] float32 xyxy in pixels, clipped to the image.
      labels: [N] int32 contiguous labels.
      difficult: [N] bool, the ``iscrowd`` flags.
    """

    image_id: int
    file_name: str
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray


def _field(path: Path, entry: Any, where: str, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(entry, dict):
        raise ValueError(
            f"{_OP}: expected an object at {where} in {path}, got {type(entry).__name__}"
        )
    if key not in entry:
        raise ValueError(f"{_OP}: expected the key {where}.{key} in {path}, got none")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        kinds = (kind,) if isinstance(kind, type) else kind
        name = " or ".join(k.__name__ for k in kinds)
        raise ValueError(f"{_OP}: expected {where}.{key} of type {name} in {path}, got {value!r}")
    return value


def _list(path: Path, data: dict, key: str) -> list:
    if key not in data:
        raise ValueError(f"{_OP}: expected the key {key!r} in {path}, got none")
    if not isinstance(data[key], list):
        raise ValueError(
            f"{_OP}: expected a list at {key} in {path}, got {type(data[key]).__name__}"
        )
    return data[key]


class COCODataset(DetectionDataset):
    """COCO-format detection (see the module docstring for the conventions).

    Args:
      annotation_json: the annotation file, e.g. ``instances_val2017.json``.
      image_dir: the directory that holds the images' ``file_name`` s.
      image_size: the output H = W, or (H, W).
      max_boxes: M, the padded number of box rows; an image with more (kept)
        boxes is an error rather than a silent truncation.
      keep_crowd: keep ``iscrowd`` regions as ``difficult`` boxes, or drop them.
      read_image: decodes a file to [H, W, 3] (uint8, or float in [0, 1]);
        default `jaxheads.data.voc.read_rgb` (Pillow).

    ``example(i)`` returns ``image`` [H, W, 3] float32, ``boxes`` [M, 4]
    normalised xyxy, ``labels`` [M] int32, ``mask`` [M] bool and
    ``difficult`` [M] bool. ``records[i]`` holds the pixel-space annotation.

    Raises:
      FileNotFoundError: a missing json file, image directory or image.
      ValueError: malformed JSON, a missing key or a value of the wrong type, an
        unknown ``image_id`` or ``category_id``, a negative or out-of-image box,
        too many boxes for ``max_boxes``.
    """

    def __init__(
        self,
        annotation_json: str | os.PathLike,
        image_dir: str | os.PathLike,
        image_size: int | tuple[int, int] = 416,
        max_boxes: int = 100,
        keep_crowd: bool = True,
        *,
        read_image: ImageReader | None = None,
    ):
        self.image_size = pair(_OP, "image_size", image_size)
        check_positive_int(_OP, "max_boxes", max_boxes)
        self.max_boxes = int(max_boxes)
        self.keep_crowd = keep_crowd
        self.read_image = read_image or read_rgb
        path = Path(annotation_json)
        self.image_dir = Path(image_dir)
        if not path.is_file():
            raise FileNotFoundError(f"{_OP}: expected the annotation file {path}, got none")
        if not self.image_dir.is_dir():
            raise FileNotFoundError(
                f"{_OP}: expected the image directory {self.image_dir}, got none"
            )
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
            raise ValueError(f"{_OP}: expected well-formed JSON in {path}, got {error}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{_OP}: expected a JSON object in {path}, got {type(data).__name__}")

        categories, first = {}, {}
        for k, cat in enumerate(_list(path, data, "categories")):
            cid = _field(path, cat, f"categories[{k}]", "id", int)
            if cid in categories:
                raise ValueError(
                    f"{_OP}: expected unique category ids in {path}, got id {cid} at "
                    f"categories[{first[cid]}] and categories[{k}]"
                )
            categories[cid], first[cid] = _field(path, cat, f"categories[{k}]", "name", str), k
        self.category_ids = tuple(sorted(categories))
        self.class_names = tuple(categories[c] for c in self.category_ids)
        label_of = {c: label for label, c in enumerate(self.category_ids)}

        images, first = {}, {}
        for k, image in enumerate(_list(path, data, "images")):
            where = f"images[{k}]"
            iid = _field(path, image, where, "id", int)
            if iid in images:
                raise ValueError(
                    f"{_OP}: expected unique image ids in {path}, got id {iid} at "
                    f"images[{first[iid]}] and {where}"
                )
            file_name = _field(path, image, where, "file_name", str)
            check_relative_name(_OP, f"{where}.file_name in {path}", file_name)
            first[iid] = k
            images[iid] = (
                file_name,
                _field(path, image, where, "width", int),
                _field(path, image, where, "height", int),
            )
            if not (1 <= images[iid][1] <= _MAX_SIDE and 1 <= images[iid][2] <= _MAX_SIDE):
                raise ValueError(
                    f"{_OP}: expected a width and height in [1, {_MAX_SIDE}] at {where} in "
                    f"{path}, got {images[iid][1]}x{images[iid][2]}"
                )

        objects: dict[int, list[tuple[list[float], int, bool]]] = {iid: [] for iid in images}
        self.num_skipped = 0
        for k, ann in enumerate(_list(path, data, "annotations")):
            where = f"annotations[{k}]"
            iid = _field(path, ann, where, "image_id", int)
            cid = _field(path, ann, where, "category_id", int)
            bbox = _field(path, ann, where, "bbox", list)
            crowd = ann.get("iscrowd", 0)
            if crowd not in (0, 1) or isinstance(crowd, float):
                # pycocotools reads any truthy value as crowd, a string "0" included: refused
                # rather than read two ways.
                raise ValueError(
                    f"{_OP}: expected 0, 1, true or false at {where}.iscrowd in {path}, "
                    f"got {crowd!r}"
                )
            crowd = bool(crowd)
            if iid not in images:
                raise ValueError(
                    f"{_OP}: expected a known image id at {where}.image_id in {path}, got {iid}"
                )
            if cid not in label_of:
                raise ValueError(
                    f"{_OP}: expected a known category id at {where}.category_id in {path}, "
                    f"got {cid}"
                )
            if len(bbox) != 4 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in bbox
            ):
                raise ValueError(
                    f"{_OP}: expected 4 finite numbers at {where}.bbox in {path}, got {bbox!r}"
                )
            x, y, w, h = (float(v) for v in bbox)
            _, width, height = images[iid]
            t = _EDGE_TOLERANCE
            if w < 0 or h < 0 or x < -t or y < -t or x + w > width + t or y + h > height + t:
                raise ValueError(
                    f"{_OP}: expected a box inside the {width}x{height} image at {where}.bbox in "
                    f"{path}, got {bbox!r}"
                )
            if w == 0 or h == 0:
                self.num_skipped += 1
                continue
            if crowd and not keep_crowd:
                continue
            box = [max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)]
            objects[iid].append((box, label_of[cid], crowd))

        self.records: list[COCORecord] = []
        for iid in sorted(images):
            file_name, width, height = images[iid]
            found = objects[iid]
            if len(found) > self.max_boxes:
                raise ValueError(
                    f"{_OP}: expected at most max_boxes={self.max_boxes} boxes for image id {iid} "
                    f"in {path}, got {len(found)}"
                )
            image_path = self.image_dir / file_name
            if not is_file(image_path):
                raise FileNotFoundError(f"{_OP}: expected the image {image_path}, got none")
            self.records.append(
                COCORecord(
                    image_id=iid,
                    file_name=file_name,
                    width=width,
                    height=height,
                    boxes=np.asarray([o[0] for o in found], np.float32).reshape(-1, 4),
                    labels=np.asarray([o[1] for o in found], np.int32),
                    difficult=np.asarray([o[2] for o in found], bool),
                )
            )

    @property
    def image_ids(self) -> tuple[int, ...]:
        """COCO's image ids in example order."""
        return tuple(r.image_id for r in self.records)

    def __len__(self) -> int:
        return len(self.records)

    def example(self, i: int, canvas: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        """Example ``i`` (``canvas``: decoded, not resized; see `annotated_example`)."""
        record = self.records[self._index(i)]
        path = self.image_dir / record.file_name
        return annotated_example(
            _OP,
            path,
            self.read_image(path),
            record,
            max_boxes=self.max_boxes,
            image_size=self.image_size,
            size_from="the json says",
            canvas=canvas,
        )

    def largest_image(self) -> tuple[int, int]:
        """(H, W): the largest height and width of the annotated images."""
        return largest_image(self.records)
