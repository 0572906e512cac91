"""The YOLOv2 paper's path from YOLO to YOLOv2 (Table 2), at small scale on ``shapes``.

Each row adds one step of the paper's Table 2 to the row above, on the same data
and budget:

==================== ============================================================ =========
row                  what changes                                                  paper
==================== ============================================================ =========
yolo                 YOLOv1 FC head on the YOLOv1-like backbone                    63.4
                     (`jaxheads.models.small_extraction_backbone`), no batch norm
batch_norm           batch norm in the backbone                                    65.8
hi_res_classifier    the classifier fine-tuned at the detector's size before       69.5
                     detection (pre-trained rows only)
anchor_boxes         convolutional YOLOv2 head, 5 hand-picked anchors, unbounded   69.2
                     offsets (the paper: mAP 69.5 → 69.2, recall 81% → 88%)
new_network          the Darknet-19-like backbone (`small_backbone`, about the     69.6
                     same FLOPs: 86 against 89 MFLOPs at 96²)
dimension_priors     anchors from k-means on the training boxes (still unbounded)  —
location_prediction  bounded (sigmoid) centre offsets: darknet's region layer      74.4
passthrough          the reorg passthrough from the fine map                       75.4
multi_scale          every 10 steps a new training size (one compiled step each)   76.8
hi_res_detector      the multi_scale weights evaluated at a larger size            78.6
==================== ============================================================ =========

Every row is trained from scratch (its name) and, as the paper did, from a
classification-pre-trained backbone (``<row>@<stage>``): each backbone pre-trained
on the embedded objects at half the detector's side (``old_nobn``, ``old``,
``new``: 600 steps), then YOLOv2's high-resolution classifier, the same classifier
fine-tuned 150 steps at the detector's side (``old_hires``, ``new_hires``); the
rows before ``hi_res_classifier`` start from the half-size classifier as YOLOv1 did.
The paper's numbers are VOC2007 mAP (11-point) of a Darknet-19 model at 416×416
(544×544 for the last row); ours sit beside them in ``results.md`` as
``VOC2007 mAP@0.5``. The paper turns dimension priors and location prediction on
together (69.6 → 74.4); here they are two rows.

Hand-picked anchors are Faster R-CNN's kind of choice: squares of 1/8, 1/4 and
1/2 of the image side and two boxes of 1/4 side's area with aspect 2:1 and 1:2
(`HAND_PICKED`). The unbounded offsets are the RPN parameterisation the paper
started from, ``x = (cx + 0.5 + tx·pw) / W``: `UNBOUNDED`, a
`jaxheads.decode.RegionCentre` given to the library's `jaxheads.losses.region_loss`
and `jaxheads.decode.decode_yolov2` (whose default is darknet's bounded one). The
``prior IoU`` column is Table 1's "Avg IOU": the anchors' mean best IoU with the
training boxes.

Command::

    jaxheads compare --config experiments/yolov2_path.py --workdir runs/yolov2_path
    jaxheads compare --config experiments/yolov2_path.py --quick --workdir /tmp/path_quick
    jaxheads compare --config yolov2_path --profile accelerator --workdir runs/yolov2_path-acc

Run time. ``--quick`` (64×64, batch 16, 100 steps, 1 seed, multi-scale 48/64/80,
hi-res at 80, five 40-step pre-training stages: 17 training runs and four
evaluations): measured 8 min 3 s on the 2-core CPU with a full-profile run beside
it at ``nice 19`` (2026-12-05); about 5 min alone.
Full profile (96×96, batch 32, 1000 steps, 2 seeds, multi-scale 80/96/112/128,
hi-res at 128: 34 training runs, the five stages and the hi-res evaluations), in two
parts of under two hours: the command with ``--seeds 1`` trains the five stages and
seed 0 (17 runs of 2.5-4 min each alone) and reports every row; measured 1 h 44 min
wall on the 2-core CPU with a 25-minute study and the test suite beside it
(2026-12-04/05). The command without it then adds seed 1 (the runs done are found,
not retrained) and the ± columns: about 1 h 30 min over two sittings, with other work
beside it (2026-12-05). Seed 0 alone (``--seeds 1``), the committed record in
docs/results/yolov2_path/: 2 h 15 min of wall time on the 2-core AMD EPYC (family 25,
model 17) beside another study and the test suite (2026-12-07). About 1 h 50 min for the
whole profile on the free CPU, by the
runs' own times. On one TPU or GPU roughly 20-30 min, bounded by compilation and the
host's numpy data pipeline (not measured).

Accelerator profile (``--profile accelerator``: 3 seeds of 15,000 steps: 51 training
runs, 765,000 steps, 24 M training images; the five stages as in the full profile),
sized from FLOPs (the rule experiments/budget.py states: a step of batch 32 at 96²
on these ~100-MFLOP networks at about 0.76 ms, 12.8 TFLOP/s, 2.6% of the H100's TF32
dense peak; the studies train in float32): its detectors cost 88-125 MFLOPs a
forward pass at 96², the multi-scale rows 1.21× that on average over their sizes,
about 330 MFLOPs per training image and 8.1 PFLOP in all: about 10-11 minutes on one
H100 and about 26 minutes on a Colab TPU v5e-1 at the same 2.6% of its 197 TFLOP/s,
plus compilation (one program per training size of the multi-scale rows). It draws its
scenes on the chip (``shapes-device``, as the heads study's accelerator profile: the host
only picks indices; its numpy pipeline would have needed about 3 hours). On the free 2-core CPU
about 41 hours (the full profile's 1 h 50 min for 34,000 steps, scaled). Not yet
measured on any accelerator.

Expected result. Quick profile, measured (seed 0, 2026-12-05, this code;
scratch / pre-trained)::

    row                  params     MFLOPs  mAP50(07)      recall@0.5     prior IoU
    yolo                 1,841,456   39.1   0.001 / 0.001  0.044 / 0.090  —
    batch_norm           1,844,672   39.3   0.000 / 0.000  0.000 / 0.007  —
    hi_res_classifier    1,844,672   39.3   —     / 0.000  —     / 0.000  —
    anchor_boxes         1,338,904   50.4   0.005 / 0.001  0.168 / 0.069  0.677
    new_network            990,616   49.8   0.002 / 0.004  0.151 / 0.166  0.677
    dimension_priors       990,616   49.8   0.006 / 0.002  0.246 / 0.156  0.766
    location_prediction    990,616   49.8   0.013 / 0.008  0.189 / 0.233  0.766
    passthrough          1,066,456   51.7   0.003 / 0.004  0.185 / 0.196  0.766
    multi_scale          1,066,456   51.7   0.004 / 0.012  0.195 / 0.137  0.766
    hi_res_detector      1,066,456   84.4   0.004 / 0.003  0.177 / 0.157  0.766
    single_scale_hi_res  1,066,456   84.4   0.006 / 0.002  0.217 / 0.164  0.766

The 40-step stages reach top-1 0.04-0.09 (15 classes: chance is 0.07), so the
quick profile's pre-trained rows check the plumbing, not the effect.
What the quick run already shows: k-means priors fit the training boxes better
than the hand-picked ones (prior IoU 0.766 against 0.677, Table 1's point), the
anchor heads find more objects than the FC head after 100 steps (recall 0.07-0.25
against 0.00-0.09), and the hi-res rows cost 1.6× the FLOPs for the same
parameters. The mAPs are all near 0: 100 steps are
too few to order the rows. Full profile, measured (seeds 0 and 1, 2026-12-04/05,
this code; VOC2007 mAP@0.5, mean ± std over the seeds; docs/studies/yolov2_path.md has
the whole table, the stages, the plots and the reading)::

    row                  paper  scratch        pre-trained (stage)
    yolo                 63.4   0.017 ± 0.021  0.003 ± 0.000 (old_nobn)
    batch_norm           65.8   0.008 ± 0.004  0.028 ± 0.024 (old)
    hi_res_classifier    69.5   —              0.026 ± 0.017 (old_hires)
    anchor_boxes         69.2   0.391 ± 0.096  0.653 ± 0.006 (old_hires)
    new_network          69.6   0.529 ± 0.060  0.672 ± 0.022 (new_hires)
    dimension_priors     —      0.503 ± 0.003  0.666 ± 0.011 (new_hires)
    location_prediction  74.4   0.513 ± 0.059  0.674 ± 0.006 (new_hires)
    passthrough          75.4   0.600 ± 0.028  0.743 ± 0.009 (new_hires)
    multi_scale          76.8   0.593 ± 0.005  0.725 ± 0.009 (new_hires)
    hi_res_detector      78.6   0.768 ± 0.012  0.876 ± 0.005 (new_hires)
    single_scale_hi_res  —      0.746 ± 0.010  0.872 ± 0.002 (new_hires)

The committed record of seed 0 (this code, 2026-12-07; VOC2007 mAP@0.5, scratch /
pre-trained) is within 0.06 of these means in every row but ``anchor_boxes`` from
scratch (0.473, above both seeds of the run above: 0.459 and 0.323): yolo 0.004 / 0.033,
batch_norm 0.017 / 0.035, hi_res_classifier — / 0.004, anchor_boxes 0.473 / 0.695,
new_network 0.561 / 0.676, dimension_priors 0.541 / 0.673, location_prediction 0.565 /
0.663, passthrough 0.607 / 0.730, multi_scale 0.597 / 0.719, hi_res_detector 0.759 /
0.867, single_scale_hi_res 0.744 / 0.870.

Stages (top-1 on 1,000 held-out objects): old_nobn 0.221, old 0.604, new 0.781 at
48²; at 96² the low-resolution weights score 0.274 (old) and 0.370 (new), and the
150-step hi-res classifier stages bring them to 0.748 (old_hires) and 0.610
(new_hires). Read as findings only where both seeds agree: pre-training lifts every
convolutional row (+0.085 to +0.326 in each seed); anchor boxes make the detector
learn; the Darknet-19-like network trains better from scratch (+0.11, +0.16) and
equals the YOLOv1-like one pre-trained; k-means priors fit the boxes better (prior
IoU 0.762 vs 0.676) without training better; bounded offsets give tighter boxes
pre-trained (COCO mAP +0.05 in both seeds) at lower recall@0.5 (all four runs); the
passthrough helps in all four runs; multi-scale training is even at 96², and most of
the hi-res detector's gain at 128² is the larger input (``single_scale_hi_res``
0.746 and 0.872). The FC rows stay near 0 at this budget either way (the FC-head
study says why).
"""

