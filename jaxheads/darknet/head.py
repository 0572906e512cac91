"""A cfg's closing ``[region]`` / ``[detection]`` section as a `jaxheads.heads.Head`.

``[region]`` is a YOLOv2 head on the network as it is. ``[detection]`` reads its
input as darknet's flat NCHW memory; `detection_cells` is the one place that turns
it into the per-cell layout of `jaxheads.losses.yolov1_loss`, and the head's layer
ends in a ``cells`` node doing so, so that training and decoding see that layout.
"""

from __future__ import annotations

import functools
import math
from types import MappingProxyType

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads import layers as L
from jaxheads._checks import fail
from jaxheads.darknet.cfg import Section
from jaxheads.darknet.sections import check_positive
from jaxheads.decode import decode_yolov1, decode_yolov2
from jaxheads.heads import YOLOV1, YOLOV2, Head
from jaxheads.layers.base import Layer
from jaxheads.losses import yolov1_from_darknet_layout

#: The kind of `Head` each closing section describes.
KINDS = {"region": "yolov2", "detection": "yolov1"}


def _region_sizes(s: Section) -> tuple[int, int, int]:
    return s.get_int("coords", 4), s.get_int("classes", 20), s.get_int("num", 1)


def _detection_sizes(s: Section) -> tuple[int, int, int, int]:
    coords, classes = s.get_int("coords", 1), s.get_int("classes", 1)
    return coords, classes, s.get_int("num", 1), s.get_int("side", 7)


def check_head(s: Section, shape) -> None:
    """Checks a region/detection section and its input shape per example, as darknet does."""
    if s.type == "region":
        coords, classes, num = _region_sizes(s)
        check_positive(s, classes=classes, num=num)
        # The input's channels bound num before anything of num's size is made.
        want = num * (coords + 1 + classes)
        if len(shape) != 3 or shape[2] != want:
            fail(
                "darknet cfg",
                f"an input map with num*(coords+1+classes) = {want} channels for {s.where}",
                f"input {shape}",
            )
        values = s.get_list("anchors", float, (0.5,) * (2 * num))
        if len(values) != 2 * num:
            fail("darknet cfg", f"2*num = {2 * num} anchor values in {s.where}", len(values))
        return
    coords, classes, num, side = _detection_sizes(s)
    check_positive(s, classes=classes, num=num, side=side)
    if coords < 0:
        fail("darknet cfg", f"coords >= 0 in {s.where}", coords)
    want = side * side * ((1 + coords) * num + classes)
    if math.prod(shape) != want:
        fail(
            "darknet cfg",
            f"an input of side*side*((1+coords)*num+classes) = {want} values for {s.where}",
            f"input {shape} ({math.prod(shape)} values)",
        )


def _cells(raw: jax.Array, side: int, num_boxes: int, num_classes: int) -> jax.Array:
    if raw.ndim == 4:
        nchw = jnp.transpose(raw, (0, 3, 1, 2))
        raw = jnp.reshape(nchw, (raw.shape[0], math.prod(raw.shape[1:])))
    return yolov1_from_darknet_layout(raw, side, num_boxes, num_classes)


def detection_cells(raw: jax.Array, head: Head) -> jax.Array:
    """A ``[detection]`` section's input as ``[B, S, S, nb·5 + C]`` cells.

    Args:
      raw: the last layer's output, ``[B, S·S·(C + 5·nb)]`` from a ``[connected]``
        layer, or ``[B, h, w, c]`` from a map, which darknet reads as its NCHW memory.
      head: the section's `Head` (``side``, ``num_boxes``, ``num_classes``).
    """
    return _cells(raw, head.side, head.num_boxes, head.num_classes)


def _no_decoder(section: str, coords: int):
    def decode(raw):
        fail("Head.decode", f"coords=4 in the [{section}] section", coords)

    return decode


def section_head(s: Section, network: Layer) -> Head:
    """The `Head` of a checked (`check_head`) region/detection section ending ``network``.

    Anchors are read as darknet reads them, in float32. A head with ``coords``
    other than 4 is described, but its decoder refuses to run.
    """
    common = dict(
        sqrt=bool(s.get_int("sqrt", 0)),
        softmax=bool(s.get_int("softmax", 0)),
        options=MappingProxyType(dict(s.options)),
    )
    if s.type == "region":
        coords, classes, num = _region_sizes(s)
        values = s.get_list("anchors", float, (0.5,) * (2 * num))
        anchors = np.asarray(values, np.float32).reshape(num, 2)
        decode = functools.partial(decode_yolov2, anchors=anchors, num_classes=classes)
        return Head(
            network,
            decode if coords == 4 else _no_decoder(s.type, coords),
            YOLOV2,
            num,
            classes,
            anchors=tuple((float(w), float(h)) for w, h in anchors),
            coords=coords,
            **common,
        )
    coords, classes, num, side = _detection_sizes(s)
    to_cells = functools.partial(_cells, side=side, num_boxes=num, num_classes=classes)
    cells = L.stateless("DetectionLayout", lambda p, x, ctx: to_cells(x), name="cells")
    decode = functools.partial(
        decode_yolov1,
        num_boxes=num,
        num_classes=classes,
        sqrt=common["sqrt"],
        softmax_classes=common["softmax"],
    )
    return Head(
        L.serial(network, cells, name=network.name),
        decode if coords == 4 else _no_decoder(s.type, coords),
        YOLOV1,
        num,
        classes,
        side=side,
        coords=coords,
        **common,
    )
