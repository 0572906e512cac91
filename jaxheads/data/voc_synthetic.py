"""A small VOC-format data set written from the procedural shapes, for a VOC run without VOC.

`write_synthetic_voc` draws scenes of `jaxheads.data.shapes` and writes them as a
``VOC{year}`` directory of the devkit's layout, which `jaxheads.data.voc.VOCDataset`
(and ``jaxheads train --dataset voc --data-dir OUT``) reads:

* ``JPEGImages/{id}.jpg``: the scene, JPEG quality 95;
* ``Annotations/{id}.xml``: its size and objects, each box the tight box of the
  shape's visible pixels;
* ``ImageSets/Main/{split}.txt`` for ``train``, ``val``, ``trainval`` (train then val)
  and ``test``. ``train`` comes from the shapes' ``"train"`` stream; ``val`` and
  ``test`` are disjoint runs of its ``"val"`` stream (``jaxheads train`` trains on
  ``trainval`` and evaluates on ``test``).

Classes: shape ``k`` is written under VOC's ``k``-th class name (circle as
``aeroplane``, square as ``bicycle``, ...), so the set reads with VOC's 20 classes
and the labels read back are the shapes' labels.

Coordinates: a shape whose visible pixels span columns c0..c1 and rows r0..r1
(0-based) is written as VOC's 1-based inclusive ``bndbox`` (c0 + 1, r0 + 1, c1 + 1,
r1 + 1), which `jaxheads.data.voc` reads back as (c0, r0, c1 + 1, r1 + 1): the
shapes' own box, exactly. Only the pixels change, by JPEG's loss.

Writing needs Pillow.
"""

from __future__ import annotations

import dataclasses
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from jaxheads._checks import check_positive_int, fail
from jaxheads.data.shapes import ShapesDataset
from jaxheads.data.voc import VOC_CLASSES

__all__ = ["SyntheticVOC", "synthetic_splits", "write_synthetic_voc"]


@dataclasses.dataclass(frozen=True)
class SyntheticVOC:
    """What `write_synthetic_voc` writes.

    Attributes:
      images: the number of images in all: half ``train``, a quarter each ``val`` and
        ``test`` (at least one each, so at least 3).
      image_size: the side of the square images in pixels, or (height, width).
      seed: picks the scenes (`jaxheads.data.ShapesDataset`'s seed).
      num_classes: the shapes drawn, 1..5 (the first of VOC's class names).
      max_objects: at most this many shapes per image.
      quality: the JPEG quality, 1..95.
    """

    images: int = 64
    image_size: int | tuple[int, int] = 128
    seed: int = 0
    num_classes: int = 3
    max_objects: int = 6
    quality: int = 95


def synthetic_splits(images: int) -> dict[str, int]:
    """How many of ``images`` go to ``train``, ``val`` and ``test``."""
    if not isinstance(images, (int, np.integer)) or images < 3:
        fail("write_synthetic_voc", "images >= 3 (one per split at least)", repr(images))
    val = max(1, images // 4)
    return {"train": images - 2 * val, "val": val, "test": val}


def _annotation(
    folder: str, image_id: str, width: int, height: int, boxes, labels
) -> ET.ElementTree:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    size = ET.SubElement(root, "size")
    for field, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, field).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for (x0, y0, x1, y1), label in zip(boxes.tolist(), labels.tolist(), strict=True):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = VOC_CLASSES[label]
        ET.SubElement(obj, "pose").text = "Unspecified"
        cut = x0 <= 0 or y0 <= 0 or x1 >= width or y1 >= height  # the border cuts it
        ET.SubElement(obj, "truncated").text = str(int(cut))
        ET.SubElement(obj, "difficult").text = "0"
        bndbox = ET.SubElement(obj, "bndbox")
        # Continuous 0-based pixel edges to 1-based inclusive indices (jaxheads.data.voc).
        for field, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(bndbox, field).text = str(int(round(value)))
    ET.indent(root)
    return ET.ElementTree(root)


def write_synthetic_voc(out: str | os.PathLike, spec: SyntheticVOC = SyntheticVOC()) -> dict:
    """Writes the set ``spec`` describes into the ``VOC{year}`` directory ``out``.

    Args:
      out: the directory to write (``Annotations``, ``ImageSets``, ``JPEGImages``
        are made in it); it may exist, but must not hold any of those three.
      spec: the set.

    Returns:
      ``{split: [image ids]}`` for ``train``, ``val``, ``trainval`` and ``test``.

    Raises:
      ValueError: a bad field of ``spec``, or ``out`` already holding a VOC set.
      ImportError: when Pillow is not installed.
    """
    from PIL import Image

    op = "write_synthetic_voc"
    counts = synthetic_splits(spec.images)
    check_positive_int(op, "max_objects", spec.max_objects)
    if not isinstance(spec.quality, (int, np.integer)) or not 1 <= spec.quality <= 95:
        fail(op, "quality in 1..95", repr(spec.quality))
    out = Path(out)
    folders = [out / "Annotations", out / "ImageSets" / "Main", out / "JPEGImages"]
    taken = [str(f.relative_to(out)) for f in folders if f.exists()]
    if taken:
        fail(op, f"a directory without a VOC set in it ({out})", f"{', '.join(taken)} present")
    streams = {
        split: ShapesDataset(
            counts["train"] if split == "train" else counts["val"] + counts["test"],
            image_size=spec.image_size,
            max_boxes=spec.max_objects,
            num_classes=spec.num_classes,
            seed=spec.seed,
            split=split,
            max_objects=spec.max_objects,
        )
        for split in ("train", "val")
    }
    # (split, stream, index in the stream): val and test are disjoint runs of "val".
    plan = [("train", "train", i) for i in range(counts["train"])]
    plan += [("val", "val", i) for i in range(counts["val"])]
    plan += [("test", "val", counts["val"] + i) for i in range(counts["test"])]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    ids: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for n, (split, stream, i) in enumerate(plan):
        image_id = f"{n + 1:06d}"
        scene = streams[stream].scene(i)
        height, width = scene.image.shape[:2]
        pixels = np.round(scene.image * 255).astype(np.uint8)
        Image.fromarray(pixels).save(
            out / "JPEGImages" / f"{image_id}.jpg", quality=int(spec.quality)
        )
        boxes = scene.boxes * np.array([width, height, width, height], np.float32)
        tree = _annotation(out.name, image_id, width, height, boxes, scene.labels)
        tree.write(out / "Annotations" / f"{image_id}.xml", encoding="utf-8")
        ids[split].append(image_id)
    ids["trainval"] = ids["train"] + ids["val"]
    for split, names in ids.items():
        (out / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in names))
    return ids
