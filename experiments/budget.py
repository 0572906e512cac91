"""Does the heads' ranking change with the training budget? A budget sweep, each budget its own run.

Three heads of the heads study on its backbone, data and recipe (``shapes``,
Adam 1e-3 with a cosine decay after a warm-up of 100 steps, 256 validation
images; 96² and batch 32 in the ``accelerator`` profile, the pre-training's 64²
and batch 8 in ``cpu``), each from scratch and from the heads study's ``pre64``
classification pre-training (the same stage, the same settings: the same
weights), at increasing budgets:

* ``yolov1_fc``: Flatten → Dense 256 → Dense S·S·(2·5 + C) (``small-yolov1-fc``);
* ``yolov1_percell``: the same Dense layers per cell (``small-yolov1-percell``);
* ``yolov2``: 3×3 convs and a 1×1 conv to 5 anchors (``small-yolov2``).

A row is ``<head>+<steps>`` or ``<head>+<steps>@pre64`` (`jaxheads.study.sweep.at_steps`).
Each budget is a full run with its own cosine schedule: the learning rate of a
shorter run decays to 0 at its own end, so evaluating a longer run's early
checkpoint would not measure the same thing. What the machinery saves instead:
the stage trains once for every row and seed; a finished (row, seed) is found,
not retrained, so a profile run again in the same work directory keeps the
runs it finished (``cpu`` and ``accelerator`` train at different sizes: give
each its own work directory).
``results.md`` holds the sweep's table (head × init against budget, mean ±
std over seeds), the ranking at each budget by the study's rule for winners (a
gap counts when it exceeds the larger seed std) and ``budget_sweep.png``
(mAP50 against images seen, log x, a band of ± one std); ``results.json``'s
``"sweep"`` holds every seed's mAP50 per budget and the rankings.

Profiles (``--profile``)::

    jaxheads compare --config budget --profile quick --workdir /tmp/budget_quick
    jaxheads compare --config budget --profile cpu --workdir runs/budget
    jaxheads compare --config budget --profile accelerator --workdir runs/budget

``full`` (no ``--profile``) is ``cpu``.

Run time and how it was sized. ``quick`` (two budgets of 5 and 10 steps at
32², batch 8, one seed, 8 validation images, a 4-step stage: 12 training runs,
each compiling its own step and evaluation): measured 15 min 6 s on the 2-core
CPU at a load average of 13-19 (other jobs and a step-rate measurement beside
it: 45-60 s a run), and 13 min 8 s as its test at a load of 8-14, which used
4 min 34 s of CPU time (user 269 s, system 5 s). On the free machine that is
about 2.5 to 4.5 minutes, not the 2 minutes aimed at: compiling twelve runs'
steps and evaluations is most of it, and only one compiled step shared by the
runs whose shapes agree would cut it.

``cpu`` (64², batch 8; budgets 1,000, 3,000 and 10,000 steps, seeds 0 and 1:
14,000 steps per head, init and seed, 168,000 steps in all, 36 runs, and the
600-step stage): measured **97.5 minutes** on the 2-core CPU (2026-12-07), with
other work beside it at a load average of 11-15 (from its 25th minute that work
ran at the idle scheduling class, leaving it most of both cores: 27-45 steps/s,
against 45 steps/s measured alone beforehand). Alone, about 75 minutes. It was
sized from step rates measured alone on the same CPU (``jaxheads train --model
small-yolov2 --steps 300``): at 96² and batch 32 the three heads train at 3.8 to
4.7 steps/s, which would make this profile about 11 hours; at 64², 20 steps/s
with batch 16 and 45 with batch 8.

``accelerator`` (budgets 1,000 to 30,000 steps, seeds 0, 1 and 2: 44,000 steps
per head, init and seed, 792,000 steps, 72 runs, 25.3 M training images): sized
from FLOPs. One training image costs about 3× its forward pass (91.2, 91.2 and
120.2 MFLOPs at 96², XLA's count, `jaxheads.study.detector_flops`): 303 MFLOPs on
average, 9.7 GFLOP a step of batch 32, 7.7 PFLOP for the profile. An H100 does
that in **about 10 minutes** at 12.8 TFLOP/s, 2.6% of its TF32 dense peak (495
TFLOP/s; the study trains in float32), i.e. 0.76 ms a step: about what a network
this small can hope for, its step bound by kernel launches and latency rather
than by FLOPs (the bench's YOLOv2-VOC step at 416², 580× the work, reached 14% in
float32 on the H200). A Colab TPU v5e-1 at the same 2.6% of its 197 TFLOP/s:
**about 25 minutes**. Add
compilation: each of the 72 runs compiles its step (12 distinct programs, one
per head and budget: a cosine schedule's length is part of its program) and its
evaluation, a few seconds each. The chip draws the scenes (``shapes-device``: the same
kinds of scenes and augmentation as ``shapes``, other pixels; the host only picks
indices): the 42,000 images/s would have needed the host's numpy pipeline, about 590 a
core at 96² (measured on one core of the 2-core CPU), for about 3 hours on 4 loader
threads. On the free 2-core CPU: about 52 hours (the rates
above). Not yet measured on any accelerator.

Expected result. ``quick``: every head × init × budget trains, is evaluated and
reported, all near mAP50 0 (10 steps rank nothing); measured (seed 0,
2026-12-06): ``yolov1_fc`` and ``yolov1_percell`` 0.000 at both budgets, from
scratch and pre-trained; ``yolov2`` 0.001 (pre-trained 0.0013 and 0.0010, from
scratch 0.0011 and 0.0010). The ranking lines then read ``yolov2@pre64 >? yolov2
>? yolov1_fc = ...``: one seed, nothing judged.
``cpu``, measured (2-core AMD EPYC, JAX 0.10.2; VOC2010 mAP50, mean ± std over
seeds 0 and 1; ``docs/results/budget/results.json``), at 1,000 / 3,000 / 10,000
steps: ``yolov1_fc`` 0.001 / 0.002 / 0.034 ± 0.007 from scratch and 0.001 / 0.003
/ 0.037 ± 0.005 pre-trained; ``yolov1_percell`` 0.022 / 0.238 / 0.643 ± 0.029 and
0.113 / 0.450 / 0.681 ± 0.011; ``yolov2`` 0.016 / 0.178 / 0.484 ± 0.003 and 0.112
/ 0.353 / 0.589 ± 0.007. The ranking per-cell > YOLOv2 > FC holds at every budget
and either start (per-cell and YOLOv2 pre-trained are not separated at 1,000
steps); the FC head starts between 3,000 and 10,000 steps and falls further
behind; pre-training never separates it from its from-scratch runs. The seeds
differ by up to 0.045 per cell; another processor moves the third digit.
``accelerator``: not yet measured. A single 96², batch-32 run of 10,000 steps
(seed 0, this CPU, pre-trained) gave ``yolov1_fc@pre64`` 0.424 and
``yolov2@pre64`` 0.930: the profile says whether the FC head closes the gap by
30,000 steps.
"""

