"""Built-in models by name, for ``jaxheads summary NAME`` and the experiments.

Each entry builds ``(layer, input_shape)`` from an image size and a class count.
"""

from __future__ import annotations

from collections.abc import Callable

from jaxheads import layers as L
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


def _feature_map(image_size):
    side = 7 if image_size is None else image_size
    return (None, side, side, 1024)


@register("percell-dense", "Keras Dense(4096) on a 7x7x1024 map: a per-cell 1x1 conv")
def percell_dense(image_size=None, num_classes=None):
    c = 20 if num_classes is None else num_classes
    return L.serial(L.Dense(4096), L.LeakyReLU(), L.Dense(2 * 5 + c),
                    name="percell_dense"), _feature_map(image_size)


@register("flatten-dense", "Flatten then Dense(4096) on a 7x7x1024 map: YOLOv1's FC head")
def flatten_dense(image_size=None, num_classes=None):
    c = 20 if num_classes is None else num_classes
    shape = _feature_map(image_size)
    s = shape[1]
    return L.serial(L.Flatten(), L.Dense(4096), L.LeakyReLU(), L.Dense(s * s * (2 * 5 + c)),
                    L.Reshape((s, s, 2 * 5 + c)), name="flatten_dense"), shape


@register("gap-dense", "GlobalAveragePooling2D then Dense on a 7x7x1024 map")
def gap_dense(image_size=None, num_classes=None):
    c = 20 if num_classes is None else num_classes
    shape = _feature_map(image_size)
    s = shape[1]
    return L.serial(L.GlobalAveragePooling2D(), L.Dense(s * s * (2 * 5 + c)),
                    L.Reshape((s, s, 2 * 5 + c)), name="gap_dense"), shape
