"""A study's typed config: the budget every row shares (a `RunConfig` and the data), and rows.

A study file's ``get_config(profile)`` returns a `StudyConfig`::

    StudyConfig(
        name="heads",
        rows=[TrainRow("yolov2", "small-yolov2"), ...],
        budget=Budget(run=dataclasses.replace(STUDY_RUN, learning_rate=3e-4)),
    )

A row that trains differently says so with ``changes``, applied by `Budget.replace`
(which is `dataclasses.replace` on the budget and on the `RunConfig` it holds); a
row that only evaluates another row's weights is an `EvalRow`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from jaxheads.train.loop import RunConfig

#: A study's training runs by default: 1000 steps, 100 of warm-up, a checkpoint every 250;
#: the work directory and seed are set per (row, seed).
STUDY_RUN = RunConfig(workdir="", steps=1000, burn_in=100, checkpoint_every=250, eval_every=0)


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every row of a study trains and is evaluated with, unless it changes it.

    Attributes:
      run: how to train (`jaxheads.train.RunConfig`; its ``workdir`` and ``seed`` are
        set per (row, seed); ``burn_in`` is capped at a tenth of ``steps`` unless the
        row sets it: `jaxheads.study.run.warm_up`).
      dataset: an embedded data set of `jaxheads.zoo` (``"shapes"``, ``"digits"``:
        `jaxheads.zoo.dataset_names`).
      image_size: training image side (square images).
      batch_size: the global training batch.
      train_examples: training set size (None: the data set's default, 20,000).
      data_seed: picks the data set itself; the same for every row and seed.
      augment: training augmentation (`jaxheads.data.augment.augment`).
      val_examples: validation images.
      eval_batch_size: evaluation batch (at most ``val_examples``).
      example_images: validation images drawn in ``detections.png``.
    """

    run: RunConfig = STUDY_RUN
    dataset: str = "shapes"
    image_size: int = 96
    batch_size: int = 32
    train_examples: int | None = None
    data_seed: int = 0
    augment: bool = True
    val_examples: int = 256
    eval_batch_size: int = 64
    example_images: int = 4

    def __post_init__(self):
        from jaxheads import zoo

        zoo.dataset(self.dataset, embedded=True, op="Budget")

    def replace(self, **changes) -> Budget:
        """`dataclasses.replace` of the budget's fields and of ``run``'s, by name.

        >>> Budget().replace(steps=50, image_size=64).run.steps
        50

        Raises:
          ValueError: a name that is neither a `Budget` nor a `RunConfig` field.
        """
        mine = {f.name for f in dataclasses.fields(self)} - {"run"}
        run_fields = {f.name for f in dataclasses.fields(RunConfig)} - {"workdir", "extra"}
        unknown = sorted(set(changes) - mine - run_fields)
        if unknown:
            raise ValueError(
                f"Budget.replace: expected fields among {sorted(mine | run_fields)}, got {unknown}"
            )
        run = {k: v for k, v in changes.items() if k in run_fields}
        own = {k: v for k, v in changes.items() if k in mine}
        if run:
            own["run"] = dataclasses.replace(self.run, **run)
        return dataclasses.replace(self, **own)


Model = str | Mapping[str, Any] | Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class TrainRow:
    """A row that trains a detector.

    Attributes:
      label: the row's name (its directory, its name in the tables and plots).
      model: a registered detector name (``"small-yolov2"``); keyword arguments of
        `jaxheads.models.small_detector` (``{"head": "yolov1-fc", "batch_norm": False}``);
        or a builder ``(*, image_size, num_classes, train_data) -> Detector``.
      loss_options: keyword arguments of the head's loss beyond the head's own
        (``{"lambda_coord": 1.0}``; see `jaxheads.train.detection.detection_loss`).
      train_sizes: multi-scale training: every 10 steps the batch is drawn at one of
        these image sizes (darknet's ``random=1``); one compiled step per size.
      eval_image_size: evaluate (and count FLOPs) at this size; None: the training size.
      changes: `Budget` or `RunConfig` fields this row sets otherwise (`Budget.replace`).
      init: the label of a `Pretraining` stage of the study whose backbone weights the
        detector starts from (matched by name, shapes checked); None: from scratch.
    """

    label: str
    model: Model = "small-yolov2"
    loss_options: Mapping[str, float] = dataclasses.field(default_factory=dict)
    train_sizes: tuple[int, ...] = ()
    eval_image_size: int | None = None
    changes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    init: str | None = None


