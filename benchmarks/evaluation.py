"""`evaluate_detections` (COCO protocol) against pycocotools' ``COCOeval``, same data.

The synthetic data set has gts of all COCO sizes (some overlapping), detections
jittered from them (with duplicates and class confusions) plus random false
positives. Both sides start from data already in their own input format
(per-image arrays; COCO-style dicts): pycocotools' time covers building its
index (``createIndex``, ``loadRes``) and ``evaluate``, ``accumulate`` and
``summarize``; ours one `evaluate_detections` call. The run fails unless the
twelve ``COCOeval.stats`` agree to 1e-6.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from jaxheads.bench import timing
from jaxheads.bench.figures import Figure
from jaxheads.metrics import evaluate_detections


def synthetic(num_images: int, num_classes: int, *, seed: int = 0):
    """``(predictions, ground_truths)`` lists for `evaluate_detections`, boxes in pixels."""
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(num_images):
        m = int(rng.integers(0, 8))
        xy = rng.uniform(0, 500, (m, 2))
        wh = np.exp(rng.uniform(np.log(6), np.log(250), (m, 2)))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        near = np.flatnonzero(rng.random(m) < 0.25)
        near = near[near > 0]
        boxes[near] = boxes[near - 1] + rng.normal(0, 0.1, (near.size, 4)) * np.tile(
            wh[near - 1], 2
        )
        boxes = np.concatenate([boxes[:, :2], np.maximum(boxes[:, 2:], boxes[:, :2] + 1)], 1)
        labels = rng.integers(0, num_classes, m)
        gts.append({"boxes": boxes, "labels": labels})
        source = np.repeat(np.arange(m), rng.integers(0, 3, m))
        size = np.tile(boxes[source, 2:] - boxes[source, :2], 2)
        det = boxes[source] + rng.normal(0, 0.1, (source.size, 4)) * size
        det_labels = np.where(
            rng.random(source.size) < 0.9, labels[source], rng.integers(0, num_classes, source.size)
        )
        k = int(rng.integers(0, 6))
        xy = rng.uniform(0, 500, (k, 2))
        det = np.concatenate([det, np.concatenate([xy, xy + rng.uniform(6, 200, (k, 2))], 1)])
        det = np.concatenate(
            [np.minimum(det[:, :2], det[:, 2:]), np.maximum(det[:, :2], det[:, 2:])], 1
        )
        det_labels = np.concatenate([det_labels, rng.integers(0, num_classes, k)])
        preds.append(
            {
                "boxes": det,
                "scores": rng.random(det.shape[0]),
                "labels": det_labels.astype(np.int64),
            }
        )
    return preds, gts


def _xywh(box) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def to_coco(preds, gts, num_classes: int) -> tuple[dict, list[dict]]:
    """The same data as a COCO ground-truth dataset dict and a results list."""
    annotations = []
    for i, g in enumerate(gts):
        for box, label in zip(g["boxes"], g["labels"], strict=True):
            x, y, w, h = _xywh(box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(label),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    dataset = {
        "images": [{"id": i + 1} for i in range(len(gts))],
        "annotations": annotations,
        "categories": [{"id": k} for k in range(num_classes)],
    }
    results = [
        {"image_id": i + 1, "category_id": int(c), "bbox": _xywh(b), "score": float(s)}
        for i, p in enumerate(preds)
        for b, s, c in zip(p["boxes"], p["scores"], p["labels"], strict=True)
    ]
    return dataset, results


def pycocotools_stats(dataset: dict, results: list[dict]) -> np.ndarray:
    """``COCOeval(...).stats`` for bbox, its printing swallowed."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats)


def measure(num_images: int, *, num_classes: int = 20, repeats: int = 3) -> list[Figure]:
    """Seconds of each side (median of interleaved repeats), speedup, and the agreement."""
    preds, gts = synthetic(num_images, num_classes)
    dataset, results = to_coco(preds, gts, num_classes)
    out: dict[str, np.ndarray] = {}

    def ours():
        out["ours"] = evaluate_detections(preds, gts, protocol="coco", num_classes=num_classes)[
            "coco_stats"
        ]

    def reference():
        out["pycocotools"] = pycocotools_stats(dataset, results)

    times = timing.interleaved({"jaxheads": ours, "pycocotools": reference}, repeats=repeats)
    diff = float(np.max(np.abs(out["ours"] - out["pycocotools"])))
    if not diff <= 1e-6:
        raise AssertionError(
            f"evaluate_detections differs from pycocotools by {diff:.3g}: "
            f"{out['ours']} vs {out['pycocotools']}"
        )
    ours_s, ref_s = timing.median(times["jaxheads"]), timing.median(times["pycocotools"])
    return [
        Figure("evaluate", "detections", len(results)),
        Figure("evaluate", "seconds", ours_s, framework="jaxheads"),
        Figure("evaluate", "seconds", ref_s, framework="pycocotools"),
        Figure("evaluate", "speedup", ref_s / ours_s, framework="pycocotools"),
        Figure("evaluate", "stats_max_abs_diff", diff, framework="pycocotools"),
        Figure("evaluate", "mAP", float(out["ours"][0]), framework="jaxheads"),
    ]
