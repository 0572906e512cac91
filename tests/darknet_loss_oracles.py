"""darknet's YOLOv1 and YOLOv2 loss deltas, re-stated in numpy: the oracles of test_losses.

Loop-based re-statements of what darknet computes (``box.c``, ``data.c:
fill_truth_region``, ``detection_layer.c: forward_detection_layer``,
``region_layer.c: forward_region_layer`` and ``backward_region_layer_gpu``),
written to be read side by side with the C.
"""

from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------------------
# darknet's box helpers (box.c), on (x, y, w, h) tuples.
# ---------------------------------------------------------------------------


def _overlap(x1, w1, x2, w2):
    left = max(x1 - w1 / 2, x2 - w2 / 2)
    right = min(x1 + w1 / 2, x2 + w2 / 2)
    return right - left


def _box_iou(a, b):
    w = _overlap(a[0], a[2], b[0], b[2])
    h = _overlap(a[1], a[3], b[1], b[3])
    inter = 0.0 if (w < 0 or h < 0) else w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    if inter == 0 or union == 0:
        return 0.0
    return inter / union


def _box_rmse(a, b):
    return math.sqrt(sum((p - q) ** 2 for p, q in zip(a, b, strict=True)))


def cxcywh(xyxy):
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    return ((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)


def logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------------------
# Oracle 1: YOLOv1 (data.c fill_truth_region + detection_layer.c).
# ---------------------------------------------------------------------------


def darknet_fill_truth_region(boxes, labels, mask, classes, side):
    """Per-cell truth ``[S*S, 1 + C + 4]``: (is_obj, one-hot, x-in-cell, y-in-cell, w, h)."""
    truth = np.zeros((side * side, 1 + classes + 4))
    for box, label, valid in zip(boxes, labels, mask, strict=True):
        if not valid:
            continue
        x, y, w, h = cxcywh(box)
        col = int(x * side)
        row = int(y * side)
        index = col + row * side
        if truth[index, 0]:  # the first box in a cell wins
            continue
        truth[index, 0] = 1
        if label < classes:
            truth[index, 1 + label] = 1
        truth[index, 1 + classes :] = (x * side - col, y * side - row, w, h)
    return truth


def darknet_detection_delta(
    raw,
    gt_boxes,
    gt_labels,
    gt_mask,
    side,
    n,
    classes,
    *,
    coord_scale=5.0,
    noobject_scale=0.5,
    object_scale=1.0,
    class_scale=1.0,
    rescore=True,
    sqrt=True,
):
    """``l.delta`` of forward_detection_layer (softmax=0, forced=0), flat darknet order."""
    raw = np.asarray(raw, np.float64)
    locations = side * side
    delta = np.zeros_like(raw)
    stats = {"by_iou": 0, "by_rmse": 0}
    for b in range(raw.shape[0]):
        out = raw[b]
        truth = darknet_fill_truth_region(gt_boxes[b], gt_labels[b], gt_mask[b], classes, side)
        for i in range(locations):
            for j in range(n):
                p_index = locations * classes + i * n + j
                delta[b, p_index] = noobject_scale * (0 - out[p_index])
            if not truth[i, 0]:
                continue
            for j in range(classes):
                c_index = i * classes + j
                delta[b, c_index] = class_scale * (truth[i, 1 + j] - out[c_index])
            tbox = truth[i, 1 + classes :]
            tr = (tbox[0] / side, tbox[1] / side, tbox[2], tbox[3])

            def out_box(j, i=i, out=out):
                k = locations * (classes + n) + (i * n + j) * 4
                x, y, w, h = out[k : k + 4]
                if sqrt:
                    w, h = w * w, h * h
                return (x / side, y / side, w, h)

            best_index, best_iou, best_rmse = -1, 0.0, 20.0
            for j in range(n):
                iou = _box_iou(out_box(j), tr)
                rmse = _box_rmse(out_box(j), tr)
                if best_iou > 0 or iou > 0:
                    if iou > best_iou:
                        best_iou, best_index = iou, j
                elif rmse < best_rmse:
                    best_rmse, best_index = rmse, j
            assert best_index >= 0, "darknet would index out of bounds (all RMSE >= 20)"
            stats["by_iou" if best_iou > 0 else "by_rmse"] += 1

            iou = _box_iou(out_box(best_index), tr)
            p_index = locations * classes + i * n + best_index
            target = iou if rescore else 1.0
            delta[b, p_index] = object_scale * (target - out[p_index])
            k = locations * (classes + n) + (i * n + best_index) * 4
            wanted = np.array(tbox)
            if sqrt:
                wanted[2:] = np.sqrt(wanted[2:])
            delta[b, k : k + 4] = coord_scale * (wanted - out[k : k + 4])
    return delta, stats


# ---------------------------------------------------------------------------
# Oracle 2: YOLOv2 region layer (region_layer.c, GPU build).
# ---------------------------------------------------------------------------


def darknet_region_delta(
    raw,
    gt_boxes,
    gt_labels,
    gt_mask,
    anchors,
    seen,
    *,
    object_scale=5.0,
    noobject_scale=1.0,
    class_scale=1.0,
    coord_scale=1.0,
    thresh=0.6,
    rescore=True,
    bias_match=True,
):
    """Delta reaching the region layer's input (NCHW ``[B, A*(5+C), H, W]``).

    ``x[b, n, entry, j, i]`` is darknet's ``entry_index(l, b, n*w*h + j*w + i, entry)``.
    """
    raw = np.asarray(raw, np.float64)
    batch, channels, h, w = raw.shape
    num = len(anchors)
    classes = channels // num - 5
    biases = np.asarray(anchors, np.float64).reshape(-1)
    x = raw.reshape(batch, num, 5 + classes, h, w)
    # forward: logistic on x, y and objectness, softmax over the classes.
    out = x.copy()
    out[:, :, 0:2] = logistic(x[:, :, 0:2])
    out[:, :, 4] = logistic(x[:, :, 4])
    e = np.exp(x[:, :, 5:] - x[:, :, 5:].max(axis=2, keepdims=True))
    out[:, :, 5:] = e / e.sum(axis=2, keepdims=True)
    delta = np.zeros_like(out)
    stats = {"ignored": 0, "overwritten": 0}

    def region_box(b, n, i, j):
        return (
            (i + out[b, n, 0, j, i]) / w,
            (j + out[b, n, 1, j, i]) / h,
            np.exp(out[b, n, 2, j, i]) * biases[2 * n] / w,
            np.exp(out[b, n, 3, j, i]) * biases[2 * n + 1] / h,
        )

    def delta_region_box(truth, b, n, i, j, scale):
        pred = region_box(b, n, i, j)
        iou = _box_iou(pred, truth)
        tx = truth[0] * w - i
        ty = truth[1] * h - j
        tw = math.log(truth[2] * w / biases[2 * n])
        th = math.log(truth[3] * h / biases[2 * n + 1])
        delta[b, n, 0, j, i] = scale * (tx - out[b, n, 0, j, i])
        delta[b, n, 1, j, i] = scale * (ty - out[b, n, 1, j, i])
        delta[b, n, 2, j, i] = scale * (tw - out[b, n, 2, j, i])
        delta[b, n, 3, j, i] = scale * (th - out[b, n, 3, j, i])
        return iou

    for b in range(batch):
        truths = [
            (cxcywh(box), int(label))
            for box, label, valid in zip(gt_boxes[b], gt_labels[b], gt_mask[b], strict=True)
            if valid
        ]
        for j in range(h):
            for i in range(w):
                for n in range(num):
                    pred = region_box(b, n, i, j)
                    best_iou = 0.0
                    for truth, _ in truths:
                        best_iou = max(best_iou, _box_iou(pred, truth))
                    delta[b, n, 4, j, i] = noobject_scale * (0 - out[b, n, 4, j, i])
                    if best_iou > thresh:
                        delta[b, n, 4, j, i] = 0
                        stats["ignored"] += 1
                    if seen < 12800:
                        prior = (
                            (i + 0.5) / w,
                            (j + 0.5) / h,
                            biases[2 * n] / w,
                            biases[2 * n + 1] / h,
                        )
                        delta_region_box(prior, b, n, i, j, 0.01)
        written = set()
        for truth, label in truths:
            i = int(truth[0] * w)
            j = int(truth[1] * h)
            best_iou, best_n = 0.0, 0
            for n in range(num):
                pred = region_box(b, n, i, j)
                if bias_match:
                    pred = (0, 0, biases[2 * n] / w, biases[2 * n + 1] / h)
                iou = _box_iou((0, 0, pred[2], pred[3]), (0, 0, truth[2], truth[3]))
                if iou > best_iou:
                    best_iou, best_n = iou, n
            stats["overwritten"] += (best_n, i, j) in written
            written.add((best_n, i, j))
            scale = coord_scale * (2 - truth[2] * truth[3])
            iou = delta_region_box(truth, b, best_n, i, j, scale)
            target = iou if rescore else 1.0
            delta[b, best_n, 4, j, i] = object_scale * (target - out[b, best_n, 4, j, i])
            for k in range(classes):
                onehot = 1.0 if k == label else 0.0
                delta[b, best_n, 5 + k, j, i] = class_scale * (onehot - out[b, best_n, 5 + k, j, i])
    # backward_region_layer_gpu: logistic gradient on x, y and objectness.
    for entry in (0, 1, 4):
        delta[:, :, entry] *= out[:, :, entry] * (1 - out[:, :, entry])
    return delta.reshape(batch, channels, h, w), stats
