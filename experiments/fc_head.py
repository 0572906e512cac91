"""Why does YOLOv1's Flatten + Dense head not learn here? One factor per row, with runs.

The heads study trains ``yolov1_fc`` (Flatten → Dense 256 → Dense S·S·(2·5 + C) on
the small backbone) to mAP50 ≈ 0 where the same Dense layers applied per cell
learn. This study changes one thing at a time against that baseline, on the
same data and budget as the heads study:

==================== =====================================================================
row                  what changes
==================== =====================================================================
baseline             nothing (the heads study's ``yolov1_fc``)
percell              the same Dense layers per cell (the heads study's ``yolov1_percell``)
pretrained           the backbone pre-trained on the embedded objects (the heads study's)
no_dropout           no dropout after the hidden Dense (0.5 in the paper)
lr_3e-4, lr_3e-3     the peak learning rate (1e-3 elsewhere)
warmup_0, warmup_300 the warm-up steps (100 elsewhere)
small_init           the output Dense's initial kernel ×0.01 (initial outputs near 0)
coord_1              λ_coord 1 (5 in the paper)
noobj_0.1, noobj_1   λ_noobj 0.1 / 1 (0.5 in the paper)
hidden_1024          a hidden Dense of 1024 units, not 256 (the paper: 4096 on 7×7×1024)
==================== =====================================================================

Beside the runs, ``jaxheads analyse gradients`` measures what
dominates the head's gradient at initialisation: the global norm of the
gradient of each loss term (coordinates, object confidence, no-object
confidence, classes; each with the paper's λ) with respect to the head's
parameters, for the FC head and the per-cell head, from scratch and from the
pre-trained backbone (a training batch of the study's data; seeds 0-2).

Command::

    jaxheads compare --config experiments/fc_head.py --workdir runs/fc_head
    jaxheads analyse gradients --workdir runs/fc_head
    jaxheads compare --config experiments/fc_head.py --quick --workdir /tmp/fc_quick
    jaxheads compare --config fc_head --profile accelerator --workdir runs/fc_head-acc

Run time: ``--quick`` (12 training runs of 100 steps at 64² and a 40-step
pre-training) a few minutes on the 2-core CPU. Full profile (96×96, batch 32, 1000
steps, one seed: 13 runs and the heads study's 600-step pre-training): measured
2026-12-07 at 84.6 min on a 2-core Intel Xeon, with the test suite beside it for half
of that time (4-7 min a run); then about a minute each for ``dependence`` and
``gradients``. The record, with the analyses' (``--publish``), is
``docs/results/fc_head/``; docs/studies/fc_head.md quotes it.

Accelerator profile (``--profile accelerator``: 3 seeds of 20,000 steps: 39 runs,
780,000 steps, 25 M training images), sized from FLOPs (the rule
experiments/budget.py states: a step of batch 32 at 96² on these ~100-MFLOP networks
at about 0.76 ms, 12.8 TFLOP/s, 2.6% of the H100's TF32 dense peak; the studies
train in float32): the FC and per-cell detectors' forward pass costs 91.2 MFLOPs at
96² (more with the 1024-wide hidden layer), about 274 MFLOPs per training image and
6.8 PFLOP in all: about 10 minutes on one H100 (9 by FLOPs, 10 by the step time) and
about 22 minutes on a Colab TPU v5e-1 at the same 2.6% of its 197 TFLOP/s, plus
compilation. It draws its scenes on the chip (``shapes-device``, as the heads study's
accelerator profile: the host only picks indices; its numpy pipeline would have needed
about 3 hours, 590 images a core at 96², 4 loader threads). On the free 2-core CPU about
90 hours (the full profile's 1 h 30 min for 13,000 steps, scaled). ``gradients`` and
``dependence`` are as before. Not yet measured on any accelerator.

Expected result, measured (seed 0, 2026-12-07; mAP50 VOC2010; ``dependence``: the
objectness ROC AUC of cells holding an object's centre against empty ones, and how often an
image's best box comes from such a cell, on the 256 validation images)::

    row          mAP50  VOC07  recall  objectness AUC  best box in an object's cell
    baseline     0.001  0.003  0.166   0.53            0.11
    percell      0.490  0.493  0.686   0.94            0.87
    pretrained   0.004  0.011  0.190   0.59            0.16
    no_dropout   0.014  0.034  0.300   0.77            0.38
    lr_3e-4      0.002  0.012  0.155   0.57            0.15
    lr_3e-3      0.002  0.006  0.180   0.52            0.10
    warmup_0     0.003  0.033  0.168   0.52            0.11
    warmup_300   0.001  0.002  0.165   0.53            0.13
    small_init   0.006  0.014  0.223   0.70            0.32
    coord_1      0.001  0.002  0.174   0.53            0.12
    noobj_0.1    0.002  0.008  0.175   0.57            0.16
    noobj_1      0.001  0.002  0.148   0.53            0.11
    hidden_1024  0.003  0.006  0.166   0.61            0.20
    (a random cell: AUC 0.50, 0.10; one object-frequency map for every image: AUC 0.55)

An earlier run (2026-12-04, another processor) gave every row within 0.012 mAP50 and
0.04 AUC of these. What changes the outcome is sharing the Dense layers across positions
(``percell``); the FC head's objectness knows no more of where the objects are than a
fixed map. No dropout (AUC 0.77) and a small initial output (0.70) help it a little;
pre-training, the learning rate, the warm-up, λ_coord, λ_noobj and a 4× wider hidden
layer do not. One seed: moves of 0.01 mAP50 or less are noise.

``gradients`` (the same day, on the study's ``pre64`` stage; mean ± std over seeds 0-2 of
the head's initialisation): the global norm of each term's gradient with respect to the
head's parameters at initialisation is

=================== ======== ========= ============ ==========
head, init          coord    object    no-object    class
=================== ======== ========= ============ ==========
FC, scratch         503 ± 23 42 ± 4    184 ± 4      90 ± 6
FC, pre64           520 ± 21 39 ± 3    179 ± 6      96 ± 7
per-cell, scratch   298 ± 64 25 ± 8    150 ± 67     54 ± 4
per-cell, pre64     384 ± 28 39 ± 12   183 ± 56     81 ± 19
=================== ======== ========= ============ ==========

λ_coord's term carries 85-86% of the squared gradient norm for the FC head and 78%
for the per-cell head, with or without pre-training: the coordinate term dominates
both heads alike at the start, so the balance of terms at initialisation does not by
itself tell the head that learns from the one that does not. The rows ``coord_1``,
``noobj_*`` and ``small_init`` test what that leaves open. Given three times the steps
(one seed, 2026-12-04), pre-training is what got the FC head started: 0.006 from scratch,
0.063 pre-trained (docs/studies/fc_head.md); the budget sweep (experiments/budget.py)
measures it with two seeds.
"""

