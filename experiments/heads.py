"""YOLOv1 vs YOLOv2 heads on one backbone, one data set and one training budget.

Six heads on the same `jaxheads.models.small.small_backbone` (96×96 → 6×6×256
coarse map, 12×12×128 fine tap), trained alike on `shapes`:

* ``yolov1_fc``: Flatten → Dense 256 → Dense S·S·(2·5 + C), the YOLO paper's head.
* ``yolov1_percell``: the same Dense layers per cell (1×1 convolutions).
* ``yolov1_local``: darknet ``yolov1.cfg``'s locally connected 3×3 layer → Dense.
* ``gap``: GlobalAveragePooling2D → Dense: no spatial layout left.
* ``yolov2``: 3×3 convs and a 1×1 conv to 5 anchors × (5 + C).
* ``yolov2_passthrough``: the same with darknet's reorg passthrough from the fine map.

Command::

    jaxheads compare --config experiments/heads.py --workdir runs/heads          # full
    jaxheads compare --quick --workdir /tmp/cmp_quick                             # quick
    jaxheads compare --config heads --profile accelerator --workdir runs/heads-acc  # GPU/TPU

Every head is trained twice: from scratch (``yolov1_fc``) and from the shared
backbone's classification pre-training (``yolov1_fc@pre64``: `PRETRAIN`, 600 steps
of batch 64 at 64×64 on the embedded objects, as both papers pre-trained theirs).

Run time. ``--quick`` (64×64, batch 16, 100 steps, 1 seed, 32 validation images,
a 40-step pre-training; 12 runs): about 4 min on the otherwise idle 2-core CPU
(from the six-run profile's measured 1 min 52 s; not re-measured idle).
Full profile (96×96, batch 32, 1000 steps, 2 seeds, 256 validation images: 24
runs and the pre-training): measured in two parts on the 2-core CPU, seed 0 and the
stage alone about 1 h 10 min (4-6 min a run), seed 1 in 1 h 56 min while the
FC-head study ran beside it on the same two cores; about 2 h 15 min on the free
machine. With this code, in two sittings into one work directory (2026-12-07):
``--seeds 1`` (the pre-training and seed 0's 12 runs) 58.5 min with other work beside it,
then ``--seeds 2`` (seed 1) 76.6 min at idle priority beside the test suite; published in
``docs/results/heads/``. On one
TPU or GPU the compute is seconds per run and the time goes to compilation and
the numpy data pipeline on the host (not measured).

Accelerator profile (``--profile accelerator``: 3 seeds of 20,000 steps, the rest as
the full profile: 36 runs, 720,000 steps, 23 M training images), sized from FLOPs
(the rule experiments/budget.py states: a step of batch 32 at 96² on these
~100-MFLOP networks at about 0.76 ms, 12.8 TFLOP/s, 2.6% of the H100's TF32 dense
peak; the studies train in float32): the six detectors' forward passes cost 91.2,
91.2, 93.8, 86.5, 120.2 and 125.0 MFLOPs at 96² (XLA's count), about 304 MFLOPs per
training image and 7.0 PFLOP in all: about 9 minutes on one H100 and about 23
minutes on a Colab TPU v5e-1 at the same 2.6% of its 197 TFLOP/s, plus each run's
compilation (a few seconds; 6 distinct programs, one per head). It trains on
``shapes-device``: the same kinds of scenes and augmentation as ``shapes``, drawn on the
chip by one jitted program a batch from the data set's seed and the batch's indices (other
pixels than the full profile's, the same task), so the host only picks indices; the host's
numpy pipeline (about 590 images/s a core at 96² on the 2-core CPU) would have needed about
2.7 hours on 4 loader threads to draw those images. On this CPU drawing a batch costs 36%
of a step (docs/benchmarks.md); on an accelerator, not yet measured. On the free 2-core
CPU about 67 hours (the full profile's 2 h
15 min for 24,000 steps, scaled). Not yet measured on any accelerator.

Expected result. Quick profile, measured (2-core CPU, seed 0; the same machine gives
the same numbers but for img/s, which moves with its load; another processor sums in
another order and moves the metrics in their later digits)::

    head                params     MFLOPs  img/s  mAP50  mAP50(07)  COCO mAP  recall@0.5
    yolov1_fc           1,496,384   38.7   284.0  0.000  0.000      0.000     0.000
    yolov1_percell        463,229   38.7   371.9  0.000  0.000      0.000     0.000
    yolov1_local        1,680,960   39.6   196.9  0.000  0.000      0.000     0.008
    gap                   447,552   36.6   380.6  0.000  0.000      0.000     0.015
    yolov2                990,616   49.8   251.7  0.003  0.004      0.001     0.188
    yolov2_passthrough  1,066,456   51.7   245.3  0.002  0.006      0.000     0.175

The quick run shows that every head trains and every file is written; 100 steps
at 64×64 are far too few to rank the heads. Full profile, measured (seeds 0 and
1, 2026-12-04, this code; ``pre64`` reaches top-1 0.729 / top-5 0.959 in 3.5 min;
mAP50, VOC2010, mean ± std over the two seeds)::

    head                from scratch    from pre64      change per seed
    yolov1_fc           0.001 ± 0.000   0.003 ± 0.000   +0.002, +0.002
    yolov1_percell      0.478 ± 0.032   0.604 ± 0.027   +0.122, +0.129
    yolov1_local        0.005 ± 0.000   0.066 ± 0.008   +0.055, +0.067
    gap                 0.005 ± 0.001   0.021 ± 0.003   +0.013, +0.018
    yolov2              0.584 ± 0.021   0.700 ± 0.005   +0.104, +0.128
    yolov2_passthrough  0.645 ± 0.028   0.768 ± 0.020   +0.089, +0.157

Again with this code (2026-12-07, seeds 0 and 1; ``docs/results/heads/results.json``):
from scratch → pre64, yolov1_fc 0.002 → 0.002, yolov1_percell 0.458 ± 0.010 → 0.602 ±
0.008, yolov1_local 0.006 → 0.064 ± 0.009, gap 0.006 → 0.020, yolov2 0.587 ± 0.029 →
0.714 ± 0.006, yolov2_passthrough 0.657 ± 0.033 → 0.763 ± 0.015: every mean within 0.02
of the table above, and the same ranking.

Pre-training lifts the heads that predict per location by about 0.12 mAP50 and
does not rescue Flatten + Dense or GAP; the ranking is unchanged. The Flatten and
GAP heads' objectness tells object cells from empty ones barely better than
chance (ROC AUC 0.53-0.70 against 0.94-0.98 for the per-location heads:
``jaxheads analyse dependence --study heads --workdir runs/heads``).
"""

