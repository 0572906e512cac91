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
        set per (row, seed), ``burn_in`` is capped at a tenth of ``steps``).
      dataset: ``"shapes"`` or ``"digits"`` (`jaxheads.train.detection.make_dataset`).
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
      loss: ``(detector, *, global_batch) -> loss_fn`` replacing the head's standard
        loss (see `jaxheads.train.detection.detection_loss`).
      train_sizes: multi-scale training: every 10 steps the batch is drawn at one of
        these image sizes (darknet's ``random=1``); one compiled step per size.
      eval_image_size: evaluate (and count FLOPs) at this size; None: the training size.
      changes: `Budget` or `RunConfig` fields this row sets otherwise (`Budget.replace`).
    """

    label: str
    model: Model = "small-yolov2"
    loss: Callable[..., Any] | None = None
    train_sizes: tuple[int, ...] = ()
    eval_image_size: int | None = None
    changes: Mapping[str, Any] = dataclasses.field(default_factory=dict)


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
    """

    name: str
    rows: Sequence[Row]
    seeds: Sequence[int] = (0, 1, 2)
    budget: Budget = Budget()
    description: str = ""
    command: str = ""
    paper: Mapping[str, str] = dataclasses.field(default_factory=dict)
    paper_metric: str = "mAP50_voc07"

    def __post_init__(self):
        labels = [r.label for r in self.rows]
        where = f"StudyConfig {self.name!r}"
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

    def row(self, label: str) -> Row:
        """The row called ``label``."""
        return next(r for r in self.rows if r.label == label)

    def budget_of(self, row: TrainRow) -> Budget:
        """The budget ``row`` trains with: the study's, with the row's changes."""
        return self.budget.replace(**row.changes)

    def select(self, labels: Sequence[str]) -> StudyConfig:
        """The study restricted to ``labels`` (``-`` and ``_`` match each other).

        The row a kept `EvalRow` takes its weights from is kept too.
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
        return dataclasses.replace(self, rows=[r for r in self.rows if norm(r.label) in wanted])


# Every study's ``--quick`` profile: a smoke run of a few minutes on a 2-core CPU that
# writes every file but cannot rank the rows. The full profile is the study's own budget
# (by default 3 seeds, 1000 steps of batch 32 at 96×96).
QUICK_SEEDS = (0,)
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
PROFILES = ("full", "quick")


def with_profile(config: StudyConfig, profile: str) -> StudyConfig:
    """``config`` itself for ``"full"``; for ``"quick"``, one seed and `QUICK_BUDGET`.

    >>> config = StudyConfig("x", [TrainRow("a")])
    >>> with_profile(config, "quick").budget.run.steps
    100

    Raises:
      ValueError: a profile other than ``"full"`` or ``"quick"``.
    """
    if profile == "full":
        return config
    if profile == "quick":
        return dataclasses.replace(
            config, seeds=QUICK_SEEDS, budget=config.budget.replace(**QUICK_BUDGET)
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