from __future__ import annotations

import dataclasses
import functools

from jaxheads.anchors import kmeans_anchors
from jaxheads.decode import BOUNDED, UNBOUNDED
from jaxheads.models.detector import Detector
from jaxheads.models.small import small_anchors, small_detector
from jaxheads.study import EvalRow, Pretraining, StudyConfig, TrainRow, box_sizes, with_profile

# Hand-picked priors in fractions of the image side: three squares and two 2:1 / 1:2 boxes.
HAND_PICKED = (
    (0.125, 0.125),
    (0.25, 0.25),
    (0.5, 0.5),
    (0.25 * 2**0.5, 0.25 / 2**0.5),
    (0.25 / 2**0.5, 0.25 * 2**0.5),
)

PAPER = {
    "yolo": "63.4",
    "batch_norm": "65.8",
    "hi_res_classifier": "69.5",
    "anchor_boxes": "69.2, recall 88% (69.5, recall 81% without)",
    "new_network": "69.6",
    "dimension_priors": "— (74.4 with location prediction)",
    "location_prediction": "74.4",
    "passthrough": "75.4",
    "multi_scale": "76.8",
    "hi_res_detector": "78.6 (544×544)",
    "single_scale_hi_res": "— (not in Table 2)",
}


# ---------------------------------------------------------------------------
# The detectors of the rows.
# ---------------------------------------------------------------------------


