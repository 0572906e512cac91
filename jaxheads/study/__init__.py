"""Head comparison studies: train several detectors alike, measure them, write the report.

A study is a `StudyConfig`: rows (`TrainRow`: a detector and what it trains
differently; `EvalRow`: another row's weights evaluated otherwise) and the
`Budget` they share (a `jaxheads.train.RunConfig` and the data), and the
`Pretraining` stages rows may start from (``TrainRow.init``; `pretrained` copies
rows so). `run_study` runs the stages first (``WORKDIR/pretrain/<stage>``, once
each), then trains each (row, seed) with `jaxheads.train.fit` in ``WORKDIR/<label>/seed<k>``,
evaluates it with `jaxheads.train.detection.evaluate`, measures it
(`jaxheads.study.measure`) and writes::

    WORKDIR/results.json          per-seed rows, per-row aggregates (mean ± std), winners
    WORKDIR/results.md            the table and which row won on what
    WORKDIR/learning_curves.png   training loss against step, per row
    WORKDIR/pr_curves.png         precision-recall at IoU 0.5, a panel per row
    WORKDIR/detections.png        predictions and ground truth on validation images
    WORKDIR/overview.png          mAP50 per row, and mAP50 against parameters
    WORKDIR/budget_sweep.png      a budget sweep's mAP50 against images seen (`at_steps` rows)

Every number is declared once in `jaxheads.train.metric_table.METRICS`. Each
finished (row, seed) leaves ``result.json`` in its directory, so running the same
study again skips it. The packaged studies (``experiments/`` beside the package:
``heads``, ``yolov2_path``, ``budget``, ...) run with ``jaxheads compare --config NAME``
(``--profile NAME`` picks one of a study's profiles); any other study file with
``jaxheads compare --config PATH``.

`publish_study` (``jaxheads compare --publish``) and `publish_run` (``jaxheads report
--run WORKDIR --publish DIR``, a ``jaxheads train`` run) write the files to commit under
``docs/results/``: ``results.json`` with the command, the versions, the processor and
the run time, ``results.md``, the plots and the learning curves as CSV. `regenerate`
(``jaxheads report``) rewrites the tables of ``README.md`` and ``docs/`` that quote them.
"""

from jaxheads.study.config import (
    QUICK_BUDGET,
    STUDY_RUN,
    Budget,
    EvalRow,
    Pretraining,
    StudyConfig,
    TrainRow,
    pretrained,
    variant_of,
    with_profile,
)
from jaxheads.study.measure import (
    box_sizes,
    detector_flops,
    forward_flops,
    measure_params,
    prior_iou,
    steady_images_per_s,
)
from jaxheads.study.publish import ReportRequest, make_report, publish_run, publish_study
from jaxheads.study.records import RunRecord
from jaxheads.study.report import aggregate, winners, write_report
from jaxheads.study.run import run_row, run_study
from jaxheads.study.studies import load_study, packaged_studies
from jaxheads.study.sweep import at_steps, rankings, sweep, sweep_of
from jaxheads.study.tables import regenerate

__all__ = [
    "QUICK_BUDGET",
    "STUDY_RUN",
    "Budget",
    "EvalRow",
    "Pretraining",
    "ReportRequest",
    "RunRecord",
    "StudyConfig",
    "TrainRow",
    "aggregate",
    "at_steps",
    "box_sizes",
    "detector_flops",
    "forward_flops",
    "load_study",
    "make_report",
    "measure_params",
    "packaged_studies",
    "pretrained",
    "prior_iou",
    "publish_run",
    "publish_study",
    "regenerate",
    "rankings",
    "run_row",
    "run_study",
    "steady_images_per_s",
    "sweep",
    "sweep_of",
    "variant_of",
    "winners",
    "with_profile",
    "write_report",
]
