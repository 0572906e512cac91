"""Detection average precision: PASCAL VOC (2007 and 2010+) and COCO, in vectorised numpy.

`evaluate_voc` and `evaluate_coco` score a data set of per-image predictions against
per-image ground truths, each with its protocol's options and keys;
`evaluate_detections` picks one by name. It is host-side bookkeeping (sorting, greedy
matching, cumulative sums), so it is written in float64 numpy rather than JAX: the
matching is sequential and ragged, and parity with the reference tools (the VOC
devkit and pycocotools' ``COCOeval``) needs float64. Inputs may be
numpy arrays, JAX arrays or nested lists.

Boxes are ``xyxy`` (see `jaxheads.boxes`). As there, a degenerate box (zero width or
height) has area 0 and an inverted box (``x_max < x_min`` or ``y_max < y_min``) has
IoU 0 with everything, in both pixel conventions. Its area is 0, except a detection's
under COCO, which is pycocotools' signed ``w·h``.

Protocols, and the implementation each follows line for line:
  * ``"voc07"``: matching of the VOC devkit's ``VOCevaldet.m`` (the same in the 2007
    to 2012 devkits): per class in descending score, each detection takes the gt of
    highest overlap among the gts it intersects (``if iw>0 & ih>0``; the first one on
    ties, ``if ov>ovmax``) and matches at ``ovmax>=VOCopts.minoverlap``, IoU *at least*
    the threshold; a difficult gt makes it neither true nor false, a gt already taken a
    false positive. Precision and recall are py-faster-rcnn's ``voc_eval.py`` (which
    differs from the devkit only in matching at ``ovmax > ovthresh``, strictly above):
    ``tp / max(tp + fp, eps)``, so a curve that opens on difficult matches holds 0 where
    the devkit's ``tp./(fp+tp)`` holds NaN; the AP is the same, except for a class whose
    every detection lands on a difficult gt (the devkit's 11-point AP is NaN there, this
    one 0). AP is the 11-point interpolated AP of the VOC2007 devkit as py-faster-rcnn's
    ``voc_ap(use_07_metric=True)`` writes it (thresholds ``np.arange(0, 1.1, 0.1)``, so
    ``0.30000000000000004`` and not ``0.3``).
  * ``"voc2010"``: the same matching; AP is the area under the monotone precision
    envelope at every recall point, the devkit's ``VOCap.m`` as
    ``voc_ap(use_07_metric=False)`` writes it.
  * ``pixel_convention=True`` is the devkit's ``+1`` (a box spans ``x_max - x_min + 1``
    pixels: ``iw=bi(3)-bi(1)+1``); False drops the ``+1`` and changes nothing else.
  * ``"coco"``: pycocotools ``COCOeval`` (``evaluateImg``, ``accumulate``,
    ``summarize``) for ``iouType="bbox"``: IoU thresholds ``.50:.05:.95``, a match at IoU
    *at least* the threshold (pycocotools' ``if ious[dind, gind] < iou: continue``), 101
    recall points, at most 100 detections per image *and class* (pycocotools cuts per
    image and category), area ranges ``[0, 32**2, 96**2, 1e5**2]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jaxheads._checks import fail
from jaxheads.metrics._common import _OP
from jaxheads.metrics.coco import evaluate_coco
from jaxheads.metrics.voc import evaluate_voc

__all__ = ["evaluate_coco", "evaluate_detections", "evaluate_voc"]

_PROTOCOLS = ("voc07", "voc2010", "coco")


def evaluate_detections(
    predictions: Sequence[Mapping[str, Any]],
    ground_truths: Sequence[Mapping[str, Any]],
    *,
    protocol: str = "voc07",
    num_classes: int | None = None,
    iou_threshold: float | None = None,
    pixel_convention: bool = False,
) -> dict[str, Any]:
    """Average precision of a detector over a data set: `evaluate_voc` or `evaluate_coco`.

    Args:
      predictions, ground_truths, num_classes: see `evaluate_voc` and `evaluate_coco`.
      protocol: ``"voc07"`` (`evaluate_voc` with ``use_07_metric=True``), ``"voc2010"``
        (``use_07_metric=False``) or ``"coco"`` (`evaluate_coco`).
      iou_threshold, pixel_convention: VOC only (see `evaluate_voc`); an error with COCO.

    Returns:
      The protocol's dict (the keys each function documents).

    Example:
      >>> box = [[0.0, 0.0, 10.0, 10.0]]
      >>> pred = [{"boxes": box, "scores": [0.9], "labels": [0]}]
      >>> gt = [{"boxes": box, "labels": [0]}]
      >>> evaluate_detections(pred, gt, protocol="voc07")["mAP"]
      1.0
      >>> round(evaluate_detections(pred, gt, protocol="coco")["mAP"], 6)  # eps as pycocotools
      1.0
    """
    if protocol not in _PROTOCOLS:
        fail(_OP, f"protocol in {_PROTOCOLS}", repr(protocol))
    if protocol == "coco":
        if iou_threshold is not None:
            fail(_OP, "no iou_threshold with protocol 'coco' (it uses .50:.05:.95)", iou_threshold)
        if pixel_convention:
            fail(_OP, "pixel_convention=False with protocol 'coco'", pixel_convention)
        return evaluate_coco(predictions, ground_truths, num_classes=num_classes)
    return evaluate_voc(
        predictions,
        ground_truths,
        num_classes=num_classes,
        iou_threshold=0.5 if iou_threshold is None else iou_threshold,
        pixel_convention=pixel_convention,
        use_07_metric=protocol == "voc07",
    )
