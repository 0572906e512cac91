"""Tests for `jaxheads.anchors`: YOLOv2 dimension clusters."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxheads import anchors as A
from jaxheads.boxes import shape_iou

# Three well-separated shapes (small square, wide, tall and large), in pixels.
CENTRES = np.array([[12.0, 10.0], [90.0, 30.0], [80.0, 220.0]])


def three_clusters(seed=0, per_cluster=100, spread=0.08):
    """Boxes scattered multiplicatively (log-normal) around `CENTRES`."""
    rng = np.random.default_rng(seed)
    noise = np.exp(rng.normal(0.0, spread, (len(CENTRES), per_cluster, 2)))
    return (CENTRES[:, None, :] * noise).reshape(-1, 2)


def test_recovers_three_clusters():
    wh = three_clusters()
    anchors = A.kmeans_anchors(wh, 3)
    assert anchors.shape == (3, 2) and anchors.dtype == np.float64
    # Sorted by area, which here is the order of CENTRES.
    np.testing.assert_allclose(anchors, CENTRES, rtol=0.03)
    # The centroid of each cluster is the mean of its boxes (the paper's update).
    groups = wh.reshape(len(CENTRES), -1, 2)
    np.testing.assert_allclose(anchors, groups.mean(axis=1), rtol=1e-12)


def test_accepts_jax_and_integer_input():
    wh = np.round(three_clusters(seed=1))
    want = A.kmeans_anchors(wh, 3)
    np.testing.assert_array_equal(A.kmeans_anchors(jnp.asarray(wh, jnp.float32), 3), want)
    np.testing.assert_array_equal(A.kmeans_anchors(wh.astype(np.int32), 3), want)


def test_anchors_sorted_by_area():
    wh = np.random.default_rng(0).lognormal(3.0, 0.8, (500, 2))
    anchors = A.kmeans_anchors(wh, 6, seed=2)
    areas = anchors.prod(axis=1)
    assert np.all(np.diff(areas) >= 0)


def test_beats_random_and_hand_picked_anchors():
    # A broad, YOLO-like spread of shapes, rather than separated clusters.
    rng = np.random.default_rng(3)
    wh = rng.lognormal(3.5, 0.7, (1000, 2)) * np.array([1.0, 1.3])
    k = 5
    learned = A.mean_best_iou(wh, A.kmeans_anchors(wh, k))
    for seed in range(5):
        random_boxes = wh[np.random.default_rng(seed).choice(len(wh), k, replace=False)]
        assert learned >= A.mean_best_iou(wh, random_boxes)
    # Faster R-CNN style: three scales times aspect ratios 1:2, 1:1, 2:1 (9 anchors, as
    # in YOLOv2 Table 1, where 5 clusters already match them).
    scale = np.median(np.sqrt(wh.prod(axis=1)))
    hand = np.array(
        [[s * r**0.5, s / r**0.5] for s in scale * np.array([0.5, 1, 2]) for r in (0.5, 1, 2)]
    )
    assert learned >= A.mean_best_iou(wh, hand[[1, 3, 4, 5, 7]])  # 5 of them, fair count
    assert A.mean_best_iou(wh, A.kmeans_anchors(wh, 9)) >= A.mean_best_iou(wh, hand)


def test_deterministic_per_seed():
    wh = np.random.default_rng(4).lognormal(3.0, 0.8, (300, 2))
    first = A.kmeans_anchors(wh, 5, seed=7)
    np.testing.assert_array_equal(first, A.kmeans_anchors(wh, 5, seed=7))
    assert not np.array_equal(first, A.kmeans_anchors(wh, 5, seed=8))


def test_empty_clusters_are_reseeded(monkeypatch):
    # Seeding every centroid on the same box leaves all clusters but one empty at the
    # first assignment; re-seeding at the farthest boxes must still find the clusters.
    monkeypatch.setattr(A, "_kmeans_pp_init", lambda wh, k, rng: np.zeros(k, int))
    anchors = A.kmeans_anchors(three_clusters(), 3)
    np.testing.assert_allclose(anchors, CENTRES, rtol=0.03)


def test_k_equal_to_distinct_boxes_returns_them():
    wh = np.array([[5.0, 1.0], [1.0, 3.0], [5.0, 1.0], [2.0, 2.0], [1.0, 3.0]])
    anchors = A.kmeans_anchors(wh, 3)
    np.testing.assert_array_equal(anchors, [[1.0, 3.0], [2.0, 2.0], [5.0, 1.0]])
    assert A.mean_best_iou(wh, anchors) == 1.0


def test_max_iters_bounds_the_work():
    wh = np.random.default_rng(5).lognormal(3.0, 0.8, (300, 2))
    one = A.kmeans_anchors(wh, 4, max_iters=1)
    assert one.shape == (4, 2)
    assert A.mean_best_iou(wh, A.kmeans_anchors(wh, 4)) >= A.mean_best_iou(wh, one)


def test_mean_best_iou_closed_form():
    wh = np.array([[2.0, 2.0], [4.0, 1.0], [1.0, 1.0]])
    anchors = np.array([[2.0, 2.0]])
    # IoUs with a 2x2 anchor sharing the centre: 1, 2 / (4 + 4 - 2), 1 / 4.
    np.testing.assert_allclose(A.mean_best_iou(wh, anchors), (1 + 1 / 3 + 1 / 4) / 3, rtol=1e-6)
    want = np.asarray(shape_iou(wh[:, None, :], anchors[None, :, :])).max(axis=1).mean()
    assert isinstance(A.mean_best_iou(wh, anchors), float)
    np.testing.assert_allclose(A.mean_best_iou(wh, anchors), want, rtol=1e-7)


@pytest.mark.parametrize(
    ("wh", "k", "kwargs", "match"),
    [
        (np.ones((4, 3)), 2, {}, r"kmeans_anchors: expected wh of shape \(\*, 2\)"),
        (np.ones(4), 2, {}, r"kmeans_anchors: expected wh of shape \(\*, 2\)"),
        (np.zeros((0, 2)), 1, {}, r"kmeans_anchors: expected at least one row in wh"),
        ([[1.0, 2.0], [0.0, 1.0]], 1, {}, r"expected positive widths and heights in wh"),
        ([[1.0, 2.0], [3.0, -1.0]], 1, {}, r"expected positive widths and heights in wh"),
        ([[1.0, np.nan], [3.0, 1.0]], 1, {}, r"kmeans_anchors: expected finite wh"),
        (np.array([[True, True]]), 1, {}, r"kmeans_anchors: expected wh with a real dtype"),
        ([[1.0, 2.0], [2.0, 1.0], [1.0, 2.0]], 3, {}, r"k <= the number of distinct boxes \(2\)"),
        ([[1.0, 2.0]], 0, {}, r"kmeans_anchors: expected k to be a positive integer, got 0"),
        ([[1.0, 2.0]], 1.0, {}, r"kmeans_anchors: expected k to be a positive integer"),
        ([[1.0, 2.0]], 1, {"max_iters": 0}, r"expected max_iters to be a positive integer"),
    ],
)
def test_kmeans_errors(wh, k, kwargs, match):
    with pytest.raises(ValueError, match=match):
        A.kmeans_anchors(wh, k, **kwargs)


def test_mean_best_iou_errors():
    with pytest.raises(ValueError, match=r"mean_best_iou: expected anchors of shape \(\*, 2\)"):
        A.mean_best_iou(np.ones((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match=r"mean_best_iou: expected positive widths and heights"):
        A.mean_best_iou(np.ones((3, 2)), np.zeros((1, 2)))
