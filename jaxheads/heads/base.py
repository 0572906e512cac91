"""The `Head` record every detection head returns, and the input checks heads share.

A head is a `jaxheads.layers.Layer` from the backbone's feature map(s) to the
raw prediction, plus the decoder of that prediction (`jaxheads.decode`) and
the configuration the matching loss in `jaxheads.losses` needs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import jax
import numpy as np

from jaxheads._checks import check_positive_int, fail
from jaxheads.decode import decode_yolov1
from jaxheads.heads.family import YOLOV1, HeadFamily
from jaxheads.layers.base import Layer, is_multi, stateless


class Head(NamedTuple):
    """A detection head: its layer, the decoder of its output, and what its loss needs.

    The one head description of the library: the heads of `jaxheads.heads` return
    it, and a darknet cfg's closing ``[region]`` or ``[detection]`` section is read
    into it (`jaxheads.darknet.DarknetModel.head`).

    Attributes:
      layer: the head as one `Layer`. Input: the backbone's map ``[B, H, W, C]``,
        or ``[coarse [B, H, W, C], fine [B, 2H, 2W, C']]`` when ``passthrough``
        (for a darknet cfg: the images, the layer being the whole network).
        Output: the raw prediction, ``[B, S, S, nb·5 + C]`` (`jaxheads.heads.YOLOV1`) or
        ``[B, H, W, A·(5 + C)]`` (`jaxheads.heads.YOLOV2`), laid out as in `jaxheads.decode`.
      decode: ``raw -> (boxes [B, N, 4], scores [B, N, C])``, boxes xyxy
        normalised to the image, ``N = S·S·nb`` or ``H·W·A``.
      family: the `jaxheads.heads.HeadFamily`: its loss and darknet section;
        `jaxheads.heads.YOLOV1` (darknet's ``[detection]``; `jaxheads.losses.yolov1_loss`) or
        `jaxheads.heads.YOLOV2` (darknet's ``[region]``; `jaxheads.losses.region_loss`).
      num_boxes: boxes per cell ``nb`` (YOLOv1) or anchors ``A`` (YOLOv2): darknet's ``num``.
      num_classes: ``C``: darknet's ``classes``.
      side: the grid ``S`` a YOLOv1 head is built for; ``None`` for YOLOv2,
        whose grid follows its input.
      anchors: YOLOv2 priors ``((pw, ph), ...)`` in grid cells; ``None`` for YOLOv1.
      sqrt: YOLOv1 predicts the square roots of ``w, h`` (the paper, darknet ``sqrt=1``).
      passthrough: the layer takes ``[coarse, fine]`` rather than one map.
      softmax: the class scores go through a softmax (darknet ``softmax=1``);
        YOLOv2's decoder always applies one.
      coords: numbers per box before its objectness (darknet ``coords``); the
        decoders and losses here take 4.
      options: for a head read from a darknet cfg, every option of its section as
        written (``thresh``, ``object_scale``, ...); empty otherwise.
    """

    layer: Layer
    decode: Callable[[jax.Array], tuple[jax.Array, jax.Array]]
    family: HeadFamily
    num_boxes: int
    num_classes: int
    side: int | None = None
    anchors: tuple[tuple[float, float], ...] | None = None
    sqrt: bool = True
    passthrough: bool = False
    softmax: bool = False
    coords: int = 4
    options: Mapping[str, str] = MappingProxyType({})

    @property
    def kind(self) -> str:
        """The family's name: ``"yolov1"``, ``"yolov2"``, ..."""
        return self.family.name

    def loss_kwargs(self) -> dict:
        """The head's configuration as keyword arguments of its family's loss.

        ``head.family.loss(pred, gt_boxes, gt_labels, gt_mask, seen=seen,
        **head.loss_kwargs())``.
        """
        return self.family.loss_kwargs(self)


def shapes_of(x):
    """The shape of an array, or the list of shapes of a list of arrays."""
    if isinstance(x, (list, tuple)):
        return [tuple(np.shape(a)) for a in x]
    return tuple(np.shape(x))


def guarded(layer: Layer, check: Callable[[object], None]) -> Layer:
    """``layer`` with ``check(input_shape)`` run first in both ``init`` and ``apply``.

    The check reads static shapes only, so it costs nothing under `jit`. The
    nodes are kept, so summaries still list the layers inside.
    """

    def init(key, input_shape):
        check(input_shape)
        return layer.init(key, input_shape)

    def apply(params, state, x, *, train=False, key=None, axis_name=None):
        check(shapes_of(x))
        return layer.apply(params, state, x, train=train, key=key, axis_name=axis_name)

    return layer._replace(init=init, apply=apply)


def select(index: int, *, name: str) -> Layer:
    """A layer returning element ``index`` of a list input (one map of ``[coarse, fine]``)."""

    def fn(p, xs, ctx):
        if not isinstance(xs, (list, tuple)) or len(xs) <= index:
            fail(name, f"a list of at least {index + 1} arrays", type(xs).__name__)
        return xs[index]

    return stateless("Select", fn, name=name)


def check_feature_map(op: str, shape, side: int | None = None) -> None:
    """Checks one feature-map shape ``[B, H, W, C]`` (``H == W == side`` when given)."""
    want = "[B, H, W, C]" if side is None else f"[B, {side}, {side}, C]"
    if is_multi(shape):
        fail(op, f"one feature map {want}", f"a list of shapes {list(shape)}")
    if len(shape) != 4:
        fail(op, f"a feature map {want} (rank 4)", f"shape {tuple(shape)} (rank {len(shape)})")
    if side is not None and tuple(shape[1:3]) != (side, side):
        fail(op, f"a feature map {want} for side={side}", f"shape {tuple(shape)}")


def check_yolov1_sizes(op: str, side, num_boxes, num_classes, **widths) -> int:
    """Checks a YOLOv1 head's sizes; returns the channels per cell ``nb·5 + C``."""
    check_positive_int(op, "side", side)
    check_positive_int(op, "num_boxes", num_boxes)
    check_positive_int(op, "num_classes", num_classes)
    for name, value in widths.items():
        check_positive_int(op, name, value)
    return num_boxes * 5 + num_classes


def check_rate(op: str, rate) -> float:
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate < 1:
        fail(op, "dropout (the drop probability) in [0, 1)", repr(rate))
    return float(rate)


def normalize_anchors(op: str, anchors: Sequence) -> tuple[tuple[float, float], ...]:
    """Anchors ``[A, 2]`` (widths, heights in grid cells) as a hashable tuple of pairs."""
    try:
        a = np.asarray(anchors, dtype=np.float64)
    except (TypeError, ValueError):
        fail(op, "anchors of shape (A, 2)", repr(anchors))
    if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] < 1:
        fail(op, "anchors of shape (A, 2) with A >= 1", f"shape {a.shape}")
    if not np.all(np.isfinite(a)) or not np.all(a > 0):
        fail(op, "anchors with positive finite widths and heights", a.tolist())
    return tuple((float(w), float(h)) for w, h in a)


def yolov1_head(
    op: str, layer: Layer, side: int, num_boxes: int, num_classes: int, sqrt: bool
) -> Head:
    """Wraps a YOLOv1 head layer: input check for an ``S × S`` map, decoder, loss config."""
    decode = functools.partial(
        decode_yolov1, num_boxes=num_boxes, num_classes=num_classes, sqrt=sqrt
    )
    layer = guarded(layer, lambda shape: check_feature_map(op, shape, side))
    return Head(layer, decode, YOLOV1, num_boxes, num_classes, side=side, sqrt=bool(sqrt))