from __future__ import annotations

from jaxheads.study import Pretraining, StudyConfig, TrainRow, pretrained, with_profile

# Study label -> `jaxheads.train.detection.build_detector` name (all on small_backbone).
HEADS = {
    "yolov1_fc": "small-yolov1-fc",
    "yolov1_percell": "small-yolov1-percell",
    "yolov1_local": "small-yolov1-local",
    "gap": "small-gap",
    "yolov2": "small-yolov2",
    "yolov2_passthrough": "small-yolov2-passthrough",
}

# The shared backbone's classification pre-training, at two thirds of the detectors' side
# (YOLOv1 pre-trained at 224² and detected at 448²; the objects are legible at 64²).
PRETRAIN = Pretraining("pre64", backbone="small", image_size=64, steps=600)

DESCRIPTION = (
    "Six detection heads on the same small backbone, the same `shapes` data and the same "
    "training budget. `yolov1_fc`: Flatten + Dense (the YOLO paper); `yolov1_percell`: the "
    "Dense layers per cell; `yolov1_local`: darknet's locally connected head; `gap`: global "
    "average pooling + Dense; `yolov2`: convolutional with anchor boxes; `yolov2_passthrough`: "
    "plus the reorg passthrough."
)


# Published VOC2007 test mAP of the full-size models the heads come from, beside our
# VOC2007 mAP@0.5 (11-point) on `shapes`: a direction to read, not a target at this scale.
PAPER = {
    "yolov1_fc": "63.4 (YOLO, Table 1)",
    "yolov2": "74.4 (YOLOv2 Table 2: priors + location)",
    "yolov2_passthrough": "75.4 (YOLOv2 Table 2: passthrough)",
}


# ``--profile accelerator``: 3 seeds of 20,000 steps, about 10 minutes of one H100 by FLOPs
# (the module docstring says how it was sized); a checkpoint every 2,000 steps; the scenes
# drawn on the chip (the host only picks each batch's indices).
ACCELERATOR = {"steps": 20_000, "checkpoint_every": 2_000, "dataset": "shapes-device"}


def get_config(profile: str = "full") -> StudyConfig:
    """The heads study; ``profile`` is ``"full"`` (the experiment), ``"quick"`` (a smoke run)
    or ``"accelerator"`` (3 seeds, 20× the steps: for one GPU or TPU)."""
    command = "jaxheads compare --config experiments/heads.py --workdir runs/heads"
    if profile == "quick":
        command = "jaxheads compare --quick --workdir /tmp/cmp_quick"
    if profile == "accelerator":
        command = "jaxheads compare --config heads --profile accelerator --workdir runs/heads-acc"
    rows = []
    for label, model in HEADS.items():  # each head from scratch, then from the pre-training
        scratch = TrainRow(label, model)
        rows += [scratch, *pretrained([scratch], PRETRAIN.label)]
    config = StudyConfig(
        name="heads",
        rows=rows,
        seeds=(0, 1),
        description=DESCRIPTION,
        command=command,
        paper=PAPER,
        pretraining=[PRETRAIN],
        analyses=("dependence",),
    )
    return with_profile(config, profile, accelerator=ACCELERATOR)
