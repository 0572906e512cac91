"""Every built-in detector, backbone and head by name: the one registry.

``jaxheads summary NAME``, ``jaxheads train --model NAME``, the studies and
`jaxheads.darknet.load` (for the darknet models, from `jaxheads.darknet.MODELS`)
all resolve names here. An entry holds its description, its default image size
and the kind of head it ends in; `build` gives ``(layer, input_shape)`` of any
entry, `detector` a trainable ``(Detector, init)`` of a detector entry.

>>> entry("fast-yolo").image_size, entry("fast-yolo").head
(448, 'yolov1')
>>> sorted(names("backbone"))
['darknet19', 'darknet19_448', 'extraction', 'small-backbone', 'tiny']

Adding a model (see docs/architecture.md): write its builders (`Entry.build`,
`Entry.detector`), or name its darknet cfg (`darknet_entry`), and `register` the
entry in a registry of one's own (``dict(BUILTIN)``), passed as ``registry=``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType

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
    """

    name: str
    kind: str
    description: str
    image_size: int
    head: str | None
    build: Callable[..., tuple[Layer, tuple]]
    detector: Callable[..., tuple] | None = None
    cfg: str | None = None


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


def _small_backbone(image_size=None, num_classes=None):
    from jaxheads.models import small_backbone

    size = 96 if image_size is None else image_size
    return small_backbone().layer, (None, size, size, 3)


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
    register(
        registry,
        Entry(
            "small-backbone",
            "backbone",
            "small CPU backbone: 96x96 -> 6x6x256 (+ 12x12x128 tap)",
            96,
            None,
            _small_backbone,
        ),
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