@dataclasses.dataclass(frozen=True)
class Pretraining:
    """A backbone's classification pre-training (`jaxheads pretrain`) that rows start from.

    Each stage trains once (with ``seed``), as a paper pre-trains its backbone
    once: the detector seeds of the rows that start from it vary what is trained
    after it (the head's init, the data order, dropout). It classifies the
    embedded `jaxheads.data.objects.ObjectsDataset` (15 classes, one object an image).

    Attributes:
      label: the stage's name: its directory ``WORKDIR/pretrain/<label>``, and what
        `TrainRow.init` and ``init_from`` name.
      backbone: a backbone of `jaxheads.zoo` with a pre-training recipe
        (`jaxheads.zoo.pretrainable`), the backbone of the rows
        that start from it (``"small"``, ``"small-nobn"``, ``"small-extraction"``...).
      image_size: the classifier's image side (a multiple of 16).
      steps: training steps (Adam, cosine decay after ``burn_in`` warm-up steps).
      batch_size: the global batch.
      learning_rate: the peak learning rate.
      burn_in: warm-up steps.
      train_examples: distinct training images.
      val_examples: held-out images for top-1/top-5.
      init_from: an earlier stage whose weights it starts from: YOLOv2's "high
        resolution classifier" is a stage at the detector's size from one at half of it.
      seed: init, data order and augmentation.
    """

    label: str
    backbone: str = "small"
    image_size: int = 64
    steps: int = 1000
    batch_size: int = 64
    learning_rate: float = 1e-3
    burn_in: int = 100
    train_examples: int = 20_000
    val_examples: int = 1000
    init_from: str | None = None
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class EvalRow:
    """A row that evaluates an earlier `TrainRow`'s trained weights, without training.

    Attributes:
      label: the row's name.
      weights_from: the label of the `TrainRow` whose weights (for each seed) it evaluates.
      eval_image_size: the image side it evaluates at (the hi-res detector of YOLOv2).
    """

    label: str
    weights_from: str
    eval_image_size: int | None = None


Row = TrainRow | EvalRow


