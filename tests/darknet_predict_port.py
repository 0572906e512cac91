"""Literal NumPy ports of darknet's inference-side C, the references of tests/test_predict.py.

Written line by line from darknet's ``src/image.c`` (``resize_image``,
``letterbox_image``), ``src/region_layer.c`` (``forward_region_layer``,
``get_region_box``, ``get_region_detections``, ``correct_region_boxes``),
``src/detection_layer.c`` (``get_detection_detections``), ``src/blas.c`` (``softmax``)
and ``src/box.c`` (``box_iou``, ``do_nms_sort``): scalar loops, darknet's memory
layout (``C, H, W``) and its float/double promotions (a ``float`` is ``np.float32``, a
``double`` a Python float). Slow on purpose; only for small inputs.
"""

import math

import numpy as np

F = np.float32


# --------------------------------------------------------------------- src/image.c


def resize_image(im, w, h):
    """``im``: ``[C, H, W]`` float32 (darknet's layout)."""
    c_, ih, iw = im.shape
    resized = np.zeros((c_, h, w), np.float32)
    part = np.zeros((c_, ih, w), np.float32)
    w_scale = F(iw - 1) / F(w - 1)
    h_scale = F(ih - 1) / F(h - 1)
    for k in range(c_):
        for r in range(ih):
            for c in range(w):
                if c == w - 1 or iw == 1:
                    val = im[k, r, iw - 1]
                else:
                    sx = F(c) * w_scale
                    ix = int(sx)
                    dx = sx - F(ix)
                    val = (F(1) - dx) * im[k, r, ix] + dx * im[k, r, ix + 1]
                part[k, r, c] = val
    for k in range(c_):
        for r in range(h):
            sy = F(r) * h_scale
            iy = int(sy)
            dy = sy - F(iy)
            for c in range(w):
                resized[k, r, c] = (F(1) - dy) * part[k, iy, c]
            if r == h - 1 or ih == 1:
                continue
            for c in range(w):
                resized[k, r, c] += dy * part[k, iy + 1, c]
    return resized


def letterbox_image(im, w, h):
    c_, ih, iw = im.shape
    if (F(w) / F(iw)) < (F(h) / F(ih)):
        new_w = w
        new_h = (ih * w) // iw
    else:
        new_h = h
        new_w = (iw * h) // ih
    resized = resize_image(im, new_w, new_h)
    boxed = np.full((c_, h, w), 0.5, np.float32)
    dx, dy = (w - new_w) // 2, (h - new_h) // 2
    for k in range(c_):
        for y in range(new_h):
            for x in range(new_w):
                boxed[k, dy + y, dx + x] = resized[k, y, x]
    return boxed


# --------------------------------------------------------------------- src/blas.c, activations


def logistic(x):
    return F(1.0 / (1.0 + math.exp(-float(x))))


def softmax(values):
    largest = F(-np.finfo(np.float32).max)
    for v in values:
        if v > largest:
            largest = v
    out, total = [], F(0)
    for v in values:
        e = F(math.exp(float(v / F(1) - largest / F(1))))
        total += e
        out.append(e)
    return [e / total for e in out]


# --------------------------------------------------------------------- src/region_layer.c


def forward_region_layer(output, lw, lh, n, classes, use_softmax):
    """``output``: darknet's flat region output (copied from its input); activated in place."""
    coords = 4
    hw = lw * lh
    out = np.array(output, np.float32)
    for a in range(n):
        base = a * hw * (coords + classes + 1)
        for i in range(2 * hw):
            out[base + i] = logistic(out[base + i])
        for i in range(hw):
            out[base + coords * hw + i] = logistic(out[base + coords * hw + i])
        if not use_softmax:
            for i in range(classes * hw):
                out[base + (coords + 1) * hw + i] = logistic(out[base + (coords + 1) * hw + i])
    if use_softmax:
        for a in range(n):
            for loc in range(hw):
                idx = [
                    a * hw * (coords + classes + 1) + (coords + 1 + j) * hw + loc
                    for j in range(classes)
                ]
                for i, v in zip(idx, softmax([out[i] for i in idx]), strict=True):
                    out[i] = v
    return out


def get_region_box(x, biases, n, index, i, j, w, h, stride):
    return {
        # int + float is float; exp() is double.
        "x": (F(i) + x[index + 0 * stride]) / F(w),
        "y": (F(j) + x[index + 1 * stride]) / F(h),
        "w": F(math.exp(float(x[index + 2 * stride])) * float(biases[2 * n]) / w),
        "h": F(math.exp(float(x[index + 3 * stride])) * float(biases[2 * n + 1]) / h),
    }


