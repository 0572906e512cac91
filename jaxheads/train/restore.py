"""A work directory read back into the run that wrote it: the one restore.

`restore_run` reads ``WORKDIR/config.json`` into the typed records a run is made
of, the `RunConfig` and its experiment (a `DetectionExperiment` for ``jaxheads
train`` and a study's rows, a `PretrainExperiment` for ``jaxheads pretrain``);
`build_run` turns them into the model and its `Task` as the run built them, and
`restore_checkpoint` adds the newest checkpoint's weights. ``--init WORKDIR``,
``jaxheads evaluate`` (`evaluate_run`), ``jaxheads export``, ``jaxheads detect
--workdir`` and a study's pre-trained stages all start here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import NamedTuple

from jaxheads._checks import fail
from jaxheads.train.detection import (
    DetectionExperiment,
    build_detector,
    build_experiment,
    evaluate,
)
from jaxheads.train.loop import RunConfig, Task, restore_params
from jaxheads.train.pretrain import PretrainExperiment, build_task

# The settings a work directory's ``extra`` must hold for its model to be rebuilt; the
# experiment's other fields take their defaults when absent (a study's rows record
# only what they change).
_REQUIRED = {
    DetectionExperiment: ("model", "dataset", "image_size"),
    PretrainExperiment: ("backbone", "image_size"),
}
_COMMAND = {DetectionExperiment: "jaxheads train", PretrainExperiment: "jaxheads pretrain"}


class RestoredRun(NamedTuple):
    """A work directory's run: how it trained and what it trained.

    Attributes:
      run: its `RunConfig`, ``workdir`` the directory it was read from (a moved
        directory is still the same run).
      experiment: a `DetectionExperiment` or a `PretrainExperiment`.
    """

    run: RunConfig
    experiment: DetectionExperiment | PretrainExperiment


def restore_run(
    workdir: str | os.PathLike, *, op: str = "restore_run", expect: type | None = None
) -> RestoredRun:
    """The run that wrote ``workdir``, from its ``config.json``; nothing is built.

    Args:
      workdir: a ``jaxheads train`` or ``jaxheads pretrain`` work directory (or a
        study's run).
      op: the name errors are raised under (the command's).
      expect: `DetectionExperiment` or `PretrainExperiment` to refuse the other kind of
        run; None takes either.

    Raises:
      ValueError: naming ``config.json``'s path: no such file, not JSON, not a run's
        settings (a key that is no `RunConfig` field, no ``extra`` object, a setting the
        experiment needs missing) or settings the records refuse.
    """
    workdir = os.fspath(workdir)
    path = os.path.join(workdir, "config.json")
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        fail(
            op, f"a jaxheads work directory with a readable {path}", f"{type(err).__name__}: {err}"
        )
    if not isinstance(saved, dict) or not isinstance(saved.get("extra"), dict):
        got = type(saved.get("extra")).__name__ if isinstance(saved, dict) else type(saved).__name__
        fail(op, f"a jaxheads run's settings with an 'extra' object in {path}", got)
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(saved) - fields)
    if unknown:
        fail(op, f"only RunConfig's fields in {path}", f"also {unknown}")
    extra = saved["extra"]
    kind = PretrainExperiment if extra.get("kind") == "pretrain" else DetectionExperiment
    if expect is not None and kind is not expect:
        fail(op, f"a {_COMMAND[expect]} run in {workdir}", f"a {_COMMAND[kind]} run")
    missing = [k for k in _REQUIRED[kind] if k not in extra]
    if missing:
        fail(op, f"a {kind.__name__}'s {list(_REQUIRED[kind])} in {path}'s extra", f"no {missing}")
    try:
        run = RunConfig(
            **{k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items()}
            | {"workdir": workdir}
        )
        experiment = kind.from_extra(extra)
    except (TypeError, ValueError) as err:
        fail(op, f"valid run settings in {path}", str(err))
    return RestoredRun(run, experiment)


def build_run(restored: RestoredRun):
    """``(model, task)`` of a restored run, built as the run built them.

    The model is the `jaxheads.models.Detector` of a detection run, the classifier of
    a pre-training run. A detection run on data on disk needs its data where
    ``config.json`` says.
    """
    experiment, seed = restored.experiment, restored.run.seed
    if isinstance(experiment, PretrainExperiment):
        return build_task(experiment, seed)
    detector, task, _ = build_experiment(experiment, seed)
    return detector, task


def restore_checkpoint(workdir: str | os.PathLike, *, op: str = "restore_run"):
    """``(restored, model, params, state, step)``: the run and its newest readable,
    verified checkpoint (nothing is moved or written).

    Raises:
      ValueError: as `restore_run`, or no readable checkpoint.
    """
    restored = restore_run(workdir, op=op)
    model, task = build_run(restored)
    params, state, step = restore_params(restored.run.workdir, task, restored.run, op=op)
    return restored, model, params, state, step


def restore_detector(restored: RestoredRun, *, num_classes: int, op: str = "restore_run"):
    """``(detector, params, state, step)`` of a restored detection run, without its data.

    The detector is rebuilt for ``num_classes`` classes (its data set's), so a run on
    data on disk restores where its data are not.

    Raises:
      ValueError: no readable checkpoint.
    """
    experiment = restored.experiment
    detector, init = build_detector(
        experiment.model, image_size=experiment.image_size, num_classes=num_classes
    )
    task = Task(init=init, loss_fn=None, batches=None, examples_per_batch=experiment.batch_size)
    params, state, step = restore_params(restored.run.workdir, task, restored.run, op=op)
    return detector, params, state, step


def evaluate_run(workdir: str | os.PathLike, *, val_examples: int | None = None):
    """``(experiment, step, result)``: VOC and COCO mAP of a detection run's newest
    checkpoint on its data set's validation split (`jaxheads.train.detection.evaluate`).

    Args:
      workdir: a ``jaxheads train`` work directory.
      val_examples: validation examples (None: the run's own).
    """
    op = "evaluate"
    restored = restore_run(workdir, op=op, expect=DetectionExperiment)
    experiment = restored.experiment
    if val_examples:
        experiment = dataclasses.replace(experiment, val_examples=val_examples)
    detector, task, val = build_experiment(experiment, restored.run.seed)
    params, state, step = restore_params(restored.run.workdir, task, restored.run, op=op)
    return experiment, step, evaluate(detector, params, state, val)


__all__ = [
    "RestoredRun",
    "build_run",
    "evaluate_run",
    "restore_checkpoint",
    "restore_detector",
    "restore_run",
]
