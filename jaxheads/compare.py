"""Head comparison studies: train several detectors alike, measure them, write the report.

A study is a `StudyConfig`: a list of `RunSpec` rows (a detector and anything
it does differently) and the budget every row shares (data, steps, batch,
optimizer, seeds). `run_study` trains each (row, seed) with
`jaxheads.train.fit` in ``WORKDIR/<label>/seed<k>``, evaluates it with
`jaxheads.train.detection.evaluate`, measures it, and writes::

    WORKDIR/results.json          per-seed rows, per-row aggregates (mean ± std), winners
    WORKDIR/results.md            the table and which row won on what
    WORKDIR/learning_curves.png   training loss against step, per row
    WORKDIR/pr_curves.png         precision-recall at IoU 0.5, a panel per row
    WORKDIR/detections.png        predictions and ground truth on validation images
    WORKDIR/overview.png          mAP50 per row, and mAP50 against parameters

Each finished (row, seed) leaves ``result.json`` in its directory, so running
the same study again skips it; an interrupted run resumes from its newest
checkpoint (`jaxheads.train.fit`).

What is measured, per (row, seed):

* ``params`` / ``trainable_params`` / ``head_params``: Keras-style counts
  (params plus batch-norm statistics, as `jaxheads.summary` prints them) of the
  whole detector and of its ``head`` node, computed abstractly.
* ``flops`` / ``head_flops``: XLA's cost analysis of one forward pass at batch
  1 (a multiply-add counts 2); the head's share is the total minus the backbone's.
* ``images_per_s``: training throughput, the median over the logged intervals of
  ``metrics.jsonl`` after the first (which includes compilation).
* ``mAP50`` (VOC2010 all-point), ``mAP50_voc07`` (11-point), ``mAP`` (COCO
  .50:.95), ``mAP50_coco``, ``mAP75``, ``recall`` (VOC recall at IoU 0.5),
  ``mAP_small`` / ``mAP_medium`` / ``mAP_large`` (COCO by object area).

Studies live in the top-level ``experiments/`` directory (``get_config(profile)``
in each file) and run with ``jaxheads compare --config experiments/NAME.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import inspect
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

import numpy as np

__all__ = [
    "METRICS",
    "WINNERS",
    "QUICK_PROFILE",
    "RunSpec",
    "StudyConfig",
    "add_compare_arguments",
    "aggregate",
    "box_sizes",
    "build_model",
    "compare_command",
    "config_from_args",
    "experiments_dir",
    "forward_flops",
    "load_study",
    "measure_params",
    "run_study",
    "steady_images_per_s",
    "winners",
    "write_report",
]

# Per-seed numbers that are averaged over seeds (mean and ``<key>_std``).
METRICS = (
    "mAP50",
    "mAP50_voc07",
    "mAP",
    "mAP50_coco",
    "mAP75",
    "recall",
    "mAP_small",
    "mAP_medium",
    "mAP_large",
    "images_per_s",
    "final_loss",
)
# Numbers that do not depend on the seed.
CONSTANTS = (
    "params",
    "trainable_params",
    "head_params",
    "flops",
    "head_flops",
    "image_size",
    "eval_image_size",
    "steps",
)
# The report's "which head won on what": (key, wording, larger is better).
WINNERS = (
    ("mAP50", "best mAP50 (VOC2010)", True),
    ("mAP", "best COCO mAP@[.5:.95]", True),
    ("params", "fewest params", False),
    ("images_per_s", "fastest training (images/s)", True),
    ("recall", "best recall@0.5", True),
)
# Detections drawn in detections.png: at least this score (darknet's demo threshold).
DRAW_SCORE = 0.25
_PR_POINTS = 200


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One row of a study.

    Attributes:
      label: the row's name (its directory, its name in the tables and plots).
      model: a `jaxheads.train.detection.build_detector` name (``"small-yolov2"``);
        or keyword arguments of `jaxheads.models.small_detector`
        (``{"head": "yolov1-fc", "batch_norm": False}``); or a builder
        ``(*, image_size, num_classes, train_data) -> Detector``.
      settings: what this row does differently. Any `StudyConfig` training field
        (``image_size``, ``steps``, ``learning_rate``, ``burn_in``, ``augment``, ...),
        and:

        * ``train_sizes``: multi-scale training; every 10 steps the batch is drawn
          at one of these image sizes (darknet's ``random=1``); one compiled step
          per size.
        * ``eval_image_size``: evaluate (and count FLOPs) at this size.
        * ``weights_from``: the label of another row whose trained weights this
          row evaluates, without training (e.g. at another ``eval_image_size``).
      loss: ``(detector, *, global_batch) -> loss_fn`` replacing the head's
        standard loss (see `jaxheads.train.detection.detection_loss`).
    """

    label: str
    model: str | Mapping[str, Any] | Callable[..., Any] = "small-yolov2"
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    loss: Callable[..., Any] | None = None


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """A comparison study: the rows and the budget they share.

    Attributes:
      name: the study's name.
      runs: the `RunSpec` rows, in report order.
      seeds: one training run per row and seed (init, data order, dropout).
      steps, batch_size, image_size: the training budget (square images).
      dataset: ``"shapes"`` or ``"digits"`` (`jaxheads.train.detection.make_dataset`).
      train_examples: training set size (None: the data set's default, 20,000).
      val_examples: validation images.
      data_seed: picks the data set itself; the same for every row and seed.
      augment: the default training augmentation.
      optimizer, learning_rate, policy, weight_decay, clip_norm: as `jaxheads.train.RunConfig`.
      burn_in: warm-up steps, at most a tenth of ``steps``.
      log_every, checkpoint_every: logging and checkpoint intervals (steps).
      parallel, num_devices: how each step runs (`jaxheads.train.RunConfig`).
      eval_batch_size: evaluation batch (at most ``val_examples``).
      example_images: validation images drawn in ``detections.png``.
      description: a paragraph at the top of ``results.md``.
      command: the command that runs the study, quoted in ``results.md``.
      paper: ``{label: text}``, published numbers shown beside ours.
      paper_metric: the key of ours the ``paper`` column compares with.
    """

    name: str
    runs: Sequence[RunSpec]
    seeds: Sequence[int] = (0, 1, 2)
    steps: int = 1000
    batch_size: int = 32
    image_size: int = 96
    dataset: str = "shapes"
    train_examples: int | None = None
    val_examples: int = 256
    data_seed: int = 0
    augment: bool = True
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    policy: str = "cosine"
    burn_in: int = 100
    weight_decay: float = 5e-4
    clip_norm: float | None = 10.0
    log_every: int = 10
    checkpoint_every: int = 250
    parallel: str = "jit"
    num_devices: int | None = None
    eval_batch_size: int = 64
    example_images: int = 4
    description: str = ""
    command: str = ""
    paper: Mapping[str, str] = dataclasses.field(default_factory=dict)
    paper_metric: str = "mAP50_voc07"

    def __post_init__(self):
        labels = [r.label for r in self.runs]
        if not labels:
            raise ValueError(f"StudyConfig {self.name!r}: expected at least one run, got none")
        if len(set(labels)) != len(labels):
            raise ValueError(f"StudyConfig {self.name!r}: expected unique run labels, got {labels}")
        bad = [x for x in labels if not x or "/" in x or x.startswith(".")]
        if bad:
            raise ValueError(
                f"StudyConfig {self.name!r}: expected labels usable as directory names, got {bad}"
            )
        if not self.seeds:
            raise ValueError(f"StudyConfig {self.name!r}: expected at least one seed")
        fields = {f.name for f in dataclasses.fields(self)}
        extra = {"train_sizes", "eval_image_size", "weights_from"}
        for r in self.runs:
            unknown = set(r.settings) - fields - extra
            if unknown:
                raise ValueError(
                    f"run {r.label!r}: expected settings among StudyConfig "
                    f"fields and {sorted(extra)}, got {sorted(unknown)}"
                )
            source = r.settings.get("weights_from")
            if source is not None and source not in labels[: labels.index(r.label)]:
                raise ValueError(
                    f"run {r.label!r}: weights_from must name an earlier run, got {source!r}"
                )

    def select(self, labels: Sequence[str]) -> StudyConfig:
        """The study restricted to ``labels`` (``-`` and ``_`` match each other).

        The row a kept row takes its ``weights_from`` is kept too.
        """

        def norm(s):
            return s.replace("-", "_")

        known = {norm(r.label): r for r in self.runs}
        missing = [x for x in labels if norm(x) not in known]
        if missing:
            raise ValueError(
                f"{self.name}: expected runs among {[r.label for r in self.runs]}, got {missing}"
            )
        wanted = {norm(x) for x in labels}
        for r in reversed(self.runs):
            if norm(r.label) in wanted and r.settings.get("weights_from"):
                wanted.add(norm(r.settings["weights_from"]))
        return dataclasses.replace(self, runs=[r for r in self.runs if norm(r.label) in wanted])


