"""Every built-in detector, backbone, head and data set by name: the one registry.

``jaxheads summary NAME``, ``jaxheads train --model NAME --dataset NAME``,
``jaxheads pretrain --backbone NAME``, the studies and `jaxheads.darknet.load` (for
the darknet models, from `jaxheads.darknet.MODELS`) all resolve names here. An
entry holds its description, its default image size and the kind of head it ends
in; `build` gives ``(layer, input_shape)`` of any entry, `detector` a trainable
``(Detector, init)`` of a detector entry, `pretrain_entry` the backbone
entries that ``jaxheads pretrain`` trains. A `Dataset` entry makes a data set's splits
(`dataset`, `dataset_names`).

>>> entry("fast-yolo").image_size, entry("fast-yolo").head
(448, 'yolov1')
>>> sorted(names("backbone"))  # doctest: +NORMALIZE_WHITESPACE
['darknet19', 'darknet19_448', 'extraction', 'small', 'small-extraction',
 'small-extraction-nobn', 'small-nobn', 'tiny']
>>> list(pretrainable())
['small', 'small-extraction', 'small-extraction-nobn', 'small-nobn']
>>> dataset_names()
['shapes', 'digits', 'shapes-device', 'digits-device', 'voc', 'coco']

Adding a model (see docs/architecture.md): write its builders (`Entry.build`,
`Entry.detector`), or name its darknet cfg (`darknet_entry`), and `register` the
entry in a registry of one's own (``dict(BUILTIN)``), passed as ``registry=``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import jax

from jaxheads._checks import fail
from jaxheads.darknet.detector import unknown_name
from jaxheads.layers.base import Layer

#: What an entry can be: a whole detector, a backbone or a head.
KINDS = ("detector", "backbone", "head")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registered model.

    Attributes:
      name: its name.
      kind: ``"detector"`` (image to raw prediction, trainable), ``"backbone"`` or
        ``"head"`` (a feature map to a raw prediction).
      description: one line.
      image_size: the image side it is built for when none is given.
      head: the kind of `jaxheads.heads.Head` it ends in (``"yolov1"``, ``"yolov2"``;
        None for a backbone).
      build: ``(image_size, num_classes) -> (layer, input_shape)``: the network as
        it is (what ``jaxheads summary`` shows). None arguments mean the defaults.
      detector: a detector's ``(image_size, num_classes) -> (Detector, init)``, with
        ``init(key) -> (params, state)``: what training builds; None for the others.
      cfg: the darknet cfg it is built from (a packaged cfg's name or a path; see
        `darknet_entry`), None for a model built otherwise. ``--init`` reads darknet
        ``.weights`` files and ``jaxheads export`` writes them for such models only.
      pretrain: a backbone's ``() -> jaxheads.models.Backbone``: what ``jaxheads
        pretrain --backbone NAME`` puts a classifier on (`jaxheads.train.pretrain`);
        None for an entry that is not pre-trained here.
    """

    name: str
    kind: str
    description: str
    image_size: int
    head: str | None
    build: Callable[..., tuple[Layer, tuple]]
    detector: Callable[..., tuple] | None = None
    cfg: str | None = None
    pretrain: Callable[[], Any] | None = None


def register(registry: dict[str, Entry], entry: Entry) -> Entry:
    """Adds ``entry`` to ``registry`` (a name may be registered once)."""
    if entry.kind not in KINDS:
        fail("zoo.register", f"kind in {list(KINDS)}", repr(entry.kind))
    if (entry.kind == "detector") != (entry.detector is not None):
        fail(
            "zoo.register",
            "a detector builder for a detector entry (and only for one)",
            f"kind={entry.kind!r}, detector={entry.detector!r}",
        )
    if entry.pretrain is not None and entry.kind != "backbone":
        fail("zoo.register", "a pre-training recipe on a backbone entry only", repr(entry.kind))
    if entry.name in registry:
        fail("zoo.register", "a name not yet registered", repr(entry.name))
    registry[entry.name] = entry
    return entry


# --- Detection heads (jaxheads.heads). ``image_size`` is the image side: a YOLOv1 head sees
# image/64 (448 -> 7×7×1024), the YOLOv2 head image/32 (416 -> 13×13×1024, plus the
# 26×26×512 map for the passthrough).


