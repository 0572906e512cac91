"""Built-in models by name, for ``jaxheads summary NAME`` and the experiments.

Each entry builds ``(layer, input_shape)`` from an image size and a class count.
"""

from __future__ import annotations

from collections.abc import Callable

from jaxheads._checks import fail
from jaxheads.layers.base import Layer

Builder = Callable[..., tuple[Layer, tuple]]
_REGISTRY: dict[str, tuple[Builder, str]] = {}


def register(name: str, description: str):
    """Decorator adding a builder ``(image_size=None, num_classes=None) -> (layer, shape)``."""

    def wrap(builder: Builder) -> Builder:
        _REGISTRY[name] = (builder, description)
        return builder

    return wrap


def names() -> dict[str, str]:
    """``{name: description}`` of every built-in model."""
    return {name: desc for name, (_, desc) in sorted(_REGISTRY.items())}


def build(name: str, *, image_size: int | None = None,
          num_classes: int | None = None) -> tuple[Layer, tuple]:
    """Builds a registered model: returns ``(layer, input_shape)``."""
    if name not in _REGISTRY:
        fail("zoo.build", f"one of {sorted(_REGISTRY)}", repr(name))
    return _REGISTRY[name][0](image_size=image_size, num_classes=num_classes)


# --- Detection heads (jaxheads.heads) and small detectors (jaxheads.models). ---------------
# Here ``image_size`` is the image side: a YOLOv1 head sees image/64 (448 -> 7×7×1024), the
# YOLOv2 head image/32 (416 -> 13×13×1024, plus the 26×26×512 map for the passthrough).


def _heads_grid(image_size, default: int, stride: int) -> int:
    size = default if image_size is None else image_size
    if not isinstance(size, int) or size < stride or size % stride:
        fail(
            "zoo.build", f"an image_size that is a positive multiple of {stride}", repr(image_size)
        )
    return size // stride


def _heads_yolov1(make: str, image_size, num_classes):
    from jaxheads import heads

    side = _heads_grid(image_size, 448, 64)
    head = getattr(heads, make)(side=side, num_classes=20 if num_classes is None else num_classes)
    return head.layer, (None, side, side, 1024)


@register("yolov1-fc-head", "YOLOv1 paper head on 7x7x1024: Flatten, Dense 4096, Dense 1470")
def yolov1_fc_head(image_size=None, num_classes=None):
    return _heads_yolov1("yolov1_fc", image_size, num_classes)


@register("yolov1-percell-head", "YOLOv1 head's Dense layers per cell (1x1 convs) on 7x7x1024")
def yolov1_percell_head(image_size=None, num_classes=None):
    return _heads_yolov1("yolov1_percell", image_size, num_classes)


@register("yolov1-local-head", "darknet yolov1.cfg head on 7x7x1024: local 3x3x256, Dense 1470")
def yolov1_local_head(image_size=None, num_classes=None):
    return _heads_yolov1("yolov1_local", image_size, num_classes)


@register("gap-head", "GlobalAveragePooling2D then Dense 1470 on 7x7x1024")
def gap_head(image_size=None, num_classes=None):
    return _heads_yolov1("gap", image_size, num_classes)


@register("yolov2-head", "yolov2-voc.cfg layers 23-30 on 13x13x1024 + 26x26x512 passthrough")
def yolov2_head(image_size=None, num_classes=None):
    from jaxheads import heads

    side = _heads_grid(image_size, 416, 32)
    head = heads.yolov2(num_classes=20 if num_classes is None else num_classes, passthrough=True)
    return head.layer, ((None, side, side, 1024), (None, 2 * side, 2 * side, 512))


def _heads_small(head: str, image_size, num_classes):
    from jaxheads.models import small_detector

    model = small_detector(
        head,
        image_size=96 if image_size is None else image_size,
        num_classes=3 if num_classes is None else num_classes,
    )
    return model.layer, model.input_shape


@register("small-yolov1-fc", "small CPU backbone (96x96 -> 6x6x256) + YOLOv1 FC head, 3 classes")
def small_yolov1_fc(image_size=None, num_classes=None):
    return _heads_small("yolov1-fc", image_size, num_classes)


@register("small-yolov1-percell", "small CPU backbone + per-cell Dense YOLOv1 head")
def small_yolov1_percell(image_size=None, num_classes=None):
    return _heads_small("yolov1-percell", image_size, num_classes)


@register("small-yolov1-local", "small CPU backbone + locally connected YOLOv1 head")
def small_yolov1_local(image_size=None, num_classes=None):
    return _heads_small("yolov1-local", image_size, num_classes)


@register("small-gap", "small CPU backbone + global-average-pooling head")
def small_gap(image_size=None, num_classes=None):
    return _heads_small("gap", image_size, num_classes)


@register("small-yolov2", "small CPU backbone + YOLOv2 head (5 anchors), no passthrough")
def small_yolov2(image_size=None, num_classes=None):
    return _heads_small("yolov2", image_size, num_classes)


@register("small-yolov2-passthrough", "small CPU backbone + YOLOv2 head with darknet reorg")
def small_yolov2_passthrough(image_size=None, num_classes=None):
    return _heads_small("yolov2-passthrough", image_size, num_classes)


# ---------------------------------------------------------------------------
# Darknet's YOLO cfgs (jaxheads/darknet/cfg), built by jaxheads.darknet.
# ---------------------------------------------------------------------------


def _darknet(zoo_name: str, cfg_name: str, description: str) -> None:
    def builder(image_size=None, num_classes=None):
        from jaxheads.darknet import from_cfg

        model = from_cfg(cfg_name, image_size=image_size, num_classes=num_classes)
        return model.layer, model.input_shape

    register(zoo_name, description)(builder)


_darknet("yolov1", "yolov1", "darknet yolov1.cfg: 448x448 VOC, batch norm and a [local] layer")
_darknet("yolov1-paper", "yolov1-paper", "darknet yolo.cfg of the YOLOv1 paper (448x448 VOC)")
_darknet("yolov1-tiny", "yolov1-tiny", "darknet yolov1-tiny.cfg (448x448 VOC)")
_darknet("fast-yolo", "yolov1-paper-tiny", "darknet yolo-tiny.cfg: Fast YOLO of the YOLOv1 paper")
_darknet("yolov2", "yolov2", "darknet yolov2.cfg: 608x608 COCO")
_darknet("yolov2-voc", "yolov2-voc", "darknet yolov2-voc.cfg: 416x416 VOC")
_darknet("yolov2-tiny", "yolov2-tiny", "darknet yolov2-tiny.cfg: 416x416 COCO")
_darknet("yolov2-tiny-voc", "yolov2-tiny-voc", "darknet yolov2-tiny-voc.cfg: 416x416 VOC")
