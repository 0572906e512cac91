"""Tests for `jaxheads.nms`: parity with a textbook greedy NMS, jit, vmap, errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compilations import compilations

from jaxheads.nms import nms, nms_batched

# Thresholds and sizes are arguments of one jitted function, so every random case
# below reuses the same compiled kernel.
jit_nms = jax.jit(nms, static_argnames=("max_outputs", "per_class"))

N = 40
IOU_THRESHOLDS = (0.0, 0.3, 0.45, 0.5, 0.7, 1.0)


def reference_nms(boxes, scores, iou_threshold, max_outputs, score_threshold, labels=None):
    """Greedy NMS as in the textbooks (and torchvision / TensorFlow), in float64."""
    boxes = np.asarray(boxes, np.float64)

    def overlap(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        area = [max(0.0, x[2] - x[0]) * max(0.0, x[3] - x[1]) for x in (a, b)]
        union = area[0] + area[1] - w * h
        return w * h / union if union > 0 else 0.0

    keep = []
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        if not scores[i] > score_threshold:
            continue
        if any(
            overlap(boxes[i], boxes[j]) > iou_threshold
            and (labels is None or labels[i] == labels[j])
            for j in keep
        ):
            continue
        keep.append(int(i))
        if len(keep) == max_outputs:
            break
    return keep


def random_case(seed, n=N, num_classes=3):
    """Boxes on an integer grid (exact areas, so no IoU sits within rounding of a
    threshold), crowded enough to overlap, a few degenerate; scores with ties."""
    rng = np.random.default_rng(seed)
    xy = rng.integers(0, 24, (n, 2))
    wh = rng.integers(2, 24, (n, 2))
    wh[rng.random(n) < 0.05] = 0
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = (rng.integers(0, 12, n) / 10).astype(np.float32)
    labels = rng.integers(0, num_classes, n).astype(np.int32)
    return rng, boxes, scores, labels


def assert_matches(indices, valid, want, max_outputs):
    indices, valid = np.asarray(indices), np.asarray(valid)
    assert indices.shape == valid.shape == (max_outputs,)
    assert indices.dtype == np.int32 and valid.dtype == np.bool_
    np.testing.assert_array_equal(valid, np.arange(max_outputs) < len(want))
    np.testing.assert_array_equal(indices[: len(want)], want)
    np.testing.assert_array_equal(indices[len(want) :], 0)


@pytest.mark.parametrize("mode", ["agnostic", "labels_ignored", "per_class"])
def test_matches_reference(mode):
    for seed in range(40):
        rng, boxes, scores, labels = random_case(seed)
        iou_threshold = float(rng.choice(IOU_THRESHOLDS))
        score_threshold = float(rng.choice([-np.inf, 0.0, 0.3, 0.5]))
        max_outputs = 8 if seed % 4 == 0 else N  # truncated, and run to the end
        kwargs = dict(
            iou_threshold=iou_threshold, max_outputs=max_outputs, score_threshold=score_threshold
        )
        if mode == "agnostic":
            got = jit_nms(boxes, scores, **kwargs)
        else:
            got = jit_nms(boxes, scores, labels=labels, per_class=mode == "per_class", **kwargs)
        ref_labels = labels if mode == "per_class" else None
        want = reference_nms(boxes, scores, iou_threshold, max_outputs, score_threshold, ref_labels)
        assert_matches(*got, want, max_outputs)


def test_jit_and_nojit_agree(maybe_jit):
    fn = maybe_jit(functools.partial(nms, iou_threshold=0.5, max_outputs=12, per_class=True))
    for seed in range(3):
        _, boxes, scores, labels = random_case(seed)
        want = reference_nms(boxes, scores, 0.5, 12, -np.inf, labels)
        assert_matches(*fn(boxes, scores, labels=labels), want, 12)


def test_vmap_equals_loop():
    cases = [random_case(seed) for seed in range(4)]
    boxes = np.stack([c[1] for c in cases])
    scores = np.stack([c[2] for c in cases])
    labels = np.stack([c[3] for c in cases])
    kwargs = dict(iou_threshold=0.45, max_outputs=10)
    for got_indices, got_valid in (
        nms_batched(boxes, scores, labels=labels, **kwargs),
        jax.jit(jax.vmap(lambda b, s, c: jit_nms(b, s, labels=c, **kwargs)))(boxes, scores, labels),
    ):
        assert got_indices.shape == got_valid.shape == (4, 10)
        for b in range(4):
            indices, valid = jit_nms(boxes[b], scores[b], labels=labels[b], **kwargs)
            np.testing.assert_array_equal(got_indices[b], indices)
            np.testing.assert_array_equal(got_valid[b], valid)


def test_vmap_over_traced_thresholds():
    _, boxes, scores, _ = random_case(7)
    thresholds = jnp.array(IOU_THRESHOLDS, jnp.float32)
    indices, valid = jax.vmap(lambda t: jit_nms(boxes, scores, iou_threshold=t, max_outputs=N))(
        thresholds
    )
    for row, t in enumerate(IOU_THRESHOLDS):
        assert_matches(indices[row], valid[row], reference_nms(boxes, scores, t, N, -np.inf), N)


def test_max_outputs_truncates_in_score_order():
    # Ten disjoint boxes: nothing is suppressed, so the output is the top scores.
    x = np.arange(10, dtype=np.float32) * 10
    boxes = np.stack([x, x, x + 5, x + 5], axis=1)
    scores = np.array([3, 9, 1, 7, 5, 0, 8, 2, 6, 4], np.float32)
    assert_matches(*nms(boxes, scores, max_outputs=3), [1, 6, 3], 3)
    # More slots than boxes: every box, then padding.
    assert_matches(*nms(boxes, scores, max_outputs=13), list(np.argsort(-scores)), 13)
    assert_matches(*nms(boxes, scores, max_outputs=1), [1], 1)


def test_score_threshold_is_strict_and_excludes_nan():
    boxes = np.array([[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5], [6, 6, 7, 7]], np.float32)
    scores = np.array([0.5, 0.2, np.nan, 0.7], np.float32)
    assert_matches(*nms(boxes, scores, score_threshold=0.2, max_outputs=4), [3, 0], 4)
    assert_matches(*nms(boxes, scores, score_threshold=0.5, max_outputs=4), [3], 4)
    assert_matches(*nms(boxes, scores, max_outputs=4), [3, 0, 1], 4)
    # -inf marks a masked-out box even with the default threshold.
    scores[1] = -np.inf
    assert_matches(*nms(boxes, scores, max_outputs=4), [3, 0], 4)


def test_nothing_valid():
    boxes = np.array([[0, 0, 1, 1], [2, 2, 3, 3]], np.float32)
    scores = np.array([0.1, 0.2], np.float32)
    assert_matches(*nms(boxes, scores, score_threshold=0.9, max_outputs=5), [], 5)
    empty = nms(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), max_outputs=3)
    assert_matches(*empty, [], 3)


def test_all_suppressed_but_the_best():
    boxes = np.tile(np.array([[1, 2, 5, 7]], np.float32), (6, 1))
    boxes[1:, 2] += np.arange(5, dtype=np.float32) * 0.1  # still IoU > 0.9
    scores = np.array([0.1, 0.5, 0.3, 0.9, 0.2, 0.4], np.float32)
    assert_matches(*nms(boxes, scores, iou_threshold=0.9, max_outputs=4), [3], 4)
    # Threshold 1 suppresses nothing: IoU is never strictly greater than 1.
    got = nms(boxes, scores, iou_threshold=1.0, max_outputs=6)
    assert_matches(*got, [3, 1, 5, 2, 4, 0], 6)


def test_ties_keep_the_lower_index():
    boxes = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [5, 5, 6, 6], [5, 5, 6, 6]], np.float32)
    scores = np.array([0.5, 0.5, 0.5, 0.5], np.float32)
    assert_matches(*nms(boxes, scores, max_outputs=4), [0, 2], 4)


def test_per_class_is_exact_for_huge_coordinates():
    # Offsetting each class's boxes by ~1e15 would lose every coordinate below 1e8
    # to float32 rounding; the class mask does not care how large coordinates are.
    big = 1e15
    boxes = np.array([[0, 0, big, big], [0, 0, big, big], [0, 0, big, 0.9 * big]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    labels = np.array([0, 1, 1], np.int32)
    assert_matches(*nms(boxes, scores, labels=labels, max_outputs=3), [0, 1], 3)
    assert_matches(*nms(boxes, scores, labels=labels, per_class=False, max_outputs=3), [0], 3)
    assert_matches(*nms(boxes, scores, max_outputs=3), [0], 3)


def test_bfloat16_inputs():
    # Small integer coordinates are exact in bfloat16 and the IoUs (0.68, 0.14, 0)
    # sit far from the threshold, so bfloat16 arithmetic cannot change the answer.
    boxes = jnp.array([[0, 0, 10, 10], [1, 1, 11, 11], [8, 8, 18, 18], [30, 30, 40, 40]])
    scores = jnp.array([0.9, 0.8, 0.7, 0.6])
    for dtype in (jnp.bfloat16, jnp.float16):
        got = nms(boxes.astype(dtype), scores.astype(dtype), iou_threshold=0.5, max_outputs=4)
        assert_matches(*got, [0, 2, 3], 4)
        labels = jnp.array([0, 1, 0, 0], jnp.int32)
        got = nms(
            boxes.astype(dtype),
            scores.astype(dtype),
            labels=labels,
            iou_threshold=0.5,
            max_outputs=4,
        )
        assert_matches(*got, [0, 1, 2, 3], 4)


def test_no_recompilation():
    traces = []

    @functools.partial(jax.jit, static_argnames=("max_outputs",))
    def counted(boxes, scores, labels, iou_threshold, *, max_outputs):
        traces.append(1)  # runs only while tracing
        return nms(
            boxes, scores, labels=labels, iou_threshold=iou_threshold, max_outputs=max_outputs
        )

    first, second = random_case(0)[1:], random_case(1)[1:]
    with compilations("counted") as compiled:
        counted(*first, 0.5, max_outputs=8)
        counted(*second, 0.3, max_outputs=8)
    assert len(traces) == 1 and len(compiled) == 1


def test_gradients_through_gathered_boxes_are_finite():
    _, boxes, scores, _ = random_case(5)
    boxes[0] = [3, 3, 3, 3]  # degenerate, and a duplicate below
    boxes[1] = boxes[2]

    def loss(boxes, scores):
        indices, valid = nms(boxes, scores, max_outputs=8)
        kept = jnp.where(valid[:, None], boxes[indices], 0)
        return jnp.sum(kept) + jnp.sum(jnp.where(valid, scores[indices], 0))

    g_boxes, g_scores = jax.jit(jax.grad(loss, argnums=(0, 1)))(boxes, scores)
    assert bool(jnp.isfinite(g_boxes).all()) and bool(jnp.isfinite(g_scores).all())
    indices, valid = nms(boxes, scores, max_outputs=8)
    want = np.zeros(N, np.float32)
    want[np.asarray(indices)[np.asarray(valid)]] = 1
    np.testing.assert_array_equal(g_scores, want)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(boxes=np.zeros((3, 5), np.float32)), r"nms: expected boxes of shape \(\*, 4\)"),
        (dict(boxes=np.zeros((2, 3, 4), np.float32)), r"nms: expected boxes of shape \(\*, 4\)"),
        (dict(boxes=np.zeros((3, 4), np.int32)), r"nms: expected boxes with a floating dtype"),
        (dict(scores=np.zeros((4,), np.float32)), r"nms: expected scores of shape \(3\)"),
        (dict(scores=np.zeros((3, 1), np.float32)), r"nms: expected scores of shape \(3\)"),
        (dict(scores=np.zeros((3,), np.int32)), r"nms: expected scores with a floating dtype"),
        (dict(labels=np.zeros((2,), np.int32)), r"nms: expected labels of shape \(3\)"),
        (dict(labels=np.zeros((3,), np.float32)), r"nms: expected labels with an integer dtype"),
        (dict(max_outputs=0), r"nms: expected max_outputs to be a positive integer, got 0"),
        (dict(max_outputs=2.0), r"nms: expected max_outputs to be a positive integer"),
        (dict(iou_threshold=1.5), r"nms: expected iou_threshold in \[0.0, 1.0\], got 1.5"),
        (dict(iou_threshold=-0.1), r"nms: expected iou_threshold in \[0.0, 1.0\]"),
        (dict(iou_threshold=float("nan")), r"nms: expected iou_threshold in \[0.0, 1.0\]"),
        (dict(iou_threshold=np.ones(2)), r"nms: expected iou_threshold to be a scalar"),
    ],
)
def test_bad_inputs(kwargs, match):
    args = dict(boxes=np.zeros((3, 4), np.float32), scores=np.zeros((3,), np.float32))
    args.update(kwargs)
    boxes, scores = args.pop("boxes"), args.pop("scores")
    with pytest.raises(ValueError, match=match):
        nms(boxes, scores, **args)
    with pytest.raises(ValueError, match=match):  # at trace time, under jit too
        jax.jit(lambda b, s: nms(b, s, **args))(boxes, scores)


def test_batched_bad_inputs():
    boxes = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"nms_batched: expected boxes of shape \(\*, \*, 4\)"):
        nms_batched(boxes[0], np.zeros((3,), np.float32))
    with pytest.raises(ValueError, match=r"nms_batched: expected scores of shape \(2, 3\)"):
        nms_batched(boxes, np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"nms_batched: expected labels of shape \(2, 3\)"):
        nms_batched(boxes, np.zeros((2, 3), np.float32), labels=np.zeros((3,), np.int32))
