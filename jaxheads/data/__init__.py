"""Detection data: synthetic and real data sets, augmentation and the input pipeline.

Every data set returns examples in one format (dicts of numpy arrays: ``image``
[H, W, 3] float32 in [0, 1], ``boxes`` [M, 4] normalised xyxy, ``labels`` [M]
int32, ``mask`` [M] bool, optionally ``difficult`` [M] bool; see
`jaxheads.data.pipeline`), is random access (``example(i)`` depends only on
its arguments and ``i``) and has ``class_names``, ``num_classes``, ``len()``
and ``batches(batch_size, seed=...)``.

* `ShapesDataset` — procedural shapes on cluttered backgrounds (`jaxheads.data.shapes`).
* `DigitsDataset` — scikit-learn's handwritten digits on canvases (`jaxheads.data.digits`).
* `VOCDataset`, `COCODataset` — PASCAL VOC and COCO-format files on disk.
* `SyntheticVOC`, `write_synthetic_voc` — the shapes written as a VOC directory
  (`jaxheads.data.voc_synthetic`).
* `jaxheads.data.augment` — geometry and colour that keep boxes right; the
  default training mix is the function ``augment.augment`` (the package
  attribute ``augment`` stays the module, never shadowed by the function).
* `DeviceDataset`, `ShapesSpec`, `DigitsSpec`, `DeviceAugment` — the shapes and
  digits drawn and augmented on the accelerator, a batch a jitted program
  (`jaxheads.data.device_pipeline`).
* `Batches`, `shard_batch`, `per_device` — a resumable, prefetching batch
  iterator and device placement (`jaxheads.data.pipeline`).
"""

from jaxheads.data import augment
from jaxheads.data.augment import (
    flip_horizontal,
    hsv_jitter,
    random_crop,
    random_flip,
    random_scale_translate,
    resize,
    scale_translate,
)
from jaxheads.data.coco import COCODataset
from jaxheads.data.device_augment import DeviceAugment
from jaxheads.data.device_digits import DigitsSpec
from jaxheads.data.device_pipeline import (
    DeviceBatches,
    DeviceDataset,
    DeviceScene,
    draw_batch,
    draw_example,
)
from jaxheads.data.device_shapes import ShapesSpec
from jaxheads.data.digits import DIGIT_NAMES, DigitsDataset
from jaxheads.data.pipeline import (
    Batches,
    DetectionDataset,
    pad_targets,
    per_device,
    shard_batch,
    stack_examples,
)
from jaxheads.data.shapes import SHAPE_NAMES, ShapesDataset
from jaxheads.data.voc import VOC_CLASSES, VOCDataset, read_rgb
from jaxheads.data.voc_synthetic import SyntheticVOC, write_synthetic_voc

__all__ = [
    "COCODataset",
    "DIGIT_NAMES",
    "SHAPE_NAMES",
    "VOC_CLASSES",
    "Batches",
    "DetectionDataset",
    "DeviceAugment",
    "DeviceBatches",
    "DeviceDataset",
    "DeviceScene",
    "DigitsSpec",
    "DigitsDataset",
    "ShapesDataset",
    "ShapesSpec",
    "SyntheticVOC",
    "VOCDataset",
    "augment",
    "draw_batch",
    "draw_example",
    "flip_horizontal",
    "hsv_jitter",
    "pad_targets",
    "per_device",
    "random_crop",
    "random_flip",
    "random_scale_translate",
    "read_rgb",
    "resize",
    "scale_translate",
    "shard_batch",
    "stack_examples",
    "write_synthetic_voc",
]