# ---------------------------------------------------------------------------
# Models, data and the measurements.
# ---------------------------------------------------------------------------


# The settings of every study's ``--quick`` profile: a smoke run of a few minutes on a
# 2-core CPU that writes every file but cannot rank the rows. The full profile is
# `StudyConfig`'s defaults (3 seeds, 1000 steps of batch 32 at 96×96).
QUICK_PROFILE: Mapping[str, Any] = MappingProxyType(
    {
        "seeds": (0,),
        "steps": 100,
        "batch_size": 16,
        "image_size": 64,
        "train_examples": 2048,
        "val_examples": 32,
        "burn_in": 10,
        "log_every": 10,
        "checkpoint_every": 100,
        "eval_batch_size": 32,
    }
)


def profile_settings(study: str, profile: str) -> Mapping[str, Any]:
    """The `StudyConfig` fields of a profile: none for ``"full"``, `QUICK_PROFILE` for ``"quick"``.

    >>> profile_settings("heads", "quick")["steps"]
    100
    """
    if profile == "full":
        return {}
    if profile == "quick":
        return QUICK_PROFILE
    raise ValueError(f"{study}: expected profile 'full' or 'quick', got {profile!r}")


def _describe(obj) -> Any:
    """A JSON description of a config value: callables by name, partials with their arguments."""
    if isinstance(obj, functools.partial):
        return {
            "function": _describe(obj.func),
            "args": _describe(list(obj.args)),
            "kwargs": _describe(dict(obj.keywords)),
        }
    if callable(obj) and hasattr(obj, "__qualname__"):
        try:
            where = Path(inspect.getfile(obj)).stem
        except TypeError:
            where = getattr(obj, "__module__", "")
        return f"{where}.{obj.__qualname__}"
    if isinstance(obj, Mapping):
        return {str(k): _describe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_describe(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def build_model(model, *, image_size: int, num_classes: int, train_data=None):
    """A `RunSpec.model` as ``(Detector, init)``; ``init(key) -> (params, state)``."""
    import jax

    from jaxheads.train.detection import build_detector

    if isinstance(model, str):
        return build_detector(model, image_size=image_size, num_classes=num_classes)
    if isinstance(model, Mapping):
        from jaxheads.models import small_detector

        det = small_detector(**model, image_size=image_size, num_classes=num_classes)
    elif callable(model):
        det = model(image_size=image_size, num_classes=num_classes, train_data=train_data)
    else:
        raise ValueError(
            f"build_model: expected a model name, small_detector kwargs or a "
            f"builder, got {type(model).__name__}"
        )
    shape = det.input_shape
    return det, jax.jit(lambda key: det.layer.init(key, shape)[1:])


def measure_params(detector) -> dict[str, int | None]:
    """Keras-style counts of the detector and its ``head`` node (abstract, nothing allocated)."""
    from jaxheads.layers import abstract_init, count

    _, params, state = abstract_init(detector.layer, detector.input_shape)
    has_head = "head" in params or "head" in state
    return {
        "params": count(params) + count(state),
        "trainable_params": count(params),
        "head_params": (
            count(params.get("head", {})) + count(state.get("head", {})) if has_head else None
        ),
    }


def _cost_flops(cost) -> float:
    # jax returns a dict of costs, older versions a list with one dict per program.
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    value = (cost or {}).get("flops")
    return float(value) if value is not None and value >= 0 else math.nan


def forward_flops(layer, input_shape, params=None, state=None) -> float:
    """FLOPs of ``layer.apply`` on one image (batch 1), from XLA's cost analysis.

    The program analysed is the one lowered for a TPU, whatever machine runs this:
    the count is the model's, not this machine's lowering of it. (On CPU `conv2d`
    computes wide layers as products of patches, whose count would include the
    kernel taps that fall on the zero padding; a convolution's count leaves them
    out.) Lowering needs no TPU; where it fails, the local compiled program counts.

    Args:
      layer: a `jaxheads.layers.Layer`.
      input_shape: its input shape, batch first (``None`` allowed), or a list of them.
      params, state: its params and state (arrays or ShapeDtypeStructs); computed
        abstractly when None.
    """
    import jax
    import jax.numpy as jnp

    from jaxheads.layers import abstract_init
    from jaxheads.layers.base import is_multi

    if params is None:
        _, params, state = abstract_init(layer, input_shape)

    def one(shape):
        return jax.ShapeDtypeStruct((1, *shape[1:]), jnp.float32)

    x = [one(s) for s in input_shape] if is_multi(input_shape) else one(input_shape)
    fn = jax.jit(lambda p, s, x: layer.apply(p, s, x)[0])
    try:
        traced = fn.trace(params, state, x)
        flops = _cost_flops(traced.lower(lowering_platforms=("tpu",)).cost_analysis())
    except Exception:  # noqa: BLE001 — a jax without cross-platform lowering: count locally
        flops = math.nan
    if math.isfinite(flops):
        return flops
    lowered = fn.lower(params, state, x)
    flops = _cost_flops(lowered.compile().cost_analysis())
    return flops if math.isfinite(flops) else _cost_flops(lowered.cost_analysis())


def _detector_flops(detector) -> dict[str, float | None]:
    from jaxheads.layers import abstract_init

    _, params, state = abstract_init(detector.layer, detector.input_shape)
    total = forward_flops(detector.layer, detector.input_shape, params, state)
    backbone = [n for n in detector.layer.nodes if n.name == "backbone"]
    if not backbone:
        return {"flops": total, "head_flops": None}
    base = forward_flops(
        backbone[0].layer, detector.input_shape, params["backbone"], state.get("backbone", {})
    )
    return {"flops": total, "head_flops": total - base}


def steady_images_per_s(rows: Sequence[Mapping]) -> float:
    """Training images/s: the median over logged intervals, the first one (compilation) left out.

    >>> steady_images_per_s([{"images_per_s": 5.0}, {"images_per_s": 90.0},
    ...                      {"step": 20, "eval": {}}, {"images_per_s": 110.0}])
    100.0
    """
    rates = [r["images_per_s"] for r in rows if "images_per_s" in r]
    rates = [x for x in rates[1:] if x is not None and math.isfinite(x)] or [
        x for x in rates if x is not None and math.isfinite(x)
    ]
    return float(np.median(rates)) if rates else math.nan


_BOX_SIZES: dict[tuple, np.ndarray] = {}


def box_sizes(dataset, limit: int = 1000) -> np.ndarray:
    """``[N, 2]`` box widths and heights (fractions of the image), first ``limit`` examples.

    Cached per data set (type, length, seed, split, image size), since studies ask
    for the same training set's boxes once per run.
    """
    key = (type(dataset).__name__, len(dataset), limit) + tuple(
        str(getattr(dataset, a, None)) for a in ("seed", "split", "image_size", "num_classes")
    )
    if key not in _BOX_SIZES:
        sizes = []
        for i in range(min(limit, len(dataset))):
            ex = dataset.example(i)
            b = ex["boxes"][ex["mask"]]
            sizes.append(b[:, 2:] - b[:, :2])
        wh = np.concatenate(sizes).astype(np.float64)
        _BOX_SIZES[key] = wh[(wh > 0).all(axis=1)]
    return _BOX_SIZES[key]


def _load_rows(path: str) -> list[dict]:
    from jaxheads.train.loop import MetricsLog

    return MetricsLog(path).read()


# ---------------------------------------------------------------------------
# One (row, seed).
# ---------------------------------------------------------------------------


def _setting(config: StudyConfig, spec: RunSpec, key: str):
    return spec.settings.get(key, getattr(config, key))


def _datasets(config: StudyConfig, spec: RunSpec):
    from jaxheads.train.detection import make_dataset

    size = _setting(config, spec, "image_size")
    eval_size = spec.settings.get("eval_image_size", size)
    common = {"seed": _setting(config, spec, "data_seed")}
    name = _setting(config, spec, "dataset")
    train = make_dataset(
        name,
        "train",
        image_size=size,
        num_examples=_setting(config, spec, "train_examples"),
        **common,
    )
    val = make_dataset(
        name,
        "val",
        image_size=eval_size,
        num_examples=_setting(config, spec, "val_examples"),
        **common,
    )
    return train, val


def _multiscale_batches(
    datasets: Mapping[int, Any], *, batch_size: int, seed: int, augment: bool, every: int = 10
):
    """``Task.batches`` drawing each block of ``every`` steps at one size (darknet ``random=1``).

    The size of step ``k`` is a function of ``(seed, k // every)`` alone, so a resumed
    run sees the same batches.
    """
    from jaxheads.data import Batches
    from jaxheads.data.augment import augment as augment_fn

    sizes = sorted(datasets)

    def batches(start, process_index, process_count):
        sources = {
            s: Batches(
                ds,
                batch_size,
                seed=seed,
                augment=augment_fn if augment else None,
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


def _training(config: StudyConfig, spec: RunSpec, seed: int, rundir: str, progress: bool):
    """(detector, task, RunConfig) of one row's training run; nothing is written."""
    import dataclasses as dc

    from jaxheads.train.detection import detection_task, make_dataset
    from jaxheads.train.loop import RunConfig

    train, _ = _datasets(config, spec)
    size = _setting(config, spec, "image_size")
    detector, init = build_model(
        spec.model, image_size=size, num_classes=train.num_classes, train_data=train
    )
    batch = _setting(config, spec, "batch_size")
    augment = _setting(config, spec, "augment")
    task = detection_task(detector, init, train, batch_size=batch, seed=seed, augment=augment)
    if spec.loss is not None:
        task = dc.replace(task, loss_fn=spec.loss(detector, global_batch=batch))
    sizes = spec.settings.get("train_sizes")
    if sizes:
        data = {
            s: train
            if s == size
            else make_dataset(
                _setting(config, spec, "dataset"),
                "train",
                image_size=s,
                num_examples=_setting(config, spec, "train_examples"),
                seed=_setting(config, spec, "data_seed"),
            )
            for s in sizes
        }
        task = dc.replace(
            task, batches=_multiscale_batches(data, batch_size=batch, seed=seed, augment=augment)
        )
    steps = _setting(config, spec, "steps")
    training_keys = (
        "dataset",
        "train_examples",
        "data_seed",
        "image_size",
        "batch_size",
        "augment",
    )
    extra = {
        "study": config.name,
        "label": spec.label,
        "model": _describe(spec.model),
        "loss": _describe(spec.loss),
        "train_sizes": _describe(sizes),
        **{k: _setting(config, spec, k) for k in training_keys},
    }
    cfg = RunConfig(
        workdir=rundir,
        steps=steps,
        seed=seed,
        parallel=_setting(config, spec, "parallel"),
        num_devices=_setting(config, spec, "num_devices"),
        optimizer=_setting(config, spec, "optimizer"),
        learning_rate=_setting(config, spec, "learning_rate"),
        policy=_setting(config, spec, "policy"),
        burn_in=min(_setting(config, spec, "burn_in"), steps // 10),
        weight_decay=_setting(config, spec, "weight_decay"),
        clip_norm=_setting(config, spec, "clip_norm"),
        checkpoint_every=_setting(config, spec, "checkpoint_every"),
        log_every=_setting(config, spec, "log_every"),
        eval_every=0,
        progress=progress,
        extra=extra,
    )
    return detector, task, cfg


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


def _json_number(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _write_json(path: str, data) -> None:
    """Writes ``data`` as strict JSON, atomically: a kill leaves the old file or the new one."""
    text = json.dumps(data, indent=1, allow_nan=False)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _run_one(
    config: StudyConfig,
    spec: RunSpec,
    seed: int,
    workdir: str,
    progress: bool,
) -> dict:
    """Trains (or finds) one (row, seed), evaluates and measures it; returns its record."""
    from jaxheads.anchors import mean_best_iou
    from jaxheads.train.detection import evaluate
    from jaxheads.train.loop import fit

    rundir = os.path.join(workdir, spec.label, f"seed{seed}")
    source = spec
    if spec.settings.get("weights_from"):
        source = next(r for r in config.runs if r.label == spec.settings["weights_from"])
    sourcedir = os.path.join(workdir, source.label, f"seed{seed}")
    detector, task, cfg = _training(config, source, seed, sourcedir, progress)
    train_size = _setting(config, source, "image_size")
    evaluation = {
        k: _setting(config, spec, k) for k in ("val_examples", "eval_batch_size", "example_images")
    }
    evaluation["eval_image_size"] = spec.settings.get("eval_image_size", train_size)
    # What makes a stored result stale: the training run (its directory aside) and the evaluation.
    training = {
        k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("workdir", "progress")
    }
    fingerprint = _describe({"train": training, "evaluate": evaluation})
    path = os.path.join(rundir, "result.json")
    if os.path.exists(path):
        with open(path) as f:
            try:
                record = json.load(f)
            except json.JSONDecodeError:
                record = {}
        if record.get("fingerprint") == fingerprint:
            record["row"]["skipped"] = True
            return record

    trained = fit(task, cfg)
    if trained["status"] != "completed":
        raise KeyboardInterrupt(
            f"{source.label} seed {seed} interrupted at step "
            f"{trained['step']}; run the study again to resume"
        )
    _, val = _datasets(config, spec)
    row: dict[str, Any] = {"head": spec.label, "seed": seed}
    if detector.head.anchors is not None:
        # Table 1 of the YOLOv2 paper: the priors' mean best IoU with the training boxes,
        # both in cells of the training grid.
        grid = train_size // _stride(detector)
        anchors = np.asarray(detector.head.anchors, np.float64)
        row["anchors"] = anchors.round(4).tolist()
        row["anchor_iou"] = mean_best_iou(box_sizes(_datasets(config, source)[0]) * grid, anchors)
    eval_size = evaluation["eval_image_size"]
    if eval_size != train_size:
        detector, _ = build_model(
            source.model,
            image_size=eval_size,
            num_classes=val.num_classes,
            train_data=_datasets(config, source)[0],
        )
    result = evaluate(
        detector,
        trained["params"],
        trained["state"],
        val,
        batch_size=min(evaluation["eval_batch_size"], len(val)),
        keep_predictions=True,
    )
    metrics_rows = _load_rows(os.path.join(sourcedir, "metrics.jsonl"))
    losses = [r["loss"] for r in metrics_rows if "loss" in r]
    row.update(
        {
            **measure_params(detector),
            **_detector_flops(detector),
            "images_per_s": steady_images_per_s(metrics_rows),
            "mAP50": result["mAP50"],
            "mAP50_voc07": result["mAP50_voc07"],
            "mAP": result["mAP"],
            "mAP50_coco": result["mAP50_coco"],
            "mAP75": result["mAP75"],
            "recall": result["recall50"],
            "mAP_small": result["mAP_small"],
            "mAP_medium": result["mAP_medium"],
            "mAP_large": result["mAP_large"],
            "per_class_ap50": {
                str(k): _json_number(v) for k, v in result["per_class_ap50"].items()
            },
            "final_loss": losses[-1] if losses else None,
            "steps": cfg.steps,
            "image_size": train_size,
            "eval_image_size": eval_size,
            "val_images": result["images"],
        }
    )
    row = {k: (_json_number(v) if isinstance(v, float) else v) for k, v in row.items()}
    record = {
        "fingerprint": fingerprint,
        "row": row,
        "train_dir": os.path.relpath(sourcedir, workdir),
        "class_names": list(val.class_names),
        "val": {
            "dataset": _setting(config, spec, "dataset"),
            "num_examples": _setting(config, spec, "val_examples"),
            "seed": _setting(config, spec, "data_seed"),
        },
        "pr_curves": {str(k): _subsample(c) for k, c in result["pr_curves"].items()},
        "examples": _examples(result, evaluation["example_images"]),
    }
    os.makedirs(rundir, exist_ok=True)
    _write_json(path, record)
    record["row"]["skipped"] = False
    return record


def _stride(detector) -> int:
    """Image side / output grid side, from the abstract output shape."""
    from jaxheads.layers import abstract_init

    out, _, _ = abstract_init(detector.layer, detector.input_shape)
    return detector.input_shape[1] // out[1]


# ---------------------------------------------------------------------------
# The study.
# ---------------------------------------------------------------------------


def aggregate(rows: Sequence[Mapping], labels: Sequence[str]) -> list[dict]:
    """One row per label: `CONSTANTS` as they are, `METRICS` as mean and ``<key>_std``.

    ``<key>_std`` is the sample standard deviation over seeds (None for one seed);
    a metric undefined in some seed (e.g. no large objects) averages the others.
    """
    out = []
    for label in labels:
        mine = [r for r in rows if r["head"] == label]
        if not mine:
            continue
        agg: dict[str, Any] = {"head": label, "seeds": [r["seed"] for r in mine]}
        for key in CONSTANTS:
            agg[key] = mine[0].get(key)
        for key in METRICS:
            values = [r[key] for r in mine if r.get(key) is not None]
            agg[key] = float(np.mean(values)) if values else None
            agg[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        for key in ("anchors", "anchor_iou"):
            if key in mine[0]:
                agg[key] = mine[0][key]
        out.append(agg)
    return out


def winners(heads: Sequence[Mapping]) -> dict[str, dict]:
    """For each of `WINNERS`: the best row, its value and the runner-up's."""
    out = {}
    for key, _, larger in WINNERS:
        ranked = [h for h in heads if h.get(key) is not None]
        if not ranked:
            continue
        ranked.sort(key=lambda h: -h[key] if larger else h[key])
        best = ranked[0]
        entry = {"head": best["head"], "value": best[key], "std": best.get(f"{key}_std")}
        if len(ranked) > 1:
            second = ranked[1]
            entry.update(
                runner_up=second["head"],
                runner_up_value=second[key],
                runner_up_std=second.get(f"{key}_std"),
            )
        out[key] = entry
    return out


def run_study(config: StudyConfig, workdir: str, *, progress: bool = True) -> list[dict]:
    """Trains, evaluates and measures every (row, seed) of ``config``; writes the report.

    Args:
      config: the study.
      workdir: ``WORKDIR/<label>/seed<k>`` per run, the report files at the top.
      progress: show a bar over the runs and each run's training bar.

    Returns:
      One aggregated row per `RunSpec` (as in ``results.json``'s ``"heads"``).
    """
    from tqdm.auto import tqdm

    os.makedirs(workdir, exist_ok=True)
    jobs = [(spec, seed) for spec in config.runs for seed in config.seeds]
    records = []
    bar = tqdm(jobs, desc=config.name, unit="run", disable=not progress, dynamic_ncols=True)
    for spec, seed in bar:
        bar.set_postfix_str(f"{spec.label} seed {seed}")
        record = _run_one(config, spec, seed, workdir, progress)
        records.append(record)
        row = record["row"]
        if progress:
            bar.write(
                f"{spec.label} seed {seed}: mAP50 {_fmt(row['mAP50'])}, COCO mAP "
                f"{_fmt(row['mAP'])}, recall {_fmt(row['recall'])}"
                + (" (already done)" if row["skipped"] else "")
            )
    bar.close()
    return write_report(config, records, workdir)


# ---------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------


def _fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _fmt_pm(mean, std, digits: int = 3) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def _fmt_count(n) -> str:
    return "n/a" if n is None else f"{int(n):,}"


def _fmt_flops(f) -> str:
    return "n/a" if f is None else f"{f / 1e6:,.1f}"


def _winner_sentence(key: str, words: str, entry: Mapping, larger: bool) -> str:
    fmt = (
        _fmt_count
        if key == "params"
        else (lambda v: _fmt(v, 1) if key == "images_per_s" else _fmt(v))
    )
    text = f"- {words}: **{entry['head']}** ({fmt(entry['value'])}"
    if entry.get("std") is not None:
        text += f" ± {fmt(entry['std'])}"
    text += ")"
    if "runner_up" not in entry:
        return text + "."
    gap = abs(entry["value"] - entry["runner_up_value"])
    text += f", then {entry['runner_up']} ({fmt(entry['runner_up_value'])})"
    stds = [s for s in (entry.get("std"), entry.get("runner_up_std")) if s is not None]
    if key in ("params",) or gap == 0:
        return text + (": a tie." if gap == 0 else ".")
    if not stds:
        return text + "; one seed, so no spread to judge the gap by."
    spread = max(stds)
    verdict = (
        "more than the larger seed std"
        if gap > spread
        else "within the seeds' spread: not separated"
    )
    return text + f"; the gap {fmt(gap)} is {verdict} ({fmt(spread)})."


def _markdown(
    config: StudyConfig, heads: list[dict], rows: list[dict], best: Mapping, plots: Sequence[str]
) -> str:
    paper = bool(config.paper)
    priors = any("anchor_iou" in h for h in heads)
    cols = [
        "head",
        "params",
        "head params",
        "MFLOPs",
        "head MFLOPs",
        "train img/s",
        "mAP50 (VOC2010)",
        "mAP50 (VOC07)",
        "COCO mAP",
        "recall@0.5",
        "AP small",
        "AP medium",
        "AP large",
    ]
    if priors:
        cols.append("prior IoU")
    if paper:
        cols.append(f"paper ({config.paper_metric})")
    lines = [f"# Study: {config.name}", ""]
    if config.description:
        lines += [config.description.strip(), ""]
    if config.command:
        lines += ["```bash", config.command, "```", ""]
    seeds = ", ".join(str(s) for s in config.seeds)
    lines += [
        f"Data: `{config.dataset}`, {config.image_size}×{config.image_size} images, "
        f"{config.val_examples} validation images; {config.steps} steps of batch "
        f"{config.batch_size} ({config.optimizer}, lr {config.learning_rate}, {config.policy}); "
        f"seeds {seeds}. Metrics are mean ± sample std over seeds; params are Keras-style "
        "(with batch-norm statistics); MFLOPs of one forward pass at batch 1 (XLA's count "
        "for a TPU program, a multiply-add counts 2); img/s is the median steady-state "
        "training rate.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for h in heads:
        cells = [
            h["head"],
            _fmt_count(h["params"]),
            _fmt_count(h["head_params"]),
            _fmt_flops(h["flops"]),
            _fmt_flops(h["head_flops"]),
            _fmt_pm(h["images_per_s"], h["images_per_s_std"], 1),
        ]
        cells += [
            _fmt_pm(h[k], h[f"{k}_std"])
            for k in (
                "mAP50",
                "mAP50_voc07",
                "mAP",
                "recall",
                "mAP_small",
                "mAP_medium",
                "mAP_large",
            )
        ]
        if priors:
            cells.append(_fmt(h.get("anchor_iou")))
        if paper:
            cells.append(config.paper.get(h["head"], "—"))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "**Which head won on what** (computed from the table):", ""]
    for key, words, larger in WINNERS:
        if key in best:
            lines.append(_winner_sentence(key, words, best[key], larger))
    lines += [
        "",
        "## Per seed",
        "",
        "| head | seed | mAP50 (VOC2010) | mAP50 (VOC07) | COCO mAP | recall@0.5 | "
        "train img/s | final loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['head']} | {r['seed']} | {_fmt(r['mAP50'])} | "
            f"{_fmt(r['mAP50_voc07'])} | {_fmt(r['mAP'])} | {_fmt(r['recall'])} | "
            f"{_fmt(r['images_per_s'], 1)} | {_fmt(r['final_loss'], 4)} |"
        )
    lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def write_report(config: StudyConfig, records: Sequence[Mapping], workdir: str) -> list[dict]:
    """Writes results.json, results.md and the PNG plots from the per-run records."""
    rows = [{k: v for k, v in r["row"].items() if k != "skipped"} for r in records]
    heads = aggregate(rows, [s.label for s in config.runs])
    best = winners(heads)
    plots = _plots(config, records, heads, workdir)
    _write_json(
        os.path.join(workdir, "results.json"),
        {
            "study": config.name,
            "config": _describe(
                {
                    k: v
                    for k, v in dataclasses.asdict(config).items()
                    if k not in ("runs", "description")
                }
            ),
            "run_specs": [_describe(dataclasses.asdict(s)) for s in config.runs],
            "heads": heads,
            "runs": rows,
            "winners": best,
            "plots": plots,
        },
    )
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(_markdown(config, heads, rows, best, plots))
    return heads


# ---------------------------------------------------------------------------
# Plots (matplotlib, Agg).
# ---------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int, cols: int = 3) -> tuple[int, int]:
    cols = min(cols, n)
    return math.ceil(n / cols), cols


def _plots(config, records, heads, workdir) -> list[str]:
    plt = _pyplot()
    by_head: dict[str, list[Mapping]] = {}
    for r in records:
        by_head.setdefault(r["row"]["head"], []).append(r)
    labels = [h["head"] for h in heads]
    colours = plt.get_cmap("tab10")
    written = []

    # Learning curves: every seed thin, the mean over seeds thick.
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, label in enumerate(labels):
        curves = []
        for r in by_head[label]:
            pts = [
                (m["step"], m["loss"])
                for m in _load_rows(os.path.join(workdir, r["train_dir"], "metrics.jsonl"))
                if "loss" in m
            ]
            if pts:
                curves.append(np.asarray(pts, np.float64))
                ax.plot(*curves[-1].T, color=colours(i % 10), alpha=0.3, linewidth=0.8)
        if curves:
            n = min(len(c) for c in curves)
            mean = np.mean([c[:n, 1] for c in curves], axis=0)
            ax.plot(curves[0][:n, 0], mean, color=colours(i % 10), linewidth=2, label=label)
    ax.set(
        xlabel="step",
        ylabel="training loss (the head's own loss)",
        yscale="log",
        title=f"{config.name}: learning curves (thin: seeds, thick: mean)",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    written.append(_save(plt, fig, workdir, "learning_curves.png"))

    # Precision-recall at IoU 0.5, first seed of each row, one line per class.
    rows_, cols_ = _grid(len(labels))
    fig, axes = plt.subplots(rows_, cols_, figsize=(4 * cols_, 3.5 * rows_), squeeze=False)
    for ax, label in zip(axes.flat, labels, strict=False):
        r = by_head[label][0]
        names = r["class_names"]
        for k, (recall, precision) in sorted(r["pr_curves"].items(), key=lambda kv: int(kv[0])):
            ap = r["row"]["per_class_ap50"].get(k, r["row"]["per_class_ap50"].get(int(k)))
            ax.plot(
                recall,
                precision,
                color=colours(int(k) % 10),
                label=f"{names[int(k)]} (AP {_fmt(ap, 2)})",
            )
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1.02),
            xlabel="recall",
            ylabel="precision",
            title=f"{label} (seed {r['row']['seed']}): mAP50 {_fmt(r['row']['mAP50'])}",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    for ax in list(axes.flat)[len(labels) :]:
        ax.axis("off")
    fig.suptitle(f"{config.name}: precision-recall at IoU 0.5 (VOC2010)")
    written.append(_save(plt, fig, workdir, "pr_curves.png"))

    written.append(_detections_plot(plt, config, by_head, labels, workdir))

    # Overview: mAP50 ± std per row, and mAP50 against parameters.
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = np.arange(len(heads))
    means = [h["mAP50"] or 0 for h in heads]
    errs = [h["mAP50_std"] or 0 for h in heads]
    ax1.bar(x, means, yerr=errs, color=[colours(i % 10) for i in x], capsize=4)
    ax1.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax1.set(ylabel="mAP50 (VOC2010)", title="mAP50, mean ± std over seeds")
    for i, h in enumerate(heads):
        ax2.errorbar(h["params"], means[i], yerr=errs[i], fmt="o", color=colours(i % 10), capsize=3)
        ax2.annotate(
            h["head"],
            (h["params"], means[i]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax2.set(
        xscale="log",
        xlabel="parameters (whole detector)",
        ylabel="mAP50 (VOC2010)",
        title="accuracy against size",
    )
    ax2.grid(alpha=0.3)
    written.append(_save(plt, fig, workdir, "overview.png"))
    return written


def _detections_plot(plt, config, by_head, labels, workdir) -> str:
    from jaxheads.train.detection import make_dataset

    first = {label: by_head[label][0] for label in labels}
    count = min(config.example_images, min(len(r["examples"]) for r in first.values()))
    count = max(count, 1)
    fig, axes = plt.subplots(
        len(labels), count, figsize=(2.6 * count, 2.7 * len(labels)), squeeze=False
    )
    colours = plt.get_cmap("tab10")
    images: dict[tuple, Any] = {}
    for row, label in enumerate(labels):
        r = first[label]
        size = r["row"]["eval_image_size"]
        # The validation set the examples come from.
        val = r.get("val") or {
            "dataset": config.dataset,
            "num_examples": config.val_examples,
            "seed": config.data_seed,
        }
        key = (val["dataset"], size, val["num_examples"], val["seed"])
        if key not in images:
            data = make_dataset(
                val["dataset"],
                "val",
                image_size=size,
                num_examples=val["num_examples"],
                seed=val["seed"],
            )
            images[key] = [data.example(i)["image"] for i in range(count)]
        names = r["class_names"]
        for col in range(count):
            ax = axes[row, col]
            # Pixel (r, c) covers [c, c + 1) × [r, r + 1), as the boxes do.
            ax.imshow(images[key][col], interpolation="nearest", extent=(0, size, size, 0))
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
            if col >= len(r["examples"]):
                continue
            ex = r["examples"][col]
            for x0, y0, x1, y1 in ex["truth_boxes"]:
                ax.add_patch(
                    plt.Rectangle(
                        (x0, y0),
                        x1 - x0,
                        y1 - y0,
                        fill=False,
                        edgecolor="lime",
                        linestyle="--",
                        linewidth=1.2,
                    )
                )
            dotted = not ex.get("confident", True)
            for (x0, y0, x1, y1), s, c in zip(ex["boxes"], ex["scores"], ex["labels"], strict=True):
                colour = colours((c + 3) % 10)
                ax.add_patch(
                    plt.Rectangle(
                        (x0, y0),
                        x1 - x0,
                        y1 - y0,
                        fill=False,
                        edgecolor=colour,
                        linewidth=1.5,
                        linestyle=":" if dotted else "-",
                    )
                )
                ax.text(
                    x0,
                    y0,
                    f"{names[c]} {s:.2f}",
                    color="white",
                    fontsize=6,
                    va="bottom",
                    clip_on=True,
                    bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "linewidth": 0},
                )
            if dotted:
                ax.set_title(f"none ≥ {DRAW_SCORE}: best one, dotted", fontsize=7)
            ax.set_xlim(0, size)
            ax.set_ylim(size, 0)
    fig.suptitle(
        f"{config.name}: detections with score ≥ {DRAW_SCORE} (solid, class and score; dotted: "
        "the best one where none reaches it), ground truth dashed green; first seed",
        fontsize=9,
    )
    return _save(plt, fig, workdir, "detections.png")


def _save(plt, fig, workdir: str, name: str) -> str:
    fig.tight_layout(rect=(0, 0, 1, 0.97) if fig.get_suptitle() else None)
    fig.savefig(os.path.join(workdir, name), dpi=110)
    plt.close(fig)
    return name


# ---------------------------------------------------------------------------
# Study files and the command line.
# ---------------------------------------------------------------------------


def experiments_dir() -> Path:
    """The ``experiments/`` directory: under the CWD, else beside the ``jaxheads`` package."""
    import jaxheads

    candidates = [
        Path.cwd() / "experiments",
        Path(jaxheads.__file__).resolve().parents[1] / "experiments",
    ]
    for path in candidates:
        if path.is_dir():
            return path
    return candidates[-1]


def load_study(config: str | os.PathLike | None = None) -> ModuleType:
    """Loads a study file (``experiments/heads.py`` by default) as a module.

    Args:
      config: a path to a ``.py`` file with ``get_config(profile)``, or the name of
        one in `experiments_dir` (``"heads"``); None for the heads study.

    Raises:
      FileNotFoundError: naming the path that was looked for.
    """
    if config is None:
        path = experiments_dir() / "heads.py"
    else:
        path = Path(config)
        if not path.is_file() and path.suffix != ".py" and os.sep not in str(config):
            path = experiments_dir() / f"{config}.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"jaxheads compare: expected a study config file at {path.resolve()} (the "
            "experiments/ directory of a repository checkout; pass --config PATH)"
        )
    name = f"jaxheads_study_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)):
        raise ValueError(f"jaxheads compare: expected get_config(profile) in {path}, got none")
    return module


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``jaxheads compare``; each overrides the study config when given."""
    p.add_argument("--config", default=None, help="a study file (default: experiments/heads.py)")
    p.add_argument(
        "--quick", action="store_true", help="the study's quick profile (a few minutes on a CPU)"
    )
    p.add_argument("--workdir", default=None, help="default: runs/compare-<study>[-quick]")
    p.add_argument("--seed", type=int, default=None, help="the first seed")
    p.add_argument("--seeds", type=int, default=None, help="how many seeds")
    p.add_argument("--heads", default=None, help="comma-separated run labels to keep")
    p.add_argument("--dataset", choices=("shapes", "digits"), default=None,
                   help="override the study's dataset")
    p.add_argument("--steps", type=int, default=None, help="override the study's training steps")
    p.add_argument("--batch-size", type=int, default=None,
                   help="override the study's global batch size")
    p.add_argument("--image-size", type=int, default=None,
                   help="override the study's image side in pixels")
    p.add_argument(
        "--devices",
        type=int,
        default=None,
        help="use N devices (on CPU, N host devices are forced)",
    )
    p.add_argument("--parallel", choices=("jit", "pmap", "shard_map"), default=None,
                   help="override how each run splits its batch over the devices")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def config_from_args(module: ModuleType, args: argparse.Namespace) -> StudyConfig:
    """The study's config for ``--quick`` or the full profile, with the options applied."""
    config = module.get_config("quick" if args.quick else "full")
    changes: dict[str, Any] = {}
    if args.seed is not None or args.seeds is not None:
        first = config.seeds[0] if args.seed is None else args.seed
        n = len(config.seeds) if args.seeds is None else args.seeds
        if n < 1:
            raise ValueError(f"jaxheads compare: expected --seeds >= 1, got {n}")
        changes["seeds"] = tuple(range(first, first + n))
    for arg, field in (
        ("dataset", "dataset"),
        ("steps", "steps"),
        ("batch_size", "batch_size"),
        ("image_size", "image_size"),
        ("devices", "num_devices"),
        ("parallel", "parallel"),
    ):
        if getattr(args, arg) is not None:
            changes[field] = getattr(args, arg)
    if changes:
        config = dataclasses.replace(config, **changes)
    return config


def compare_command(args: argparse.Namespace) -> int:
    """``jaxheads compare``: runs a study and prints its table."""
    from jaxheads.train.commands import start_jax

    start_jax(
        argparse.Namespace(
            devices=args.devices, coordinator_address=None, num_processes=None, process_id=None
        )
    )
    from jaxheads.train.loop import TrainingDiverged

    try:
        module = load_study(args.config)
        config = config_from_args(module, args)
        if args.heads:
            config = config.select([h.strip() for h in args.heads.split(",") if h.strip()])
        workdir = args.workdir or os.path.join(
            "runs", f"compare-{config.name}" + ("-quick" if args.quick else "")
        )
        run = getattr(module, "run", None)
        if run is not None:
            run(config, workdir, progress=not args.no_progress)
        else:
            run_study(config, workdir, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as err:
        message = str(err)
        if not message.startswith("jaxheads compare"):
            message = f"jaxheads compare: {message}"
        print(message, file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"jaxheads compare: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt as err:
        print(f"jaxheads compare: {err or 'interrupted'}", file=sys.stderr)
        return 130
    with open(os.path.join(workdir, "results.md")) as f:
        print(f.read())
    print(f"results: {os.path.join(workdir, 'results.md')}")
    return 0
