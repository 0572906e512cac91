"""Training losses of darknet's YOLOv1 ``[detection]`` and YOLOv2 ``[region]`` layers.

Darknet has no loss function: each layer writes ``delta = -dL/d(output)`` for a
loss it never states, and backpropagates that. The functions here are the
losses those deltas are the negative gradients of, so `jax.grad` reproduces
darknet's training signal exactly:

* `yolov1_loss` is the YOLO paper's sum-squared loss (no ½), so
  ``jax.grad(yolov1_loss) == -2 · delta`` of ``detection_layer.c``.
* `region_loss` uses ½·scale·(target − output)² terms and a cross-entropy for
  the classes, so ``jax.grad(region_loss) == -delta`` of ``region_layer.c``
  (after darknet's backward pass has applied the logistic gradient).

Ground truth arrives padded to a fixed count ``M`` per image:

* ``gt_boxes``: ``[B, M, 4]`` xyxy, normalised to ``[0, 1]`` of the image;
* ``gt_labels``: ``[B, M]`` integer class ids;
* ``gt_mask``: ``[B, M]`` bool, true for the real entries.

Targets are built inside the traced function (vmapped over images, vectorised
over truths, cells and anchors), so both losses work under `jit` and `vmap`
and with no valid truth at all. Masked entries are ignored whatever they hold.
The losses are computed in float32 (float64 for float64 predictions), whatever
the prediction dtype, so that cell assignment does not depend on bfloat16
rounding of the ground truth.

Two ways to put two truths in one place, both darknet's:

* YOLOv1: darknet's data loader (``fill_truth_region`` in ``data.c``) keeps the
  *first* box whose centre falls in a cell and drops later ones
  (``if (truth[index]) continue;``). `yolov1_loss` keeps the first valid truth in
  ``gt`` order. (Darknet shuffles the boxes of an image before that; shuffle
  ``gt`` yourself if you want the same randomness.)
* YOLOv2: ``forward_region_layer`` loops over truths and overwrites the deltas
  of the chosen (cell, anchor) slot, so the *last* truth mapped to a slot wins.
  `region_loss` keeps the last valid truth per slot.
"""

from jaxheads.losses.region import region_loss
from jaxheads.losses.yolov1 import (
    yolov1_from_darknet_layout,
    yolov1_loss,
    yolov1_to_darknet_layout,
)

__all__ = [
    "region_loss",
    "yolov1_from_darknet_layout",
    "yolov1_loss",
    "yolov1_to_darknet_layout",
]