from __future__ import annotations

import dataclasses

from jaxheads.study import Budget, StudyConfig, TrainRow, at_steps, load_study, pretrained

_HEADS_STUDY = load_study("heads")
# The heads study's labels and model names of the three heads swept.
HEADS = {k: _HEADS_STUDY.HEADS[k] for k in ("yolov1_fc", "yolov1_percell", "yolov2")}
# The heads study's pre-training stage (the same settings, so the same weights).
PRETRAIN = _HEADS_STUDY.PRETRAIN

#: Each profile's budgets (training steps) and seeds.
BUDGETS = {
    "quick": (5, 10),
    "cpu": (1_000, 3_000, 10_000),
    "accelerator": (1_000, 3_000, 10_000, 30_000),
}
SEEDS = {"quick": (0,), "cpu": (0, 1), "accelerator": (0, 1, 2)}
PROFILES = ("full", *BUDGETS)

# ``quick``: tiny images, a few steps, a 4-step stage: a smoke test of the whole sweep.
QUICK_BUDGET = Budget().replace(
    image_size=32,
    batch_size=8,
    train_examples=64,
    val_examples=8,
    eval_batch_size=8,
    example_images=2,
    burn_in=0,
    log_every=1,
    checkpoint_every=10,
)
# ``cpu``: the heads study's recipe at the pre-training's 64² (a 4×4 grid) and batch 8,
# the largest budgets two CPU cores finish in a sitting (see the module docstring).
CPU_BUDGET = Budget().replace(image_size=64, batch_size=8)
# ``accelerator``: the heads study's 96² and batch 32, the scenes drawn on the chip (the
# host only picks each batch's indices).
ACCELERATOR_BUDGET = Budget().replace(dataset="shapes-device")

QUICK_STAGE = {"steps": 4, "batch_size": 8, "burn_in": 0, "train_examples": 64, "val_examples": 16}

DESCRIPTION = (
    "The YOLOv1 FC head, the YOLOv1 per-cell head and the YOLOv2 head of the heads study, "
    "from scratch and from its pre64 pre-training, each trained at increasing budgets, "
    "each budget a run of its own with its own cosine schedule. Does the ranking change "
    "with the budget?"
)


def get_config(profile: str = "full") -> StudyConfig:
    """The budget sweep; ``profile`` is ``"quick"``, ``"cpu"`` (= ``"full"``) or ``"accelerator"``.

    Raises:
      ValueError: another profile.
    """
    if profile not in PROFILES:
        raise ValueError(f"budget: expected profile in {list(PROFILES)}, got {profile!r}")
    profile = "cpu" if profile == "full" else profile
    rows = at_steps([TrainRow(label, model) for label, model in HEADS.items()], BUDGETS[profile])
    # Each budget's three heads from scratch, then the same from the stage.
    swept = []
    for n in BUDGETS[profile]:
        mine = [r for r in rows if r.changes["steps"] == n]
        swept += mine + pretrained(mine, PRETRAIN.label)
    budget, stage = ACCELERATOR_BUDGET, PRETRAIN
    if profile == "cpu":
        budget = CPU_BUDGET
    elif profile == "quick":
        budget, stage = QUICK_BUDGET, dataclasses.replace(PRETRAIN, **QUICK_STAGE)
    return StudyConfig(
        name="budget",
        rows=swept,
        seeds=SEEDS[profile],
        budget=budget,
        description=DESCRIPTION,
        command=f"jaxheads compare --config budget --profile {profile} --workdir "
        + ("/tmp/budget_quick" if profile == "quick" else "runs/budget"),
        pretraining=[stage],
    )
