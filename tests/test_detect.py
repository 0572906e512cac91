"""postprocess: candidates per (box, class), per-class NMS, padded static output."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxheads.boxes import pairwise_iou
from jaxheads.detect import postprocess, to_numpy_list


def _case():
    boxes = jnp.array([[[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.49], [0.5, 0.5, 1, 1]]], jnp.float32)
    scores = jnp.array([[[0.9, 0.1], [0.8, 0.7], [0.05, 0.6]]], jnp.float32)
    return boxes, scores


def test_multi_label_keeps_each_class_separately(maybe_jit):
    boxes, scores = _case()
    det = maybe_jit(lambda b, s: postprocess(b, s, max_detections=5))(boxes, scores)
    (out,) = to_numpy_list(det)
    # class 0: box 0 (.9) suppresses box 1 (.8); box 2 (.05) survives. class 1: .7 and .6.
    np.testing.assert_allclose(out["scores"], [0.9, 0.7, 0.6, 0.05])
    np.testing.assert_array_equal(out["labels"], [0, 1, 1, 0])
    assert det.valid.shape == (1, 5) and int(det.valid.sum()) == 4
    assert int(det.labels[0, 4]) == -1 and float(det.scores[0, 4]) == 0.0


def test_best_class_only_and_threshold():
    boxes, scores = _case()
    det = postprocess(boxes, scores, multi_label=False, score_threshold=0.5, max_detections=3)
    (out,) = to_numpy_list(det)
    np.testing.assert_array_equal(out["labels"], [0, 1])
    np.testing.assert_allclose(out["scores"], [0.9, 0.6])


def test_random_batch_invariants_and_scale():
    key = jax.random.key(0)
    k1, k2 = jax.random.split(key)
    centers = jax.random.uniform(k1, (4, 50, 2))
    boxes = jnp.concatenate([centers - 0.1, centers + 0.1], axis=-1)
    scores = jax.random.uniform(k2, (4, 50, 3))
    det = postprocess(boxes, scores, iou_threshold=0.3, max_detections=20)
    for img in to_numpy_list(det, scale=(100, 200)):
        assert np.all(np.diff(img["scores"]) <= 0)
        assert img["boxes"][:, 2].max() <= 110 and img["boxes"][:, 3].max() <= 220
        for c in range(3):
            same = img["boxes"][img["labels"] == c] / np.array([100, 200, 100, 200])
            iou = np.array(pairwise_iou(jnp.asarray(same), jnp.asarray(same)))
            np.fill_diagonal(iou, 0)
            assert iou.max(initial=0) <= 0.3 + 1e-6


def test_bad_input():
    with pytest.raises(ValueError, match="postprocess: expected boxes"):
        postprocess(jnp.zeros((1, 3, 4)), jnp.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match="postprocess: expected scores of rank 3"):
        postprocess(jnp.zeros((1, 3, 4)), jnp.zeros((3, 2)))


def test_nan_scores_do_not_push_real_detections_out_of_the_top_k():
    # 50 predictors whose scores are NaN, one real one; 10 candidates enter NMS.
    boxes = np.tile(np.array([[0.1, 0.1, 0.3, 0.3]], np.float32), (51, 1))
    boxes[50] = [0.5, 0.5, 0.9, 0.9]
    scores = np.full((51, 2), np.nan, np.float32)
    scores[50] = [0.1, 0.8]
    out = postprocess(
        jnp.asarray(boxes[None]), jnp.asarray(scores[None]), pre_nms_top_k=10, max_detections=5
    )
    assert out.valid[0].tolist() == [True, True, False, False, False]
    np.testing.assert_allclose(out.scores[0, :2], [0.8, 0.1])
    assert out.labels[0, :2].tolist() == [1, 0]
    np.testing.assert_allclose(out.boxes[0, 0], boxes[50])
    best_only = postprocess(
        jnp.asarray(boxes[None]), jnp.asarray(scores[None]), pre_nms_top_k=10, multi_label=False
    )
    assert int(best_only.valid[0].sum()) == 1 and float(best_only.scores[0, 0]) == np.float32(0.8)
