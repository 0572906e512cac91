"""Tests for `jaxheads.metrics.evaluate_detections`.

Parity oracles: pycocotools' COCOeval (built in memory) and a literal port of
py-faster-rcnn's ``voc_eval.py`` with the VOC devkit's match rule
(``map_references.py``), on randomized data sets;
plus hand-checked cases, empty inputs and bad inputs.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from map_references import coco_reference, random_dataset, voc_reference

from jaxheads.metrics import evaluate_detections

# ------------------------------------------------------------------ parity tests


@pytest.mark.parametrize(
    "seed, ignore_difficult",
    [(0, True), (1, True), (2, True), (3, False), (4, False)],
)
def test_coco_matches_pycocotools(seed, ignore_difficult):
    rng = np.random.default_rng(seed)
    num_classes = 4
    preds, gts = random_dataset(
        rng,
        40,
        num_classes,
        difficult_rate=0.15 if ignore_difficult else 0.0,
        crowded=(3, 17),
    )
    ours = evaluate_detections(preds, gts, protocol="coco", num_classes=num_classes)
    reference = coco_reference(preds, gts, num_classes, ignore_difficult=ignore_difficult)

    np.testing.assert_allclose(ours["coco_stats"], reference.stats, rtol=0, atol=1e-6)
    names = ["mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large"]
    for i, name in enumerate(names):
        expected = np.nan if reference.stats[i] == -1 else reference.stats[i]
        np.testing.assert_allclose(ours[name], expected, rtol=0, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(ours["recall"], reference.stats[8], rtol=0, atol=1e-6)
    for k in range(num_classes):
        precision = reference.eval["precision"][:, :, k, 0, 2]
        recall = reference.eval["recall"][:, k, 0, 2]
        defined = (precision > -1).all()
        expected_ap = precision.mean() if defined else np.nan
        expected_recall = recall.mean() if defined else np.nan
        np.testing.assert_allclose(ours["per_class_ap"][k], expected_ap, rtol=0, atol=1e-6)
        np.testing.assert_allclose(ours["per_class_recall"][k], expected_recall, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_matches_pycocotools_with_inverted_predicted_boxes(seed):
    # pycocotools gives a result box inverted along one axis a negative area, which every
    # area range leaves out (so it is never a false positive), and one inverted along both
    # a positive area; the IoU of either with anything is 0.
    rng = np.random.default_rng(seed)
    num_classes = 3
    preds, gts = random_dataset(rng, 30, num_classes, difficult_rate=0.0)
    for p in preds:
        boxes = np.array(p["boxes"], np.float64)
        flip_x = rng.random(len(boxes)) < 0.25
        flip_y = rng.random(len(boxes)) < 0.25
        boxes[flip_x] = boxes[flip_x][:, [2, 1, 0, 3]]
        boxes[flip_y] = boxes[flip_y][:, [0, 3, 2, 1]]
        p["boxes"] = boxes
    assert sum(int(np.sum(p["boxes"][:, 2] < p["boxes"][:, 0])) for p in preds) > 10
    ours = evaluate_detections(preds, gts, protocol="coco", num_classes=num_classes)
    reference = coco_reference(preds, gts, num_classes, ignore_difficult=False)
    np.testing.assert_allclose(ours["coco_stats"], reference.stats, rtol=0, atol=1e-6)


def test_coco_max_detections_cut_matters():
    """The crowded images' low-scoring detections past rank 100 must be dropped."""
    rng = np.random.default_rng(5)
    preds, gts = random_dataset(rng, 6, 2, difficult_rate=0.0, crowded=(0, 1, 2, 3, 4, 5))
    ours = evaluate_detections(preds, gts, protocol="coco", num_classes=2)
    reference = coco_reference(preds, gts, 2, ignore_difficult=False)
    np.testing.assert_allclose(ours["coco_stats"], reference.stats, rtol=0, atol=1e-6)
    # Rank 101+ detections of the crowded class, placed as perfect matches for every
    # gt, would change the result if they were kept.
    for p, g in zip(preds, gts, strict=True):
        p["boxes"] = np.concatenate([p["boxes"], g["boxes"]])
        p["labels"] = np.concatenate([p["labels"], g["labels"]])
        p["scores"] = np.concatenate([p["scores"], np.full(len(g["labels"]), -1.0)])
    cut = evaluate_detections(preds, gts, protocol="coco", num_classes=2)
    reference = coco_reference(preds, gts, 2, ignore_difficult=False)
    np.testing.assert_allclose(cut["coco_stats"], reference.stats, rtol=0, atol=1e-6)