from __future__ import annotations

from jaxheads.study import Pretraining, StudyConfig, TrainRow, with_profile

# The heads study's pre-training stage (the same settings, so the same weights).
PRETRAIN = Pretraining("pre64", backbone="small", image_size=64, steps=600)


def _rows() -> list[TrainRow]:
    fc = "small-yolov1-fc"
    # The FC head with one of `jaxheads.heads.yolov1_fc`'s options changed.
    fc_with = {"head": "yolov1-fc"}
    return [
        TrainRow("baseline", fc),
        TrainRow("percell", "small-yolov1-percell"),
        TrainRow("pretrained", fc, init=PRETRAIN.label),
        TrainRow("no_dropout", {**fc_with, "dropout": 0.0}),
        TrainRow("lr_3e-4", fc, changes={"learning_rate": 3e-4}),
        TrainRow("lr_3e-3", fc, changes={"learning_rate": 3e-3}),
        TrainRow("warmup_0", fc, changes={"burn_in": 0}),
        TrainRow("warmup_300", fc, changes={"burn_in": 300}),
        TrainRow("small_init", {**fc_with, "output_scale": 0.01}),
        TrainRow("coord_1", fc, loss_options={"lambda_coord": 1.0}),
        TrainRow("noobj_0.1", fc, loss_options={"lambda_noobj": 0.1}),
        TrainRow("noobj_1", fc, loss_options={"lambda_noobj": 1.0}),
        TrainRow("hidden_1024", {**fc_with, "hidden": 1024}),
    ]


DESCRIPTION = (
    "The YOLOv1 Flatten + Dense head against one change at a time (the heads study's data "
    "and budget): the per-cell head, pre-training, dropout, learning rate, warm-up, the "
    "initial output scale and the loss terms' balance."
)


# ``--profile accelerator``: 3 seeds of 20,000 steps, about 10 minutes of one H100 by FLOPs
# (the module docstring says how it was sized); a checkpoint every 2,000 steps; the scenes
# drawn on the chip (the host only picks each batch's indices).
ACCELERATOR = {"steps": 20_000, "checkpoint_every": 2_000, "dataset": "shapes-device"}


def get_config(profile: str = "full") -> StudyConfig:
    """The FC-head study; ``profile`` is ``"full"``, ``"quick"`` or ``"accelerator"``."""
    where = {
        "quick": "--quick --workdir /tmp/fc_quick",
        "accelerator": "--profile accelerator --workdir runs/fc_head-acc",
    }.get(profile, "--workdir runs/fc_head")
    config = StudyConfig(
        name="fc_head",
        rows=_rows(),
        seeds=(0,),
        description=DESCRIPTION,
        command=f"jaxheads compare --config experiments/fc_head.py {where}",
        pretraining=[PRETRAIN],
        analyses=("dependence", "gradients"),
    )
    return with_profile(config, profile, accelerator=ACCELERATOR)
