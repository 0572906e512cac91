"""Results tables are generated from committed files (`jaxheads.study.tables`), never typed."""

import csv
import json
import os
import shutil

import pytest

from jaxheads.cli import main
from jaxheads.study import tables
from jaxheads.study.publish import publish_run, training_seconds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_quoted_table_is_what_jaxheads_report_writes():
    """Regenerating README.md's and docs/'s tables from docs/results/ changes no text."""
    assert tables.regenerate(ROOT, write=False) == []


def test_the_readme_and_the_benchmarks_quote_their_files():
    assert "main" in tables.marked(os.path.join(ROOT, "README.md"))
    quoted = tables.marked(os.path.join(ROOT, "docs", "benchmarks.md"))
    assert {"bench/roofline", "bench/cpu-small-yolov2", "bench/cpu-yolov2-tiny"} <= set(quoted)
    for path in tables.documents(ROOT):
        for key in tables.marked(path):
            assert os.path.exists(tables.results_path(key.split(":")[0], ROOT)), (path, key)


def _project(tmp_path, body: str) -> str:
    """A project root with the committed roofline record and a document quoting it."""
    bench = tmp_path / "docs" / "results" / "bench"
    bench.mkdir(parents=True)
    shutil.copyfile(
        os.path.join(ROOT, "docs", "results", "bench", "roofline.json"), bench / "r.json"
    )
    doc = tmp_path / "docs" / "page.md"
    doc.write_text(
        f"Intro.\n\n<!-- results:bench/r -->\n{body}\n<!-- /results:bench/r -->\n\nEnd.\n"
    )
    return str(doc)


def test_a_hand_edited_figure_is_found_and_rewritten(tmp_path, capsys):
    with open(os.path.join(ROOT, "docs", "results", "bench", "roofline.json")) as f:
        good = tables.roofline_table(json.load(f))
    doc = _project(
        tmp_path,
        good.replace(
            "| 0_convolutional | 416×416×32 | 48.8", "| 0_convolutional | 416×416×32 | 48.9"
        ),
    )
    assert main(["report", "--check", "--root", str(tmp_path)]) == 1
    assert "page.md" in capsys.readouterr().err
    assert main(["report", "--root", str(tmp_path)]) == 0
    with open(doc) as f:
        assert (
            f.read()
            == f"Intro.\n\n<!-- results:bench/r -->\n{good}\n<!-- /results:bench/r -->\n\nEnd.\n"
        )
    assert main(["report", "--check", "--root", str(tmp_path)]) == 0


def _chip_bench_record() -> dict:
    """``jaxheads bench --json``'s record, with round figures."""
    from jaxheads.bench import CHIP_BENCH_KIND, ChipBench, Figures

    figures = Figures()
    for section, metric, value in [
        ("train", "step_ms", 12.5),
        ("train", "images_per_s", 1280.0),
        ("compile", "compile_s", 3.25),
        ("train", "mfu", 0.25),
        ("pipeline", "fraction_of_step", 0.875),
    ]:
        figures.add(section, metric, value, model="small-yolov2", framework="jaxheads", batch=16)
    machine = {
        "cpu": "Some CPU",
        "cpu_count": 2,
        "device_kind": "cpu",
        "jax": "0.10.2",
        "date": "2026-12-07T01:20:00+00:00",
        "load_average_start": [3.2, 2.0, 1.0],
        "load_average_end": [4.1, 2.5, 1.2],
    }
    return {
        "kind": CHIP_BENCH_KIND,
        "command": "jaxheads bench --model small-yolov2",
        "machine": machine,
        "config": vars(ChipBench(model="small-yolov2", image_size=96)),
        "figures": figures.to_json(),
        "wall_s": 61.0,
    }


