"""A study's pre-training stages: each a ``jaxheads pretrain`` run in ``WORKDIR/pretrain/<label>``.

A stage trains once and leaves ``result.json`` (its top-1/top-5 on the held-out
objects and the checksum of its weights); running the study again finds it and
skips the stage when nothing that made it has changed. An interrupted stage
resumes from its newest checkpoint, as every run does (`jaxheads.train.fit`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from jaxheads.study.config import Pretraining, StudyConfig, describe
from jaxheads.study.records import write_json


def stage_dir(workdir: str, label: str) -> str:
    """The work directory of the stage called ``label``."""
    return os.path.join(workdir, "pretrain", label)


def _stage_run(
    stage: Pretraining, rundir: str, init: dict | None, progress: bool, tensorboard: bool | None
):
    """``(model, task, RunConfig)`` of ``stage``: the ``jaxheads pretrain`` run it is."""
    from jaxheads.train.loop import RunConfig
    from jaxheads.train.pretrain import PretrainExperiment, build_task

    experiment = PretrainExperiment(
        backbone=stage.backbone,
        image_size=stage.image_size,
        batch_size=stage.batch_size,
        train_examples=stage.train_examples,
        val_examples=stage.val_examples,
    )
    extra: dict[str, Any] = experiment.extra()
    if init is not None:
        extra["init"] = init
    model, task = build_task(experiment, stage.seed)
    run = RunConfig(
        workdir=rundir,
        steps=stage.steps,
        seed=stage.seed,
        optimizer="adam",
        learning_rate=stage.learning_rate,
        policy="cosine",
        burn_in=min(stage.burn_in, stage.steps // 10),
        checkpoint_every=max(1, min(250, stage.steps)),
        log_every=10,
        eval_every=stage.steps,
        progress=progress,
        tensorboard=tensorboard,
        extra=extra,
    )
    return model, task, run


def _before(stage: Pretraining, model, task) -> dict:
    """The start weights' top-1/top-5 on this stage's held-out images, before its training.

    For a stage that starts from another at a different size (YOLOv2's hi-res
    classifier): what the fine-tune starts from at the size it trains for.
    """
    import jax

    from jaxheads.data.objects import ObjectsDataset
    from jaxheads.train.classification import evaluate_classifier

    params, state = task.init(jax.random.key(stage.seed))
    val = ObjectsDataset(
        stage.val_examples, image_size=stage.image_size, seed=stage.seed, split="val"
    )
    result = evaluate_classifier(model, params, state, val)
    return {"top1_before": float(result["top1"]), "top5_before": float(result["top5"])}


def run_stage(
    stage: Pretraining, workdir: str, *, progress: bool = True, tensorboard: bool | None = None
) -> dict:
    """Trains (or finds) one pre-training stage; returns its record.

    ``tensorboard``: `jaxheads.train.RunConfig.tensorboard` (None: when tensorboardX is
    installed); like ``progress``, it changes nothing the stage computes.

    The record: ``{"label", "backbone", "image_size", "steps", "init_from", "top1",
    "top5", "loss", "images", "sha256", "dir", "skipped"}`` (``sha256``: of the weights,
    `jaxheads.train.warm_start.checksum`; ``dir`` relative to ``workdir``); a stage
    that starts from another adds ``top1_before`` and ``top5_before``, its start
    weights on its own held-out images (a record stored without them gets them when
    the stage is found again).

    Raises:
      KeyboardInterrupt: the run was interrupted (its checkpoint is kept).
    """
    from jaxheads.train.loop import fit
    from jaxheads.train.warm_start import checksum, with_init

    rundir = stage_dir(workdir, stage.label)
    init = None
    if stage.init_from is not None:
        source = stored(stage_dir(workdir, stage.init_from))
        if source is None:
            raise ValueError(
                f"stage {stage.label!r}: expected stage {stage.init_from!r} to have run first"
            )
        init = {"stage": stage.init_from, "sha256": source["record"]["sha256"]}
    model, task, run = _stage_run(stage, rundir, init, progress, tensorboard)
    fingerprint = describe(
        {
            k: v
            for k, v in dataclasses.asdict(run).items()
            if k not in ("workdir", "progress", "tensorboard")
        }
    )
    found = stored(rundir)
    done = found is not None and found.get("fingerprint") == fingerprint
    if done and (stage.init_from is None or "top1_before" in found["record"]):
        return {**found["record"], "skipped": True}
    before = {}
    if stage.init_from is not None:
        task, _ = with_init(task, stage_dir(workdir, stage.init_from))
        before = _before(stage, model, task)
    if done:  # stored before the start weights were measured: the record gains them
        record = {**found["record"], **before}
        write_json(os.path.join(rundir, "result.json"), {**found, "record": record})
        return {**record, "skipped": True}
    trained = fit(task, run)
    if trained["status"] != "completed":
        raise KeyboardInterrupt(
            f"pretraining {stage.label} interrupted at step {trained['step']}; "
            "run the study again to resume"
        )
    result = trained["eval"]
    record = {
        "label": stage.label,
        "backbone": stage.backbone,
        "image_size": stage.image_size,
        "steps": stage.steps,
        "init_from": stage.init_from,
        **{k: float(result[k]) for k in ("top1", "top5", "loss")},
        "images": int(result["images"]),
        "sha256": checksum(trained["params"], trained["state"]),
        "dir": os.path.relpath(rundir, workdir),
        **before,
    }
    write_json(os.path.join(rundir, "result.json"), {"fingerprint": fingerprint, "record": record})
    return {**record, "skipped": False}


def stored(rundir: str) -> dict | None:
    """The stage's stored ``{"fingerprint", "record"}``, or None."""
    try:
        with open(os.path.join(rundir, "result.json")) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("record"), dict):
        return None
    return data


def run_stages(config: StudyConfig, workdir: str, *, progress: bool = True) -> dict[str, dict]:
    """Runs every stage of ``config`` in order; ``{label: record}``. The stages write
    TensorBoard files as the study's rows do (``config.budget.run.tensorboard``)."""
    records = {}
    for stage in config.pretraining:
        record = run_stage(
            stage, workdir, progress=progress, tensorboard=config.budget.run.tensorboard
        )
        records[stage.label] = record
        if progress:
            print(
                f"pretraining {stage.label}: top-1 {record['top1']:.3f}, top-5 "
                f"{record['top5']:.3f}" + (" (already done)" if record["skipped"] else "")
            )
    return records