def priors(kind: str, grid: int, train_data=None) -> tuple[tuple[float, float], ...]:
    """Five anchors in cells of a ``grid × grid`` output.

    Args:
      kind: ``"hand"`` (`HAND_PICKED`), ``"kmeans"`` (YOLOv2's dimension clusters on
        ``train_data``'s boxes, `jaxheads.anchors.kmeans_anchors`) or ``"voc"``
        (``yolov2-voc.cfg``'s, rescaled: what `jaxheads.models.small` uses).
      grid: the output side of the training image size.
      train_data: the training set (for ``"kmeans"``).
    """
    if kind == "hand":
        return tuple((w * grid, h * grid) for w, h in HAND_PICKED)
    if kind == "kmeans":
        if train_data is None:
            raise ValueError("priors: expected train_data for k-means anchors, got None")
        return tuple(map(tuple, kmeans_anchors(box_sizes(train_data) * grid, 5, seed=0)))
    if kind == "voc":
        return small_anchors(grid)
    raise ValueError(f"priors: expected kind 'hand', 'kmeans' or 'voc', got {kind!r}")


def small_yolov2(
    *,
    image_size: int,
    num_classes: int,
    train_data=None,
    anchors: str = "kmeans",
    passthrough: bool = False,
    location: str = "bounded",
    backbone_kind: str = "darknet",
) -> Detector:
    """`jaxheads.models.small_detector`'s YOLOv2 with a choice of priors and location prediction.

    Anchors are in cells of the *training* grid (``train_data``'s image size), so
    the same detector built at another size (multi-scale, hi-res evaluation)
    keeps the same priors, as darknet does.

    Args:
      image_size: the input side (a multiple of 16).
      num_classes: ``C``.
      train_data: the training set: its image size fixes the grid of the priors,
        its boxes the k-means ones.
      anchors: ``"hand"``, ``"kmeans"`` or ``"voc"`` (see `priors`).
      passthrough: darknet's reorg passthrough.
      location: ``"bounded"`` (σ offsets, darknet: `jaxheads.decode.BOUNDED`) or
        ``"unbounded"`` (`jaxheads.decode.UNBOUNDED`), in the decoder and the loss alike.
      backbone_kind: ``"darknet"`` (the new network) or ``"extraction"`` (YOLOv1's): the
        backbones of `jaxheads.models.small_detector`.
    """
    centres = {"bounded": BOUNDED, "unbounded": UNBOUNDED}
    if location not in centres:
        raise ValueError(
            f"small_yolov2: expected location 'bounded' or 'unbounded', got {location!r}"
        )
    train_size = image_size if train_data is None else train_data.image_size[0]
    grid = train_size // 16  # both small backbones' stride
    return small_detector(
        "yolov2-passthrough" if passthrough else "yolov2",
        image_size=image_size,
        num_classes=num_classes,
        backbone=backbone_kind,
        anchors=priors(anchors, grid, train_data),
        centre=centres[location],
    )


