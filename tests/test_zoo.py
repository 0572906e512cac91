"""The registry (`jaxheads.zoo`): one name per model, helpful errors, new entries by its rules."""

import math

import jax
import numpy as np
import pytest

from jaxheads import darknet, layers, zoo
from jaxheads.darknet.cfg import CFG_NAMES
from jaxheads.decode import decode_yolov1
from jaxheads.heads import Head
from jaxheads.heads.base import yolov1_head
from jaxheads.models import detector, small_backbone
from jaxheads.train.detection import build_detector, detection_task, make_dataset, model_names
from jaxheads.train.loop import RunConfig, fit


def test_every_packaged_darknet_model_is_registered_and_loads_by_name():
    assert set(darknet.MODELS) <= set(zoo.names("detector"))
    classifiers = set(zoo.names("backbone")) & set(CFG_NAMES)
    assert classifiers == {"darknet19", "darknet19_448", "extraction", "tiny"}
    assert {m.cfg for m in darknet.MODELS.values()} | classifiers == set(CFG_NAMES)
    # README's name for yolov1-paper-tiny.cfg: a raw FileNotFoundError before.
    net = darknet.load("fast-yolo", image_size=64, num_classes=3)
    by_cfg = darknet.load("yolov1-paper-tiny", image_size=64, num_classes=3)
    assert net.head.kind == "yolov1" and net.layers == by_cfg.layers
    for name, model in darknet.MODELS.items():
        entry = zoo.entry(name)
        assert (entry.kind, entry.head, entry.image_size) == (
            "detector",
            model.head,
            model.image_size,
        )


def test_training_asks_the_registry():
    assert model_names() == sorted(zoo.names("detector"))
    assert "small-backbone" not in model_names() and "gap-head" not in model_names()
    det, _ = build_detector("fast-yolo", image_size=64, num_classes=3)
    assert det.head.kind == "yolov1" and det.head.side == 7  # [detection] side=7, any image
    layer, shape = zoo.build("fast-yolo", image_size=64, num_classes=3)
    # The network as the cfg has it, and for training one more node in the loss's layout.
    assert shape == det.input_shape and [n.name for n in det.layer.nodes] == [layer.name, "cells"]


@pytest.mark.parametrize(
    "call, closest",
    [
        (lambda: zoo.build("yolov2-tinyvoc"), "yolov2-tiny-voc"),
        (lambda: build_detector("small-yolo2"), "small-yolov2"),
        (lambda: darknet.load("fast_yolo"), "fast-yolo"),
        (lambda: darknet.from_cfg("yolov2voc"), "yolov2-voc"),
    ],
)
def test_an_unknown_name_lists_the_known_and_suggests_the_closest(call, closest):
    with pytest.raises(
        ValueError,
        match=rf"expected .* in \[.*'{closest}'.*\].*did you mean "
        rf"'{closest}'\?",
    ):
        call()


def test_a_cfg_path_is_still_read_as_a_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        darknet.load(tmp_path / "missing.cfg")


def test_register_checks_and_the_builtin_registry_is_read_only():
    with pytest.raises(TypeError):
        zoo.BUILTIN["x"] = zoo.BUILTIN["gap-head"]
    mine = dict(zoo.BUILTIN)
    with pytest.raises(ValueError, match="a name not yet registered"):
        zoo.register(mine, zoo.BUILTIN["gap-head"])
    with pytest.raises(ValueError, match="a detector builder for a detector entry"):
        zoo.register(mine, zoo.Entry("x", "detector", "no detector", 96, "yolov1", print))


# --- docs/architecture.md, "A new head", steps 1-3, then two training steps. ----------------


def toy_head(*, side: int, num_classes: int) -> Head:
    """Step 1: a head from layers: one 1×1 convolution to one box per cell."""
    out = 5 + num_classes
    return yolov1_head(
        "toy_head", layers.Conv2D(out, 1, name="toy_head"), side, 1, num_classes, True
    )


def toy_detector(image_size=None, num_classes=None):
    """Step 2: the head on a backbone, as the registry's ``detector`` builder wants it."""
    image_size, num_classes = image_size or 32, num_classes or 3
    backbone = small_backbone(width=4)
    head = toy_head(side=image_size // backbone.stride, num_classes=num_classes)
    det = detector(backbone, head, image_size=image_size, name="toy")
    return det, jax.jit(lambda key: det.layer.init(key, det.input_shape)[1:])


def test_a_toy_head_added_through_the_registry_trains(tmp_path):
    # Step 3: a registry of one's own with the toy entry.
    registry = dict(zoo.BUILTIN)

    def build(image_size=None, num_classes=None):
        det, _ = toy_detector(image_size, num_classes)
        return det.layer, det.input_shape

    zoo.register(
        registry, zoo.Entry("toy", "detector", "a toy head", 32, "yolov1", build, toy_detector)
    )
    assert "toy" in zoo.names("detector", registry) and "toy" not in zoo.names()
    det, init = zoo.detector("toy", image_size=32, num_classes=3, registry=registry)
    assert det.head.decode.func is decode_yolov1
    train = make_dataset("shapes", "train", image_size=32, num_examples=16)
    task = detection_task(det, init, train, batch_size=4, seed=0, augment=False)
    result = fit(
        task,
        RunConfig(
            workdir=str(tmp_path),
            steps=2,
            num_devices=1,
            log_every=1,
            progress=False,
            checkpoint_every=2,
        ),
    )
    assert result["status"] == "completed" and result["step"] == 2
    assert math.isfinite(result["loss"])
    conv = result["params"]["head"]["kernel"]
    assert conv.shape == (1, 1, 64, 8) and np.all(np.isfinite(conv))
