"""Darknet's YOLO models by name, and a built cfg as a trainable `jaxheads.models.Detector`.

`MODELS` names every packaged detector cfg (the names the README and
``jaxheads summary --list`` use: ``fast-yolo`` is ``yolov1-paper-tiny.cfg``);
`jaxheads.zoo` registers them from here and `jaxheads.darknet.load` accepts them.
"""

from __future__ import annotations

import difflib
import os
from types import MappingProxyType
from typing import NamedTuple

import jax

from jaxheads._checks import fail


class Model(NamedTuple):
    """A packaged darknet detector: its cfg, its image side (the cfg's), its head, one line."""

    cfg: str
    image_size: int
    head: str
    description: str


#: The packaged darknet models by name: cfg file, image size, head kind, description.
MODELS = MappingProxyType(
    {
        "yolov1": Model(
            "yolov1",
            448,
            "yolov1",
            "darknet yolov1.cfg: 448x448 VOC, batch norm and a [local] layer",
        ),
        "yolov1-paper": Model(
            "yolov1-paper", 448, "yolov1", "darknet yolo.cfg of the YOLOv1 paper (448x448 VOC)"
        ),
        "yolov1-tiny": Model("yolov1-tiny", 448, "yolov1", "darknet yolov1-tiny.cfg (448x448 VOC)"),
        "fast-yolo": Model(
            "yolov1-paper-tiny",
            448,
            "yolov1",
            "darknet yolo-tiny.cfg: Fast YOLO of the YOLOv1 paper",
        ),
        "yolov2": Model("yolov2", 608, "yolov2", "darknet yolov2.cfg: 608x608 COCO"),
        "yolov2-voc": Model("yolov2-voc", 416, "yolov2", "darknet yolov2-voc.cfg: 416x416 VOC"),
        "yolov2-tiny": Model("yolov2-tiny", 416, "yolov2", "darknet yolov2-tiny.cfg: 416x416 COCO"),
        "yolov2-tiny-voc": Model(
            "yolov2-tiny-voc", 416, "yolov2", "darknet yolov2-tiny-voc.cfg: 416x416 VOC"
        ),
    }
)


def unknown_name(op: str, what: str, name, known) -> None:
    """Raises the `ValueError` of an unknown name: the known ones, and the closest."""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    fail(op, f"{what} in {known}", f"{name!r}{hint}")


def resolve_cfg(cfg: str | os.PathLike) -> str:
    """A cfg path: ``cfg`` itself when it is a file or a path, else a packaged cfg by name.

    A name is a model of `MODELS` (``"fast-yolo"``) or a packaged cfg's
    (``"yolov1-paper-tiny"``, ``".cfg"`` optional).

    Raises:
      ValueError: a bare name that is neither (the known names listed, the closest
        suggested). A path that does not exist is left to the reader to report.
    """
    from jaxheads.darknet.cfg import CFG_NAMES, cfg_path

    path = os.fspath(cfg)
    stem = path.removesuffix(".cfg")
    if os.path.isfile(path):
        return path
    if stem in CFG_NAMES:
        return cfg_path(stem)
    if stem in MODELS:
        return cfg_path(MODELS[stem].cfg)
    if os.sep in path or "/" in path or path.endswith(".cfg"):
        return path
    unknown_name("darknet", "a cfg path or a packaged model", path, set(MODELS) | set(CFG_NAMES))


def as_detector(model) -> tuple:
    """A built cfg as ``(Detector, init)`` for `jaxheads.train`; ``init(key) -> (params, state)``.

    The detector is the model's `jaxheads.heads.Head` (`DarknetModel.head`) on its
    input: for ``[detection]``, the network then a ``cells`` node giving the loss
    `jaxheads.darknet.detection_cells`'s layout.

    Args:
      model: a `jaxheads.darknet.DarknetModel` ending in ``[region]`` or
        ``[detection]`` with ``coords=4``.
    """
    from jaxheads.models import Detector

    head = model.head
    if head is None or head.coords != 4:
        fail(
            "darknet.as_detector",
            "a cfg ending in [region] or [detection] with coords=4",
            "neither" if head is None else f"coords={head.coords}",
        )

    def init(key):
        params, state = model.init(int(jax.random.randint(key, (), 0, 2**31 - 1)))
        if head.family.darknet_section == "detection":  # the head wraps the graph
            first = head.layer.nodes[0].name
            return {first: params}, ({first: state} if state else {})
        return params, state

    return Detector(head.layer, head, model.input_shape), init


def model_params(model, params, state) -> tuple:
    """The params and state of `as_detector`'s detector as ``model``'s own (keyed by layer).

    A ``[detection]`` detector holds the model's graph as its one node with params
    (named after the cfg file); a ``[region]`` detector is the graph itself.
    """
    if model.head is None or model.head.family.darknet_section == "region":
        return params, state
    if len(params) != 1:
        fail(
            "darknet.model_params",
            "a [detection] detector's params: one node, the darknet graph",
            f"nodes {sorted(params)}",
        )
    (name,) = params
    return params[name], state.get(name, {})
