"""The results tables of the README and ``docs/``, generated from the committed results files.

A table sits between two markers that name its file::

    <!-- results:main -->
    ...generated...
    <!-- /results:main -->

``results:KEY`` reads ``docs/results/KEY/results.json`` (or ``docs/results/KEY.json``),
and what is written between the markers depends on the file: a training run
(`jaxheads.study.publish.publish_run`) gives its evaluation; a study
(`jaxheads.study.publish.publish_study`) its summary table; the roofline of
``benchmarks/roofline.py`` its per-layer table (`jaxheads.bench.roofline_table`); the
pipeline rates of ``benchmarks/pipeline_rates.py`` theirs (`jaxheads.bench.pipeline_table`);
``jaxheads bench --json``'s record its figures (`jaxheads.bench.chip_table`).
``results:KEY:seeds`` gives a study's per-seed table instead, ``results:KEY:pretraining``
each row from scratch beside its pre-trained copy (`jaxheads.study.report.effect_table`),
``results:KEY:compact`` a study's rows with their mAP50 and recall alone; either of
those two views takes the rows to show, in order: ``<!-- results:KEY:compact a,b,c -->``.
``results:KEY:winners`` which row won on what (`jaxheads.study.ranking.winner_sentence`),
``results:KEY:stages`` the pre-training stages (`jaxheads.study.report.stages_table`),
``results:KEY:sweep`` a budget sweep's table (`jaxheads.study.sweep.sweep_table`).
``results:STUDY/gradients`` and ``results:STUDY/dependence`` read the records ``jaxheads
analyse ... --publish`` writes (``docs/results/STUDY/<analysis>.json``) and give their
tables (`jaxheads.study.analysis.gradients_table`, ``dependence_table``).
`regenerate` rewrites every marked table; ``jaxheads report`` runs it, and a test checks
that it changes nothing.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence

from jaxheads.bench.chip_table import chip_bench_table, is_chip_bench
from jaxheads.bench.pipeline_table import pipeline_rates_table
from jaxheads.bench.roofline_table import roofline_table
from jaxheads.study.config import ANALYSES
from jaxheads.study.ranking import winner_sentence
from jaxheads.study.report import (
    PER_SEED_COLUMNS,
    effect_table,
    stages_table,
    summary_table,
    table,
)
from jaxheads.study.sweep import sweep_table
from jaxheads.train.metric_table import ACCURACY, METRIC

RESULTS_DIR = os.path.join("docs", "results")
# The documents whose marked tables `regenerate` rewrites, relative to the project root.
DOCUMENTS = ("README.md", "docs/*.md", "docs/*/*.md")
_BLOCK = re.compile(
    r"(?P<open><!-- results:(?P<key>[\w./-]+?)(?::(?P<view>\w+))?(?: (?P<rows>[\w.@+,-]+))? -->\n)"
    r"(?P<body>.*?)"
    r"(?P<close><!-- /results:(?P=key)(?::(?P=view))? -->)",
    re.DOTALL,
)


def results_path(key: str, root: str = ".") -> str:
    """The file ``results:KEY`` names: ``docs/results/KEY/results.json`` or ``KEY.json``."""
    folder = os.path.join(root, RESULTS_DIR, key, "results.json")
    if os.path.exists(folder):
        return folder
    single = os.path.join(root, RESULTS_DIR, f"{key}.json")
    if os.path.exists(single):
        return single
    raise ValueError(f"results:{key}: expected {folder} or {single}, found neither")


def run_table(results: Mapping) -> str:
    """A training run's final evaluation (``publish_run``'s file) as a table."""
    rows = [[METRIC[k].label, METRIC[k].format_one(results["eval"].get(k))] for k in ACCURACY]
    return "\n".join(table(["metric", "value"], rows))


def _run_note(results: Mapping, source: str) -> str:
    env = results["environment"]
    extra = results["config"].get("extra", {})
    seconds = results.get("run_time_s")
    took = "" if seconds is None else f" in {seconds / 60:.1f} minutes"
    note = f" {results['note']}" if results.get("note") else ""
    return (
        f"`{extra.get('model')}` on `{extra.get('dataset')}`, {results['step']} steps, "
        f"seed {results['config'].get('seed')}, {results['eval'].get('images')} validation "
        f"images; measured on {env['processor']} ({env['cpu_count']} CPUs, JAX "
        f"{env['versions'].get('jax')}, {env['device_kind']}){took}, {env['date']}; "
        f"from [`{source}`]({source}).{note}"
    )


def _study_note(results: Mapping, source: str) -> str:
    seeds = results["config"]["seeds"]
    over = (
        f"Seed {seeds[0]}"
        if len(seeds) == 1
        else "Mean ± sample std over seeds " + ", ".join(str(s) for s in seeds)
    )
    return f"{over}; {_provenance(results, source)}"


def _provenance(results: Mapping, source: str) -> str:
    """Where and when a study's or an analysis's record was made, and by what command."""
    env = results["environment"]
    seconds = results.get("run_time_s")
    took = "" if seconds is None else f" in {seconds / 60:.1f} minutes"
    return (
        f"measured on {env['processor']} ({env['cpu_count']} CPUs, JAX "
        f"{env['versions'].get('jax')}, {env['device_kind']}){took}, {env['date']}; "
        f"from [`{source}`]({source}), made by `{results['command']}`."
    )


def _study_seeds(results: Mapping) -> str:
    rows = [
        [r["head"], str(r["seed"])] + [METRIC[k].format_one(r.get(k)) for k in PER_SEED_COLUMNS]
        for r in results["runs"]
    ]
    header = ["head", "seed"] + [METRIC[k].label for k in PER_SEED_COLUMNS]
    return "\n".join(table(header, rows))


def _analysis_table(results: Mapping, source: str) -> str:
    from jaxheads.study import analysis

    text = analysis.table(results)
    where = _provenance(results, source)
    return f"{text} {where[0].upper()}{where[1:]}"


# A study's rows in the compact view: what a front page quotes.
COMPACT_COLUMNS = ("mAP50", "mAP50_voc07", "recall")


def _rows(heads: Sequence[Mapping], rows: Sequence[str] | None, key: str) -> list[Mapping]:
    """``heads`` limited to ``rows``, in that order (all of them when None)."""
    if rows is None:
        return list(heads)
    by_label = {h["head"]: h for h in heads}
    unknown = [r for r in rows if r not in by_label]
    if unknown:
        raise ValueError(f"results:{key}: expected rows among {sorted(by_label)}, got {unknown}")
    return [by_label[r] for r in rows]


def render(
    key: str, view: str | None, root: str, document: str, rows: Sequence[str] | None = None
) -> str:
    """What goes between the markers ``results:KEY[:VIEW] [ROW,ROW,...]`` of ``document``.

    Links are relative to ``document``'s folder. ``rows`` limits a study's ``table`` and
    ``compact`` views to those rows, in that order.
    """
    path = results_path(key, root)
    with open(path) as f:
        results = json.load(f)
    source = os.path.relpath(path, os.path.dirname(os.path.abspath(document)))
    source = source.replace(os.sep, "/")
    views: dict[str, Callable[[], str]]
    if results.get("kind") == "train":
        views = {"table": lambda: run_table(results) + "\n\n" + _run_note(results, source)}
    elif results.get("kind") in ANALYSES:
        views = {"table": lambda: _analysis_table(results, source)}
    elif "study" in results:
        paper = results["config"].get("paper")
        chosen = _rows(results["heads"], rows, key)
        views = {
            "table": lambda: (
                "\n".join(summary_table(chosen, paper, results["config"]["paper_metric"]))
                + "\n\n"
                + _study_note(results, source)
            ),
            "compact": lambda: (
                "\n".join(summary_table(chosen, columns=COMPACT_COLUMNS))
                + "\n\n"
                + _study_note(results, source)
            ),
            "seeds": lambda: _study_seeds(results),
            "winners": lambda: (
                "\n".join(winner_sentence(k, e) for k, e in results["winners"].items())
                + "\n\n"
                + _study_note(results, source)
            ),
        }
        if results.get("pretraining"):
            stages = {s["label"]: s for s in results["pretraining"]}
            views["stages"] = lambda: (
                "\n".join(stages_table(stages)) + f"\n\nFrom [`{source}`]({source})."
            )
        effect = effect_table(results["heads"])
        if effect:
            views["pretraining"] = lambda: "\n".join(effect) + "\n\n" + _study_note(results, source)
        if "sweep" in results:
            views["sweep"] = lambda: (
                "\n".join(sweep_table(results["sweep"])) + "\n\n" + _study_note(results, source)
            )
    elif "totals" in results and "devices" in results:
        views = {"table": lambda: roofline_table(results)}
    elif results.get("kind") == "pipeline_rates":
        views = {"table": lambda: pipeline_rates_table(results)}
    elif is_chip_bench(results):
        views = {"table": lambda: chip_bench_table(results, source)}
    else:
        raise ValueError(
            f"results:{key}: {path} is not a run, a study, an analysis, a roofline, a "
            "pipeline-rates or a `jaxheads bench --json` record"
        )
    if rows is not None and (view or "table") not in ("table", "compact"):
        raise ValueError(
            f"results:{key}:{view}: expected rows only with the table or compact view of a "
            f"study, got {','.join(rows)}"
        )
    if (view or "table") not in views:
        raise ValueError(
            f"results:{key}:{view}: expected a view among {sorted(views)}, got {view!r}"
        )
    return views[view or "table"]()


def regenerate_text(text: str, root: str, document: str) -> str:
    """``text`` with every marked table rewritten from its results file."""

    def replace(match: re.Match) -> str:
        rows = match["rows"].split(",") if match["rows"] else None
        body = render(match["key"], match["view"], root, document, rows)
        return f"{match['open']}{body}\n{match['close']}"

    return _BLOCK.sub(replace, text)


def documents(root: str = ".") -> list[str]:
    """The project's Markdown documents that may hold marked tables."""
    found: list[str] = []
    for pattern in DOCUMENTS:
        found += sorted(glob.glob(os.path.join(root, pattern)))
    return found


def regenerate(
    root: str = ".", paths: Sequence[str] | None = None, *, write: bool = True
) -> list[str]:
    """Rewrites every marked table of ``paths`` (default: `documents`); returns those changed.

    ``write=False`` changes nothing and returns the documents whose tables differ from
    what their results files give.
    """
    rewritten = {}
    for path in documents(root) if paths is None else paths:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new = regenerate_text(text, root, path)
        if new != text:
            rewritten[path] = new
    # Every table is rendered before any is written: a missing file changes nothing.
    for path, new in rewritten.items() if write else ():
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    return list(rewritten)


def marked(path: str) -> list[str]:
    """The ``KEY[:VIEW]`` of every marked table in the document at ``path``."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return [m["key"] + (f":{m['view']}" if m["view"] else "") for m in _BLOCK.finditer(text)]
