"""The study's rule for winners: the best row on a metric, and whether seeds separate it.

A metric with a ``winner`` line in `jaxheads.train.metric_table.METRICS` names its
best row; the sentence says whether the gap to the runner-up exceeds the larger
seed standard deviation of the two (a gap within it is "not separated").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jaxheads.train.metric_table import METRIC, METRICS


def winners(heads: Sequence[Mapping]) -> dict[str, dict]:
    """For each metric with a winner line: the best row, its value and the runner-up's."""
    out = {}
    for m in METRICS:
        ranked = [h for h in heads if h.get(m.key) is not None]
        if m.winner is None or not ranked:
            continue
        ranked.sort(key=lambda h, k=m.key: -h[k] if m.higher_is_better else h[k])
        best = ranked[0]
        entry = {"head": best["head"], "value": best[m.key], "std": best.get(f"{m.key}_std")}
        if len(ranked) > 1:
            second = ranked[1]
            entry.update(
                runner_up=second["head"],
                runner_up_value=second[m.key],
                runner_up_std=second.get(f"{m.key}_std"),
            )
        out[m.key] = entry
    return out


def winner_sentence(key: str, entry: Mapping) -> str:
    """One "which head won" line, saying whether the gap exceeds the seeds' spread."""
    metric = METRIC[key]
    fmt = metric.format_one
    text = f"- {metric.winner}: **{entry['head']}** ({fmt(entry['value'])}"
    if entry.get("std") is not None:
        text += f" ± {fmt(entry['std'])}"
    text += ")"
    if "runner_up" not in entry:
        return text + "."
    gap = abs(entry["value"] - entry["runner_up_value"])
    text += f", then {entry['runner_up']} ({fmt(entry['runner_up_value'])})"
    stds = [s for s in (entry.get("std"), entry.get("runner_up_std")) if s is not None]
    if not metric.per_seed or gap == 0:
        return text + (": a tie." if gap == 0 else ".")
    if not stds:
        return text + "; one seed, so no spread to judge the gap by."
    spread = max(stds)
    verdict = "more than the larger seed std"
    if gap <= spread:
        verdict = "within the seeds' spread: not separated"
    return text + f"; the gap {fmt(gap)} is {verdict} ({fmt(spread)})."


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table's lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]
