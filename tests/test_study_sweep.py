"""A budget sweep's pieces: rows per budget, labels read back, series, rankings, its report.

The end-to-end run of the packaged ``budget`` study's quick profile is
``test_budget_quick_profile_end_to_end`` in tests/test_experiments.py.
"""

import json

import pytest

from jaxheads.study import (
    Budget,
    Pretraining,
    StudyConfig,
    TrainRow,
    at_steps,
    plots,
    pretrained,
    rankings,
    sweep,
    sweep_of,
    tables,
)
from jaxheads.study.publish import environment
from jaxheads.study.records import RunRecord
from jaxheads.study.report import PER_SEED_COLUMNS, aggregate, write_report
from jaxheads.study.sweep import is_sweep, ordering, sweep_markdown


def _config(seeds=(0, 1)):
    rows = at_steps([TrainRow("fc", "small-yolov1-fc"), TrainRow("v2")], (100, 300))
    return StudyConfig(
        "sweep",
        rows + pretrained(rows, "pre"),
        seeds=seeds,
        budget=Budget().replace(batch_size=8),
        pretraining=[Pretraining("pre")],
    )


# mAP50 per (label, seed): v2 ahead of fc by more than the spread; pre-trained fc at 300
# steps within the spread of v2@pre.
MAP50 = {
    "fc+100": (0.10, 0.12),
    "v2+100": (0.50, 0.54),
    "fc+300": (0.20, 0.22),
    "v2+300": (0.60, 0.62),
    "fc+100@pre": (0.30, 0.30),
    "v2+100@pre": (0.70, 0.72),
    "fc+300@pre": (0.70, 0.76),
    "v2+300@pre": (0.71, 0.73),
}


def _runs(seeds=(0, 1)):
    return [
        {"head": label, "seed": s, "mAP50": MAP50[label][i], "steps": sweep_of(label)[1]}
        for i, s in enumerate(seeds)
        for label in MAP50
    ]


def test_at_steps_gives_each_budget_its_own_run_length():
    rows = at_steps([TrainRow("fc", changes={"image_size": 64})], (1000, 3000))
    assert [(r.label, dict(r.changes)) for r in rows] == [
        ("fc+1000", {"image_size": 64, "steps": 1000}),
        ("fc+3000", {"image_size": 64, "steps": 3000}),
    ]
    config = StudyConfig("x", rows)
    assert [config.budget_of(r).run.steps for r in rows] == [1000, 3000]
    assert [sweep_of(r.label) for r in pretrained(rows, "pre")] == [
        ("fc@pre", 1000),
        ("fc@pre", 3000),
    ]


@pytest.mark.parametrize(
    ("steps", "rows"),
    [
        ((), [TrainRow("a")]),
        ((0, 10), [TrainRow("a")]),
        ((10, 10), [TrainRow("a")]),
        ((1.5,), [TrainRow("a")]),
        ((10,), [TrainRow("a", changes={"steps": 5})]),
    ],
)
def test_at_steps_refuses_what_is_not_a_sweep(steps, rows):
    with pytest.raises(ValueError, match="at_steps: expected"):
        at_steps(rows, steps)


def test_sweep_of_leaves_other_labels_alone():
    assert sweep_of("yolov2") == ("yolov2", None)
    assert sweep_of("a+b") == ("a+b", None)
    assert sweep_of("+10") == ("+10", None)
    assert sweep_of("v2+10@pre") == ("v2@pre", 10)
    assert not is_sweep(StudyConfig("x", [TrainRow("a"), TrainRow("b@pre")]))
    assert is_sweep(_config())


def test_sweep_gathers_series_with_every_seed_per_budget():
    config = _config()
    heads = aggregate(_runs(), [r.label for r in config.rows])
    got = sweep(config, heads, _runs())
    assert got["budgets"] == [100, 300]
    assert [(s["series"], s["head"], s["init"]) for s in got["series"]] == [
        ("fc", "fc", None),
        ("v2", "v2", None),
        ("fc@pre", "fc", "pre"),
        ("v2@pre", "v2", "pre"),
    ]
    fc = got["series"][0]["points"]
    assert [(p["label"], p["steps"], p["images_seen"]) for p in fc] == [
        ("fc+100", 100, 800),
        ("fc+300", 300, 2400),
    ]
    assert fc[0]["per_seed"] == {"0": 0.10, "1": 0.12}
    assert fc[0]["mAP50"] == pytest.approx(0.11)
    assert fc[0]["mAP50_std"] == pytest.approx(0.0141421356)