#: The analyses a study may publish (`jaxheads.study.analysis`).
ANALYSES = ("dependence", "gradients")


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """A comparison study: the rows and the budget they share.

    Attributes:
      name: the study's name.
      rows: the `TrainRow` and `EvalRow` rows, in report order.
      seeds: one training run per row and seed (init, data order, dropout).
      budget: the data, training and evaluation every row shares.
      description: a paragraph at the top of ``results.md``.
      command: the command that runs the study, quoted in ``results.md``.
      paper: ``{label: text}``, published numbers shown beside ours.
      paper_metric: the key of ours the ``paper`` column compares with.
      pretraining: the `Pretraining` stages rows start from (run first, in order).
      analyses: the analyses of `jaxheads.study.analysis` (``"dependence"``,
        ``"gradients"``: the latter needs exactly one pre-training stage) that ``jaxheads
        compare --publish`` runs on the finished study and publishes beside its results.
    """

    name: str
    rows: Sequence[Row]
    seeds: Sequence[int] = (0, 1, 2)
    budget: Budget = Budget()
    description: str = ""
    command: str = ""
    paper: Mapping[str, str] = dataclasses.field(default_factory=dict)
    paper_metric: str = "mAP50_voc07"
    pretraining: Sequence[Pretraining] = ()
    analyses: Sequence[str] = ()

    def __post_init__(self):
        labels = [r.label for r in self.rows]
        where = f"StudyConfig {self.name!r}"
        self._check_pretraining(where)
        unknown = [a for a in self.analyses if a not in ANALYSES]
        if unknown:
            raise ValueError(f"{where}: expected analyses among {list(ANALYSES)}, got {unknown}")
        if "gradients" in self.analyses and len(self.pretraining) != 1:
            raise ValueError(
                f"{where}: expected one pre-training stage for the gradients analysis, got "
                f"{[p.label for p in self.pretraining]}"
            )
        if "pretrain" in labels:
            raise ValueError(f"{where}: 'pretrain' is the stages' directory, not a row label")
        if not labels:
            raise ValueError(f"{where}: expected at least one row, got none")
        if len(set(labels)) != len(labels):
            raise ValueError(f"{where}: expected unique row labels, got {labels}")
        bad = [x for x in labels if not x or "/" in x or x.startswith(".")]
        if bad:
            raise ValueError(f"{where}: expected labels usable as directory names, got {bad}")
        if not self.seeds:
            raise ValueError(f"{where}: expected at least one seed, got none")
        for i, row in enumerate(self.rows):
            if isinstance(row, TrainRow):
                self.budget.replace(**row.changes)  # raises on an unknown field
                stages = [p.label for p in self.pretraining]
                if row.init is not None and row.init not in stages:
                    raise ValueError(
                        f"row {row.label!r}: expected init to name a pretraining stage "
                        f"among {stages}, got {row.init!r}"
                    )
            elif isinstance(row, EvalRow):
                earlier = [r.label for r in self.rows[:i] if isinstance(r, TrainRow)]
                if row.weights_from not in earlier:
                    raise ValueError(
                        f"row {row.label!r}: expected weights_from to name an earlier "
                        f"TrainRow among {earlier}, got {row.weights_from!r}"
                    )
            else:
                raise ValueError(
                    f"{where}: expected TrainRow or EvalRow rows, got {type(row).__name__}"
                )

    def _check_pretraining(self, where: str) -> None:
        from jaxheads import zoo

        seen: list[str] = []
        for p in self.pretraining:
            if not isinstance(p, Pretraining):
                raise ValueError(f"{where}: expected Pretraining stages, got {type(p).__name__}")
            if not p.label or "/" in p.label or p.label.startswith(".") or p.label in seen:
                raise ValueError(
                    f"{where}: expected unique stage labels usable as directory names, "
                    f"got {p.label!r}"
                )
            zoo.pretrain_entry(p.backbone, op=f"stage {p.label!r}")
            if p.init_from is not None and p.init_from not in seen:
                raise ValueError(
                    f"stage {p.label!r}: expected init_from to name an earlier stage among "
                    f"{seen}, got {p.init_from!r}"
                )
            seen.append(p.label)

    def stage(self, label: str) -> Pretraining:
        """The pretraining stage called ``label``."""
        return next(p for p in self.pretraining if p.label == label)

    def row(self, label: str) -> Row:
        """The row called ``label``."""
        return next(r for r in self.rows if r.label == label)

    def budget_of(self, row: TrainRow) -> Budget:
        """The budget ``row`` trains with: the study's, with the row's changes."""
        return self.budget.replace(**row.changes)

    def select(self, labels: Sequence[str]) -> StudyConfig:
        """The study restricted to ``labels`` (``-`` and ``_`` match each other).

        The row a kept `EvalRow` takes its weights from is kept too, and of the
        pre-training stages those that a kept row starts from (and the stages those
        start from): rows from scratch alone pre-train nothing.
        """

        def norm(s):
            return s.replace("-", "_")

        known = {norm(r.label) for r in self.rows}
        missing = [x for x in labels if norm(x) not in known]
        if missing:
            raise ValueError(
                f"{self.name}: expected rows among {[r.label for r in self.rows]}, got {missing}"
            )
        wanted = {norm(x) for x in labels}
        for r in reversed(self.rows):
            if norm(r.label) in wanted and isinstance(r, EvalRow):
                wanted.add(norm(r.weights_from))
        rows = [r for r in self.rows if norm(r.label) in wanted]
        stages = {r.init for r in rows if isinstance(r, TrainRow) and r.init}
        for p in reversed(self.pretraining):  # a stage starts from an earlier one
            if p.label in stages and p.init_from:
                stages.add(p.init_from)
        pretraining = [p for p in self.pretraining if p.label in stages]
        return dataclasses.replace(self, rows=rows, pretraining=pretraining)


def pretrained(rows: Sequence[Row], stage: str) -> list[TrainRow]:
    """Each `TrainRow` of ``rows`` again, starting from the pretraining stage ``stage``.

    The copies are labelled ``<label>@<stage>`` (`variant_of` reads the label back),
    so a report sets each beside its from-scratch row.

    >>> [r.label for r in pretrained([TrainRow("yolov2")], "pre64")]
    ['yolov2@pre64']
    """
    return [
        dataclasses.replace(r, label=f"{r.label}@{stage}", init=stage)
        for r in rows
        if isinstance(r, TrainRow)
    ]


def variant_of(label: str) -> tuple[str, str | None]:
    """``(base label, stage)`` of a `pretrained` row's label; ``(label, None)`` otherwise.

    >>> variant_of("yolov2@pre64"), variant_of("yolov2")
    (('yolov2', 'pre64'), ('yolov2', None))
    """
    base, _, stage = label.partition("@")
    return base, stage or None


