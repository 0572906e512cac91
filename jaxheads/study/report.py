"""A study's report: per-row aggregates over seeds, winners, ``results.json``, ``results.md``.

Every number is labelled, formatted and ranked as `jaxheads.train.metric_table.METRICS`
declares it. A study whose rows are a budget sweep (`jaxheads.study.sweep.at_steps`)
also gets the sweep's table, its ranking per budget and its plot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxheads.study.config import EvalRow, StudyConfig, describe, variant_of
from jaxheads.study.ranking import table, winner_sentence, winners
from jaxheads.study.records import RunRecord, write_json
from jaxheads.study.sweep import is_sweep, rankings, sweep, sweep_markdown
from jaxheads.train.metric_table import METRIC, METRICS

# Facts of a row's run (not metrics) that ``results.json`` repeats per row.
RUN_FACTS = ("image_size", "eval_image_size", "steps")
# ``results.md``'s columns: the summary table, and the per-seed table.
SUMMARY_COLUMNS = (
    "params",
    "head_params",
    "flops",
    "head_flops",
    "images_per_s",
    "mAP50",
    "mAP50_voc07",
    "mAP",
    "recall",
    "mAP_small",
    "mAP_medium",
    "mAP_large",
    "anchor_iou",
)
PER_SEED_COLUMNS = ("mAP50", "mAP50_voc07", "mAP", "recall", "images_per_s", "final_loss")


def aggregate(rows: Sequence[Mapping], labels: Sequence[str]) -> list[dict]:
    """One row per label: per-seed metrics as mean and ``<key>_std``, the others as they are.

    ``<key>_std`` is the sample standard deviation over seeds (None for one seed);
    a metric undefined in some seed (e.g. no large objects) averages the others.
    """
    out = []
    for label in labels:
        mine = [r for r in rows if r["head"] == label]
        if not mine:
            continue
        agg: dict[str, Any] = {"head": label, "seeds": [r["seed"] for r in mine]}
        for m in METRICS:
            if not m.per_seed and not m.optional:
                agg[m.key] = mine[0].get(m.key)
        for key in RUN_FACTS:
            agg[key] = mine[0].get(key)
        for m in METRICS:
            if m.per_seed:
                values = [r[m.key] for r in mine if r.get(m.key) is not None]
                agg[m.key] = float(np.mean(values)) if values else None
                agg[f"{m.key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        for key in ("anchors", "anchor_iou"):
            if key in mine[0]:
                agg[key] = mine[0][key]
        out.append(agg)
    return out


def init_of(config: StudyConfig, label: str) -> str | None:
    """The pretraining stage the row ``label`` starts from (None: from scratch)."""
    row = config.row(label)
    if isinstance(row, EvalRow):
        row = config.row(row.weights_from)
    return row.init


def _groups(config: StudyConfig, heads: Sequence[Mapping]) -> dict[str, list]:
    """The aggregated rows from scratch, then those that start from a pretraining stage."""
    groups: dict[str, list] = {}
    for h in heads:
        stage = init_of(config, h["head"])
        title = "From scratch" if stage is None else "Pre-trained (`<row>@<stage>`)"
        groups.setdefault(title, []).append(h)
    return groups


def stages_table(stages: Mapping[str, Mapping]) -> list[str]:
    """The stages; one that starts from another shows its start weights' top-1 at its size."""

    def before(s):
        return "—" if s.get("top1_before") is None else f"{s['top1_before']:.3f}"

    return table(
        ["stage", "backbone", "image", "steps", "starts from", "top-1 at start", "top-1", "top-5"],
        [
            [
                s["label"],
                s["backbone"],
                f"{s['image_size']}²",
                str(s["steps"]),
                s.get("init_from") or "—",
                before(s),
                f"{s['top1']:.3f}",
                f"{s['top5']:.3f}",
            ]
            for s in stages.values()
        ],
    )


def effect_table(heads: Sequence[Mapping], key: str = "mAP50") -> list[str]:
    """Each row beside its `pretrained` copies: ``key`` from scratch, pre-trained, the gain."""
    by_label = {h["head"]: h for h in heads}
    metric = METRIC[key]
    rows = []
    for h in heads:
        base, stage = variant_of(h["head"])
        scratch = by_label.get(base)
        if stage is None or scratch is None:
            continue
        cells = [base, stage]
        for agg in (scratch, h):
            cells.append(metric.format(agg.get(key), agg.get(f"{key}_std")))
        gain = None
        if h.get(key) is not None and scratch.get(key) is not None:
            gain = h[key] - scratch[key]
            gain = 0.0 if abs(gain) < 5e-4 else gain  # no "-0.000"
        cells.append(metric.format_one(gain) if gain is not None else "—")
        rows.append(cells)
    if not rows:
        return []
    header = ["row", "stage", f"{metric.label} from scratch", f"{metric.label} pre-trained"]
    return table(header + ["gain"], rows)