def get_region_detections(pred, lw, lh, n, classes, biases, thresh):
    """Detections (dicts) of an activated region output, before ``correct_region_boxes``."""
    coords, hw = 4, lw * lh
    dets = [None] * (hw * n)
    for i in range(hw):
        row, col = i // lw, i % lw
        for a in range(n):
            index = a * hw + i
            base = a * hw * (coords + classes + 1)
            obj_index = base + coords * hw + i
            box_index = base + i
            scale = pred[obj_index]
            prob = [F(0)] * classes
            objectness = scale if scale > F(thresh) else F(0)
            if objectness:
                for j in range(classes):
                    p = scale * pred[base + (coords + 1 + j) * hw + i]
                    prob[j] = p if p > F(thresh) else F(0)
            dets[index] = {
                "bbox": get_region_box(pred, biases, a, box_index, col, row, lw, lh, hw),
                "objectness": objectness,
                "prob": prob,
                "index": index,
            }
    return dets


def correct_region_boxes(dets, w, h, netw, neth, relative=1):
    if (F(netw) / F(w)) < (F(neth) / F(h)):
        new_w = netw
        new_h = (h * netw) // w
    else:
        new_h = neth
        new_w = (w * neth) // h
    for d in dets:
        b = dict(d["bbox"])
        b["x"] = F((float(b["x"]) - (netw - new_w) / 2.0 / netw) / float(F(new_w) / F(netw)))
        b["y"] = F((float(b["y"]) - (neth - new_h) / 2.0 / neth) / float(F(new_h) / F(neth)))
        b["w"] = b["w"] * (F(netw) / F(new_w))
        b["h"] = b["h"] * (F(neth) / F(new_h))
        if not relative:
            b = {k: v * (w if k in "xw" else h) for k, v in b.items()}
        d["bbox"] = b


# --------------------------------------------------------------------- src/detection_layer.c


def get_detection_detections(pred, side, n, classes, sqrt, use_softmax, thresh):
    """``forward_detection_layer`` (its softmax) then ``get_detection_detections`` with
    ``w = h = 1`` (boxes relative to the network input)."""
    pred = np.array(pred, np.float32)
    if use_softmax:
        for i in range(side * side):
            pred[i * classes : (i + 1) * classes] = softmax(
                list(pred[i * classes : (i + 1) * classes])
            )
    dets = [None] * (side * side * n)
    for i in range(side * side):
        row, col = i // side, i % side
        for a in range(n):
            index = i * n + a
            scale = pred[side * side * classes + i * n + a]
            box_index = side * side * (classes + n) + (i * n + a) * 4
            p2 = 2 if sqrt else 1
            bbox = {
                "x": (pred[box_index] + F(col)) / F(side),
                "y": (pred[box_index + 1] + F(row)) / F(side),
                "w": F(float(pred[box_index + 2]) ** p2),
                "h": F(float(pred[box_index + 3]) ** p2),
            }
            prob = []
            for j in range(classes):
                p = scale * pred[i * classes + j]
                prob.append(p if p > F(thresh) else F(0))
            dets[index] = {"bbox": bbox, "objectness": scale, "prob": prob, "index": index}
    return dets


# --------------------------------------------------------------------- src/box.c


def _overlap(x1, w1, x2, w2):
    l1 = x1 - w1 / F(2)
    l2 = x2 - w2 / F(2)
    left = l1 if l1 > l2 else l2
    r1 = x1 + w1 / F(2)
    r2 = x2 + w2 / F(2)
    right = r1 if r1 < r2 else r2
    return right - left


def box_iou(a, b):
    w = _overlap(a["x"], a["w"], b["x"], b["w"])
    h = _overlap(a["y"], a["h"], b["y"], b["h"])
    inter = F(0) if (w < 0 or h < 0) else w * h
    union = a["w"] * a["h"] + b["w"] * b["h"] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def do_nms_sort(dets, classes, thresh):
    """In place, as darknet (reorders ``dets``); probabilities must be tie-free."""
    total = len(dets)
    k = total - 1
    i = 0
    while i <= k:
        if dets[i]["objectness"] == 0:
            dets[i], dets[k] = dets[k], dets[i]
            k -= 1
            i -= 1
        i += 1
    total = k + 1
    for c in range(classes):
        dets[:total] = sorted(dets[:total], key=lambda d: -float(d["prob"][c]))
        for i in range(total):
            if dets[i]["prob"][c] == 0:
                continue
            a = dets[i]["bbox"]
            for j in range(i + 1, total):
                if box_iou(a, dets[j]["bbox"]) > F(thresh):
                    dets[j]["prob"][c] = F(0)
