"""Darknet cfg files and ``.weights`` as `jaxheads.layers` graphs.

>>> from jaxheads import darknet
>>> net = darknet.load("yolov2-tiny-voc", image_size=64)
>>> net.head.kind, len(net.head.anchors)
('yolov2', 5)

* `parse_cfg` / `read_cfg` — cfg text to a list of `Section`.
* `build_model` / `from_cfg` — sections to a `DarknetModel` (a graph, one node per
  darknet layer, plus its `jaxheads.heads.Head` and `NetConfig`).
* `load` — a `DarknetNet` with weights read from a darknet file, full or partial (or
  random); a packaged model by name (`MODELS`: ``"fast-yolo"``, ``"yolov2-voc"``, ...) or a
  cfg path.
* `as_detector` — a built model as a trainable `jaxheads.models.Detector`;
  `model_params` — that detector's params as the model's.
* `with_options` — cfg text with a built model's options (its overrides) written in.
* `load_weights` / `save_weights` — the ``.weights`` format; `load_weights_upto`
  reads a file of the first layers only (darknet's ``partial``, see
  `jaxheads.darknet.commands.partial`); ``jaxheads export`` writes a trained
  run's (`jaxheads.train.export`).
"""

from jaxheads.darknet.build import DarknetLayer, DarknetModel, build_model, from_cfg
from jaxheads.darknet.cfg import (
    CFG_NAMES,
    SUPPORTED,
    Section,
    cfg_path,
    parse_cfg,
    read_cfg,
    with_options,
)
from jaxheads.darknet.detector import MODELS, as_detector, model_params
from jaxheads.darknet.head import detection_cells
from jaxheads.darknet.net import DarknetNet, load
from jaxheads.darknet.sections import DARKNET_BN_EPSILON, NetConfig
from jaxheads.darknet.weights import (
    WeightsHeader,
    float_count,
    load_weights,
    load_weights_upto,
    read_header,
    save_weights,
)

__all__ = [
    "CFG_NAMES",
    "DARKNET_BN_EPSILON",
    "SUPPORTED",
    "DarknetLayer",
    "DarknetModel",
    "DarknetNet",
    "MODELS",
    "NetConfig",
    "Section",
    "WeightsHeader",
    "as_detector",
    "build_model",
    "cfg_path",
    "detection_cells",
    "float_count",
    "from_cfg",
    "load",
    "load_weights",
    "load_weights_upto",
    "model_params",
    "parse_cfg",
    "read_cfg",
    "read_header",
    "save_weights",
    "with_options",
]
