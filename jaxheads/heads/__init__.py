"""Detection heads: each a `Head` with a `jaxheads.layers.Layer`, its decoder, its loss config.

* `yolov1_fc` — the YOLO paper's Flatten + Dense(4096) + Dense(S·S·(nb·5 + C)).
* `yolov1_percell` — the same Dense layers per cell (a 1×1 convolution).
* `yolov1_local` — darknet ``yolov1.cfg``'s locally connected head.
* `gap` — global average pooling + Dense: no spatial information.
* `yolov2` — the YOLOv2 head, optionally with the passthrough (reorg) layer.

Wrap ``head.layer`` in `jaxheads.nnx.LayerModule` for a Flax NNX module.
"""

from jaxheads.heads.base import Head
from jaxheads.heads.family import YOLOV1, YOLOV2, HeadFamily
from jaxheads.heads.gap import gap
from jaxheads.heads.yolov1 import yolov1_fc, yolov1_local, yolov1_percell
from jaxheads.heads.yolov2 import REORGS, VOC_ANCHORS, yolov2

__all__ = [
    "REORGS",
    "VOC_ANCHORS",
    "YOLOV1",
    "YOLOV2",
    "Head",
    "HeadFamily",
    "gap",
    "yolov1_fc",
    "yolov1_local",
    "yolov1_percell",
    "yolov2",
]