# Every study's ``--quick`` profile: a smoke run of a few minutes on a 2-core CPU that
# writes every file but cannot rank the rows. The full profile is the study's own budget
# (by default 3 seeds, 1000 steps of batch 32 at 96×96).
QUICK_SEEDS = (0,)
#: The ``--quick`` profile's changes to the stages of `Pretraining` (image sizes kept).
QUICK_PRETRAINING: Mapping[str, Any] = MappingProxyType(
    {"steps": 40, "batch_size": 32, "burn_in": 4, "train_examples": 1024, "val_examples": 128}
)
#: The ``--quick`` profile's changes to a study's budget (see `with_profile`).
QUICK_BUDGET: Mapping[str, Any] = MappingProxyType(
    {
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
#: The ``accelerator`` profile's seeds: three, so that every gap has a spread to be judged by.
ACCELERATOR_SEEDS = (0, 1, 2)
PROFILES = ("full", "quick", "accelerator")


def override(
    config: StudyConfig,
    *,
    seed: int | None = None,
    seeds: int | None = None,
    heads: Sequence[str] = (),
    **budget,
) -> StudyConfig:
    """``config`` with the changes a command line gives: seeds, kept rows, `Budget` fields.

    ``budget`` holds `Budget`/`RunConfig` fields; None values are left as they are.

    Raises:
      ValueError: a `Budget` field that a kept row sets itself (its setting would win,
        and the override would change nothing for it), e.g. ``steps`` in a budget sweep.
    """
    if seed is not None or seeds is not None:
        first = config.seeds[0] if seed is None else seed
        n = len(config.seeds) if seeds is None else seeds
        if n < 1:
            raise ValueError(f"jaxheads compare: expected --seeds >= 1, got {n}")
        config = dataclasses.replace(config, seeds=tuple(range(first, first + n)))
    if heads:
        config = config.select(heads)
    changes = {k: v for k, v in budget.items() if v is not None}
    # A row's own setting wins over the study's: an override it would hide is refused.
    hidden = {
        k: [r.label for r in config.rows if isinstance(r, TrainRow) and k in r.changes]
        for k in changes
    }
    hidden = {k: labels for k, labels in hidden.items() if labels}
    if hidden:
        key, labels = next(iter(hidden.items()))
        raise ValueError(
            f"jaxheads compare: expected no --{key.replace('_', '-')} for {config.name}: its "
            f"rows {labels[:3]}{' ...' if len(labels) > 3 else ''} set {key} themselves "
            "(pick a profile with --profile, or rows with --heads)"
        )
    if changes:
        config = dataclasses.replace(config, budget=config.budget.replace(**changes))
    return config


def with_profile(
    config: StudyConfig, profile: str, *, accelerator: Mapping[str, Any] | None = None
) -> StudyConfig:
    """``config`` itself for ``"full"``; for ``"quick"``, one seed and `QUICK_BUDGET`; for
    ``"accelerator"``, `ACCELERATOR_SEEDS` and the study's ``accelerator`` changes to its
    budget (`Budget.replace`: a study sizes them for its rows, e.g. more steps).

    >>> config = StudyConfig("x", [TrainRow("a")])
    >>> with_profile(config, "quick").budget.run.steps
    100
    >>> big = with_profile(config, "accelerator", accelerator={"steps": 20_000})
    >>> big.budget.run.steps, big.seeds
    (20000, (0, 1, 2))

    Raises:
      ValueError: a profile other than these three, or ``"accelerator"`` without changes.
    """
    if profile == "full":
        return config
    if profile == "accelerator":
        if accelerator is None:
            raise ValueError(f"{config.name}: expected an accelerator profile's changes, got none")
        return dataclasses.replace(
            config, seeds=ACCELERATOR_SEEDS, budget=config.budget.replace(**accelerator)
        )
    if profile == "quick":
        return dataclasses.replace(
            config,
            seeds=QUICK_SEEDS,
            budget=config.budget.replace(**QUICK_BUDGET),
            pretraining=[dataclasses.replace(p, **QUICK_PRETRAINING) for p in config.pretraining],
        )
    raise ValueError(f"{config.name}: expected profile in {list(PROFILES)}, got {profile!r}")


def describe(obj) -> Any:
    """A JSON description of a config value: callables by name, partials with their arguments.

    >>> describe({"steps": 3, "sizes": (32, 48), "f": functools.partial(max, 1)})
    {'steps': 3, 'sizes': [32, 48], 'f': {'function': 'builtins.max', 'args': [1], 'kwargs': {}}}
    """
    if isinstance(obj, functools.partial):
        return {
            "function": describe(obj.func),
            "args": describe(list(obj.args)),
            "kwargs": describe(dict(obj.keywords)),
        }
    if callable(obj) and hasattr(obj, "__qualname__"):
        try:
            where = Path(inspect.getfile(obj)).stem
        except TypeError:
            where = getattr(obj, "__module__", "")
        return f"{where}.{obj.__qualname__}"
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: describe(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): describe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [describe(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
