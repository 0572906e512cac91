"""Classification pre-training: the data, the classifier, the accuracy and warm starts."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_pretrain

from jaxheads.data.digits import DIGIT_NAMES, split_indices
from jaxheads.data.objects import OBJECT_NAMES, ObjectsDataset, classification_augment
from jaxheads.data.shapes import SHAPE_NAMES
from jaxheads.models import small_backbone, small_detector
from jaxheads.models.classifier import classifier
from jaxheads.train import freeze, warm_start
from jaxheads.train.classification import evaluate_classifier


def test_objects_are_deterministic_whole_and_labelled():
    ds = ObjectsDataset(40, image_size=48, seed=3)
    again = ObjectsDataset(40, image_size=48, seed=3)
    for i in range(0, 40, 7):
        a, b = ds.example(i), again.example(i)
        assert all(np.array_equal(a[k], b[k]) for k in a)
    labels = [int(ds.example(i)["label"]) for i in range(40)]
    assert all(lab < len(SHAPE_NAMES) for lab in labels[0::2])  # even: shapes
    assert all(lab >= len(SHAPE_NAMES) for lab in labels[1::2])  # odd: digits
    for i in range(0, 40, 2):
        box = ds.example(i)["boxes"][0]
        assert box[0] > 0 and box[1] > 0 and box[2] < 1 and box[3] < 1, (i, box)
    ex = ds.example(5)
    assert ex["image"].shape == (48, 48, 3) and ex["image"].dtype == np.float32
    assert ex["label"].shape == () and ex["labels"][0] == ex["label"] and ex["mask"][0]
    assert ds.num_classes == 15 and OBJECT_NAMES[5:] == DIGIT_NAMES
    assert not np.array_equal(ex["image"], ObjectsDataset(40, 48, 3, "val").example(5)["image"])


def test_validation_digits_are_unseen_handwriting():
    assert not set(split_indices("train")) & set(split_indices("val"))
    assert ObjectsDataset(2, split="val")._pool.tolist() == split_indices("val").tolist()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_examples": 0}, "num_examples"),
        ({"num_examples": 4, "image_size": 8}, "image_size >= 16"),
        ({"num_examples": 4, "split": "test"}, "split"),
    ],
)
def test_objects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ObjectsDataset(**kwargs)


def test_augmentation_keeps_the_label():
    ds = ObjectsDataset(4, image_size=32)
    ex = ds.example(1)
    out = classification_augment(ex, np.random.default_rng(0))
    assert out["label"] == ex["label"] and out["image"].shape == ex["image"].shape
    assert not np.array_equal(out["image"], ex["image"])


def test_classifier_runs_at_any_size_and_names_its_backbone_like_a_detector():
    model = classifier(small_backbone(), 15, image_size=64)
    _, params, state = model.layer.init(jax.random.key(0), model.input_shape)
    for size in (64, 96):
        logits, _ = model.layer.apply(params, state, jnp.zeros((2, size, size, 3)))
        assert logits.shape == (2, 15)
    det = small_detector("yolov2", image_size=96)
    _, dparams, _ = det.layer.init(jax.random.key(0), det.input_shape)
    backbone = [p for p in warm_start.flatten(dparams) if p.startswith("backbone/")]
    assert backbone and set(backbone) <= set(warm_start.flatten(params))
    with pytest.raises(ValueError, match="divisible by the backbone's stride 16"):
        classifier(small_backbone(), 15, image_size=40)


def test_evaluate_classifier_counts_top1_and_top5():
    ds = ObjectsDataset(7, image_size=32)
    labels = np.array([int(ds.example(i)["label"]) for i in range(7)])
    model = classifier(small_backbone(), 15, image_size=32)
    # Logits that rank the true class first for the first 3 images, 4th for the next 2,
    # 7th for the last 2.
    ranks = np.array([0, 0, 0, 3, 3, 6, 6])
    seen = iter(range(7))

    def classify(params, state, images):
        out = np.zeros((len(images), 15), np.float32)
        for row in range(len(images)):
            i = next(seen, None)
            if i is None:
                continue
            order = [c for c in range(15) if c != labels[i]]
            order.insert(ranks[i], labels[i])
            out[row, order] = np.arange(15, 0, -1)
        return out

    result = evaluate_classifier(model, None, None, ds, batch_size=4, classify=classify)
    assert result["images"] == 7
    assert result["top1"] == pytest.approx(3 / 7) and result["top5"] == pytest.approx(5 / 7)


def _weights(params, state=None):
    state = state or {}
    return warm_start.Weights(params, state, "test", warm_start.checksum(params, state))


def test_transfer_copies_by_name_and_names_the_first_mismatch():
    params = {
        "backbone": {"conv": {"kernel": np.zeros((3, 3, 3, 8))}},
        "head": {"kernel": np.zeros((8, 2))},
    }
    state = {"backbone": {"bn": {"mean": np.zeros(8)}}}
    source = {
        "backbone": {"conv": {"kernel": np.ones((3, 3, 3, 8))}},
        "classifier": {"kernel": np.ones((8, 15))},
    }
    new, new_state, report = warm_start.transfer(
        params, state, _weights(source, {"backbone": {"bn": {"mean": np.full(8, 2.0)}}})
    )
    assert np.all(new["backbone"]["conv"]["kernel"] == 1) and np.all(new["head"]["kernel"] == 0)
    assert np.all(new_state["backbone"]["bn"]["mean"] == 2)
    assert report == {"copied": ["backbone/conv", "backbone/bn"], "initialised": ["head"]}
    bad = {"backbone": {"conv": {"kernel": np.ones((3, 3, 3, 16))}}}
    with pytest.raises(ValueError, match=r"'backbone/conv'.*\(3, 3, 3, 8\).*\(3, 3, 3, 16\)"):
        warm_start.transfer(params, state, _weights(bad))
    half = {"backbone": {"conv": {"kernel": np.ones((3, 3, 3, 8)), "bias": np.ones(8)}}}
    with pytest.raises(ValueError, match=r"'backbone/conv'.*\['kernel'\].*\['bias', 'kernel'\]"):
        warm_start.transfer(params, state, _weights(half))
    with pytest.raises(ValueError, match="sharing layer names"):
        warm_start.transfer(params, state, _weights({"other": {"kernel": np.ones(2)}}))


def test_trainable_mask_freezes_the_first_layers():
    params = {"a": {"kernel": 1, "bias": 2}, "b": {"kernel": 3}, "c": {"kernel": 4}}
    assert freeze.layer_paths(params) == ["a", "b", "c"]
    mask = freeze.trainable_mask(params, 2)
    assert mask == {
        "a": {"kernel": False, "bias": False},
        "b": {"kernel": False},
        "c": {"kernel": True},
    }
    with pytest.raises(ValueError, match=r"0\.\.3"):
        freeze.trainable_mask(params, 4)


def test_checksum_sees_every_bit():
    a = {"k": np.arange(6, dtype=np.float32)}
    b = {"k": a["k"].copy()}
    assert warm_start.checksum(a, {}) == warm_start.checksum(b, {})
    b["k"].view(np.uint32)[3] ^= 1
    assert warm_start.checksum(a, {}) != warm_start.checksum(b, {})


@pytest.mark.slow
def test_pretrain_then_hires_then_detector_start_from_it(tmp_path, capsys):
    """docs/pretraining.md's three commands, tiny: each stage starts from the last's weights."""
    from jaxheads.cli import main
    from jaxheads.train.restore import restore_checkpoint
    from jaxheads.train.warm_start import with_init

    common = tiny_pretrain.ARGS
    low, high = str(tmp_path / "pre32"), str(tmp_path / "pre48")
    assert main(["pretrain", "--workdir", low, "--image-size", "32", *common]) == 0
    assert "top-1" in capsys.readouterr().out
    assert main(["pretrain", "--workdir", high, "--image-size", "48", "--init", low, *common]) == 0
    with open(os.path.join(high, "config.json")) as f:
        config = json.load(f)
    assert config["extra"]["init"]["path"].startswith(os.path.abspath(low))
    assert len(config["extra"]["init"]["sha256"]) == 64
    # A detector's init from the high-resolution classifier: its backbone, bitwise.
    _, _, pre_params, pre_state, _ = restore_checkpoint(high)
    from jaxheads.train.detection import build_detector, detection_task, make_dataset

    train = make_dataset("shapes", "train", image_size=64, num_examples=8)
    det, init = build_detector("small-yolov2", image_size=64, num_classes=3)
    det_task = detection_task(det, init, train, batch_size=4, seed=0)
    det_task, record = with_init(det_task, high)
    params, state = det_task.init(jax.random.key(5))
    flat, pre = warm_start.flatten(params), warm_start.flatten(pre_params)
    backbone = [p for p in flat if p.startswith("backbone/")]
    assert backbone and all(np.array_equal(flat[p], pre[p]) for p in backbone)
    assert record["layers_initialised"] and all(
        p.startswith("head") for p in record["layers_initialised"]
    )
    # The wrong backbone is refused by name, with both shapes.
    other = str(tmp_path / "nobn")
    assert (
        main(
            [
                "pretrain",
                "--workdir",
                other,
                "--image-size",
                "32",
                "--backbone",
                "small-nobn",
                "--init",
                low,
                *common,
            ]
        )
        == 2
    )
    assert "parameters ['bias', 'kernel']" in capsys.readouterr().err and not os.path.exists(
        os.path.join(other, "config.json")
    )


def test_init_from_a_partial_darknet_file(tmp_path):
    """``--init`` with darknet's ``partial`` of a file: those layers, bitwise; the rest fresh."""
    from jaxheads import darknet
    from jaxheads.cli import main
    from jaxheads.train.detection import build_detector, detection_task, make_dataset
    from jaxheads.train.warm_start import with_init

    full, part = str(tmp_path / "full.weights"), str(tmp_path / "part.weights")
    net = darknet.load("yolov2-tiny-voc", image_size=64, seed=7)  # 20 classes, as the cfg
    net.save_weights(full)
    assert main(["darknet", "partial", "yolov2-tiny-voc", full, part, "4"]) == 0
    train = make_dataset("shapes", "train", image_size=64, num_examples=8)
    det, init = build_detector("yolov2-tiny-voc", image_size=64, num_classes=3)
    task = detection_task(det, init, train, batch_size=8, seed=0)
    task, record = with_init(task, part, model="yolov2-tiny-voc", image_size=64, num_classes=3)
    params, _ = task.init(jax.random.key(1))
    fresh, _ = init(jax.random.key(1))
    loaded = [n for n in net.params if int(n.split("_")[0]) < 4]
    assert loaded == ["0_convolutional", "2_convolutional"]
    for name in net.params:
        if name in loaded:
            same = jax.tree.map(np.array_equal, params[name], net.params[name])
            assert all(jax.tree.leaves(same)), name
        else:
            assert all(jax.tree.leaves(jax.tree.map(np.array_equal, params[name], fresh[name]))), (
                name
            )
    copied = freeze.layer_paths({k: params[k] for k in loaded})
    assert record["layers_copied"] == len(copied) and "darknet, 4 layers" in record["path"]
    with pytest.raises(ValueError, match="a darknet model"):
        small, small_init = build_detector("small-yolov2", image_size=64, num_classes=3)
        with_init(
            detection_task(small, small_init, train, batch_size=8, seed=0),
            part,
            model="small-yolov2",
            image_size=64,
            num_classes=3,
        )
