"""What a study writes: each (row, seed)'s `RunRecord`, and strict JSON files.

The runner (`jaxheads.study.run`) makes the records; the report, the plots and the
pre-training stages read and write them through this module alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from typing import Any

# Detections drawn in detections.png: at least this score (darknet's demo threshold).
DRAW_SCORE = 0.25


@dataclasses.dataclass
class RunRecord:
    """What one (row, seed) measured, as ``result.json`` stores it.

    Attributes:
      fingerprint: what made it (the training run and the evaluation settings).
      row: the row's numbers, keyed as `jaxheads.train.metric_table.METRICS`, with
        ``head``, ``seed``, ``per_class_ap50``, ``steps``, ``image_size``,
        ``eval_image_size``, ``val_images`` (and ``anchors`` for anchor heads).
      train_dir: the training run's directory, relative to the study's.
      class_names: the validation set's class names.
      val: ``{"dataset", "num_examples", "seed"}`` of the validation set.
      pr_curves: ``{class: [recall, precision]}`` at IoU 0.5 (VOC2010), subsampled.
      examples: the first validation images' detections to draw.
      skipped: found finished in the work directory (not stored).
    """

    fingerprint: Any
    row: dict
    train_dir: str
    class_names: list
    val: dict
    pr_curves: dict
    examples: list
    skipped: bool = False

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        del data["skipped"]
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> RunRecord:
        names = {f.name for f in dataclasses.fields(cls)} - {"skipped"}
        return cls(**{k: data[k] for k in names}, skipped=True)


def json_number(x):
    """A float for strict JSON: None for None, NaN and infinities."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def write_json(path: str, data) -> None:
    """Writes ``data`` as strict JSON, atomically: a kill leaves the old file or the new one."""
    text = json.dumps(data, indent=1, allow_nan=False)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