# The backbones' classification pre-training: each backbone at half the detector's side (the
# paper's 224² for a 448² detector), then YOLOv2's "high resolution classifier": the same
# classifier fine-tuned at the detector's side. YOLOv1 had no hi-res step.
def _stages(side: int) -> list[Pretraining]:
    low = side // 2 // 16 * 16 or 16
    return [
        Pretraining("old_nobn", backbone="small-extraction-nobn", image_size=low, steps=600),
        Pretraining("old", backbone="small-extraction", image_size=low, steps=600),
        Pretraining(
            "old_hires",
            backbone="small-extraction",
            image_size=side,
            steps=150,
            learning_rate=3e-4,
            burn_in=0,
            init_from="old",
        ),
        Pretraining("new", backbone="small", image_size=low, steps=600),
        Pretraining(
            "new_hires",
            backbone="small",
            image_size=side,
            steps=150,
            learning_rate=3e-4,
            burn_in=0,
            init_from="new",
        ),
    ]


def _rows(train_sizes, hi_res: int) -> list[TrainRow | EvalRow]:
    old = functools.partial(small_yolov2, backbone_kind="extraction")
    new = functools.partial(small_yolov2, anchors="kmeans", location="bounded")
    fc = {"head": "yolov1-fc", "backbone": "extraction"}
    # (row, pretraining stage): the paper's Table 2, each row adding one step.
    path = [
        (TrainRow("yolo", {**fc, "batch_norm": False}), "old_nobn"),
        (TrainRow("batch_norm", fc), "old"),
        (TrainRow("hi_res_classifier", fc), "old_hires"),
        (
            TrainRow(
                "anchor_boxes",
                functools.partial(old, anchors="hand", location="unbounded"),
            ),
            "old_hires",
        ),
        (
            TrainRow(
                "new_network",
                functools.partial(small_yolov2, anchors="hand", location="unbounded"),
            ),
            "new_hires",
        ),
        (
            TrainRow(
                "dimension_priors",
                functools.partial(small_yolov2, anchors="kmeans", location="unbounded"),
            ),
            "new_hires",
        ),
        (TrainRow("location_prediction", new), "new_hires"),
        (TrainRow("passthrough", functools.partial(new, passthrough=True)), "new_hires"),
        (
            TrainRow(
                "multi_scale",
                functools.partial(new, passthrough=True),
                train_sizes=tuple(train_sizes),
            ),
            "new_hires",
        ),
    ]
    # From scratch under the paper's row names; pre-trained as ``<row>@<stage>``. The
    # hi-res classifier is a pre-training step: it has no from-scratch row.
    scratch = [row for row, _ in path if row.label != "hi_res_classifier"]
    pre = [
        dataclasses.replace(row, label=f"{row.label}@{stage}", init=stage) for row, stage in path
    ]
    return [
        *scratch,
        EvalRow("hi_res_detector", weights_from="multi_scale", eval_image_size=hi_res),
        # Not a Table 2 row: the single-scale weights at the same size, so that what
        # the hi-res detector gains from multi-scale training is read apart from what
        # the larger input alone gives.
        EvalRow("single_scale_hi_res", weights_from="passthrough", eval_image_size=hi_res),
        *pre,
        EvalRow(
            "hi_res_detector@new_hires",
            weights_from="multi_scale@new_hires",
            eval_image_size=hi_res,
        ),
        EvalRow(
            "single_scale_hi_res@new_hires",
            weights_from="passthrough@new_hires",
            eval_image_size=hi_res,
        ),
    ]


