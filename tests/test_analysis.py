"""`jaxheads.study.analysis`: the loss terms' gradients and where a trained head's boxes land."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxheads.cli import main
from jaxheads.study import analysis
from jaxheads.train.detection import build_detector, make_dataset


def test_gradient_terms_add_up_to_the_loss_gradient():
    """The four per-term gradients of `jaxheads analyse gradients` are the whole loss's, split."""
    from jaxheads.data.pipeline import stack_examples
    from jaxheads.train.detection import detection_loss

    data = make_dataset("shapes", "train", image_size=64, num_examples=4)
    batch = stack_examples([data.example(i) for i in range(4)])
    batch = {k: batch[k] for k in ("image", "boxes", "labels", "mask")}
    det, init = build_detector("small-yolov1-fc", image_size=64, num_classes=data.num_classes)
    params, state = init(jax.random.key(0))
    key = jax.random.key(1)
    terms = analysis.term_grads(det, params, state, batch, key)
    assert len(terms) == 4
    loss_fn = detection_loss(det, global_batch=4, **analysis._PAPER)
    whole = jax.grad(
        lambda head: loss_fn({**params, "head": head}, state, batch, key, None, jnp.asarray(0))[0]
    )(params["head"])
    summed = jax.tree.map(lambda *g: sum(g), *terms.values())
    for a, b in zip(jax.tree.leaves(summed), jax.tree.leaves(whole), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    norms = analysis.term_gradients(det, params, state, batch, key)
    assert set(norms) == set(terms) and all(v > 0 for v in norms.values()), norms


def test_image_dependence_finds_the_cell_and_the_fit():
    # a 2×2 grid, one box per cell; image 0 has an object in cell 3 (bottom right),
    # image 1 one in cell 0 (top left) and a padded slot
    truth = np.array([[[0.6, 0.6, 0.9, 0.9], [0, 0, 0, 0]], [[0.1, 0.1, 0.3, 0.3], [0, 0, 0, 0]]])
    mask = np.array([[True, False], [True, False]])
    boxes = np.tile(np.array([[0.0, 0.0, 0.5, 0.5]]), (2, 4, 1))
    boxes[0, 3] = truth[0, 0]  # image 0: the right cell, the exact box
    scores = np.full((2, 4, 1), 0.1)
    scores[0, 3] = scores[1, 2] = 0.9  # image 1's best box sits in an empty cell
    got = analysis.image_dependence(boxes, scores, truth, mask, side=2, num_boxes=1)
    # object cells score 0.9 and 0.1, the six empty ones 0.1 (five) and 0.9 (one)
    auc = (1 * 5 + 0.5 * 1 + 0.5 * 5 + 0 * 1) / 12
    assert got == {"cell_auc": auc, "top_slots": 2, "cell_hit": 0.5, "iou": 0.5, "iou50": 0.5}
    scores[1, 2], scores[1, 0] = 0.1, 0.9  # now image 1's best is in its object's cell
    got = analysis.image_dependence(boxes, scores, truth, mask, side=2, num_boxes=1)
    assert got["cell_hit"] == 1.0 and got["iou"] == pytest.approx((1 + 0.04 / 0.25) / 2)
    assert got["cell_auc"] == 1.0


def test_image_dependence_names_the_class_in_each_objects_cell():
    # a 2×2 grid, two boxes per cell, two classes; image 0 has objects in cells 0 and 3,
    # image 1 one in cell 1 and a padded slot
    truth = np.array(
        [
            [[0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.9, 0.9]],
            [[0.6, 0.1, 0.9, 0.3], [0, 0, 0, 0]],
        ]
    )
    mask = np.array([[True, True], [True, False]])
    labels = np.array([[0, 1], [1, 0]])
    boxes = np.zeros((2, 8, 4))
    scores = np.full((2, 8, 2), 0.1)
    scores[0, 1] = [0.8, 0.2]  # cell 0, its second box: class 0, right
    scores[0, 6] = [0.7, 0.3]  # cell 3, its first box: class 0, wrong (the object is 1)
    scores[0, 7] = [0.1, 0.6]  # ... its second box says 1, but less sure than 0.7
    scores[1, 3] = [0.2, 0.9]  # cell 1: class 1, right; the padded slot is not counted
    got = analysis.image_dependence(boxes, scores, truth, mask, side=2, num_boxes=2, labels=labels)
    assert got["class_right"] == pytest.approx(2 / 3)
    assert "class_right" not in analysis.image_dependence(
        boxes, scores, truth, mask, side=2, num_boxes=2
    )


def test_object_cell_map_marks_each_objects_cell():
    truth = np.array([[[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.3, 0.3], [0.6, 0.6, 0.9, 0.9]]])
    got = analysis.object_cell_map(truth, np.array([[True, True, True]]), 2)
    assert got.tolist() == [[True, False, False, True]]
    got = analysis.object_cell_map(truth, np.array([[False, False, True]]), 2)
    assert got.tolist() == [[False, False, False, True]]


def test_gradients_table_gives_each_terms_spread_and_the_coordinate_share():
    terms = list(analysis.TERMS)
    norms = [dict(zip(terms, v, strict=True)) for v in ([3.0, 4.0, 0, 0], [5.0, 0, 0, 0])]
    rows = [
        {"model": "fc", "init": "scratch", "seed": seed, "norms": n} for seed, n in enumerate(norms)
    ] + [{"model": "fc", "init": "pre", "seed": 0, "norms": norms[1]}]
    text = analysis.gradients_table({"kind": "gradients", "terms": terms, "rows": rows})
    lines = text.splitlines()
    assert lines[0].startswith(f"| head | init | {terms[0]} | ")
    # coord 3 and 5: mean 4, sample std √2; its share of the squared norms 9/25 and 1
    assert lines[2] == "| fc | scratch | 4 ± 1.41 | 2 ± 2.83 | 0 ± 0 | 0 ± 0 | 68% ± 45% |"
    assert lines[3] == "| fc | pre | 5 | 0 | 0 | 0 | 100% |"
    assert lines[-1] == "Mean ± sample std over seeds 0, 1."


def test_analyse_gradients_refuses_a_study_without_one_pre_training_stage(tmp_path, capsys):
    """Checked before anything is read: yolov2_path pre-trains five backbones."""
    status = main(["analyse", "gradients", "--study", "yolov2_path", "--workdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert "one pre-training stage" in err and "'yolov2_path'" in err and "new_hires" in err


def test_analyse_refuses_an_unknown_study_by_name(tmp_path, capsys):
    status = main(["analyse", "dependence", "--study", "hedas", "--workdir", str(tmp_path)])
    assert status == 2
    assert "'hedas'" in capsys.readouterr().err


def test_analyse_is_a_command_with_its_defaults_shown(capsys):
    with pytest.raises(SystemExit):
        main(["analyse", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "{dependence,gradients}" in out
    assert "(default: runs/fc_head)" in out and "(default: fc_head)" in out
