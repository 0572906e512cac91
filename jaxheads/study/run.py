"""One (row, seed) of a study: its data, its training run, its evaluation, its `RunRecord`.

Each finished (row, seed) leaves ``result.json`` in ``WORKDIR/<label>/seed<k>``;
running the study again finds it and skips the run when nothing that made it
has changed (the training `RunConfig` and the evaluation settings). An
interrupted training run resumes from its newest checkpoint (`jaxheads.train.fit`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxheads.study.config import Budget, EvalRow, Row, StudyConfig, TrainRow, describe
from jaxheads.study.measure import detector_flops, measure_params, prior_iou, steady_images_per_s
from jaxheads.study.records import DRAW_SCORE, RunRecord, json_number, write_json
from jaxheads.train.detection import (
    DetectionExperiment,
    build_detector,
    build_experiment,
    evaluate,
    experiment_dataset,
)
from jaxheads.train.loop import MetricsLog, RunConfig, fit

_PR_POINTS = 200


@dataclasses.dataclass(frozen=True)
class RowPlan:
    """A row resolved against its study, with its data sets built once for every seed.

    Attributes:
      label: the row's label.
      source: the `TrainRow` whose training run the row uses (itself, or an
        `EvalRow`'s ``weights_from``).
      budget: the source's budget (the study's with the row's changes).
      eval_image_size: the side the row is evaluated at.
      train: the training set at the training size.
      val: the validation set at ``eval_image_size``.
    """

    label: str
    source: TrainRow
    budget: Budget
    eval_image_size: int
    train: Any
    val: Any


def plan_row(config: StudyConfig, row: Row) -> RowPlan:
    """Resolves ``row`` and builds its data sets (nothing is written)."""
    source = config.row(row.weights_from) if isinstance(row, EvalRow) else row
    budget = config.budget_of(source)
    eval_size = row.eval_image_size or budget.image_size
    experiment = row_experiment(source, budget)  # its data_seed: the same data every seed
    train = experiment_dataset(experiment, "train", 0)
    val = experiment_dataset(experiment, "val", 0, image_size=eval_size)
    return RowPlan(row.label, source, budget, eval_size, train, val)


def row_experiment(source: TrainRow, budget: Budget) -> DetectionExperiment:
    """The `DetectionExperiment` a training row runs with its budget (changes applied)."""
    return DetectionExperiment(
        model=source.model,
        dataset=budget.dataset,
        batch_size=budget.batch_size,
        image_size=budget.image_size,
        no_augment=not budget.augment,
        train_examples=budget.train_examples,
        val_examples=budget.val_examples,
        data_seed=budget.data_seed,
        train_sizes=tuple(source.train_sizes),
        loss_options=dict(source.loss_options),
    )


def _stage_weights(workdir: str, label: str) -> dict:
    """``{"stage", "sha256", "dir"}`` of a finished pretraining stage of the study."""
    from jaxheads.study.pretraining import stage_dir, stored

    rundir = stage_dir(workdir, label)
    found = stored(rundir)
    if found is None:
        raise ValueError(f"expected pretraining stage {label!r} finished in {rundir}, found none")
    return {"stage": label, "sha256": found["record"]["sha256"], "dir": rundir}


def warm_up(budget: Budget, row: TrainRow) -> int:
    """The warm-up steps ``row`` trains with (``budget``: its budget, changes applied).

    Its own if it sets ``burn_in`` (a row that studies the warm-up), else the
    study's, capped at a tenth of the steps (a ``--steps`` override shortens it).

    >>> from jaxheads.study.config import Budget, TrainRow
    >>> row = TrainRow("b", changes={"burn_in": 150})
    >>> short = Budget().replace(steps=200)
    >>> warm_up(short, TrainRow("a")), warm_up(short.replace(**row.changes), row)
    (20, 150)
    """
    if "burn_in" in row.changes:
        return budget.run.burn_in
    return min(budget.run.burn_in, budget.run.steps // 10)


def training(config: StudyConfig, plan: RowPlan, seed: int, workdir: str, progress: bool):
    """``(detector, task, RunConfig)`` of the row's training run; nothing is written.

    The detector and its task come from `jaxheads.train.detection.build_experiment`, as
    ``jaxheads train``'s do. A row with ``init`` records its stage's weights' checksum in
    the run's settings (so a new pre-training makes its results stale); the weights
    themselves are copied in by `run_row` when the row trains.
    """
    source, budget = plan.source, plan.budget
    rundir = os.path.join(workdir, source.label, f"seed{seed}")
    detector, task, _ = build_experiment(row_experiment(source, budget), seed)
    data_keys = ("dataset", "train_examples", "data_seed", "image_size", "batch_size", "augment")
    extra = {
        "study": config.name,
        "label": source.label,
        "model": describe(source.model),
        "loss": describe(dict(source.loss_options) or None),
        "train_sizes": describe(source.train_sizes or None),
        **{k: getattr(budget, k) for k in data_keys},
    }
    if source.init is not None:
        stage = _stage_weights(workdir, source.init)
        extra["init"] = {k: stage[k] for k in ("stage", "sha256")}
    run = dataclasses.replace(
        budget.run,
        workdir=rundir,
        seed=seed,
        burn_in=warm_up(budget, source),
        eval_every=0,
        progress=progress,
        extra=extra,
    )
    return detector, task, run


def _subsample(curve, n: int = _PR_POINTS) -> list[list[float]]:
    recall, precision = (np.asarray(c, np.float64) for c in curve)
    if recall.size > n:
        keep = np.unique(np.linspace(0, recall.size - 1, n).round().astype(int))
        recall, precision = recall[keep], precision[keep]
    return [recall.round(5).tolist(), precision.round(5).tolist()]


def _examples(result: Mapping, count: int) -> list[dict]:
    """The first ``count`` images' detections to draw: score >= `DRAW_SCORE` (at most 10),
    or the best one alone when none reaches it (so a weak model still shows what it sees)."""
    out = []
    pairs = list(zip(result["predictions"], result["ground_truths"], strict=True))
    for pred, truth in pairs[:count]:
        scores = np.asarray(pred["scores"], np.float64)
        order = np.argsort(-scores, kind="stable")
        confident = order[scores[order] >= DRAW_SCORE][:10]
        keep = confident if confident.size or not order.size else order[:1]
        out.append(
            {
                "boxes": np.asarray(pred["boxes"])[keep].round(2).tolist(),
                "scores": scores[keep].round(4).tolist(),
                "labels": np.asarray(pred["labels"])[keep].astype(int).tolist(),
                "confident": bool(confident.size),
                "truth_boxes": np.asarray(truth["boxes"]).round(2).tolist(),
                "truth_labels": np.asarray(truth["labels"]).astype(int).tolist(),
            }
        )
    return out


def _cached(path: str, fingerprint) -> RunRecord | None:
    """The stored record at ``path`` when it was made the same way, else None."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError:
            return None
    if data.get("fingerprint") != fingerprint:
        return None
    return RunRecord.from_json(data)


def _measure(plan: RowPlan, detector, trained: Mapping, sourcedir: str, run: RunConfig):
    """The row's numbers and the evaluation they come from."""
    row: dict[str, Any] = {}
    if detector.head.anchors is not None:
        row["anchors"] = np.asarray(detector.head.anchors, np.float64).round(4).tolist()
        row["anchor_iou"] = prior_iou(detector, plan.train)
    if plan.eval_image_size != plan.budget.image_size:
        detector, _ = build_detector(
            plan.source.model,
            image_size=plan.eval_image_size,
            num_classes=plan.val.num_classes,
            train_data=plan.train,
        )
    result = evaluate(
        detector,
        trained["params"],
        trained["state"],
        plan.val,
        batch_size=min(plan.budget.eval_batch_size, len(plan.val)),
        keep_predictions=True,
    )
    logged = MetricsLog(os.path.join(sourcedir, "metrics.jsonl")).read()
    losses = [r["loss"] for r in logged if "loss" in r]
    accuracy = (
        "mAP50",
        "mAP50_voc07",
        "mAP",
        "mAP50_coco",
        "mAP75",
        "recall",
        "mAP_small",
        "mAP_medium",
        "mAP_large",
    )
    row.update(
        {
            **measure_params(detector),
            **detector_flops(detector),
            "images_per_s": steady_images_per_s(logged),
            # the first start's (a resume compiles again; `jaxheads.train.loop`)
            **{
                k: next((r[k] for r in logged if "compile_s" in r), None)
                for k in ("compile_s", "device")
            },
            **{k: result[k] for k in accuracy},
            "per_class_ap50": {str(k): json_number(v) for k, v in result["per_class_ap50"].items()},
            "final_loss": losses[-1] if losses else None,
            "steps": run.steps,
            "image_size": plan.budget.image_size,
            "eval_image_size": plan.eval_image_size,
            "val_images": result["images"],
        }
    )
    return {k: (json_number(v) if isinstance(v, float) else v) for k, v in row.items()}, result


def run_row(
    config: StudyConfig, plan: RowPlan, seed: int, workdir: str, *, progress: bool = True
) -> RunRecord:
    """Trains (or finds) one (row, seed), evaluates and measures it; returns its record.

    Raises:
      KeyboardInterrupt: the training run was interrupted (its checkpoint is kept).
    """
    rundir = os.path.join(workdir, plan.label, f"seed{seed}")
    sourcedir = os.path.join(workdir, plan.source.label, f"seed{seed}")
    detector, task, run = training(config, plan, seed, workdir, progress)
    budget = plan.budget
    evaluation = {
        "val_examples": budget.val_examples,
        "eval_batch_size": budget.eval_batch_size,
        "example_images": budget.example_images,
        "eval_image_size": plan.eval_image_size,
    }
    # What makes a stored result stale: the training run (where it is and how it is shown
    # aside) and the evaluation.
    trained_with = {
        k: v
        for k, v in dataclasses.asdict(run).items()
        if k not in ("workdir", "progress", "tensorboard")
    }
    fingerprint = describe({"train": trained_with, "evaluate": evaluation})
    path = os.path.join(rundir, "result.json")
    record = _cached(path, fingerprint)
    if record is not None:
        return record
    if plan.source.init is not None:
        from jaxheads.train.warm_start import with_init

        task, _ = with_init(task, _stage_weights(workdir, plan.source.init)["dir"])
    trained = fit(task, run)
    if trained["status"] != "completed":
        raise KeyboardInterrupt(
            f"{plan.source.label} seed {seed} interrupted at step "
            f"{trained['step']}; run the study again to resume"
        )
    numbers, result = _measure(plan, detector, trained, sourcedir, run)
    record = RunRecord(
        fingerprint=fingerprint,
        row={"head": plan.label, "seed": seed, **numbers},
        train_dir=os.path.relpath(sourcedir, workdir),
        class_names=list(plan.val.class_names),
        val={
            "dataset": budget.dataset,
            "num_examples": budget.val_examples,
            "seed": budget.data_seed,
        },
        pr_curves={str(k): _subsample(c) for k, c in result["pr_curves"].items()},
        examples=_examples(result, budget.example_images),
    )
    os.makedirs(rundir, exist_ok=True)
    write_json(path, record.to_json())
    return record


def run_study(config: StudyConfig, workdir: str, *, progress: bool = True) -> list[dict]:
    """Trains, evaluates and measures every (row, seed) of ``config``; writes the report.

    Args:
      config: the study.
      workdir: ``WORKDIR/<label>/seed<k>`` per run, the report files at the top.
      progress: show a bar over the runs and each run's training bar.

    Returns:
      One aggregated row per study row (as in ``results.json``'s ``"heads"``).
    """
    from tqdm.auto import tqdm

    from jaxheads.study.pretraining import run_stages
    from jaxheads.study.report import write_report
    from jaxheads.train.metric_table import METRIC

    os.makedirs(workdir, exist_ok=True)
    stages = run_stages(config, workdir, progress=progress)
    records = []
    bar = tqdm(
        total=len(config.rows) * len(config.seeds),
        desc=config.name,
        unit="run",
        disable=not progress,
        dynamic_ncols=True,
    )
    # Seed by seed: a study stopped part-way has every row for its first seeds, not every
    # seed of its first rows.
    plans = [(row, plan_row(config, row)) for row in config.rows]
    for seed in config.seeds:
        for row, plan in plans:
            bar.set_postfix_str(f"{row.label} seed {seed}")
            record = run_row(config, plan, seed, workdir, progress=progress)
            records.append(record)
            bar.update()
            if progress:
                shown = ", ".join(
                    f"{METRIC[k].label} {METRIC[k].format_one(record.row[k])}"
                    for k in ("mAP50", "mAP", "recall")
                )
                compile_s = record.row.get("compile_s")
                bar.write(
                    f"{row.label} seed {seed}: {shown}"
                    + (f", compile {compile_s:.1f} s" if compile_s is not None else "")
                    + (" (already done)" if record.skipped else "")
                )
    bar.close()
    return write_report(config, records, workdir, stages)