def _heads_grid(image_size, default: int, stride: int) -> int:
    size = default if image_size is None else image_size
    if not isinstance(size, int) or size < stride or size % stride:
        fail(
            "zoo.build", f"an image_size that is a positive multiple of {stride}", repr(image_size)
        )
    return size // stride


def _yolov1_head(make: str):
    def build(image_size=None, num_classes=None):
        from jaxheads import heads

        side = _heads_grid(image_size, 448, 64)
        c = 20 if num_classes is None else num_classes
        return getattr(heads, make)(side=side, num_classes=c).layer, (None, side, side, 1024)

    return build


def _yolov2_head(image_size=None, num_classes=None):
    from jaxheads import heads

    side = _heads_grid(image_size, 416, 32)
    head = heads.yolov2(num_classes=20 if num_classes is None else num_classes, passthrough=True)
    return head.layer, ((None, side, side, 1024), (None, 2 * side, 2 * side, 512))


def _small(head: str):
    def detector(image_size=None, num_classes=None):
        from jaxheads.models import small_detector

        det = small_detector(
            head,
            image_size=96 if image_size is None else image_size,
            num_classes=3 if num_classes is None else num_classes,
        )
        shape = det.input_shape
        return det, jax.jit(lambda key: det.layer.init(key, shape)[1:])

    def build(image_size=None, num_classes=None):
        det, _ = detector(image_size, num_classes)
        return det.layer, det.input_shape

    return build, detector


def _small_backbone(extraction: bool, batch_norm: bool) -> tuple[Callable, Callable]:
    """``(build, pretrain)`` of a small backbone: Darknet-19-like (`small_backbone`) or
    YOLOv1-like (`small_extraction_backbone`), with or without batch norm."""

    def pretrain():
        from jaxheads.models import small_backbone, small_extraction_backbone

        make = small_extraction_backbone if extraction else small_backbone
        return make(batch_norm=batch_norm)

    def build(image_size=None, num_classes=None):
        size = 96 if image_size is None else image_size
        return pretrain().layer, (None, size, size, 3)

    return build, pretrain


def darknet_entry(
    name: str,
    cfg: str,
    *,
    kind: str = "detector",
    description: str,
    image_size: int,
    head: str | None = None,
) -> Entry:
    """An entry built from a darknet cfg: ``cfg`` is a packaged cfg's name or a ``.cfg`` path.

    ``image_size`` and ``num_classes`` given to its builders override the cfg's
    (`jaxheads.darknet.build_model`). A detector's cfg ends in ``[region]`` or
    ``[detection]`` (`jaxheads.darknet.as_detector`); ``head`` is then ``"yolov2"`` or
    ``"yolov1"``.
    """

    def build(image_size=None, num_classes=None):
        from jaxheads.darknet import from_cfg

        model = from_cfg(cfg, image_size=image_size, num_classes=num_classes)
        return model.layer, model.input_shape

    def detector(image_size=None, num_classes=None):
        from jaxheads.darknet import as_detector, from_cfg

        return as_detector(from_cfg(cfg, image_size=image_size, num_classes=num_classes))

    return Entry(
        name,
        kind,
        description,
        image_size,
        head,
        build,
        detector if kind == "detector" else None,
        cfg=cfg,
    )