@pytest.mark.parametrize("protocol", ["voc07", "voc2010"])
@pytest.mark.parametrize("pixel_convention", [False, True], ids=["continuous", "pixel"])
@pytest.mark.parametrize("seed", [10, 11])
def test_voc_matches_voc_eval_port(protocol, pixel_convention, seed):
    rng = np.random.default_rng(seed)
    num_classes = 5
    preds, gts = random_dataset(rng, 60, num_classes, difficult_rate=0.2)
    # Small boxes make the +1 convention matter.
    for record in (*preds, *gts):
        record["boxes"] = record["boxes"] / 8.0
    threshold = 0.5 if seed == 10 else 0.7
    ours = evaluate_detections(
        preds,
        gts,
        protocol=protocol,
        num_classes=num_classes,
        iou_threshold=threshold,
        pixel_convention=pixel_convention,
    )
    reference = voc_reference(
        preds,
        gts,
        num_classes,
        ovthresh=threshold,
        use_07_metric=protocol == "voc07",
        plus_one=1.0 if pixel_convention else 0.0,
    )
    aps = []
    for k, ref in reference.items():
        if ref is None:
            assert np.isnan(ours["per_class_ap"][k])
            assert k not in ours["pr_curves"]
            continue
        rec, prec, ap = ref
        aps.append(ap)
        np.testing.assert_allclose(ours["per_class_ap"][k], ap, rtol=0, atol=1e-6)
        np.testing.assert_allclose(ours["pr_curves"][k][0], rec, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours["pr_curves"][k][1], prec, rtol=0, atol=1e-12)
        final = rec[-1] if rec.size else 0.0
        np.testing.assert_allclose(ours["per_class_recall"][k], final, rtol=0, atol=1e-12)
    assert len(aps) >= 3
    np.testing.assert_allclose(ours["mAP"], np.mean(aps), rtol=0, atol=1e-6)


def test_pixel_convention_changes_the_result():
    """Guards the parity test above: both conventions must not agree by accident."""
    rng = np.random.default_rng(10)
    preds, gts = random_dataset(rng, 60, 5, difficult_rate=0.2)
    for record in (*preds, *gts):
        record["boxes"] = record["boxes"] / 8.0
    a = evaluate_detections(preds, gts, protocol="voc2010", pixel_convention=False)
    b = evaluate_detections(preds, gts, protocol="voc2010", pixel_convention=True)
    assert abs(a["mAP"] - b["mAP"]) > 1e-3


# ------------------------------------------------------------------ hand-checked


def _one_image(det_boxes, scores, gt_boxes, *, det_labels=None, gt_labels=None, difficult=None):
    n, m = len(det_boxes), len(gt_boxes)
    pred = {
        "boxes": np.asarray(det_boxes, dtype=np.float64).reshape(n, 4),
        "scores": np.asarray(scores, dtype=np.float64),
        "labels": np.asarray(det_labels if det_labels is not None else [0] * n, dtype=np.int64),
    }
    gt = {
        "boxes": np.asarray(gt_boxes, dtype=np.float64).reshape(m, 4),
        "labels": np.asarray(gt_labels if gt_labels is not None else [0] * m, dtype=np.int64),
    }
    if difficult is not None:
        gt["difficult"] = np.asarray(difficult, dtype=bool)
    return [pred], [gt]