def test_rankings_follow_the_winner_rule_at_each_budget():
    config = _config()
    heads = aggregate(_runs(), [r.label for r in config.rows])
    ranked = rankings(sweep(config, heads, _runs()))
    assert [r["steps"] for r in ranked] == [100, 300]
    first, second = ranked
    assert first["order"] == ["v2@pre", "v2", "fc@pre", "fc"]
    assert first["verdicts"] == ["separated", "separated", "separated"]
    assert first["groups"]["scratch"] == {"order": ["v2", "fc"], "verdicts": ["separated"]}
    assert list(first["groups"]) == ["scratch", "pre"]
    assert first["winner"]["head"] == "v2@pre" and first["winner"]["runner_up"] == "v2"
    # at 300 steps the pre-trained FC head is within the seeds' spread of v2@pre
    assert second["order"][:2] == ["fc@pre", "v2@pre"]
    assert second["verdicts"][0] == "not separated"
    assert ordering(second["order"], second["verdicts"]).startswith("fc@pre ≈ v2@pre > ")


def test_one_seed_is_not_judged():
    config = _config(seeds=(0,))
    runs = _runs(seeds=(0,))
    heads = aggregate(runs, [r.label for r in config.rows])
    ranked = rankings(sweep(config, heads, runs))
    assert set(ranked[0]["verdicts"]) == {"one seed"}
    text = "\n".join(sweep_markdown(sweep(config, heads, runs), ranked))
    assert "v2@pre >? v2 >? fc@pre >? fc" in text


def _write_report(tmp_path, monkeypatch) -> dict:
    """The sweep's report of `_runs` written into ``tmp_path``; its results.json."""
    config = _config()
    numbers = dict.fromkeys(PER_SEED_COLUMNS, 0.0)
    records = [
        RunRecord(
            fingerprint=None,
            row={**numbers, **r},
            train_dir=f"{r['head']}/seed{r['seed']}",
            class_names=["a"],
            val={"dataset": "shapes", "num_examples": 4, "seed": 0},
            pr_curves={},
            examples=[],
        )
        for r in _runs()
    ]

    def plot_all(config, records, heads, workdir, budget_sweep=None):
        # the sweep's plot alone: the others read trained runs' files
        return [plots.budget_curves(plots._pyplot(), config.name, budget_sweep, workdir)]

    monkeypatch.setattr(plots, "plot_all", plot_all)
    write_report(config, records, str(tmp_path))
    with open(tmp_path / "results.json") as f:
        return json.load(f)


def test_write_report_holds_the_sweep(tmp_path, monkeypatch):
    results = _write_report(tmp_path, monkeypatch)
    assert (tmp_path / "budget_sweep.png").stat().st_size > 10_000
    assert results["sweep"]["budgets"] == [100, 300]
    assert [r["steps"] for r in results["sweep"]["rankings"]] == [100, 300]
    text = (tmp_path / "results.md").read_text()
    assert "## Budget sweep" in text
    assert "| head | init | 100 steps (800 img) | 300 steps (2,400 img) |" in text
    assert "| fc | scratch | 0.110 ± 0.014 | 0.210 ± 0.014 |" in text
    assert "| v2 | pre | 0.710 ± 0.014 | 0.720 ± 0.014 |" in text
    assert "- 300 steps (2,400 img): fc@pre ≈ v2@pre" in text
    assert "100/300 steps (the sweep) of batch 8" in text


def test_a_command_line_steps_override_is_refused_where_the_rows_set_their_steps():
    from jaxheads.study.config import override

    config = StudyConfig("mixed", [TrainRow("plain")] + at_steps([TrainRow("fc")], (10, 20)))
    with pytest.raises(ValueError, match=r"no --steps for mixed: its rows \['fc\+10', 'fc\+20'\]"):
        override(config, steps=5)
    assert override(config, heads=["plain"], steps=5).budget.run.steps == 5
    assert override(config, image_size=64).budget.image_size == 64


def test_a_document_quotes_the_sweep_table_from_its_results_file(tmp_path, monkeypatch):
    (tmp_path / "run").mkdir()
    results = _write_report(tmp_path / "run", monkeypatch)
    results.update(command="jaxheads compare --config sweep", environment=environment())
    published = tmp_path / "docs" / "results" / "sweep"
    published.mkdir(parents=True)
    (published / "results.json").write_text(json.dumps(results))
    doc = tmp_path / "README.md"
    doc.write_text("<!-- results:sweep:sweep -->\nold\n<!-- /results:sweep:sweep -->\n")
    assert tables.regenerate(str(tmp_path)) == [str(doc)]
    text = doc.read_text()
    assert "| head | init | 100 steps (800 img) | 300 steps (2,400 img) |" in text
    assert "| v2 | pre | 0.710 ± 0.014 | 0.720 ± 0.014 |" in text
    assert "old" not in text and "made by `jaxheads compare --config sweep`" in text
    assert tables.regenerate(str(tmp_path), write=False) == []