def _builtin() -> dict[str, Entry]:
    from jaxheads.darknet.detector import MODELS

    registry: dict[str, Entry] = {}
    heads = [
        (
            "yolov1-fc-head",
            "YOLOv1 paper head on 7x7x1024: Flatten, Dense 4096, Dense 1470",
            "yolov1_fc",
        ),
        (
            "yolov1-percell-head",
            "YOLOv1 head's Dense layers per cell (1x1 convs) on 7x7x1024",
            "yolov1_percell",
        ),
        (
            "yolov1-local-head",
            "darknet yolov1.cfg head on 7x7x1024: local 3x3x256, Dense 1470",
            "yolov1_local",
        ),
        ("gap-head", "GlobalAveragePooling2D then Dense 1470 on 7x7x1024", "gap"),
    ]
    for name, description, make in heads:
        register(registry, Entry(name, "head", description, 448, "yolov1", _yolov1_head(make)))
    register(
        registry,
        Entry(
            "yolov2-head",
            "head",
            "yolov2-voc.cfg layers 23-30 on 13x13x1024 + 26x26x512 passthrough",
            416,
            "yolov2",
            _yolov2_head,
        ),
    )
    # The small detectors' backbones, each with its classification pre-training
    # (`jaxheads pretrain --backbone NAME`); the small-* detectors use "small".
    backbones = [
        ("small", False, True, "small CPU backbone: 96x96 -> 6x6x256 (+ 12x12x128 tap)"),
        ("small-nobn", False, False, "small CPU backbone without batch norm"),
        ("small-extraction", True, True, "YOLOv1's extraction backbone in miniature"),
        ("small-extraction-nobn", True, False, "small extraction backbone without batch norm"),
    ]
    for name, extraction, batch_norm, description in backbones:
        build, pretrain = _small_backbone(extraction, batch_norm)
        register(
            registry,
            Entry(name, "backbone", description, 96, None, build, pretrain=pretrain),
        )
    small = [
        ("yolov1-fc", "small CPU backbone (96x96 -> 6x6x256) + YOLOv1 FC head, 3 classes"),
        ("yolov1-percell", "small CPU backbone + per-cell Dense YOLOv1 head"),
        ("yolov1-local", "small CPU backbone + locally connected YOLOv1 head"),
        ("gap", "small CPU backbone + global-average-pooling head"),
        ("yolov2", "small CPU backbone + YOLOv2 head (5 anchors), no passthrough"),
        ("yolov2-passthrough", "small CPU backbone + YOLOv2 head with darknet reorg"),
    ]
    for head, description in small:
        kind = "yolov2" if head.startswith("yolov2") else "yolov1"
        register(registry, Entry(f"small-{head}", "detector", description, 96, kind, *_small(head)))
    for name, model in MODELS.items():
        register(
            registry,
            darknet_entry(
                name,
                model.cfg,
                description=model.description,
                image_size=model.image_size,
                head=model.head,
            ),
        )
    # Darknet's ImageNet classifiers, whose first layers are the detectors' backbones
    # (`jaxheads darknet partial darknet19_448 ... 23` gives YOLOv2's).
    classifiers = [
        ("darknet19", 224, "darknet darknet19.cfg: Darknet-19 ImageNet classifier, 224x224"),
        (
            "darknet19_448",
            448,
            "darknet darknet19_448.cfg: Darknet-19 at 448x448 (YOLOv2's "
            "high-resolution classifier)",
        ),
        ("extraction", 224, "darknet extraction.cfg: the YOLOv1 paper's ImageNet backbone"),
        ("tiny", 224, "darknet tiny.cfg: the small ImageNet classifier"),
    ]
    for name, size, description in classifiers:
        register(
            registry,
            darknet_entry(name, name, kind="backbone", description=description, image_size=size),
        )
    return registry


#: The built-in registry, read-only: a registry of one's own is ``dict(BUILTIN)`` with
#: entries added by `register`.
BUILTIN = MappingProxyType(_builtin())


def names(kind: str | None = None, registry: Mapping[str, Entry] | None = None) -> dict[str, str]:
    """``{name: description}`` of every entry (of one ``kind`` when given), sorted."""
    registry = BUILTIN if registry is None else registry
    return {n: e.description for n, e in sorted(registry.items()) if kind in (None, e.kind)}


def entry(
    name: str,
    *,
    kind: str | None = None,
    registry: Mapping[str, Entry] | None = None,
    op: str = "zoo",
) -> Entry:
    """The entry called ``name`` (of ``kind`` when given).

    Raises:
      ValueError: an unknown name: the known ones listed, the closest suggested.
    """
    registry = BUILTIN if registry is None else registry
    known = names(kind, registry)
    if name not in known:
        unknown_name(op, "a model" if kind in (None, "detector") else f"a {kind}", name, known)
    return registry[name]


def darknet_names(
    kind: str | None = "detector", registry: Mapping[str, Entry] | None = None
) -> list[str]:
    """The entries (of ``kind``; all for None) built from a darknet cfg, sorted.

    >>> darknet_names()[:3]
    ['fast-yolo', 'yolov1', 'yolov1-paper']
    """
    registry = BUILTIN if registry is None else registry
    return [n for n, e in sorted(registry.items()) if e.cfg and kind in (None, e.kind)]