A = [0.0, 0.0, 40.0, 40.0]
B = [100.0, 100.0, 140.0, 140.0]
FAR = [200.0, 200.0, 240.0, 240.0]


@pytest.mark.parametrize("protocol", ["voc07", "voc2010", "coco"])
def test_perfect_predictions_give_ap_one(protocol):
    preds, gts = _one_image([A, B, A], [0.9, 0.8, 0.7], [A, B, A], det_labels=[0, 0, 1])
    gts[0]["labels"] = np.array([0, 0, 1])
    result = evaluate_detections(preds, gts, protocol=protocol)
    # COCO's precision is tp / (tp + fp + eps), as in pycocotools.
    np.testing.assert_allclose(result["mAP"], 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(list(result["per_class_ap"].values()), [1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(result["recall"], 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "protocol, expected",
    [
        # Ranked TP, FP, TP on 2 gts: recall [.5, .5, 1], precision [1, .5, 2/3].
        # VOC2010: envelope [1, 2/3, 2/3]; AP = .5 * 1 + .5 * 2/3 = 5/6.
        ("voc2010", 5 / 6),
        # VOC07: t = 0, .1, .., .5 (6 points) see precision 1; t = .6, .., 1 (5) see 2/3.
        ("voc07", (6 * 1 + 5 * 2 / 3) / 11),
        # COCO (IoU 1, so every threshold agrees): recall thresholds 0, .01, .., .50 (51
        # points) see 1, the other 50 see 2/3: AP = (51 + 50 * 2/3) / 101 = 253/303.
        ("coco", 253 / 303),
    ],
)
def test_false_positive_between_true_positives(protocol, expected):
    preds, gts = _one_image([A, FAR, B], [0.9, 0.8, 0.7], [A, B])
    result = evaluate_detections(preds, gts, protocol=protocol)
    np.testing.assert_allclose(result["mAP"], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result["recall"], 1.0, rtol=0, atol=1e-12)


def test_false_positive_ranked_first_voc_curve():
    # FP (0.9) above TP (0.8), one gt: recall [0, 1], precision [0, .5]; the envelope
    # is .5 everywhere, so AP = .5 for both VOC variants.
    preds, gts = _one_image([FAR, A], [0.9, 0.8], [A])
    for protocol in ("voc07", "voc2010"):
        result = evaluate_detections(preds, gts, protocol=protocol)
        np.testing.assert_allclose(result["mAP"], 0.5, rtol=0, atol=1e-12)
        recall, precision = result["pr_curves"][0]
        np.testing.assert_allclose(recall, [0.0, 1.0])
        np.testing.assert_allclose(precision, [0.0, 0.5])


def test_voc_duplicate_on_a_taken_gt_is_a_false_positive():
    # Gts A and A' overlap. The second detection's best gt is A (IoU 9.5/10.5 = .905),
    # already taken, so voc_eval calls it a false positive although its IoU with the
    # free A' is 8.5/11.5 = .739 > .5. COCO instead matches it to A' at IoU <= .70.
    a, a2 = [0.0, 0.0, 10.0, 10.0], [2.0, 0.0, 12.0, 10.0]
    preds, gts = _one_image([a, [0.5, 0.0, 10.5, 10.0]], [0.9, 0.8], [a, a2])
    voc = evaluate_detections(preds, gts, protocol="voc2010")
    assert voc["recall"] == 0.5
    np.testing.assert_allclose(voc["mAP"], 0.5, rtol=0, atol=1e-12)
    coco = evaluate_detections(preds, gts, protocol="coco")
    np.testing.assert_allclose(coco["mAP50"], 1.0, rtol=0, atol=1e-12)
    assert coco["mAP75"] < 1.0


@pytest.mark.parametrize("protocol", ["voc07", "voc2010", "coco"])
def test_detection_on_a_difficult_gt_counts_neither_way(protocol):
    # The top detection hits the difficult gt: ignored, so the TP below is ranked first.
    preds, gts = _one_image([B, A], [0.9, 0.8], [A, B], difficult=[False, True])
    result = evaluate_detections(preds, gts, protocol=protocol)
    np.testing.assert_allclose(result["mAP"], 1.0, rtol=0, atol=1e-12)
    # A class whose only gts are difficult has no AP.
    preds, gts = _one_image([B], [0.9], [B], difficult=[True])
    result = evaluate_detections(preds, gts, protocol=protocol)
    assert np.isnan(result["mAP"]) and np.isnan(result["per_class_ap"][0])


def test_voc07_uses_the_devkit_thresholds():
    # 10 gts; ranked TP TP TP FP FP FP TP: recall .1 .2 .3 .3 .3 .3 .4, precision
    # 1 1 1 .75 .6 .5 4/7. The devkit port's third threshold is 0.30000000000000004
    # (np.arange), so recall .3 does not reach it: t = 0, .1, .2 see 1; t = .3, .4
    # see 4/7; AP = (3 + 2 * 4/7) / 11 = 29/77 (it would be 32/77 with t = .3 exactly).
    gt_boxes = [[50.0 * i, 0.0, 50.0 * i + 40.0, 40.0] for i in range(10)]
    det_boxes = [*gt_boxes[:3], FAR, FAR, FAR, gt_boxes[3]]
    preds, gts = _one_image(det_boxes, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3], gt_boxes)
    result = evaluate_detections(preds, gts, protocol="voc07")
    np.testing.assert_allclose(result["mAP"], 29 / 77, rtol=0, atol=1e-12)
    gts[0]["difficult"] = np.zeros(10, dtype=bool)
    reference = voc_reference(preds, gts, 1, use_07_metric=True, plus_one=0.0)
    np.testing.assert_allclose(reference[0][2], 29 / 77, rtol=0, atol=1e-12)


def test_voc_first_best_gt_wins_a_tie():
    # Two identical gts, the first difficult: voc_eval's argmax picks the first, so the
    # detection is ignored and the class (one non-difficult gt) has AP 0. Swapped: AP 1.
    for difficult, expected in (([True, False], 0.0), ([False, True], 1.0)):
        preds, gts = _one_image([A], [0.9], [A, A], difficult=difficult)
        assert evaluate_detections(preds, gts, protocol="voc2010")["mAP"] == expected
        reference = voc_reference(preds, gts, 1, plus_one=0.0)
        assert reference[0][2] == expected


def test_coco_prefers_a_non_ignored_gt():
    # The detection overlaps the difficult (ignored) gt best (IoU 1) and a normal gt at
    # IoU 40/48 = .83: pycocotools takes the normal one, a TP up to IoU threshold .80.
    near_a = [0.0, 0.0, 40.0, 48.0]
    preds, gts = _one_image([A], [0.9], [A, near_a], difficult=[True, False])
    result = evaluate_detections(preds, gts, protocol="coco")
    reference = coco_reference(preds, gts, 1, ignore_difficult=True)
    np.testing.assert_allclose(result["coco_stats"], reference.stats, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result["mAP50"], 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result["mAP"], 7 / 10, rtol=0, atol=1e-12)  # .50 .. .80


def _pixel_iou(a, b, plus_one):
    """IoU of two xyxy boxes as VOCevaldet.m computes it, in float64; 0 if apart."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + plus_one
    ih = min(a[3], b[3]) - max(a[1], b[1]) + plus_one
    if iw <= 0 or ih <= 0:
        return 0.0
    area = [(x[2] - x[0] + plus_one) * (x[3] - x[1] + plus_one) for x in (a, b)]
    return iw * ih / (area[0] + area[1] - iw * ih)


# Integer boxes at IoU exactly .5 in float64 (400 / 800 and 200 / 400), one inside the
# other and two side by side, in each convention: a box spans x_max - x_min pixels, or
# x_max - x_min + 1 with pixel_convention=True.
EXACT_HALF = {
    False: [([0, 0, 20, 20], [0, 0, 20, 40]), ([0, 0, 30, 10], [10, 0, 40, 10])],
    True: [([0, 0, 19, 19], [0, 0, 19, 39]), ([0, 0, 29, 9], [10, 0, 39, 9])],
}


@pytest.mark.parametrize("protocol", ["voc07", "voc2010"])
@pytest.mark.parametrize("pixel_convention", [False, True], ids=["continuous", "pixel"])
@pytest.mark.parametrize("pair", [0, 1], ids=["inside", "side-by-side"])
def test_voc_matches_at_iou_exactly_the_threshold(protocol, pixel_convention, pair):
    # The devkit's VOCevaldet.m matches at `ovmax>=VOCopts.minoverlap`; voc_eval.py's
    # `ovmax > ovthresh` would score this 0.
    det, gt = EXACT_HALF[pixel_convention][pair]
    assert _pixel_iou(det, gt, float(pixel_convention)) == 0.5
    preds, gts = _one_image([det], [0.9], [gt])
    kwargs = dict(protocol=protocol, pixel_convention=pixel_convention)
    result = evaluate_detections(preds, gts, **kwargs)
    assert result["mAP"] == 1.0 and result["recall"] == 1.0
    gts[0]["difficult"] = np.zeros(1, dtype=bool)
    plus_one = 1.0 if pixel_convention else 0.0
    reference = voc_reference(preds, gts, 1, use_07_metric=protocol == "voc07", plus_one=plus_one)
    # The port adds 1/11 eleven times: 1 + 2e-16.
    np.testing.assert_allclose(reference[0][2], 1.0, rtol=0, atol=1e-12)
    # One pixel more on the gt puts the IoU just under .5: no match.
    taller = [*gt[:3], gt[3] + 1]
    assert _pixel_iou(det, taller, plus_one) < 0.5
    preds, gts = _one_image([det], [0.9], [taller])
    assert evaluate_detections(preds, gts, **kwargs)["mAP"] == 0.0
    if not pixel_convention:  # pycocotools matches at IoU >= .5 too
        preds, gts = _one_image([det], [0.9], [gt])
        mAP50 = evaluate_detections(preds, gts, protocol="coco")["mAP50"]
        np.testing.assert_allclose(mAP50, 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("pixel_convention", [False, True], ids=["continuous", "pixel"])
def test_voc_threshold_zero_needs_an_overlap(pixel_convention):
    # VOCevaldet.m takes the overlap of intersecting boxes only (`if iw>0 & ih>0`): at
    # threshold 0 a detection that touches no gt is still a false positive.
    gap = 1.0 if pixel_convention else 0.0  # boxes that share an edge in the continuous
    apart = [40.0 + gap, 0.0, 80.0, 40.0]  # convention, the next column in the pixel one
    overlapping = [39.0, 0.0, 80.0, 40.0]
    for det, expected in ((apart, 0.0), (overlapping, 1.0)):
        preds, gts = _one_image([det], [0.9], [A])
        result = evaluate_detections(
            preds, gts, protocol="voc2010", iou_threshold=0.0, pixel_convention=pixel_convention
        )
        assert result["mAP"] == expected
        gts[0]["difficult"] = np.zeros(1, dtype=bool)
        reference = voc_reference(preds, gts, 1, ovthresh=0.0, plus_one=float(pixel_convention))
        assert reference[0][2] == expected


@pytest.mark.parametrize("protocol", ["voc07", "voc2010"])
@pytest.mark.parametrize("seed", [20, 21])
def test_voc_matches_the_port_on_integer_pixel_boxes(protocol, seed):
    """Integer boxes in the pixel convention, where IoU ties the threshold exactly."""
    rng = np.random.default_rng(seed)
    num_classes = 3
    preds, gts = random_dataset(rng, 80, num_classes, difficult_rate=0.2)
    for record in (*preds, *gts):
        record["boxes"] = np.round(record["boxes"] / 16.0)
    ties = sum(
        _pixel_iou(d, g, 1.0) == 0.5
        for p, g_ in zip(preds, gts, strict=True)
        for d in p["boxes"]
        for g in g_["boxes"]
    )
    assert ties >= 3, ties
    ours = evaluate_detections(
        preds, gts, protocol=protocol, num_classes=num_classes, pixel_convention=True
    )
    reference = voc_reference(preds, gts, num_classes, use_07_metric=protocol == "voc07")
    aps = [ref[2] for ref in reference.values() if ref is not None]
    for k, ref in reference.items():
        if ref is not None:
            np.testing.assert_allclose(ours["per_class_ap"][k], ref[2], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["mAP"], np.mean(aps), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------- empties


@pytest.mark.parametrize("protocol", ["voc07", "voc2010", "coco"])
def test_empty_inputs(protocol):
    result = evaluate_detections([], [], protocol=protocol)
    assert np.isnan(result["mAP"]) and result["per_class_ap"] == {}

    # Gts but no detections: AP 0, recall 0.
    no_dets = [{"boxes": [], "scores": [], "labels": []}, {"boxes": [], "scores": [], "labels": []}]
    gts = [{"boxes": [A], "labels": [1]}, {"boxes": np.zeros((0, 4)), "labels": []}]
    result = evaluate_detections(no_dets, gts, protocol=protocol)
    assert result["mAP"] == 0.0 and result["per_class_ap"] == {1: 0.0}
    assert result["recall"] == 0.0

    # Detections but no gts: no class has an AP.
    dets = [{"boxes": [A], "scores": [0.5], "labels": [2]}]
    result = evaluate_detections(dets, [{"boxes": [], "labels": []}], protocol=protocol)
    assert np.isnan(result["mAP"]) and np.isnan(result["per_class_ap"][2])


@pytest.mark.parametrize("protocol", ["voc07", "voc2010", "coco"])
def test_class_without_gts_is_left_out_of_the_mean(protocol):
    preds, gts = _one_image([A, B], [0.9, 0.8], [A], det_labels=[0, 1])
    result = evaluate_detections(preds, gts, protocol=protocol, num_classes=3)
    assert set(result["per_class_ap"]) == {0, 1, 2}
    assert np.isnan(result["per_class_ap"][1]) and np.isnan(result["per_class_ap"][2])
    np.testing.assert_allclose(result["mAP"], 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("protocol", ["voc2010", "coco"])
def test_inverted_and_degenerate_boxes_have_iou_zero(protocol):
    # An inverted detection (x2 < x1) over the gt, and a zero-area pair.
    inverted = [40.0, 40.0, 0.0, 0.0]
    preds, gts = _one_image([inverted], [0.9], [A])
    assert evaluate_detections(preds, gts, protocol=protocol)["mAP"] == 0.0
    point = [5.0, 5.0, 5.0, 5.0]
    preds, gts = _one_image([point], [0.9], [point])
    assert evaluate_detections(preds, gts, protocol=protocol)["mAP"] == 0.0


def test_degenerate_box_is_one_pixel_in_the_pixel_convention():
    point = [5.0, 5.0, 5.0, 5.0]
    preds, gts = _one_image([point], [0.9], [point])
    result = evaluate_detections(preds, gts, protocol="voc2010", pixel_convention=True)
    assert result["mAP"] == 1.0


def test_jax_arrays_and_lists_agree_with_numpy():
    rng = np.random.default_rng(7)
    preds, gts = random_dataset(rng, 8, 3)
    as_jax = [{k: jnp.asarray(v) for k, v in p.items()} for p in preds]
    as_lists = [{k: np.asarray(v).tolist() for k, v in g.items()} for g in gts]
    # jax arrays are float32 here: compare with the same float32 values in numpy.
    as_f32 = [
        {k: np.asarray(v, np.float32) if k != "labels" else v for k, v in p.items()} for p in preds
    ]
    for protocol in ("voc07", "coco"):
        expected = evaluate_detections(as_f32, gts, protocol=protocol)
        got = evaluate_detections(as_jax, as_lists, protocol=protocol)
        assert got["per_class_ap"] == expected["per_class_ap"]


def test_coco_area_field_sets_the_size_range():
    # A 40x40 box (area 1600, medium) declared with a mask area of 500 (small).
    preds, gts = _one_image([A], [0.9], [A])
    plain = evaluate_detections(preds, gts, protocol="coco")
    assert np.isnan(plain["mAP_small"]) and plain["mAP_medium"] > 0.99
    gts[0]["area"] = np.array([500.0])
    declared = evaluate_detections(preds, gts, protocol="coco")
    assert declared["mAP_small"] > 0.99 and np.isnan(declared["mAP_medium"])


# -------------------------------------------------------------------- bad inputs


def _good():
    preds = [
        {"boxes": np.array([A, B]), "scores": np.array([0.9, 0.8]), "labels": np.array([0, 1])}
        for _ in range(3)
    ]
    gts = [{"boxes": np.array([A]), "labels": np.array([0])} for _ in range(3)]
    return preds, gts


def _set(which, i, key, value):
    def edit(preds, gts):
        (preds if which == "p" else gts)[i][key] = value

    return edit


def _delete(i, key):
    def edit(preds, gts):
        del preds[i][key]

    return edit


@pytest.mark.parametrize(
    "edit, kwargs, match",
    [
        (lambda p, g: g.pop(), {}, r"same length .* 3 predictions and 2 ground truths"),
        (
            _set("p", 1, "labels", np.array([0, 3])),
            {"num_classes": 3},
            r"predictions\[1\]\['labels'\] < num_classes=3, got label 3",
        ),
        (
            _set("g", 2, "labels", np.array([-1])),
            {},
            r"ground_truths\[2\]\['labels'\] with non-negative",
        ),
        (
            _set("p", 0, "boxes", np.zeros((2, 5))),
            {},
            r"predictions\[0\]\['boxes'\] of shape \(N, 4\).*got shape \(2, 5\)",
        ),
        (
            _set("g", 1, "boxes", np.zeros(4)),
            {},
            r"ground_truths\[1\]\['boxes'\] of shape \(N, 4\)",
        ),
        (
            _set("p", 2, "scores", np.array([0.1])),
            {},
            r"predictions\[2\]\['scores'\] of shape \(2,\)",
        ),
        (
            _set("g", 0, "difficult", np.array([False, True])),
            {},
            r"ground_truths\[0\]\['difficult'\] of shape \(1,\)",
        ),
        (
            _set("p", 1, "scores", np.array([0.1, np.nan])),
            {},
            r"predictions\[1\]\['scores'\] with no NaN",
        ),
        (
            _set("p", 0, "boxes", np.array([A, [0, 0, np.inf, 1]])),
            {},
            r"predictions\[0\]\['boxes'\] with finite",
        ),
        (
            _set("p", 0, "labels", np.array([0.0, 1.0])),
            {},
            r"predictions\[0\]\['labels'\] of an integer dtype",
        ),
        (
            _set("g", 1, "difficult", np.array([2])),
            {},
            r"ground_truths\[1\]\['difficult'\] with bools",
        ),
        (_delete(1, "scores"), {}, r"predictions\[1\] to have a 'scores' entry"),
        (lambda p, g: None, {"protocol": "voc12"}, r"protocol in"),
        (lambda p, g: None, {"protocol": "coco", "iou_threshold": 0.5}, r"no iou_threshold"),
        (lambda p, g: None, {"num_classes": 0}, r"num_classes to be a positive integer"),
    ],
)
def test_bad_inputs_raise(edit, kwargs, match):
    preds, gts = _good()
    edit(preds, gts)
    with pytest.raises(ValueError, match=r"^evaluate_detections: expected " + ".*" + match):
        evaluate_detections(preds, gts, **kwargs)
