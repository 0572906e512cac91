"""What a study measures of a detector, as pure functions of the detector and its data.

* `measure_params`: Keras-style counts (params plus batch-norm statistics, as
  `jaxheads.summary` prints them) of the whole detector and of its ``head`` node,
  computed abstractly.
* `detector_flops`: XLA's cost analysis of one forward pass at batch 1
  (`jaxheads.bench.forward_flops`); the head's share is the total minus the backbone's.
* `steady_images_per_s`: training throughput from ``metrics.jsonl``'s rows, the
  first interval (which includes compilation) left out.
* `box_sizes` / `prior_iou`: the training boxes' sizes, and the anchors' mean best
  IoU with them (Table 1 of the YOLOv2 paper).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from jaxheads.anchors import mean_best_iou
from jaxheads.bench.flops import forward_flops
from jaxheads.layers import abstract_init, count


def measure_params(detector) -> dict[str, int | None]:
    """Keras-style counts of the detector and its ``head`` node (abstract, nothing allocated).

    Returns:
      ``{"params", "trainable_params", "head_params"}``; ``head_params`` is None
      for a detector without a ``head`` node.
    """
    _, params, state = abstract_init(detector.layer, detector.input_shape)
    has_head = "head" in params or "head" in state
    return {
        "params": count(params) + count(state),
        "trainable_params": count(params),
        "head_params": (
            count(params.get("head", {})) + count(state.get("head", {})) if has_head else None
        ),
    }


def detector_flops(detector) -> dict[str, float | None]:
    """``{"flops", "head_flops"}`` of one forward pass at batch 1 (`forward_flops`).

    ``head_flops`` is the total minus the ``backbone`` node's (None without one).
    """
    _, params, state = abstract_init(detector.layer, detector.input_shape)
    total = forward_flops(detector.layer, detector.input_shape, params, state)
    backbone = [n for n in detector.layer.nodes if n.name == "backbone"]
    if not backbone:
        return {"flops": total, "head_flops": None}
    base = forward_flops(
        backbone[0].layer, detector.input_shape, params["backbone"], state.get("backbone", {})
    )
    return {"flops": total, "head_flops": total - base}


def steady_images_per_s(rows: Sequence[Mapping]) -> float:
    """Training images/s: the median over logged intervals, the first one (compilation) left out.

    >>> steady_images_per_s([{"images_per_s": 5.0}, {"images_per_s": 90.0},
    ...                      {"step": 20, "eval": {}}, {"images_per_s": 110.0}])
    100.0
    """
    rates = [r["images_per_s"] for r in rows if "images_per_s" in r]
    rates = [x for x in rates[1:] if x is not None and math.isfinite(x)] or [
        x for x in rates if x is not None and math.isfinite(x)
    ]
    return float(np.median(rates)) if rates else math.nan


def box_sizes(dataset, limit: int = 1000) -> np.ndarray:
    """``[N, 2]`` positive box widths and heights (image fractions), first ``limit`` examples."""
    sizes = []
    for i in range(min(limit, len(dataset))):
        ex = dataset.example(i)
        b = ex["boxes"][ex["mask"]]
        sizes.append(b[:, 2:] - b[:, :2])
    wh = np.concatenate(sizes).astype(np.float64)
    return wh[(wh > 0).all(axis=1)]


def grid_stride(detector) -> int:
    """Image side / output grid side, from the abstract output shape."""
    out, _, _ = abstract_init(detector.layer, detector.input_shape)
    return detector.input_shape[1] // out[1]


def prior_iou(detector, train_data) -> float:
    """The anchors' mean best IoU with ``train_data``'s boxes, both in cells of its grid.

    Table 1 of the YOLOv2 paper ("Avg IOU"); ``detector`` is built at the training size.
    """
    grid = detector.input_shape[1] // grid_stride(detector)
    anchors = np.asarray(detector.head.anchors, np.float64)
    return mean_best_iou(box_sizes(train_data) * grid, anchors)
