"""A budget sweep: the same rows trained at several step counts, each budget a run of its own.

`at_steps` copies each `TrainRow` once per budget, labelled ``<label>+<steps>``
and trained for that many steps (``changes={"steps": n}``), so each budget has
its own schedule: the cosine decays over the run's own length, and the warm-up
is the study's, capped at a tenth of it (`jaxheads.study.run.warm_up`). A
truncated longer run is not the same experiment: its learning rate has not
decayed. `pretrained` after `at_steps` gives ``<label>+<steps>@<stage>``, so each
budget's pre-trained row sits beside its from-scratch one; the stage itself
trains once for every budget and seed.

A series is one line of the sweep, a row at every budget: `sweep_of` reads it
back from a label (``yolov2+3000@pre64`` → ``("yolov2@pre64", 3000)``).
`sweep` gathers the aggregated rows into series: mean ± std and every seed's
metric per budget, and the images seen (steps × batch). `rankings` orders the
series at each budget by the metric with the study's rule for winners
(`jaxheads.study.ranking`): a gap counts only when it exceeds the larger of the
two seed standard deviations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from jaxheads.study.config import Row, StudyConfig, TrainRow, variant_of
from jaxheads.study.ranking import table, winner_sentence, winners
from jaxheads.train.metric_table import METRIC

#: What the sweep ranks and tabulates.
SWEEP_METRIC = "mAP50"


def at_steps(rows: Sequence[Row], steps: Sequence[int]) -> list[TrainRow]:
    """Each `TrainRow` of ``rows`` once per budget in ``steps``, budget by budget.

    >>> [r.label for r in at_steps([TrainRow("fc"), TrainRow("v2")], (1000, 3000))]
    ['fc+1000', 'v2+1000', 'fc+3000', 'v2+3000']
    >>> at_steps([TrainRow("fc")], (50,))[0].changes
    {'steps': 50}

    Raises:
      ValueError: no budgets, a budget that is not a positive integer, a repeated
        budget, or a row that already sets ``steps``.
    """
    if not steps:
        raise ValueError("at_steps: expected at least one budget, got none")
    if any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in steps):
        raise ValueError(f"at_steps: expected positive integer step counts, got {list(steps)}")
    if len(set(steps)) != len(steps):
        raise ValueError(f"at_steps: expected distinct budgets, got {list(steps)}")
    fixed = [r.label for r in rows if isinstance(r, TrainRow) and "steps" in r.changes]
    if fixed:
        raise ValueError(f"at_steps: expected rows that leave steps to the sweep, got {fixed}")
    return [
        dataclasses.replace(r, label=f"{r.label}+{n}", changes={**r.changes, "steps": n})
        for n in steps
        for r in rows
        if isinstance(r, TrainRow)
    ]


def sweep_of(label: str) -> tuple[str, int | None]:
    """``(series, steps)`` of an `at_steps` row's label; ``(label, None)`` otherwise.

    >>> sweep_of("yolov2+3000@pre64"), sweep_of("yolov2+3000"), sweep_of("yolov2@pre64")
    (('yolov2@pre64', 3000), ('yolov2', 3000), ('yolov2@pre64', None))
    """
    base, stage = variant_of(label)
    head, sep, steps = base.rpartition("+")
    if not sep or not head or not steps.isdigit():
        return label, None
    return head + (f"@{stage}" if stage else ""), int(steps)


def is_sweep(config: StudyConfig) -> bool:
    """Whether some row of ``config`` is an `at_steps` row."""
    return any(sweep_of(r.label)[1] is not None for r in config.rows)


def sweep(
    config: StudyConfig,
    heads: Sequence[Mapping],
    runs: Sequence[Mapping],
    key: str = SWEEP_METRIC,
) -> dict[str, Any]:
    """The sweep's series from the aggregated rows (``heads``) and the per-seed ones (``runs``).

    Returns:
      ``{"metric", "budgets", "series"}``: ``budgets`` the step counts in
      increasing order; each series ``{"series", "head", "init", "points"}``, its
      points one per budget it was trained at, in increasing order:
      ``{"label", "steps", "images_seen", key, f"{key}_std", "per_seed": {seed:
      value}}`` (``images_seen``: steps × the row's global batch).
    """
    by_series: dict[str, list[dict]] = {}
    for h in heads:
        series, steps = sweep_of(h["head"])
        if steps is None:
            continue
        row = config.row(h["head"])
        batch = config.budget_of(row).batch_size if isinstance(row, TrainRow) else None
        per_seed = {
            str(r["seed"]): r.get(key) for r in runs if r["head"] == h["head"] and "seed" in r
        }
        by_series.setdefault(series, []).append(
            {
                "label": h["head"],
                "steps": steps,
                "images_seen": None if batch is None else steps * batch,
                key: h.get(key),
                f"{key}_std": h.get(f"{key}_std"),
                "per_seed": per_seed,
            }
        )
    series = []
    for name, points in by_series.items():
        head, stage = variant_of(name)
        series.append(
            {
                "series": name,
                "head": head,
                "init": stage,
                "points": sorted(points, key=lambda p: p["steps"]),
            }
        )
    budgets = sorted({p["steps"] for s in series for p in s["points"]})
    return {"metric": key, "budgets": budgets, "series": series}


def _verdict(a: Mapping, b: Mapping, key: str) -> str:
    """The study's rule between two neighbours of a ranking (``a`` ahead of ``b``)."""
    gap = a[key] - b[key]
    stds = [s for s in (a.get(f"{key}_std"), b.get(f"{key}_std")) if s is not None]
    if gap == 0:
        return "tie"
    if not stds:
        return "one seed"
    return "separated" if gap > max(stds) else "not separated"


# How results.md writes each verdict between two neighbours of a ranking.
_SIGNS = {"separated": ">", "not separated": "≈", "tie": "=", "one seed": ">?"}


def rankings(sweep_: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per budget: every series in order of the metric, each step judged by the seeds' spread.

    Returns:
      One ``{"steps", "order", "verdicts", "groups", "winner"}`` per budget:
      ``order`` the series best first; ``verdicts[i]`` the rule between
      ``order[i]`` and ``order[i + 1]`` (``"separated"``: the gap exceeds the
      larger seed std; ``"not separated"``; ``"tie"``; ``"one seed"``: no spread to
      judge by); ``groups`` the same per init (``{"scratch" or stage: {"order",
      "verdicts"}}``); ``winner`` the `jaxheads.study.ranking.winners` entry of
      the metric over all series.
    """
    key = sweep_["metric"]
    out = []
    for steps in sweep_["budgets"]:
        entries = [
            {"head": s["series"], "init": s["init"], **p}
            for s in sweep_["series"]
            for p in s["points"]
            if p["steps"] == steps and p.get(key) is not None
        ]
        entries.sort(key=lambda e: -e[key])

        def ranked(members):
            return {
                "order": [e["head"] for e in members],
                "verdicts": [
                    _verdict(a, b, key) for a, b in zip(members[:-1], members[1:], strict=True)
                ],
            }

        # from scratch first, then each stage in the series' order
        groups: dict[str, list] = {s["init"] or "scratch": [] for s in sweep_["series"]}
        groups = {"scratch": [], **groups}
        for e in entries:
            groups[e["init"] or "scratch"].append(e)
        best = winners(
            [{"head": e["head"], key: e[key], f"{key}_std": e[f"{key}_std"]} for e in entries]
        )
        out.append(
            {
                "steps": steps,
                **ranked(entries),
                "groups": {g: ranked(m) for g, m in groups.items() if m},
                "winner": best.get(key),
            }
        )
    return out


def ordering(order: Sequence[str], verdicts: Sequence[str]) -> str:
    """A ranking as text: ``a > b ≈ c`` (`_SIGNS` between neighbours).

    >>> ordering(["a", "b", "c"], ["separated", "not separated"])
    'a > b ≈ c'
    """
    text = order[0] if order else ""
    for name, verdict in zip(order[1:], verdicts, strict=True):
        text += f" {_SIGNS[verdict]} {name}"
    return text


def _budget_heading(steps: int, images: int | None) -> str:
    return f"{steps:,} steps" + (f" ({images:,} img)" if images is not None else "")


def _images_seen(sweep_: Mapping[str, Any]) -> dict[int, int | None]:
    images: dict[int, int | None] = {}
    for s in sweep_["series"]:
        for p in s["points"]:
            images.setdefault(p["steps"], p["images_seen"])
    return images


def sweep_table(sweep_: Mapping[str, Any]) -> list[str]:
    """The sweep's table: a row per series (head × init), a column per budget."""
    key = sweep_["metric"]
    metric = METRIC[key]
    images = _images_seen(sweep_)
    budgets = sweep_["budgets"]
    rows = []
    for s in sweep_["series"]:
        at = {p["steps"]: p for p in s["points"]}
        cells = [s["head"], s["init"] or "scratch"]
        for n in budgets:
            p = at.get(n)
            cells.append("—" if p is None else metric.format(p.get(key), p.get(f"{key}_std")))
        rows.append(cells)
    header = ["head", "init"] + [_budget_heading(n, images.get(n)) for n in budgets]
    return table(header, rows)


def sweep_markdown(sweep_: Mapping[str, Any], ranked: Sequence[Mapping]) -> list[str]:
    """``results.md``'s sweep section: the table (series × budgets) and the rankings."""
    key = sweep_["metric"]
    metric = METRIC[key]
    images = _images_seen(sweep_)
    lines = [
        "## Budget sweep",
        "",
        f"{metric.label}, mean ± std over seeds, against the training budget (each budget a "
        "run of its own, with its own cosine schedule):",
        "",
        *sweep_table(sweep_),
        "",
        "**Ranking at each budget** (`>`: the gap exceeds the larger seed std; `≈`: within "
        "it, not separated; `>?`: one seed, no spread to judge by):",
        "",
    ]
    for r in ranked:
        lines.append(
            f"- {_budget_heading(r['steps'], images.get(r['steps']))}: "
            + ordering(r["order"], r["verdicts"])
        )
        for group, g in r["groups"].items():
            lines.append(f"  - {group}: {ordering(g['order'], g['verdicts'])}")
        if r["winner"] is not None:
            lines.append("  " + winner_sentence(key, r["winner"]))
    return lines + [""]