def summary_table(
    heads: Sequence[Mapping],
    paper: Mapping[str, str] | None = None,
    paper_metric: str = "",
    columns: Sequence[str] = SUMMARY_COLUMNS,
) -> list[str]:
    """The summary table's lines: one row per aggregated row, ``columns`` (metric keys).

    ``paper``: ``{row label: the paper's figure}`` for a last column (``paper_metric``).
    """
    keys = [k for k in columns if not METRIC[k].optional or any(k in h for h in heads)]
    header = ["head"] + [METRIC[k].label for k in keys]
    if paper:
        header.append(f"paper ({paper_metric})")
    rows = []
    for h in heads:
        cells = [h["head"]] + [METRIC[k].format(h.get(k), h.get(f"{k}_std")) for k in keys]
        if paper:
            cells.append(paper.get(variant_of(h["head"])[0], "—"))
        rows.append(cells)
    return table(header, rows)


def _summary_table(config: StudyConfig, heads: Sequence[Mapping]) -> list[str]:
    return summary_table(heads, config.paper, config.paper_metric)


def markdown(
    config: StudyConfig,
    heads: Sequence[Mapping],
    rows: Sequence[Mapping],
    best: Mapping,
    plots: Sequence[str],
    stages: Mapping[str, Mapping] | None = None,
    budget_sweep: Mapping[str, Any] | None = None,
) -> str:
    """``results.md``: the study, its summary table, the winners, the budget sweep (if the
    study is one: `jaxheads.study.sweep`), the per-seed table, the plots."""
    budget, run = config.budget, config.budget.run
    lines = [f"# Study: {config.name}", ""]
    if config.description:
        lines += [config.description.strip(), ""]
    if config.command:
        lines += ["```bash", config.command, "```", ""]
    seeds = ", ".join(str(s) for s in config.seeds)
    steps = f"{run.steps} steps"
    if budget_sweep is not None:
        steps = "/".join(f"{n:,}" for n in budget_sweep["budgets"]) + " steps (the sweep)"
    lines += [
        f"Data: `{budget.dataset}`, {budget.image_size}×{budget.image_size} images, "
        f"{budget.val_examples} validation images; {steps} of batch "
        f"{budget.batch_size} ({run.optimizer}, lr {run.learning_rate}, {run.policy}); "
        f"seeds {seeds}. Metrics are mean ± sample std over seeds; params are Keras-style "
        "(with batch-norm statistics); MFLOPs of one forward pass at batch 1 (XLA's count "
        "for a TPU program, a multiply-add counts 2); img/s is the median steady-state "
        "training rate.",
        "",
    ]
    stages = stages or {}
    if stages:
        lines += ["Pre-training stages (held-out top-1/top-5 on the embedded objects):", ""]
        lines += stages_table(stages) + [""]
    groups = _groups(config, heads)
    if len(groups) == 1:
        lines += _summary_table(config, heads)
    else:
        for title, members in groups.items():
            lines += [f"### {title}", ""]
            lines += _summary_table(config, members) + [""]
        effect = effect_table(heads)
        if effect:
            lines += ["### What pre-training changes", ""] + effect
    lines += ["", "**Which head won on what** (computed from the tables):", ""]
    lines += [winner_sentence(key, entry) for key, entry in best.items()]
    if budget_sweep is not None:
        lines += [""] + sweep_markdown(budget_sweep, budget_sweep["rankings"])
    lines += ["", "## Per seed", ""]
    lines += table(
        ["head", "seed"] + [METRIC[k].label for k in PER_SEED_COLUMNS],
        [
            [r["head"], str(r["seed"])] + [METRIC[k].format_one(r[k]) for k in PER_SEED_COLUMNS]
            for r in rows
        ],
    )
    lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def write_report(
    config: StudyConfig,
    records: Sequence[RunRecord],
    workdir: str,
    stages: Mapping[str, Mapping] | None = None,
) -> list[dict]:
    """Writes results.json, results.md and the PNG plots from the records; returns aggregates.

    ``stages``: the pretraining stages' records (`jaxheads.study.pretraining.run_stages`).
    """
    stages = {k: {f: v for f, v in r.items() if f != "skipped"} for k, r in (stages or {}).items()}
    from jaxheads.study.plots import plot_all

    rows = [r.row for r in records]
    heads = aggregate(rows, [r.label for r in config.rows])
    best = winners(heads)
    budget_sweep = None
    if is_sweep(config):
        budget_sweep = sweep(config, heads, rows)
        budget_sweep["rankings"] = rankings(budget_sweep)
    plots = plot_all(config, records, heads, workdir, budget_sweep)
    budget = describe(config.budget)
    write_json(
        os.path.join(workdir, "results.json"),
        {
            "study": config.name,
            "config": {
                "name": config.name,
                "seeds": describe(config.seeds),
                "budget": budget,
                "command": config.command,
                "paper": describe(config.paper),
                "paper_metric": config.paper_metric,
                "pretraining": describe(list(config.pretraining)),
            },
            "pretraining": list(stages.values()),
            "rows": [{"type": type(r).__name__, **describe(r)} for r in config.rows],
            "heads": heads,
            "runs": rows,
            "winners": best,
            **({} if budget_sweep is None else {"sweep": budget_sweep}),
            "plots": plots,
        },
    )
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(markdown(config, heads, rows, best, plots, stages, budget_sweep))
    return heads
