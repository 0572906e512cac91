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

Beside the runs, ``python experiments/fc_head.py gradients`` measures what
dominates the head's gradient at initialisation: the global norm of the
gradient of each loss term (coordinates, object confidence, no-object
confidence, classes; each with the paper's λ) with respect to the head's
parameters, for the FC head and the per-cell head, from scratch and from the
pre-trained backbone (a training batch of the study's data; seeds 0-2).

Command::

    jaxheads compare --config experiments/fc_head.py --workdir runs/fc_head
    python experiments/fc_head.py gradients --workdir runs/fc_head
    jaxheads compare --config experiments/fc_head.py --quick --workdir /tmp/fc_quick
    jaxheads compare --config fc_head --profile accelerator --workdir runs/fc_head-acc

Run time: ``--quick`` (12 training runs of 100 steps at 64² and a 40-step
pre-training) a few minutes on the 2-core CPU. Full profile (96×96, batch 32, 1000
steps, one seed: 13 runs and the heads study's 600-step pre-training): measured
2026-12-04 at about 1 h 30 min of the 2-core CPU (5-7 min a run alone; it shared
the machine with the heads study, so it took 1 h 53 min), plus about a minute for
``dependence``.

Accelerator profile (``--profile accelerator``: 3 seeds of 20,000 steps: 39 runs,
780,000 steps, 25 M training images), sized from FLOPs (the rule
experiments/budget.py states: a step of batch 32 at 96² on these ~100-MFLOP networks
at about 0.76 ms, 12.8 TFLOP/s, 2.6% of the H100's TF32 dense peak; the studies
train in float32): the FC and per-cell detectors' forward pass costs 91.2 MFLOPs at
96² (more with the 1024-wide hidden layer), about 274 MFLOPs per training image and
6.8 PFLOP in all: about 10 minutes on one H100 (9 by FLOPs, 10 by the step time) and
about 22 minutes on a Colab TPU v5e-1 at the same 2.6% of its 197 TFLOP/s, plus
compilation; the host's numpy pipeline would need about 3 hours to draw the images
(590 a core at 96², 4 loader threads). On the free 2-core CPU about 90 hours (the
full profile's 1 h 30 min for 13,000 steps, scaled). ``gradients`` and
``dependence`` are as before. Not yet measured on any accelerator.

Expected result, measured (seed 0; mAP50 VOC2010; ``dependence``: the objectness
ROC AUC of cells holding an object's centre against empty ones, and how often an
image's best box comes from such a cell, on the 256 validation images)::

    row          mAP50  VOC07  recall  objectness AUC  best box in an object's cell
    baseline     0.001  0.002  0.179   0.53            0.14
    percell      0.501  0.498  0.706   0.94            0.85
    pretrained   0.003  0.011  0.183   0.58            0.17
    no_dropout   0.012  0.049  0.287   0.73            0.30
    lr_3e-4      0.002  0.006  0.157   0.61            0.21
    lr_3e-3      0.002  0.019  0.183   0.52            0.11
    warmup_0     0.002  0.009  0.173   0.51            0.12
    warmup_300   0.001  0.007  0.158   0.52            0.11
    small_init   0.004  0.009  0.208   0.69            0.21
    coord_1      0.001  0.007  0.167   0.53            0.12
    noobj_0.1    0.004  0.009  0.191   0.56            0.17
    noobj_1      0.002  0.012  0.133   0.53            0.13
    hidden_1024  0.003  0.006  0.153   0.59            0.18
    (a random cell: AUC 0.50, 0.10; one object-frequency map for every image: AUC 0.55)

What changes the outcome is sharing the Dense layers across positions
(``percell``); the FC head's objectness knows no more of where the objects are than
a fixed map. No dropout (AUC 0.73) and a small initial output (0.69) help it a
little; pre-training, the learning rate, the warm-up, λ_coord, λ_noobj and a
4× wider hidden layer do not. One seed: moves of 0.01 mAP50 or less are noise.

Three times the steps, measured (seed 0, 2026-12-04; ``jaxheads compare --heads
yolov1_fc,yolov1_fc@pre64 --seeds 1 --steps 3000 --workdir runs/fc-3000``, then
``dependence --study heads --workdir runs/fc-3000``)::

    row, 3000 steps  mAP50  VOC07  recall  objectness AUC  best box in an object's cell
    yolov1_fc        0.006  0.013  0.255   0.63            0.19
    yolov1_fc@pre64  0.063  0.082  0.400   0.81            0.46

Given the steps, pre-training is what gets the FC head started (10× the mAP, a
map of where the objects are), still far below the per-cell head at 1000 steps.

Measured, ``gradients`` (run 2026-12-04 on the heads study's ``pre64`` stage, which
has this study's settings: ``python experiments/fc_head.py gradients --workdir
runs/heads``; about 10 minutes on the 2-core CPU beside other work; mean ± std
over seeds 0-2): the global norm of each term's gradient with respect to the
head's parameters at initialisation is

=================== ======== ========= ============ ==========
head, init          coord    object    no-object    class
=================== ======== ========= ============ ==========
FC, scratch         503 ± 23 42 ± 4    184 ± 4      90 ± 6
FC, pre64           533 ± 12 39 ± 3    183 ± 10     95 ± 5
per-cell, scratch   298 ± 64 25 ± 8    150 ± 67     54 ± 4
per-cell, pre64     372 ± 23 42 ± 17   176 ± 54     83 ± 21
=================== ======== ========= ============ ==========

λ_coord's term carries 85-87% of the squared gradient norm for the FC head and
78% for the per-cell head, with or without pre-training: the coordinate term
dominates both heads alike at the start, so the balance of terms at
initialisation does not by itself tell the head that learns from the one that
does not (the FC head's coordinate gradient is 1.4-1.7× the per-cell head's; the
other terms 0.9-1.7×). The rows
``coord_1``, ``noobj_*`` and ``small_init`` test what that leaves open.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads.heads import yolov1_fc
from jaxheads.models import detector, small_backbone
from jaxheads.study import Pretraining, StudyConfig, TrainRow, with_profile
from jaxheads.train.detection import detection_loss

# The heads study's pre-training stage (the same settings, so the same weights).
PRETRAIN = Pretraining("pre64", backbone="small", image_size=64, steps=600)


def fc_detector(
    *,
    image_size: int,
    num_classes: int,
    train_data=None,
    dropout: float = 0.5,
    output_scale: float = 1.0,
    hidden: int = 256,
):
    """The heads study's ``small-yolov1-fc`` with a choice of dropout, initial output scale
    and hidden width.

    ``output_scale`` multiplies the output Dense's initial kernel (its bias starts at 0),
    so the head's initial outputs shrink by that factor.
    """
    del train_data
    backbone = small_backbone()
    side = image_size // backbone.stride
    head = yolov1_fc(side=side, num_classes=num_classes, hidden=hidden, dropout=dropout)
    det = detector(backbone, head, image_size=image_size, name="small_yolov1_fc")
    if output_scale == 1.0:
        return det
    layer = det.layer

    def init(key, input_shape):
        shape, params, state = layer.init(key, input_shape)
        out = params["head"]["dense_1"]
        params["head"]["dense_1"] = {**out, "kernel": out["kernel"] * output_scale}
        return shape, params, state

    return det._replace(layer=layer._replace(init=init))


def _rows() -> list[TrainRow]:
    fc = "small-yolov1-fc"
    return [
        TrainRow("baseline", fc),
        TrainRow("percell", "small-yolov1-percell"),
        TrainRow("pretrained", fc, init=PRETRAIN.label),
        TrainRow("no_dropout", functools.partial(fc_detector, dropout=0.0)),
        TrainRow("lr_3e-4", fc, changes={"learning_rate": 3e-4}),
        TrainRow("lr_3e-3", fc, changes={"learning_rate": 3e-3}),
        TrainRow("warmup_0", fc, changes={"burn_in": 0}),
        TrainRow("warmup_300", fc, changes={"burn_in": 300}),
        TrainRow("small_init", functools.partial(fc_detector, output_scale=0.01)),
        TrainRow("coord_1", fc, loss=functools.partial(detection_loss, lambda_coord=1.0)),
        TrainRow("noobj_0.1", fc, loss=functools.partial(detection_loss, lambda_noobj=0.1)),
        TrainRow("noobj_1", fc, loss=functools.partial(detection_loss, lambda_noobj=1.0)),
        TrainRow("hidden_1024", functools.partial(fc_detector, hidden=1024)),
    ]


DESCRIPTION = (
    "The YOLOv1 Flatten + Dense head against one change at a time (the heads study's data "
    "and budget): the per-cell head, pre-training, dropout, learning rate, warm-up, the "
    "initial output scale and the loss terms' balance."
)


# ``--profile accelerator``: 3 seeds of 20,000 steps, about 10 minutes of one H100 by FLOPs
# (the module docstring says how it was sized); a checkpoint every 2,000 steps.
ACCELERATOR = {"steps": 20_000, "checkpoint_every": 2_000}


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
    )
    return with_profile(config, profile, accelerator=ACCELERATOR)


# ---------------------------------------------------------------------------
# What dominates the head's gradient at initialisation.
# ---------------------------------------------------------------------------

# Each loss term alone, with the paper's weight: `yolov1_loss`'s λs, the others set to 0.
_PAPER = {"lambda_coord": 5.0, "lambda_obj": 1.0, "lambda_noobj": 0.5, "lambda_class": 1.0}
TERMS = {
    f"{name} (λ {_PAPER[key]:g})": {k: (v if k == key else 0.0) for k, v in _PAPER.items()}
    for name, key in [
        ("coord", "lambda_coord"),
        ("object", "lambda_obj"),
        ("no-object", "lambda_noobj"),
        ("class", "lambda_class"),
    ]
}


def term_grads(det, params, state, batch, key) -> dict[str, dict]:
    """``{term: d(term)/d(head parameters)}`` on ``batch`` (training mode).

    The terms add up to the loss with the paper's λs, so the gradients add up to its
    gradient (tests/test_experiments.py checks it).
    """
    out = {}
    for name, weights in TERMS.items():
        loss_fn = detection_loss(det, global_batch=batch["image"].shape[0], **weights)

        def head_loss(head, loss_fn=loss_fn):
            value, _ = loss_fn({**params, "head": head}, state, batch, key, None, jnp.asarray(0))
            return value

        out[name] = jax.grad(head_loss)(params["head"])
    return out


def term_gradients(det, params, state, batch, key) -> dict[str, float]:
    """``{term: global norm of d(term)/d(head parameters)}`` (`term_grads`)."""
    grads = term_grads(det, params, state, batch, key)
    return {
        name: float(jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(g))))
        for name, g in grads.items()
    }


def gradients_table(workdir: str, seeds=(0, 1, 2)) -> str:
    """The Markdown table of `term_gradients` for the FC and per-cell heads, both inits.

    The pre-trained backbone is the study's stage in ``workdir`` (run the study first).
    """
    from jaxheads.data.pipeline import stack_examples
    from jaxheads.study.pretraining import stage_dir
    from jaxheads.study.run import build_model
    from jaxheads.train.detection import make_dataset
    from jaxheads.train.warm_start import load_workdir, transfer

    budget = get_config().budget
    data = make_dataset("shapes", "train", image_size=budget.image_size, seed=budget.data_seed)
    batch = stack_examples([data.example(i) for i in range(32)])
    batch = {k: batch[k] for k in ("image", "boxes", "labels", "mask")}
    weights = load_workdir(stage_dir(workdir, PRETRAIN.label))
    lines = ["| head | init | seed | " + " | ".join(TERMS) + " |", "|" + "---|" * (3 + len(TERMS))]
    for model in ("small-yolov1-fc", "small-yolov1-percell"):
        det, init = build_model(model, image_size=budget.image_size, num_classes=data.num_classes)
        for start in ("scratch", PRETRAIN.label):
            for seed in seeds:
                params, state = init(jax.random.key(seed))
                if start != "scratch":
                    params, state, _ = transfer(params, state, weights)
                norms = term_gradients(det, params, state, batch, jax.random.key(100 + seed))
                cells = " | ".join(f"{norms[t]:.3g}" for t in TERMS)
                lines.append(f"| {model} | {start} | {seed} | {cells} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# After training: do the head's boxes depend on the image?
# ---------------------------------------------------------------------------


def image_dependence(boxes, scores, truth, mask, *, side: int, num_boxes: int, labels=None) -> dict:
    """Where a trained head's best box lands, image by image: the right cell, the right box?

    Args:
      boxes: ``[N, K, 4]`` xyxy in ``[0, 1]``: the decoded boxes of ``N`` images, ``K =
        side·side·num_boxes`` slots each, cell-major (`jaxheads.decode.decode_yolov1`).
      scores: ``[N, K, C]`` class scores.
      truth, mask: ``[N, M, 4]`` xyxy ground-truth boxes and ``[N, M]`` which are real.
      side, num_boxes: the grid and the boxes per cell.
      labels: ``[N, M]`` the objects' classes; optional.

    Returns:
      ``top_slots``: how many slots hold some image's best-scoring box; ``cell_hit``: the
      fraction of images whose best box comes from a cell holding an object's centre
      (the cell the loss makes responsible); ``iou``: the mean IoU of the best box with
      that object (0 where the cell holds none); ``iou50``: the fraction with IoU ≥ 0.5;
      ``cell_auc``: how well each cell's best score tells the cells holding an object's
      centre from the others, over every image and cell (ROC AUC: 0.5 knows nothing of
      where the objects are, 1 ranks every object's cell above every empty one);
      with ``labels``, ``class_right``: the fraction of objects whose centre cell's best
      score (over its boxes and classes) is for the object's class.
    """
    from sklearn.metrics import roc_auc_score

    from jaxheads.boxes import iou as box_iou

    boxes, scores = np.asarray(boxes, np.float64), np.asarray(scores, np.float64)
    truth, mask = np.asarray(truth, np.float64), np.asarray(mask, bool)
    best = scores.max(-1).argmax(-1)  # [N]
    hits = (_centre_cells(truth, side) == (best // num_boxes)[:, None]) & mask  # [N, M]
    top = boxes[np.arange(len(best)), best]  # [N, 4]
    overlap = np.asarray(box_iou(top[:, None], truth))  # [N, M]
    fit = np.where(hits, overlap, 0.0).max(-1)
    n, k = best.shape[0], scores.shape[1]
    cell_classes = scores.reshape(n, k // num_boxes, num_boxes, -1).max(2)  # [N, S·S, C]
    per_cell = cell_classes.max(-1)  # [N, S·S]
    holds = object_cell_map(truth, mask, side)
    out = {
        "cell_auc": float(roc_auc_score(holds.ravel(), per_cell.ravel())),
        "top_slots": int(len(np.unique(best))),
        "cell_hit": float(hits.any(-1).mean()),
        "iou": float(fit.mean()),
        "iou50": float((fit >= 0.5).mean()),
    }
    if labels is not None:
        rows = np.broadcast_to(np.arange(n)[:, None], mask.shape)[mask]
        named = cell_classes[rows, _centre_cells(truth, side)[mask]].argmax(-1)
        out["class_right"] = float((named == np.asarray(labels)[mask]).mean())
    return out


def dependence_table(workdir: str, labels=None, seed: int = 0, study: str = "fc_head") -> str:
    """The Markdown table of `image_dependence` for a study's trained runs in ``workdir``.

    Each row's trained weights (seed ``seed``) on the study's 256 validation images;
    ``study`` is this one or another packaged study (``"heads"``: all six heads, whose
    decoders all give their boxes cell-major). Rows evaluated at another size (another
    grid; an `EvalRow` too, with its source row's weights) get their own validation
    batch and their own reference lines.
    """
    from sklearn.metrics import roc_auc_score

    from jaxheads.data.pipeline import stack_examples
    from jaxheads.study import load_study
    from jaxheads.study.run import plan_row, training
    from jaxheads.train.loop import restore_params

    config = get_config() if study == "fc_head" else load_study(study).get_config()
    lines = [
        "| row | objectness AUC, object cells vs empty ones | slots holding a best box | best "
        "box in an object's cell | its IoU with the object | IoU ≥ 0.5 | class named right in "
        "an object's cell |",
        "|---|---|---|---|---|---|---|",
    ]
    vals = {}  # the validation batch at each evaluation size, stacked once
    grids = {}  # each grid side met: the validation batch its references are drawn on
    for row in config.rows:
        rundir = os.path.join(workdir, row.label, f"seed{seed}")
        if (labels and row.label not in labels) or not os.path.exists(
            os.path.join(rundir, "result.json")
        ):
            continue
        plan = plan_row(config, row)
        det, task, run = training(config, plan, seed, workdir, False)
        # an EvalRow's weights are its source row's
        sourcedir = os.path.join(workdir, plan.source.label, f"seed{seed}")
        params, state, _ = restore_params(sourcedir, task, run, op="dependence")
        size = plan.eval_image_size
        if size not in vals:
            vals[size] = stack_examples([plan.val.example(i) for i in range(len(plan.val))])
        val = vals[size]
        raw, _ = jax.jit(det.layer.apply)(params, state, jnp.asarray(val["image"]))
        boxes, scores = det.head.decode(raw.astype(jnp.float32))
        side = raw.shape[1]
        grids.setdefault(side, val)
        d = image_dependence(
            boxes,
            scores,
            val["boxes"],
            val["mask"],
            side=side,
            num_boxes=det.head.num_boxes,
            labels=val["labels"],
        )
        lines.append(
            f"| {row.label} | {d['cell_auc']:.2f} | {d['top_slots']} of "
            f"{side * side * det.head.num_boxes} | "
            f"{d['cell_hit']:.2f} | {d['iou']:.2f} | {d['iou50']:.2f} | {d['class_right']:.2f} |"
        )
    for side, val in grids.items():
        # references that ignore the image: a random cell, and every image given the same
        # map, how often each cell holds an object in these very images (an upper bound)
        holds = object_cell_map(val["boxes"], val["mask"], side)
        prior = np.broadcast_to(holds.mean(0), holds.shape)
        prior_auc = roc_auc_score(holds.ravel(), prior.ravel())
        chance = holds.sum(-1).mean() / side**2
        # naming every object the commonest class of these images
        counts = np.bincount(np.asarray(val["labels"])[np.asarray(val["mask"], bool)])
        commonest = counts.max() / counts.sum()
        grid = f", {side}×{side} grid" if len(grids) > 1 else ""
        lines.append(f"| a cell drawn at random{grid} | 0.50 | — | {chance:.2f} | — | — | — |")
        lines.append(
            f"| one map for every image: each cell's object frequency{grid} | {prior_auc:.2f} "
            "| — | — | — | — | — |"
        )
        lines.append(
            f"| every object named the commonest class{grid} | — | — | — | — | — | "
            f"{commonest:.2f} |"
        )
    return "\n".join(lines)


def _centre_cells(truth, side: int) -> np.ndarray:
    """``[N, M]`` row-major index of the grid cell holding each box's centre."""
    truth = np.asarray(truth, np.float64)
    centre = np.floor((truth[..., :2] + truth[..., 2:]) / 2 * side).astype(int)
    return centre[..., 1] * side + centre[..., 0]


def object_cell_map(truth, mask, side: int) -> np.ndarray:
    """``[N, S·S]``: whether each grid cell of each image holds an object's centre."""
    mask = np.asarray(mask, bool)
    holds = np.zeros((len(mask), side * side), bool)
    rows = np.broadcast_to(np.arange(len(mask))[:, None], mask.shape)
    holds[rows[mask], _centre_cells(truth, side)[mask]] = True
    return holds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="the FC head's gradient terms at init; how its trained boxes depend "
        "on the image"
    )
    parser.add_argument("command", choices=["gradients", "dependence"])
    parser.add_argument("--workdir", default="runs/fc_head", help="the study's work directory")
    parser.add_argument(
        "--study", default="fc_head", help="dependence: the study whose runs are in --workdir"
    )
    args = parser.parse_args(argv)
    if args.command == "gradients":
        print(gradients_table(args.workdir))
    else:
        print(dependence_table(args.workdir, study=args.study))
    return 0


if __name__ == "__main__":
    sys.exit(main())