def test_a_jaxheads_bench_record_is_quoted_with_its_conditions(tmp_path):
    bench = tmp_path / "docs" / "results" / "bench"
    bench.mkdir(parents=True)
    (bench / "cpu.json").write_text(json.dumps(_chip_bench_record()))
    doc = tmp_path / "docs" / "page.md"
    doc.write_text("<!-- results:bench/cpu -->\n<!-- /results:bench/cpu -->\n")
    assert main(["report", "--root", str(tmp_path)]) == 0
    text = doc.read_text()
    for line in [
        "| training step | 12.50 ms |",
        "| training images/s | 1280.0 |",
        "| compilation | 3.25 s |",
        "| MFU (against the matmul) | 25.0% |",
        "| fed ÷ step alone | 0.88 |",
        "`small-yolov2` at 96², batch 16, float32: medians of 5 interleaved runs of 5 steps",
        "load average 3.20 at the start and 4.10 at the end, in 61 s",
        "made by `jaxheads bench --model small-yolov2` from "
        "[`results/bench/cpu.json`](results/bench/cpu.json).",
    ]:
        assert line in text, line
    assert "lowering" not in text  # a figure the record lacks gets no row
    assert main(["report", "--check", "--root", str(tmp_path)]) == 0
    doc.write_text(text.replace("| 12.50 ms |", "| 12.40 ms |"))
    assert main(["report", "--check", "--root", str(tmp_path)]) == 1


