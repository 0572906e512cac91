"""Does the heads' ranking change with the training budget? A budget sweep, each budget its own run.

Three heads of the heads study on its backbone, data and recipe (``shapes`` at
96², batch 32, Adam 1e-3 with a cosine decay after a warm-up of 100 steps, 256
validation images), each from scratch and from the heads study's ``pre64``
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
not retrained, so a larger profile run in the same work directory keeps the
smaller one's runs (``cpu``'s 36 runs are ``accelerator``'s first 36).
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

``cpu`` (budgets 1,000, 3,000 and 10,000 steps, seeds 0 and 1: 14,000 steps per
head, init and seed, 168,000 steps in all, 36 runs, and the 600-step stage): not yet
measured; estimated from step rates. Measured 2026-12-06 (``jaxheads train --model
<head> --steps 60``: the mean rate of the 50 steps after the first 10, which
compile; 96², batch 32) on the 2-core CPU shared with other jobs at a load average
of 5-6: ``yolov1_fc`` 2.85 steps/s, ``yolov1_percell`` 2.94, ``yolov2`` 2.35 (an
earlier try at a load of 9-18 gave 1.37, 0.53 and 0.56). At those rates the 168,000
steps take 17.4 hours, about 18 with the evaluations, the compilations and the
stage. On the free machine a single ``yolov1_fc`` run of 10,000 steps took 36
minutes (4.6 steps/s with its evaluation); with the ratios measured here (per-cell
1.03×, YOLOv2 0.82× the FC head's rate) that is 4.6, 4.7 and 3.8 steps/s, so **about
11 hours** on the free 2-core CPU (10.8 hours of steps). Run it in sittings: an
interrupted study resumes, a finished run is kept.

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
evaluation, a few seconds each. And the host must then draw 42,000 images/s; the
numpy pipeline draws about 590 a core at 96² (measured on one core of the 2-core CPU), so with
today's pipeline the input, not the chip, sets the time (about 3 hours on 4
loader threads at that rate). On the free 2-core CPU: about 52 hours (the rates
above). Not yet measured on any accelerator.

Expected result. ``quick``: every head × init × budget trains, is evaluated and
reported, all near mAP50 0 (10 steps rank nothing); measured (seed 0,
2026-12-06): ``yolov1_fc`` and ``yolov1_percell`` 0.000 at both budgets, from
scratch and pre-trained; ``yolov2`` 0.001 (pre-trained 0.0013 and 0.0010, from
scratch 0.0011 and 0.0010). The ranking lines then read ``yolov2@pre64 >? yolov2
>? yolov1_fc = ...``: one seed, nothing judged.
``cpu`` and ``accelerator``: not yet measured. What is known (single
runs of seed 0 on this CPU, pre-trained, VOC2010 mAP50): ``yolov1_fc@pre64``
0.003 at 1,000 steps, 0.063 at 3,000 and 0.424 at 10,000; ``yolov2@pre64`` 0.700
at 1,000 and 0.930 at 10,000. The heads study at 1,000 steps (seeds 0 and 1):
``yolov1_percell`` 0.478 from scratch, 0.604 pre-trained. The sweep says whether
the FC head's slow start is a matter of budget: whether it closes on the per-cell
and YOLOv2 heads as the budget grows, and whether pre-training's lift holds.
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
    budget, stage = Budget(), PRETRAIN
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