DESCRIPTION = (
    "The YOLOv2 paper's Table 2 path at small scale: each row adds one step to the row "
    "above, on the same data and budget; every row trained from scratch and from a "
    "classification-pre-trained backbone (`<row>@<stage>`), as the paper did. The first "
    "rows use the YOLOv1-like small backbone, `new_network` and after the Darknet-19-like one "
    "(about the same FLOPs). The paper column is its VOC2007 mAP (compare with our VOC2007 "
    "mAP@0.5); 'prior IoU' is Table 1's Avg IOU of the anchors with the training boxes."
)


# ``--profile accelerator``: 3 seeds of 15,000 steps, about 10 minutes of one H100 by FLOPs
# (the module docstring says how it was sized); a checkpoint every 2,000 steps; the scenes
# drawn on the chip (the host only picks each batch's indices).
ACCELERATOR = {"steps": 15_000, "checkpoint_every": 2_000, "dataset": "shapes-device"}


def get_config(profile: str = "full") -> StudyConfig:
    """The YOLOv2 path study; ``profile`` is ``"full"``, ``"quick"`` or ``"accelerator"``."""
    quick = profile == "quick"
    workdir = {
        "quick": "--quick --workdir /tmp/path_quick",
        "accelerator": "--profile accelerator --workdir runs/yolov2_path-acc",
    }.get(profile, "--workdir runs/yolov2_path")
    config = StudyConfig(
        name="yolov2_path",
        rows=_rows((48, 64, 80), 80) if quick else _rows((80, 96, 112, 128), 128),
        seeds=(0, 1),
        description=DESCRIPTION,
        paper=PAPER,
        command=f"jaxheads compare --config experiments/yolov2_path.py {workdir}",
        pretraining=_stages(64 if quick else 96),
    )
    return with_profile(config, profile, accelerator=ACCELERATOR)