def build(
    name: str,
    *,
    image_size: int | None = None,
    num_classes: int | None = None,
    registry: Mapping[str, Entry] | None = None,
) -> tuple[Layer, tuple]:
    """Builds any entry: returns ``(layer, input_shape)``."""
    found = entry(name, registry=registry, op="zoo.build")
    return found.build(image_size=image_size, num_classes=num_classes)


def detector(
    name: str,
    *,
    image_size: int | None = None,
    num_classes: int = 3,
    registry: Mapping[str, Entry] | None = None,
    op: str = "zoo.detector",
):
    """A trainable detector by name, and its ``init(key) -> (params, state)``.

    Args:
      name: a ``"detector"`` entry.
      image_size: the square input side (the entry's default when None).
      num_classes: classes of the data it will train on.
      registry: where to look (`BUILTIN` by default).
      op: the name errors are raised under.
    """
    found = entry(name, kind="detector", registry=registry, op=op)
    return found.detector(image_size=image_size, num_classes=num_classes)


def pretrainable(registry: Mapping[str, Entry] | None = None) -> dict[str, str]:
    """``{name: description}`` of the backbones with a pre-training recipe, sorted."""
    registry = BUILTIN if registry is None else registry
    return {n: e.description for n, e in sorted(registry.items()) if e.pretrain is not None}


def pretrain_entry(
    name: str, *, registry: Mapping[str, Entry] | None = None, op: str = "zoo.backbone"
) -> Entry:
    """The backbone entry ``name`` with its pre-training recipe (nothing is built): its
    ``pretrain()`` is the `jaxheads.models.Backbone` ``jaxheads pretrain --backbone name``
    trains.

    Raises:
      ValueError: a name with no pre-training recipe: those that have one listed, the
        closest suggested.
    """
    registry = BUILTIN if registry is None else registry
    known = pretrainable(registry)
    if name not in known:
        unknown_name(op, "a backbone", name, known)
    return registry[name]


