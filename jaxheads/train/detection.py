"""Detection training: models and datasets by name, the loss, and evaluation.

`build_detector` gives a `jaxheads.models.Detector` for every detector of the
registry (`jaxheads.zoo`): the small CPU models (``small-yolov2``, ...) and the
packaged darknet models (``yolov2-tiny``, ``fast-yolo``, ...). `detection_task`
turns a detector and a dataset into a `jaxheads.train.Task`; `build_experiment`
does both for a `DetectionExperiment`, the record ``jaxheads train`` keeps in its
work directory.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads._checks import fail
from jaxheads.detect import postprocess, to_numpy_list
from jaxheads.metrics import evaluate_detections
from jaxheads.models import Detector
from jaxheads.train.loop import Task


@dataclasses.dataclass(frozen=True)
class DetectionExperiment:
    """What a detection run trains and on what data (``config.json``'s ``extra``).

    Attributes:
      model: a trainable model (`model_names`): ``small-<head>`` or a darknet model. From
        Python also keyword arguments of `jaxheads.models.small_detector` or a builder
        (`build_detector`), as a study's rows give (a recorded run names a model).
      dataset: a data set of `jaxheads.zoo` (`jaxheads.zoo.dataset_names`).
      data_dir: the VOC root, or the COCO image directory.
      annotations: the COCO annotation json.
      batch_size: the global batch size.
      image_size: the square input side in pixels.
      bf16: bfloat16 compute, float32 params.
      no_augment: no training-data augmentation.
      train_examples: training examples (None: the data set's own, 20,000 for shapes
        and digits).
      val_examples: validation examples for the evaluation.
      loader_processes: worker processes that decode and augment the training images
        (`jaxheads.data.workers`; 0: threads of this process). The batches are the same bit
        for bit whatever the number, so a run may resume with another; for image files on
        a machine with spare cores (procedural data are cheaper drawn in-process, and a
        data set drawn on the device has nothing to load).
      augment_on_device: load the training images unaugmented and augment each batch on
        the device (`jaxheads.data.DeviceAugmentedBatches`).
      data_seed: the seed that draws the data sets (None: the run's seed). A study keeps
        one data set for every seed of its runs.
      train_sizes: multi-scale training (darknet's ``random=1``): every 10 steps the
        batch is drawn at one of these sides (`multiscale_batches`); empty: at
        ``image_size`` only.
      loss_options: keyword arguments of the head's loss beyond the head's own
        (`detection_loss`: ``{"lambda_coord": 1.0}``, ...).
    """

    model: str = "small-yolov2"
    dataset: str = "shapes"
    data_dir: str | None = None
    annotations: str | None = None
    batch_size: int = 32
    image_size: int = 96
    bf16: bool = False
    no_augment: bool = False
    train_examples: int | None = None
    val_examples: int = 256
    loader_processes: int = 0
    augment_on_device: bool = False
    data_seed: int | None = None
    train_sizes: tuple[int, ...] = ()
    loss_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_extra(cls, extra: dict) -> DetectionExperiment:
        """The experiment a work directory's ``extra`` records (its other keys ignored)."""
        found = {f.name: extra[f.name] for f in dataclasses.fields(cls) if f.name in extra}
        if "train_sizes" in found:  # a JSON list
            found["train_sizes"] = tuple(found["train_sizes"])
        return cls(**found)


def build_experiment(experiment: DetectionExperiment, seed: int):
    """``(detector, task, val)``; raises ValueError before anything is written."""
    from jaxheads import zoo

    processes = experiment.loader_processes
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 0:
        fail("build_experiment", "loader_processes to be an integer >= 0", repr(processes))
    if processes and zoo.dataset(experiment.dataset).on_device:
        fail(
            "build_experiment",
            f"loader_processes 0 for {experiment.dataset!r} (drawn on the device: nothing to load)",
            processes,
        )
    if experiment.augment_on_device and zoo.dataset(experiment.dataset).on_device:
        fail(
            "build_experiment",
            f"augment_on_device False for {experiment.dataset!r} (drawn and augmented on "
            "the device already)",
            True,
        )
    if experiment.augment_on_device and experiment.no_augment:
        fail("build_experiment", "augment_on_device without no_augment (nothing to augment)", True)
    if experiment.train_sizes and (processes or experiment.augment_on_device):
        fail(
            "build_experiment",
            "train_sizes without loader_processes or augment_on_device (multi-scale batches "
            "are drawn in this process)",
            experiment.train_sizes,
        )
    size = experiment.image_size
    train = experiment_dataset(experiment, "train", seed)
    val = experiment_dataset(experiment, "val", seed)
    detector, init = build_detector(
        experiment.model, image_size=size, num_classes=train.num_classes, train_data=train
    )
    augment = not experiment.no_augment
    task = detection_task(
        detector,
        init,
        train,
        batch_size=experiment.batch_size,
        seed=seed,
        augment=augment,
        val_data=val,
        compute_dtype=jnp.bfloat16 if experiment.bf16 else jnp.float32,
        loader_processes=processes,
        augment_on_device=experiment.augment_on_device,
        loss_options=experiment.loss_options,
    )
    if experiment.train_sizes:
        sets = {
            s: train if s == size else experiment_dataset(experiment, "train", seed, image_size=s)
            for s in experiment.train_sizes
        }
        batches = multiscale_batches(
            sets, batch_size=experiment.batch_size, seed=seed, augment=augment
        )
        task = dataclasses.replace(task, batches=batches)
    return detector, task, val


def experiment_dataset(
    experiment: DetectionExperiment, split: str, seed: int, *, image_size: int | None = None
):
    """The ``split`` (``"train"`` or ``"val"``) of ``experiment``'s data set for a run with
    ``seed`` (drawn with ``experiment.data_seed`` when set), at ``image_size`` (default:
    the experiment's)."""
    return make_dataset(
        experiment.dataset,
        split,
        image_size=image_size or experiment.image_size,
        num_examples=experiment.train_examples if split == "train" else experiment.val_examples,
        seed=seed if experiment.data_seed is None else experiment.data_seed,
        data_dir=experiment.data_dir,
        annotations=experiment.annotations,
    )


def multiscale_batches(
    datasets: Mapping[int, Any], *, batch_size: int, seed: int, augment: bool, every: int = 10
):
    """``Task.batches`` drawing each block of ``every`` steps at one size (darknet ``random=1``).

    The size of step ``k`` is a function of ``(seed, k // every)`` alone, so a resumed
    run sees the same batches.
    """
    sizes = sorted(datasets)

    def batches(start, process_index, process_count):
        sources = {
            s: ds.training_batches(
                batch_size,
                seed=seed,
                augment=augment,
                process_index=process_index,
                process_count=process_count,
            )
            for s, ds in datasets.items()
        }

        def generate():
            try:
                step = start
                while True:
                    pick = np.random.default_rng([seed, step // every]).integers(len(sizes))
                    yield sources[sizes[int(pick)]].load(step)
                    step += 1
            finally:
                for source in sources.values():
                    source.close()

        return generate()

    return batches


def model_names() -> list[str]:
    """The trainable models: the registry's detectors (`jaxheads.zoo`)."""
    from jaxheads import zoo

    return list(zoo.names("detector"))


def build_detector(
    model: str | Mapping[str, Any] | Callable[..., Detector],
    *,
    image_size: int | None = None,
    num_classes: int = 3,
    train_data=None,
) -> tuple[Detector, Callable]:
    """A trainable detector, and its ``init(key) -> (params, state)``.

    Args:
      model: a detector of `jaxheads.zoo` by name (`model_names`): ``small-<head>`` or a
        darknet model; or keyword arguments of `jaxheads.models.small_detector`
        (``{"head": "yolov1-fc", "batch_norm": False}``); or a builder
        ``(*, image_size, num_classes, train_data) -> Detector`` (e.g. one that fits its
        anchors to ``train_data``'s boxes).
      image_size: the square input side (the model's default when None; required by
        keyword arguments and builders).
      num_classes: classes of the dataset it will train on.
      train_data: the training set, for a builder.

    Raises:
      ValueError: an unknown name (the known ones listed, the closest suggested), or a
        model of another type.
    """
    from jaxheads import zoo

    if isinstance(model, str):
        return zoo.detector(
            model, image_size=image_size, num_classes=num_classes, op="build_detector"
        )
    if isinstance(model, Mapping):
        from jaxheads.models import small_detector

        det = small_detector(**model, image_size=image_size, num_classes=num_classes)
    elif callable(model):
        det = model(image_size=image_size, num_classes=num_classes, train_data=train_data)
    else:
        fail(
            "build_detector",
            "a model name, small_detector keyword arguments or a builder",
            type(model).__name__,
        )
    shape = det.input_shape
    return det, jax.jit(lambda key: det.layer.init(key, shape)[1:])


def make_dataset(
    name: str,
    split: str,
    *,
    image_size: int,
    num_examples: int | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    annotations: str | None = None,
    max_boxes: int | None = None,
):
    """A data set of `jaxheads.zoo` by name: ``shapes`` and ``digits`` (embedded), ``voc``
    and ``coco`` (on disk).

    Raises:
      ValueError: an unknown name (the known ones listed, the closest suggested), or a
        data set on disk without its files.
    """
    from jaxheads import zoo

    found = zoo.dataset(name, op="make_dataset")
    if num_examples is None:  # 0 is refused by the data set, not read as "the default"
        num_examples = 20_000 if split == "train" else 256
    return found.make(
        split,
        image_size=image_size,
        num_examples=num_examples,
        num_classes=num_classes,
        seed=seed,
        data_dir=data_dir,
        annotations=annotations,
        max_boxes=max_boxes,
    )


def detection_loss(
    detector: Detector, *, global_batch: int, compute_dtype=jnp.float32, **loss_options
) -> Callable:
    """``loss_fn(params, state, batch, key, axis_name, step)`` for the detector's head.

    The loss is the head's family's (``head.family.loss``). ``loss_options``: keyword
    arguments of the head's loss beyond the head's own
    (``lambda_coord=1.0`` for `jaxheads.losses.yolov1_loss`, ``noobject_scale`` for
    `jaxheads.losses.region_loss`, ...).
    """
    head = detector.head

    def loss_fn(params, state, batch, key, axis_name, step):
        images = batch["image"].astype(compute_dtype)
        raw, new_state = detector.layer.apply(
            params, state, images, train=True, key=key, axis_name=axis_name
        )
        raw = raw.astype(jnp.float32)
        gt = (batch["boxes"], batch["labels"], batch["mask"])
        seen = step.astype(jnp.float32) * global_batch
        per_image = head.family.loss(raw, *gt, seen=seen, **head.loss_kwargs(), **loss_options)
        return jnp.mean(per_image), (new_state, {})

    return loss_fn


def make_predict(
    detector: Detector,
    *,
    score_threshold: float = 0.005,
    iou_threshold: float = 0.45,
    max_detections: int = 100,
) -> Callable:
    """Jitted ``(params, state, images) -> Detections`` (inference mode)."""

    @jax.jit
    def predict(params, state, images):
        raw, _ = detector.layer.apply(params, state, images)
        boxes, scores = detector.head.decode(raw.astype(jnp.float32))
        return postprocess(
            boxes,
            scores,
            score_threshold=score_threshold,
            iou_threshold=iou_threshold,
            max_detections=max_detections,
        )

    return predict


def evaluate(
    detector: Detector,
    params,
    state,
    dataset,
    *,
    batch_size: int = 64,
    predict: Callable | None = None,
    keep_predictions: bool = False,
) -> dict:
    """VOC07, VOC2010 and COCO mAP of ``detector`` on ``dataset`` (boxes in pixels).

    Returns a flat dict (keys as `jaxheads.train.metric_table.METRICS`): ``mAP50``
    (VOC2010 all-point), ``mAP50_voc07``, ``recall`` (VOC2010 recall at IoU 0.5),
    ``mAP`` (COCO .50:.95), ``mAP50_coco``, ``mAP75``, ``mAP_small/medium/large``,
    ``per_class_ap50``; with ``keep_predictions`` also the raw lists. A metric with
    nothing to measure (a class, or a size of box, absent from ``dataset``) is None,
    so the dict is strict JSON.

    ``batch_size`` is capped at ``len(dataset)``: a smaller set is not padded with
    blank images to a full batch.
    """
    from jaxheads.data import Batches

    batch_size = min(batch_size, len(dataset))
    predict = predict or make_predict(detector)
    size = detector.input_shape[1:3]
    scale = (size[1], size[0])
    predictions, truths = [], []
    with Batches(
        dataset, batch_size, seed=0, shuffle=False, drop_remainder=False, num_epochs=1
    ) as batches:
        for batch in batches:
            dets = to_numpy_list(predict(params, state, batch["image"]), scale=scale)
            for i, valid in enumerate(batch["valid"]):
                if not valid:
                    continue
                mask = batch["mask"][i]
                truths.append(
                    {
                        "boxes": batch["boxes"][i][mask] * np.array([*scale, *scale], np.float32),
                        "labels": batch["labels"][i][mask],
                        "difficult": batch.get("difficult", np.zeros_like(batch["mask"]))[i][mask],
                    }
                )
                predictions.append(dets[i])
    n = dataset.num_classes
    voc10 = evaluate_detections(predictions, truths, protocol="voc2010", num_classes=n)
    voc07 = evaluate_detections(predictions, truths, protocol="voc07", num_classes=n)
    coco = evaluate_detections(predictions, truths, protocol="coco", num_classes=n)
    result = {
        "mAP50": voc10["mAP"],
        "mAP50_voc07": voc07["mAP"],
        "recall": voc10["recall"],
        "mAP": coco["mAP"],
        "mAP50_coco": coco["mAP50"],
        "mAP75": coco["mAP75"],
        "mAP_small": coco["mAP_small"],
        "mAP_medium": coco["mAP_medium"],
        "mAP_large": coco["mAP_large"],
        "per_class_ap50": {int(k): _number(v) for k, v in voc10["per_class_ap"].items()},
        "images": len(truths),
    }
    result = {k: (_number(v) if isinstance(v, float) else v) for k, v in result.items()}
    if keep_predictions:
        result["predictions"], result["ground_truths"] = predictions, truths
        result["pr_curves"] = voc10["pr_curves"]
    return result


def _number(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def detection_task(
    detector: Detector,
    init: Callable,
    train_data,
    *,
    batch_size: int,
    seed: int,
    augment: bool = True,
    val_data=None,
    eval_batch_size: int = 64,
    compute_dtype=jnp.float32,
    loader_processes: int = 0,
    augment_on_device: bool = False,
    loss_options: Mapping[str, Any] | None = None,
) -> Task:
    """A `Task`: the detector's loss on ``train_data``, evaluated on ``val_data``.

    ``loss_options``: keyword arguments of the head's loss (`detection_loss`).

    ``loader_processes`` > 0 loads the training batches in that many worker processes
    (`jaxheads.data.Batches`' ``processes``): the same batches, off this process.
    ``augment_on_device`` (with ``augment``) loads them unaugmented and augments them
    on the device (`jaxheads.data.device_pipeline.DeviceAugmentedBatches`).
    """
    loader = {"processes": loader_processes} if loader_processes else {}
    if detector.head.num_classes != train_data.num_classes:
        fail(
            "detection_task",
            f"a model with {train_data.num_classes} classes (the dataset's)",
            detector.head.num_classes,
        )

    def batches(start, process_index, process_count):
        where = {
            "start_step": start,
            "process_index": process_index,
            "process_count": process_count,
        }
        if augment and augment_on_device:
            from jaxheads.data.device_pipeline import DeviceAugmentedBatches

            return DeviceAugmentedBatches(train_data, batch_size, seed=seed, **where, **loader)
        return train_data.training_batches(
            batch_size, seed=seed, augment=augment, **where, **loader
        )

    predict = make_predict(detector)
    evaluate_fn = None
    if val_data is not None:

        def evaluate_fn(params, state):
            return evaluate(
                detector, params, state, val_data, batch_size=eval_batch_size, predict=predict
            )

    return Task(
        init=init,
        loss_fn=detection_loss(
            detector,
            global_batch=batch_size,
            compute_dtype=compute_dtype,
            **(loss_options or {}),
        ),
        batches=batches,
        examples_per_batch=batch_size,
        evaluate=evaluate_fn,
    )
