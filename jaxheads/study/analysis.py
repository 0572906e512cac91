"""Analyses of a study's trained heads: what dominates the gradient; do the boxes see the image?

Two questions the FC-head study asks of any detector's runs:

* `measure_gradients`: the global norm of each YOLOv1 loss term's gradient with respect to the
  head's parameters at initialisation (`term_gradients`), for the FC and per-cell heads,
  from scratch and from a study's pre-trained backbone;
* `measure_dependence`: where each trained row's best box lands, image by image
  (`image_dependence`): the object's cell, a good box, the right class, and how well the
  objectness tells object cells from empty ones.

Each ``measure_*`` (`measure`, by name) returns a record of plain data, and each
``*_table`` (`table`) renders one. From the
shell: ``jaxheads analyse gradients --workdir runs/fc_head`` and ``jaxheads analyse
dependence --study heads --workdir runs/heads``; with ``--publish`` the record goes to
``docs/results/<study>/<analysis>.json``, where ``jaxheads report`` quotes it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads.study.config import ANALYSES, StudyConfig
from jaxheads.train.detection import detection_loss

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
    gradient.
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


def measure_gradients(workdir: str, seeds=(0, 1, 2), study: str | StudyConfig = "fc_head") -> dict:
    """`term_gradients` for the FC and per-cell heads, from scratch and pre-trained.

    The data and image size are ``study``'s (a packaged study's name, or its config); the
    pre-trained backbone is its (one) pre-training stage in ``workdir`` (run the study
    first).

    Returns:
      ``{"kind": "gradients", "study", "stage", "terms", "rows"}``: a row per model,
      start and seed, ``{"model", "init", "seed", "norms": {term: global norm}}``
      (`gradients_table` renders it).
    """
    from jaxheads.data.pipeline import stack_examples
    from jaxheads.study.pretraining import stage_dir
    from jaxheads.train.detection import build_detector, make_dataset
    from jaxheads.train.warm_start import load_workdir, transfer

    config = _config(study)
    if len(config.pretraining) != 1:
        raise ValueError(
            f"gradients: expected a study with one pre-training stage, got {config.name!r} "
            f"with {[p.label for p in config.pretraining]}"
        )
    (stage,) = config.pretraining
    budget = config.budget
    data = make_dataset(
        budget.dataset, "train", image_size=budget.image_size, seed=budget.data_seed
    )
    batch = stack_examples([data.example(i) for i in range(32)])
    batch = {k: batch[k] for k in ("image", "boxes", "labels", "mask")}
    weights = load_workdir(stage_dir(workdir, stage.label))
    rows = []
    for model in ("small-yolov1-fc", "small-yolov1-percell"):
        det, init = build_detector(
            model, image_size=budget.image_size, num_classes=data.num_classes
        )
        for start in ("scratch", stage.label):
            for seed in seeds:
                params, state = init(jax.random.key(seed))
                if start != "scratch":
                    params, state, _ = transfer(params, state, weights)
                norms = term_gradients(det, params, state, batch, jax.random.key(100 + seed))
                rows.append({"model": model, "init": start, "seed": seed, "norms": norms})
    return {
        "kind": "gradients",
        "study": config.name,
        "stage": stage.label,
        "terms": list(TERMS),
        "rows": rows,
    }


def measure(name: str, workdir: str, study: str | StudyConfig, *, seed: int = 0) -> dict:
    """The analysis ``name`` (of `jaxheads.study.config.ANALYSES`) of a study's runs.

    ``seed``: the trained weights ``dependence`` reads (``gradients`` initialises its own).
    """
    if name == "dependence":
        return measure_dependence(workdir, seed=seed, study=study)
    if name == "gradients":
        return measure_gradients(workdir, study=study)
    raise ValueError(f"measure: expected an analysis among {list(ANALYSES)}, got {name!r}")


def table(record: Mapping) -> str:
    """The Markdown table of a record `measure` returned (its ``kind`` names the analysis)."""
    tables = {"dependence": dependence_table, "gradients": gradients_table}
    if record.get("kind") not in tables:
        raise ValueError(
            f"table: expected a record of kind among {sorted(tables)}, got {record.get('kind')!r}"
        )
    return tables[record["kind"]](record)


def _config(study: str | StudyConfig) -> StudyConfig:
    from jaxheads.study.studies import load_study

    return study if isinstance(study, StudyConfig) else load_study(study).get_config()


def gradients_table(data: Mapping) -> str:
    """`measure_gradients`'s record as Markdown: each term's norm, mean ± std over seeds.

    The last column is the coordinate term's share of the squared norms' sum (the
    terms' gradients add up to the loss's, so it says which term the head's first
    steps follow).
    """
    terms = data["terms"]
    groups: dict[tuple, list] = {}
    for row in data["rows"]:
        groups.setdefault((row["model"], row["init"]), []).append(row["norms"])
    seeds = sorted({row["seed"] for row in data["rows"]})
    lines = [
        f"| head | init | {' | '.join(terms)} | {terms[0]}'s share of the squared norms |",
        "|" + "---|" * (3 + len(terms)),
    ]
    for (model, init), norms in groups.items():
        cells = [_mean_std([n[t] for n in norms]) for t in terms]
        share = [n[terms[0]] ** 2 / sum(n[t] ** 2 for t in terms) for n in norms]
        lines.append(f"| {model} | {init} | {' | '.join(cells)} | {_mean_std(share, '.0%')} |")
    return "\n".join(lines) + f"\n\nMean ± sample std over seeds {', '.join(map(str, seeds))}."


def _mean_std(values, spec: str = ".3g") -> str:
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return format(values.mean(), spec)
    return f"{format(values.mean(), spec)} ± {format(values.std(ddof=1), spec)}"


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


def measure_dependence(
    workdir: str, labels=None, seed: int = 0, study: str | StudyConfig = "fc_head"
) -> dict:
    """`image_dependence` of a study's trained runs in ``workdir``, with references.

    Each row's trained weights (seed ``seed``) on the study's 256 validation images;
    ``study`` is a packaged study by name (``"fc_head"``; ``"heads"``: all six heads, whose
    decoders all give their boxes cell-major) or a `StudyConfig`; ``labels`` limits the
    rows. Rows evaluated at another size (another grid; an `EvalRow` too, with its source
    row's weights) get their own validation batch and their own references.

    Returns:
      ``{"kind": "dependence", "study", "seed", "rows", "references"}``: a row per trained
      row, `image_dependence`'s figures with ``row`` and ``slots`` (the grid's box slots);
      a reference per grid side met, what ignoring the image scores: ``random_cell`` (the
      chance that a cell drawn at random holds an object), ``prior_auc`` (every image
      given one map, how often each cell holds an object in these very images: an upper
      bound) and ``commonest`` (every object named the commonest class).
      `dependence_table` renders it.
    """
    from sklearn.metrics import roc_auc_score

    from jaxheads.data.pipeline import stack_examples
    from jaxheads.study.run import plan_row, training
    from jaxheads.train.loop import restore_params

    config = _config(study)
    rows = []
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
        rows.append(
            {"row": row.label, "side": side, "slots": side * side * det.head.num_boxes, **d}
        )
    references = []
    for side, val in grids.items():
        holds = object_cell_map(val["boxes"], val["mask"], side)
        prior = np.broadcast_to(holds.mean(0), holds.shape)
        counts = np.bincount(np.asarray(val["labels"])[np.asarray(val["mask"], bool)])
        references.append(
            {
                "side": side,
                "random_cell": float(holds.sum(-1).mean() / side**2),
                "prior_auc": float(roc_auc_score(holds.ravel(), prior.ravel())),
                "commonest": float(counts.max() / counts.sum()),
            }
        )
    return {
        "kind": "dependence",
        "study": config.name,
        "seed": seed,
        "rows": rows,
        "references": references,
    }


def dependence_table(data: Mapping) -> str:
    """`measure_dependence`'s record as Markdown: a line per row, then the references."""
    lines = [
        "| row | objectness AUC, object cells vs empty ones | slots holding a best box | best "
        "box in an object's cell | its IoU with the object | IoU ≥ 0.5 | class named right in "
        "an object's cell |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in data["rows"]:
        lines.append(
            f"| {d['row']} | {d['cell_auc']:.2f} | {d['top_slots']} of {d['slots']} | "
            f"{d['cell_hit']:.2f} | {d['iou']:.2f} | {d['iou50']:.2f} | {d['class_right']:.2f} |"
        )
    several = len(data["references"]) > 1
    for ref in data["references"]:
        grid = f", {ref['side']}×{ref['side']} grid" if several else ""
        lines += [
            f"| a cell drawn at random{grid} | 0.50 | — | {ref['random_cell']:.2f} | — | — | — |",
            f"| one map for every image: each cell's object frequency{grid} | "
            f"{ref['prior_auc']:.2f} | — | — | — | — | — |",
            f"| every object named the commonest class{grid} | — | — | — | — | — | "
            f"{ref['commonest']:.2f} |",
        ]
    return "\n".join(lines) + f"\n\nSeed {data['seed']}'s trained weights."


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