# --- Data sets.


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One registered detection data set.

    Attributes:
      name: its name (``--dataset NAME``).
      description: one line.
      make: ``(split, *, image_size, num_examples, num_classes, seed, data_dir, annotations,
        max_boxes) -> data set`` of ``split`` (``"train"`` or ``"val"``): a class with
        ``__len__``, ``example(i)``, ``num_classes``, ``class_names`` and ``image_size``
        (`jaxheads.data.Batches` batches it). None arguments mean its defaults.
      class_names: ``(*, image_size, annotations) -> names``: what the classes of a run
        trained on it are called.
      embedded: made in memory, no files needed (what a study trains on).
      on_device: drawn on the accelerator (`jaxheads.data.DeviceDataset`): training
        draws each batch there and the host only picks indices.
    """

    name: str
    description: str
    make: Callable[..., Any]
    class_names: Callable[..., tuple[str, ...]]
    embedded: bool
    on_device: bool = False


def _shapes(split, *, image_size, num_examples, num_classes, seed, max_boxes, **_):
    from jaxheads.data import ShapesDataset

    return ShapesDataset(
        num_examples,
        image_size=image_size,
        max_boxes=max_boxes or 8,
        num_classes=num_classes or 3,
        seed=seed,
        split=split,
    )


def _digits(split, *, image_size, num_examples, seed, max_boxes, **_):
    from jaxheads.data import DigitsDataset

    return DigitsDataset(
        num_examples, image_size=image_size, max_boxes=max_boxes or 8, seed=seed, split=split
    )


def _device(spec_of):
    """``make`` of a data set drawn on the device; ``spec_of(split, size, boxes,
    num_classes)`` gives its scene settings."""

    def make(split, *, image_size, num_examples, num_classes, seed, max_boxes, **_):
        from jaxheads.data import DeviceDataset

        size = (int(image_size), int(image_size))
        spec = spec_of(split, size, max_boxes or 8, num_classes)
        return DeviceDataset(spec, num_examples, seed=seed)

    return make


def _shapes_spec(split, size, boxes, num_classes):
    from jaxheads.data import ShapesSpec

    return ShapesSpec(
        image_size=size,
        max_boxes=boxes,
        num_classes=num_classes or 3,
        max_objects=min(boxes, 6),
        split=split,
    )


def _digits_spec(split, size, boxes, num_classes):
    from jaxheads.data import DigitsSpec

    return DigitsSpec(image_size=size, max_boxes=boxes, max_objects=min(boxes, 5), split=split)


def _voc(split, *, image_size, data_dir, max_boxes, **_):
    from jaxheads.data import VOCDataset

    if data_dir is None:
        fail("make_dataset", "--data-dir pointing at a VOC directory for dataset 'voc'", None)
    voc_split = "trainval" if split == "train" else "test"
    return VOCDataset(data_dir, split=voc_split, image_size=image_size, max_boxes=max_boxes or 64)


def _coco(split, *, image_size, data_dir, annotations, max_boxes, **_):
    from jaxheads.data import COCODataset

    if data_dir is None or annotations is None:
        fail(
            "make_dataset",
            "--data-dir (images) and --annotations (json) for 'coco'",
            f"data_dir={data_dir!r}, annotations={annotations!r}",
        )
    return COCODataset(annotations, data_dir, image_size=image_size, max_boxes=max_boxes or 100)


def _embedded_names(make):
    def class_names(*, image_size, annotations=None):
        none = dict.fromkeys(("num_classes", "max_boxes"))
        return tuple(make("val", image_size=image_size, num_examples=1, seed=0, **none).class_names)

    return class_names


def _voc_names(*, image_size, annotations=None):
    from jaxheads.data.voc import VOC_CLASSES

    return VOC_CLASSES


def _coco_names(*, image_size, annotations=None):
    """The annotation file's categories in id order; COCO's 80 when it cannot be read."""
    import json

    from jaxheads.data.coco import COCO_CLASSES

    try:
        with open(annotations) as f:
            categories = json.load(f)["categories"]
        by_id = {int(c["id"]): str(c["name"]) for c in categories}
        return tuple(by_id[k] for k in sorted(by_id))
    except (OSError, TypeError, KeyError, ValueError):  # json.JSONDecodeError is a ValueError
        return COCO_CLASSES


def _builtin_datasets() -> dict[str, Dataset]:
    rows = [
        ("shapes", "embedded: circles, squares, triangles (3 classes)", _shapes, None, True),
        ("digits", "embedded: handwritten digits (10 classes)", _digits, None, True),
        (
            "shapes-device",
            "the shapes scenes drawn on the accelerator",
            _device(_shapes_spec),
            None,
            True,
        ),
        (
            "digits-device",
            "the digits scenes drawn on the accelerator",
            _device(_digits_spec),
            None,
            True,
        ),
        ("voc", "PASCAL VOC on disk (--data-dir)", _voc, _voc_names, False),
        (
            "coco",
            "COCO-format json (--annotations) and images (--data-dir)",
            _coco,
            _coco_names,
            False,
        ),
    ]
    return {
        name: Dataset(
            name,
            description,
            make,
            names or _embedded_names(make),
            embedded,
            on_device=name.endswith("-device"),
        )
        for name, description, make, names, embedded in rows
    }


#: The built-in data sets, read-only, in the order ``--help`` lists them.
BUILTIN_DATASETS = MappingProxyType(_builtin_datasets())


def dataset_names(
    *, embedded: bool | None = None, registry: Mapping[str, Dataset] | None = None
) -> list[str]:
    """The data sets' names (only the ``embedded`` ones, or only those on disk, when
    given), in the order registered."""
    registry = BUILTIN_DATASETS if registry is None else registry
    return [n for n, d in registry.items() if embedded in (None, d.embedded)]


def dataset(
    name: str,
    *,
    embedded: bool | None = None,
    registry: Mapping[str, Dataset] | None = None,
    op: str = "zoo.dataset",
) -> Dataset:
    """The data set called ``name`` (an ``embedded`` one, or one on disk, when given).

    Raises:
      ValueError: an unknown name: the known ones listed, the closest suggested.
    """
    registry = BUILTIN_DATASETS if registry is None else registry
    known = dataset_names(embedded=embedded, registry=registry)
    if name not in known:
        what = {None: "a dataset", True: "an embedded dataset", False: "a dataset on disk"}
        unknown_name(op, what[embedded], name, known)
    return registry[name]