def test_a_marker_without_its_file_names_the_files_looked_for(tmp_path, capsys):
    doc = tmp_path / "README.md"
    doc.write_text("<!-- results:nowhere -->\n<!-- /results:nowhere -->\n")
    assert main(["report", "--check", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "results:nowhere" in err and os.path.join("docs", "results", "nowhere.json") in err


def _train_workdir(path) -> str:
    """A finished training run's work directory, as ``jaxheads train`` leaves it."""
    path.mkdir()
    config = {"seed": 0, "steps": 20, "log_every": 10, "extra": {"model": "m", "dataset": "shapes"}}
    (path / "config.json").write_text(json.dumps(config))
    rows = [
        {"step": 10, "loss": 3.0, "lr": 1e-3, "steps_per_s": 2.0, "images_per_s": 64.0},
        {"step": 20, "loss": 2.0, "lr": 1e-3, "steps_per_s": 5.0, "images_per_s": 160.0},
        {
            "step": 20,
            "eval": {
                "mAP50": 0.6071,
                "mAP50_voc07": 0.6,
                "mAP": 0.2,
                "mAP50_coco": 0.59,
                "mAP75": 0.1,
                "recall": 0.7,
                "images": 8,
                "per_class_ap50": {"0": 0.6},
            },
        },
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 2')
    return str(path)


def test_a_training_run_is_published_with_what_made_it(tmp_path, capsys):
    workdir = _train_workdir(tmp_path / "run")
    (tmp_path / "README.md").write_text(
        "Figure:\n\n<!-- results:main -->\n<!-- /results:main -->\n"
    )
    dest = str(tmp_path / "docs" / "results" / "main")
    command = ["report", "--run", workdir, "--publish", dest, "--root", str(tmp_path)]
    command += ["--command", "jaxheads train --workdir runs/shapes", "--seconds", "300"]
    assert main([*command, "--note", "Other jobs shared the processor."]) == 0
    with open(os.path.join(dest, "results.json")) as f:
        results = json.load(f)
    assert results["kind"] == "train" and results["step"] == 20 and results["final_loss"] == 2.0
    assert results["eval"]["mAP50"] == 0.6071 and "per_class_ap50" not in results["eval"]
    assert results["command"] == "jaxheads train --workdir runs/shapes"
    assert results["run_time_s"] == 300.0 and results["train_seconds"] == pytest.approx(7.0)
    env = results["environment"]
    assert env["processor"] and env["device_kind"] and env["versions"]["jax"]
    with open(os.path.join(dest, "learning_curve.csv")) as f:
        curve = list(csv.DictReader(f))
    assert [(r["step"], r["loss"]) for r in curve] == [("10", "3.0"), ("20", "2.0")]
    readme = (tmp_path / "README.md").read_text()
    assert "| VOC2010 mAP@0.5 | 0.607 |" in readme
    assert env["processor"] in readme and "docs/results/main/results.json" in readme
    assert "5.0 minutes" in readme and "Other jobs shared the processor." in readme
    assert main(["report", "--check", "--root", str(tmp_path)]) == 0


def test_an_unfinished_run_is_not_published(tmp_path, capsys):
    workdir = _train_workdir(tmp_path / "run")
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        lines = [line for line in f if '"eval"' not in line]
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.writelines(lines)
    with pytest.raises(ValueError, match="finished run's evaluation"):
        publish_run(workdir, str(tmp_path / "out"))
    assert main(["report", "--run", workdir, "--root", str(tmp_path)]) == 2
    assert "--run and --publish together" in capsys.readouterr().err


def test_training_seconds_add_up_the_logged_rates():
    assert training_seconds([{"steps_per_s": 2.0}, {"loss": 1.0}, {"steps_per_s": 4.0}], 10) == 7.5
    assert training_seconds([{"loss": 1.0}], 10) is None


def test_the_pipeline_rates_render_with_the_cores_a_feed_takes(tmp_path):
    bench = tmp_path / "docs" / "results" / "bench"
    bench.mkdir(parents=True)
    rows = [
        {
            "dataset": d,
            "image_size": s,
            "images_per_s": r / 2,
            "images_per_cpu_s": r,
            "wall_s": 1.0,
            "cpu_s": 1.0,
        }
        for d, s, r in [
            ("voc", 64, 400.0),
            ("voc", 416, 40.0),
            ("shapes", 64, 900.0),
            ("voc", 416, 250.0),
            ("shapes-device", 416, 700.0),
        ]
    ]
    rows[-1]["cpu_s"] = 2.0
    rows[3]["augment_on_device"] = True
    process_rows = [
        {
            "dataset": "voc",
            "image_size": 416,
            "processes": 2,
            "images_per_s": 4.43,
            "wall_s": 1.0,
            "caller_cpu_s": 1.0,
            "caller_cpu_ms_per_image": 5.0,
        }
    ]
    record = {
        "kind": "pipeline_rates",
        "command": "python -m benchmarks.pipeline_rates",
        "config": {
            "batch": 64,
            "batches": 3,
            "warmup_batches": 1,
            "voc_source_size": [500, 375],
            "feed_target_images_per_s": 2803.0,
        },
        "machine": {
            "cpu": "a CPU",
            "cpu_count": 2,
            "python": "3.11",
            "jax": "0.1",
            "date": "2026-01-01T00:00:00+00:00",
            "load_average_start": [2.0, 2.0, 2.0],
            "load_average_end": [3.0, 3.0, 3.0],
        },
        "rows": rows,
        "step_fraction": {
            "model": "small-yolov2",
            "image_size": 96,
            "batch": 32,
            "repeats": 5,
            "step_ms": 200.0,
            "draw_ms": {"shapes-device": 50.0, "shapes": 400.0},
        },
        "process_rows": process_rows,
    }
    (bench / "p.json").write_text(json.dumps(record))
    doc = tmp_path / "docs" / "page.md"
    doc.write_text("<!-- results:bench/p -->\n<!-- /results:bench/p -->\n")
    assert tables.regenerate(str(tmp_path)) == [str(doc)]
    text = doc.read_text()
    assert "| voc | 400 | 40 | 71 |" in text  # per CPU second; ceil(2803 / 40)
    assert "| 416² | 2 | 4.4 | 5.00 | 200 |" in text  # 1000 / 5 ms
    assert "| shapes | 900 |  |  |" in text
    assert "load averages 2.00 at the start and 3.00 at the end" in text
    assert "| shapes-device |  | 700 | 5 |" in text
    # the host's share when the device augments: a row of its own
    assert "| voc, augmented on the device |  | 250 | 12 |" in text
    assert "| voc | 400 | 40 | 71 |" in text
    assert "the host's share of `jaxheads.data.DeviceAugmentedBatches`" in text
    assert "`shapes-device`: the same kind of scenes" in text
    assert "(CPU time ÷ wall time 2.00 in these cells)" in text
    assert "`shapes-device` 50 ms (25% of the step), `shapes` 400 ms (200% of the step)" in text
    assert tables.regenerate(str(tmp_path), write=False) == []


def test_a_study_with_pre_trained_rows_has_a_pretraining_view():
    """Each row from scratch beside its pre-trained copy, read from the committed record."""
    with open(tables.results_path("heads-quick", ROOT)) as f:
        heads = json.load(f)["heads"]
    by_label = {h["head"]: h for h in heads}
    text = tables.render("heads-quick", "pretraining", ROOT, os.path.join(ROOT, "README.md"))
    lines = text.splitlines()
    assert lines[0].startswith("| row | stage | VOC2010 mAP@0.5 from scratch |")
    rows = [line.strip("| ").split(" | ") for line in lines[2:] if line.startswith("| ")]
    assert [r[0] for r in rows] == [h["head"] for h in heads if "@" not in h["head"]]
    for label, stage, scratch, pre, gain in rows:
        want = by_label[f"{label}@{stage}"]["mAP50"] - by_label[label]["mAP50"]
        assert float(scratch) == round(by_label[label]["mAP50"], 3)
        assert float(pre) == round(by_label[f"{label}@{stage}"]["mAP50"], 3)
        assert abs(float(gain) - want) <= 5e-4
    assert "docs/results/heads-quick/results.json" in text
    # a study without pre-trained rows has no such view
    with pytest.raises(ValueError, match="expected a view among"):
        tables.render("main", "pretraining", ROOT, os.path.join(ROOT, "README.md"))


def test_a_study_quotes_its_winners_and_its_pre_training_stages():
    """The winners and stages views read the committed record: what results.md says."""
    with open(tables.results_path("heads", ROOT)) as f:
        results = json.load(f)
    readme = os.path.join(ROOT, "README.md")
    winners = tables.render("heads", "winners", ROOT, readme).splitlines()
    assert len([w for w in winners if w.startswith("- ")]) == len(results["winners"])
    with open(os.path.join(ROOT, "docs", "results", "heads", "results.md")) as f:
        page = f.read()
    assert all(w in page for w in winners if w.startswith("- "))
    stages = tables.render("heads", "stages", ROOT, readme).splitlines()
    assert stages[0].startswith("| stage | backbone | image | steps |")
    (stage,) = results["pretraining"]
    assert (
        stages[2].startswith(f"| {stage['label']} | ") and f"| {stage['top1']:.3f} |" in stages[2]
    )
    # a training run has neither view
    for view in ("winners", "stages"):
        with pytest.raises(ValueError, match="expected a view among"):
            tables.render("main", view, ROOT, readme)


def test_the_compact_view_shows_the_rows_named_in_the_marker_in_their_order():
    with open(tables.results_path("fc_head", ROOT)) as f:
        heads = {h["head"]: h for h in json.load(f)["heads"]}
    readme = os.path.join(ROOT, "README.md")
    text = tables.render("fc_head", "compact", ROOT, readme, ["percell", "baseline"])
    lines = text.splitlines()
    assert lines[0] == "| head | VOC2010 mAP@0.5 | VOC2007 mAP@0.5 | recall@0.5 |"
    assert [line.split(" | ")[0].lstrip("| ") for line in lines[2:4]] == ["percell", "baseline"]
    assert f"| {heads['percell']['mAP50']:.3f} |" in lines[2]
    assert len([line for line in lines if line.startswith("| ")]) == 3  # the header, two rows
    # every row without a list; a list in the marker reaches the view
    assert text.count("\n| ") < tables.render("fc_head", "compact", ROOT, readme).count("\n| ")
    marked = "<!-- results:fc_head:compact percell -->\nold\n<!-- /results:fc_head:compact -->"
    assert "| percell |" in tables.regenerate_text(marked, ROOT, readme)
    with pytest.raises(ValueError, match=r"expected rows among \[.*got \['percel'\]"):
        tables.render("fc_head", "compact", ROOT, readme, ["percel"])
    with pytest.raises(ValueError, match=r"expected rows only with the table or compact view"):
        tables.render("fc_head", "winners", ROOT, readme, ["percell"])
