"""`build_experiment`: the one builder behind ``jaxheads train`` and the study runner."""

import jax
import numpy as np
import pytest

from jaxheads.train.detection import (
    DetectionExperiment,
    build_detector,
    build_experiment,
    detection_loss,
)

SMALL = {"batch_size": 8, "image_size": 32, "train_examples": 16, "val_examples": 8}


def _first_batch(task, start=0):
    batches = task.batches(start, 0, 1)
    try:
        return jax.device_get(next(iter(batches)))
    finally:
        close = getattr(batches, "close", None)
        if close:
            close()


def test_loss_options_reach_the_heads_loss():
    experiment = DetectionExperiment(
        model="small-yolov1-fc", loss_options={"lambda_coord": 1.0}, **SMALL
    )
    detector, task, _ = build_experiment(experiment, 0)
    _, plain, _ = build_experiment(DetectionExperiment(model="small-yolov1-fc", **SMALL), 0)
    params, state = task.init(jax.random.key(0))
    batch = _first_batch(task)
    args = (params, state, batch, jax.random.key(1), None, np.int32(5))
    want = detection_loss(detector, global_batch=8, lambda_coord=1.0)(*args)[0]
    assert float(task.loss_fn(*args)[0]) == float(want)
    assert float(plain.loss_fn(*args)[0]) != float(want)  # the default lambda_coord is 5


def test_data_seed_keeps_one_data_set_for_every_run_seed():
    kept = DetectionExperiment(data_seed=7, no_augment=True, **SMALL)
    _, _, val_a = build_experiment(kept, 0)
    _, _, val_b = build_experiment(kept, 1)
    np.testing.assert_array_equal(val_a.example(0)["image"], val_b.example(0)["image"])
    _, _, val_c = build_experiment(DetectionExperiment(no_augment=True, **SMALL), 1)
    assert not np.array_equal(val_a.example(0)["image"], val_c.example(0)["image"])


def test_train_sizes_draw_each_block_of_steps_at_one_size():
    experiment = DetectionExperiment(
        model="small-yolov2-passthrough", train_sizes=(32, 64), **SMALL
    )
    _, task, _ = build_experiment(experiment, 0)
    sizes = {
        start: {_first_batch(task, s)["image"].shape[1] for s in range(start, start + 3)}
        for start in range(0, 200, 10)
    }
    assert all(len(found) == 1 for found in sizes.values())  # one size per block of 10
    assert set().union(*sizes.values()) == {32, 64}
    with pytest.raises(ValueError, match="train_sizes without loader_processes"):
        build_experiment(DetectionExperiment(train_sizes=(32, 64), loader_processes=1), 0)


def test_a_model_by_keyword_arguments_or_builder():
    by_name, name_init = build_detector("small-yolov1-fc", image_size=64, num_classes=3)
    by_kwargs, init = build_detector({"head": "yolov1-fc"}, image_size=64, num_classes=3)
    assert by_kwargs.input_shape == by_name.input_shape
    shapes = [jax.tree.map(np.shape, f(jax.random.key(0))[0]) for f in (init, name_init)]
    assert shapes[0] == shapes[1]

    def builder(*, image_size, num_classes, train_data):
        assert train_data == "the training set"
        return by_kwargs

    assert (
        build_detector(builder, image_size=64, num_classes=3, train_data="the training set")[0]
        is by_kwargs
    )
    with pytest.raises(ValueError, match="build_detector: expected a model name, small_detector"):
        build_detector(3, image_size=64)


def test_a_recorded_experiment_reads_back_equal():
    """``config.json`` keeps ``train_sizes`` as a JSON list and the dicts as objects."""
    import dataclasses
    import json

    experiment = DetectionExperiment(
        data_seed=3, train_sizes=(32, 64), loss_options={"lambda_noobj": 0.1}, **SMALL
    )
    recorded = json.loads(json.dumps(dataclasses.asdict(experiment)))
    assert recorded["train_sizes"] == [32, 64]
    assert DetectionExperiment.from_extra(recorded) == experiment
