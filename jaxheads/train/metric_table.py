"""Every number a detector is judged by, declared once: key, label, format, direction.

`evaluate` (`jaxheads.train.detection`) returns the accuracy keys, the studies
(`jaxheads.study`) add the cost keys; ``jaxheads evaluate``'s printout,
``results.md``'s columns and its "which head won on what" lines all read `METRICS`.

>>> METRIC["mAP50"].format(0.51234, 0.0123)
'0.512 ± 0.012'
>>> METRIC["params"].format(1496384)
'1,496,384'
>>> METRIC["flops"].format(38.7e6)
'38.7'
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType


@dataclasses.dataclass(frozen=True)
class Metric:
    """One measured number.

    Attributes:
      key: its key in `evaluate`'s result, ``result.json`` and ``results.json``.
      label: its column heading and printed name.
      spec: the format spec of one value (after dividing by ``scale``); ``",d"``
        formats an integer count.
      higher_is_better: the direction a winner is chosen in.
      per_seed: a value that varies with the seed (averaged over seeds, with a
        spread) rather than a property of the architecture.
      winner: the wording of its "which head won" line; None for no line.
      scale: divides the value before formatting (1e6 for MFLOPs).
      optional: measured for some detectors only (the prior IoU of anchor heads); its
        column appears where one has it.
    """

    key: str
    label: str
    spec: str = ".3f"
    higher_is_better: bool = True
    per_seed: bool = True
    winner: str | None = None
    scale: float = 1.0
    optional: bool = False

    def format_one(self, value) -> str:
        """One value as text (``"n/a"`` for None)."""
        if value is None:
            return "n/a"
        value = value / self.scale if self.scale != 1.0 else value
        return format(int(value) if self.spec.endswith("d") else value, self.spec)

    def format(self, value, std=None) -> str:
        """``value`` or ``value ± std`` as text."""
        if value is None or std is None:
            return self.format_one(value)
        return f"{self.format_one(value)} ± {self.format_one(std)}"


# In report order: accuracy, then cost. ``results.md``'s winner lines follow it.
METRICS: tuple[Metric, ...] = (
    Metric("mAP50", "VOC2010 mAP@0.5", winner="best mAP50 (VOC2010)"),
    Metric("mAP50_voc07", "VOC2007 mAP@0.5"),
    Metric("mAP", "COCO mAP@[.5:.95]", winner="best COCO mAP@[.5:.95]"),
    Metric("mAP50_coco", "COCO mAP@0.5"),
    Metric("mAP75", "COCO mAP@0.75"),
    Metric("recall", "recall@0.5", winner="best recall@0.5"),
    Metric("mAP_small", "AP small"),
    Metric("mAP_medium", "AP medium"),
    Metric("mAP_large", "AP large"),
    Metric("params", "params", ",d", False, False, "fewest params"),
    Metric("trainable_params", "trainable params", ",d", False, False),
    Metric("head_params", "head params", ",d", False, False),
    Metric("flops", "MFLOPs", ",.1f", False, False, scale=1e6),
    Metric("head_flops", "head MFLOPs", ",.1f", False, False, scale=1e6),
    Metric("images_per_s", "train img/s", ".1f", winner="fastest training (images/s)"),
    Metric("final_loss", "final loss", ".4f", False),
    Metric("anchor_iou", "prior IoU", per_seed=False, optional=True),
)
METRIC = MappingProxyType({m.key: m for m in METRICS})

# What `evaluate` returns, in the order ``jaxheads evaluate`` prints it.
ACCURACY = ("mAP50", "mAP50_voc07", "mAP", "mAP50_coco", "mAP75", "recall")


def format_accuracy(result) -> list[str]:
    """``jaxheads evaluate``'s lines: one per `ACCURACY` key, label then value to 4 digits."""
    return [
        f"{METRIC[k].label:30s} {'n/a' if result.get(k) is None else f'{result[k]:.4f}'}"
        for k in ACCURACY
    ]
