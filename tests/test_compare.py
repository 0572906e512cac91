"""``jaxheads compare`` / `jaxheads.study.run_study` on a tiny study, end to end."""

import csv
import json
import os
import re
import shlex
import textwrap

import numpy as np
import pytest
from PIL import Image

from jaxheads import summary
from jaxheads.bench import cost_flops
from jaxheads.cli import main
from jaxheads.study import (
    analysis,
    forward_flops,
    run_study,
    steady_images_per_s,
    studies,
)
from jaxheads.study.config import (
    QUICK_PRETRAINING,
    EvalRow,
    Pretraining,
    StudyConfig,
    TrainRow,
    with_profile,
)
from jaxheads.study.pretraining import run_stage
from jaxheads.study.publish import publish_study
from jaxheads.study.report import winner_sentence
from jaxheads.study.tables import regenerate
from jaxheads.train.checkpoints import CheckpointWriteError
from jaxheads.train.detection import build_detector
from jaxheads.train.loop import TrainingDiverged
from jaxheads.train.metric_table import METRICS

TINY = """
from jaxheads.study import Budget, EvalRow, Pretraining, StudyConfig, TrainRow, pretrained


def get_config(profile="full"):
    rows = [
        TrainRow("fc", "small-yolov1-fc"),
        TrainRow("v2", "small-yolov2-passthrough", train_sizes=(32, 48)),
        EvalRow("v2_hires", weights_from="v2", eval_image_size=48),
    ]
    budget = Budget().replace(
        steps=4, batch_size=8, image_size=32, train_examples=64, val_examples=8,
        eval_batch_size=8, burn_in=0, log_every=1, checkpoint_every=4, num_devices=1,
        example_images=2)
    small = dict(steps=2, batch_size=8, train_examples=64, val_examples=16, burn_in=0)
    stages = [
        Pretraining("pre", image_size=32, **small),
        Pretraining("pre_hires", image_size=48, init_from="pre", **small),
    ]
    return StudyConfig(
        name="tiny", rows=rows + pretrained(rows[:1], "pre_hires"), seeds=(0,), budget=budget,
        paper={"fc": "63.4"}, pretraining=stages, analyses=("dependence",))
"""
LABELS = ["fc", "v2", "v2_hires", "fc@pre_hires"]
REQUIRED = [
    "params",
    "head_params",
    "flops",
    "images_per_s",
    "mAP50",
    "mAP50_voc07",
    "mAP",
    "recall",
]
PLOTS = ["learning_curves.png", "pr_curves.png", "detections.png", "overview.png"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny study run once through the command line."""
    root = tmp_path_factory.mktemp("compare")
    config = root / "tiny.py"
    config.write_text(textwrap.dedent(TINY))
    workdir = root / "out"
    argv = ["compare", "--config", str(config), "--workdir", str(workdir), "--no-progress"]
    assert main([*argv, "--no-tensorboard"]) == 0
    with open(workdir / "results.json") as f:
        results = json.load(f)
    return config, workdir, results


def _finite(x):
    return isinstance(x, (int, float)) and np.isfinite(x)


@pytest.mark.slow
def test_every_file_and_finite_numbers(study):
    _, workdir, results = study
    for name in ["results.json", "results.md", *PLOTS]:
        assert (workdir / name).is_file(), name
    for label in LABELS:
        assert (workdir / label / "seed0" / "result.json").is_file()
        # each run's record keeps its training run's compile time and device
        run = json.loads((workdir / label / "seed0" / "result.json").read_text())["row"]
        assert run["compile_s"] >= 0 and run["device"] == "cpu", label
    assert not (workdir / "v2_hires" / "seed0" / "metrics.jsonl").exists()  # not trained
    # --no-tensorboard reaches every run, the pre-training stages' too (tensorboardX is
    # installed with the tests, so each would write its event files otherwise)
    assert (workdir / "pretrain" / "pre" / "metrics.jsonl").is_file()
    assert not list(workdir.rglob("tensorboard")), list(workdir.rglob("tensorboard"))
    assert [h["head"] for h in results["heads"]] == LABELS
    assert [r["head"] for r in results["runs"]] == LABELS
    for row in results["heads"] + results["runs"]:
        for key in REQUIRED:
            assert _finite(row[key]), (row["head"], key, row[key])
        assert 0 <= row["mAP50"] <= 1 and 0 <= row["recall"] <= 1
        assert row["flops"] > 0 and row["head_flops"] > 0 and row["images_per_s"] > 0
    heads = {h["head"]: h for h in results["heads"]}
    # The same weights at 48×48: same parameters, more FLOPs, the training run's speed.
    assert heads["v2_hires"]["params"] == heads["v2"]["params"]
    assert heads["v2_hires"]["flops"] > heads["v2"]["flops"]
    assert heads["v2_hires"]["images_per_s"] == heads["v2"]["images_per_s"]
    assert len(heads["v2"]["anchors"]) == 5 and 0 < heads["v2"]["anchor_iou"] <= 1


@pytest.mark.slow
def test_params_equal_summary(study):
    _, _, results = study
    heads = {h["head"]: h for h in results["heads"]}
    for label, model in [("fc", "small-yolov1-fc"), ("v2", "small-yolov2-passthrough")]:
        det, _ = build_detector(model, image_size=32, num_classes=3)
        text = summary(det.layer, det.input_shape)
        total = int(re.search(r"Total params: ([\d,]+)", text).group(1).replace(",", ""))
        trainable = int(re.search(r"Trainable params: ([\d,]+)", text).group(1).replace(",", ""))
        head = re.search(r"^head \([^)]*\)\s+(\(.*?\)|\[.*?\])\s+([\d,]+)", text, re.M)
        assert heads[label]["params"] == total
        assert heads[label]["trainable_params"] == trainable
        assert heads[label]["head_params"] == int(head.group(2).replace(",", ""))


@pytest.mark.slow
def test_markdown_table_and_winners(study):
    _, workdir, results = study
    text = (workdir / "results.md").read_text()
    assert "| head | params | head params | MFLOPs | head MFLOPs |" in text
    assert "paper (mAP50_voc07)" in text and "| 63.4 |" in text
    for label in LABELS:
        assert re.search(rf"^\| {label} \| [\d,]+ \|", text, re.M), label
    winners = results["winners"]
    assert set(winners) == {"mAP50", "mAP", "params", "images_per_s", "recall"}
    heads = {h["head"]: h for h in results["heads"]}
    for metric in METRICS:
        if metric.winner is None:
            continue
        entry = winners[metric.key]
        values = [h[metric.key] for h in heads.values()]
        assert entry["value"] == (max(values) if metric.higher_is_better else min(values))
        assert heads[entry["head"]][metric.key] == entry["value"]
        assert f"- {metric.winner}: **{entry['head']}** (" in text
        assert winner_sentence(metric.key, entry) in text
    for plot in PLOTS:
        assert f"]({plot})" in text


@pytest.mark.slow
def test_plots_are_images(study):
    _, workdir, _ = study
    for name in PLOTS:
        with Image.open(workdir / name) as image:
            image.verify()
        with Image.open(workdir / name) as image:
            assert image.width >= 400 and image.height >= 300, name
            lo, hi = image.convert("L").getextrema()
            assert hi - lo > 100, name  # not a blank canvas


@pytest.mark.slow
def test_a_study_on_scenes_drawn_on_the_device(tmp_path):
    """The accelerator profiles' data (``--dataset shapes-device``): a multi-scale row and
    its evaluation at another size train, evaluate and report on device-drawn scenes."""
    config = tmp_path / "tiny.py"
    config.write_text(textwrap.dedent(TINY))
    workdir = tmp_path / "out"
    argv = ["compare", "--config", str(config), "--workdir", str(workdir), "--no-progress"]
    argv += ["--heads", "v2,v2_hires", "--dataset", "shapes-device", "--no-tensorboard"]
    assert main(argv) == 0
    results = json.loads((workdir / "results.json").read_text())
    assert [h["head"] for h in results["heads"]] == ["v2", "v2_hires"]
    assert all(_finite(h["mAP50"]) and _finite(h["recall"]) for h in results["heads"])
    assert "Data: `shapes-device`" in (workdir / "results.md").read_text()
    assert not (workdir / "pretrain").exists()  # no kept row starts from a stage


@pytest.mark.slow
def test_rerun_skips_finished_runs(study, monkeypatch):
    config_path, workdir, results = study
    stamps = {p: os.stat(p).st_mtime_ns for p in workdir.glob("*/seed0/*")}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("jaxheads.train.loop.fit", no_training)
    # The study's own config, not the command line's: its report is written anew, so the
    # module's record (with the command as typed) is put back for the tests after this one.
    made = (workdir / "results.json").read_bytes()
    config = studies.load_study(config_path).get_config()
    try:
        heads = run_study(config, str(workdir), progress=False)
    finally:
        (workdir / "results.json").write_bytes(made)
    assert [h["head"] for h in heads] == LABELS
    assert [h["mAP50"] for h in heads] == [h["mAP50"] for h in results["heads"]]
    assert {p: os.stat(p).st_mtime_ns for p in workdir.glob("*/seed0/*")} == stamps


@pytest.mark.slow
def test_a_stage_stored_before_its_start_was_measured_gains_it_without_training(study, monkeypatch):
    config_path, workdir, results = study
    stored = {s["label"]: s for s in results["pretraining"]}["pre_hires"]
    path = workdir / "pretrain" / "pre_hires" / "result.json"
    data = json.loads(path.read_text())
    old = {k: v for k, v in data["record"].items() if not k.endswith("_before")}
    path.write_text(json.dumps({**data, "record": old}))
    checkpoints = {p: os.stat(p).st_mtime_ns for p in path.parent.glob("checkpoints/**/*")}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished stage was trained again")

    monkeypatch.setattr("jaxheads.train.loop.fit", no_training)
    stage = studies.load_study(config_path).get_config().pretraining[1]
    record = run_stage(stage, str(workdir), progress=False)
    assert record["skipped"] and record["top1_before"] == stored["top1_before"]
    assert json.loads(path.read_text())["record"]["top5_before"] == stored["top5_before"]
    assert {p: os.stat(p).st_mtime_ns for p in path.parent.glob("checkpoints/**/*")} == checkpoints


def test_steady_images_per_s_leaves_out_compilation():
    rows = [
        {"step": 1, "images_per_s": 2.0},
        {"step": 2, "images_per_s": 100.0},
        {"step": 2, "eval": {}},
        {"step": 3, "images_per_s": 120.0},
        {"step": 4, "images_per_s": 110.0},
    ]
    assert steady_images_per_s(rows) == 110.0
    assert steady_images_per_s(rows[:1]) == 2.0


def test_cost_analysis_list_or_dict():
    assert cost_flops({"flops": 12.0}) == 12.0
    assert cost_flops([{"flops": 7.0}]) == 7.0
    assert np.isnan(cost_flops([])) and np.isnan(cost_flops(None))


def test_forward_flops_of_a_dense_layer():
    from jaxheads import layers

    # XLA counts a multiply-add as 2: 2·in·out for the matmul, plus the bias adds.
    flops = forward_flops(layers.Dense(8), (None, 4))
    assert 2 * 4 * 8 <= flops <= 2 * 4 * 8 + 8


def test_missing_config_names_the_path(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "study.py"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        studies.load_study(missing)
    assert main(["compare", "--config", str(missing), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "expected a study config file at" in err and str(missing) in err
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_pretraining_stages_and_the_rows_that_start_from_them(study):
    _, workdir, results = study
    stages = {s["label"]: s for s in results["pretraining"]}
    assert list(stages) == ["pre", "pre_hires"]
    assert stages["pre_hires"]["init_from"] == "pre" and stages["pre_hires"]["image_size"] == 48
    for s in stages.values():
        assert 0 <= s["top1"] <= s["top5"] <= 1 and s["images"] == 16
    # the hi-res stage measured its start weights at its own size before training: the
    # first stage's weights, evaluated at 48² (what the hi-res classifier step starts from)
    assert "top1_before" not in stages["pre"]
    before = stages["pre_hires"]["top1_before"]
    assert 0 <= before <= stages["pre_hires"]["top5_before"] <= 1
    with open(workdir / "pretrain" / "pre_hires" / "config.json") as f:
        hires = json.load(f)["extra"]
    assert hires["init"] == {"stage": "pre", "sha256": stages["pre"]["sha256"]}
    with open(workdir / "fc@pre_hires" / "seed0" / "config.json") as f:
        row = json.load(f)["extra"]
    assert row["init"] == {"stage": "pre_hires", "sha256": stages["pre_hires"]["sha256"]}
    with open(workdir / "fc" / "seed0" / "config.json") as f:
        assert "init" not in json.load(f)["extra"]
    text = (workdir / "results.md").read_text()
    assert "### From scratch" in text and "### Pre-trained" in text
    assert "### What pre-training changes" in text
    assert "| top-1 at start | top-1 | top-5 |" in text
    assert re.search(rf"\| pre_hires \| .* \| pre \| {before:.3f} \| ", text)
    assert re.search(r"\| fc \| pre_hires \| [0-9.]+ \| [0-9.]+ \| [-+]?[0-9.]+ \|", text)
    # the paper's number sits beside both variants of its row
    assert text.count("| 63.4 |") == 2


@pytest.mark.slow
def test_the_fc_head_dependence_table_reads_every_row_at_its_own_grid(study, tmp_path, capsys):
    config, workdir, _ = study
    argv = ["analyse", "dependence", "--study", str(config), "--workdir", str(workdir)]
    assert main([*argv, "--publish", str(tmp_path / "docs" / "results" / "toy")]) == 0
    printed = capsys.readouterr().out
    record = tmp_path / "docs" / "results" / "toy" / "dependence.json"
    data = json.loads(record.read_text())
    assert data["command"] == shlex.join(["jaxheads", *argv, "--publish", str(record.parent)])
    assert data["environment"]["processor"] and data["run_time_s"] > 0
    text = analysis.dependence_table(data)
    assert text in printed
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()[2:]}
    # every trained or evaluated row, the EvalRow on its source's weights at 48²
    assert [r for r in rows if r in LABELS] == LABELS
    for label in LABELS:
        cells = rows[label].strip("| ").split(" | ")
        assert 0 <= float(cells[1]) <= 1 and 0 <= float(cells[3]) <= 1
    # two grids (32² and 48² inputs): each gets its own reference lines, named by its side
    random_lines = [r for r in rows if r.startswith("a cell drawn at random")]
    assert len(random_lines) == 2 and all("grid" in r for r in random_lines)
    assert rows["v2"].split(" | ")[2] != rows["v2_hires"].split(" | ")[2]
    # `jaxheads report` quotes the record between its markers, with where it was made
    page = tmp_path / "docs" / "page.md"
    page.write_text("<!-- results:toy/dependence -->\n<!-- /results:toy/dependence -->\n")
    assert regenerate(str(tmp_path)) == [str(page)]
    quoted = page.read_text()
    assert text in quoted and "(results/toy/dependence.json)" in quoted
    assert data["command"] in quoted


@pytest.mark.slow
def test_compare_publish_runs_and_publishes_the_studys_analyses(study, tmp_path):
    config, workdir, _ = study
    dest = tmp_path / "published"
    argv = ["compare", "--config", str(config), "--workdir", str(workdir), "--no-progress"]
    assert main([*argv, "--no-tensorboard", "--publish", str(dest)]) == 0  # runs done: kept
    data = json.loads((dest / "dependence.json").read_text())
    assert data["study"] == "tiny" and [r["row"] for r in data["rows"]] == LABELS
    assert data["run_time_s"] > 0 and data["command"].startswith("jaxheads compare --config")
    assert (dest / "results.json").is_file() and not (dest / "gradients.json").exists()


@pytest.mark.slow
def test_the_gradients_analysis_reads_the_studys_one_stage_and_is_quoted(study, tmp_path):
    """`measure_gradients` on a study with one pre-training stage (the tiny study's first,
    finished by the fixture): each head, start and seed, rendered and quoted as published."""
    import dataclasses

    from jaxheads.study.publish import publish_analysis

    config, workdir, _ = study
    tiny = studies.load_study(str(config)).get_config()
    one = dataclasses.replace(tiny, rows=[TrainRow("fc", "small-yolov1-fc")], analyses=())
    one = dataclasses.replace(one, pretraining=tiny.pretraining[:1])
    record = analysis.measure("gradients", str(workdir), one)
    assert record["kind"] == "gradients" and record["stage"] == "pre"
    starts = {(r["model"], r["init"]) for r in record["rows"]}
    assert starts == {
        (m, i) for m in ("small-yolov1-fc", "small-yolov1-percell") for i in ("scratch", "pre")
    }
    assert all(v > 0 for r in record["rows"] for v in r["norms"].values())
    assert len(record["rows"]) == 4 * 3  # seeds 0-2 of each
    publish_analysis(record, str(tmp_path / "docs" / "results" / "toy"), command="c")
    page = tmp_path / "docs" / "page.md"
    page.write_text("<!-- results:toy/gradients -->\n<!-- /results:toy/gradients -->\n")
    assert regenerate(str(tmp_path)) == [str(page)]
    assert analysis.table(record) in page.read_text()


def test_an_analysis_is_named_among_those_that_exist():
    with pytest.raises(ValueError, match=r"expected an analysis among \['dependence', 'gr"):
        analysis.measure("dependance", "w", "heads")
    with pytest.raises(ValueError, match=r"expected a record of kind among .*got 'train'"):
        analysis.table({"kind": "train"})


def test_a_study_names_analyses_that_exist_and_can_run():
    rows = [TrainRow("a")]
    with pytest.raises(ValueError, match=r"expected analyses among \['dependence', 'gradients'\]"):
        StudyConfig("x", rows, analyses=("dependance",))
    with pytest.raises(ValueError, match=r"one pre-training stage for the gradients analysis"):
        StudyConfig("x", rows, analyses=("gradients",))
    StudyConfig("x", rows, pretraining=[Pretraining("p")], analyses=("gradients",))


def test_pretraining_checks():
    with pytest.raises(ValueError, match="init to name a pretraining stage among \\['p'\\]"):
        StudyConfig("x", [TrainRow("a", init="q")], pretraining=[Pretraining("p")])
    with pytest.raises(ValueError, match="init_from to name an earlier stage"):
        StudyConfig("x", [TrainRow("a")], pretraining=[Pretraining("p", init_from="p")])
    with pytest.raises(ValueError, match="backbone in .*got 'big'"):
        StudyConfig("x", [TrainRow("a")], pretraining=[Pretraining("p", backbone="big")])
    with pytest.raises(ValueError, match="'pretrain' is the stages' directory"):
        StudyConfig("x", [TrainRow("pretrain")])
    config = with_profile(
        StudyConfig("x", [TrainRow("a")], pretraining=[Pretraining("p", image_size=96)]), "quick"
    )
    assert config.pretraining[0].steps == QUICK_PRETRAINING["steps"]
    assert config.pretraining[0].image_size == 96  # sizes kept: a hi-res stage stays hi-res


def test_the_packaged_studies_pretrain_as_the_papers_did():
    heads = studies.load_study("heads").get_config()
    scratch = [r.label for r in heads.rows if r.init is None]
    assert [r.label for r in heads.rows if r.init] == [f"{x}@pre64" for x in scratch]
    assert len(scratch) == 6
    path = studies.load_study("yolov2_path").get_config()
    stages = {s.label: s for s in path.pretraining}
    assert stages["old_hires"].init_from == "old" and stages["new_hires"].init_from == "new"
    assert stages["new_hires"].image_size == path.budget.image_size  # YOLOv2's hi-res step
    labels = [r.label for r in path.rows]
    assert "hi_res_classifier@old_hires" in labels and "hi_res_classifier" not in labels
    assert "new_network" in labels and "new_network@new_hires" in labels


def test_config_checks():
    with pytest.raises(ValueError, match="unique row labels"):
        StudyConfig("x", [TrainRow("a"), TrainRow("a")])
    with pytest.raises(ValueError, match="weights_from to name an earlier TrainRow"):
        StudyConfig("x", [EvalRow("a", weights_from="b"), TrainRow("b")])
    with pytest.raises(ValueError, match="expected fields among .* got \\['stepz'\\]"):
        StudyConfig("x", [TrainRow("a", changes={"stepz": 3})])
    config = StudyConfig("x", [TrainRow("a_b"), TrainRow("c"), EvalRow("d", weights_from="c")])
    assert [r.label for r in config.select(["a-b"]).rows] == ["a_b"]
    assert [r.label for r in config.select(["d"]).rows] == ["c", "d"]
    # the stages the kept rows start from, and theirs; rows from scratch pre-train nothing
    stages = [Pretraining("p"), Pretraining("q", init_from="p"), Pretraining("r")]
    rows = [TrainRow("s"), TrainRow("s@q", init="q"), TrainRow("s@r", init="r")]
    config = StudyConfig("x", rows, pretraining=stages)
    assert [p.label for p in config.select(["s@q"]).pretraining] == ["p", "q"]
    assert [p.label for p in config.select(["s@r", "s"]).pretraining] == ["r"]
    assert config.select(["s"]).pretraining == []
    with pytest.raises(ValueError, match="expected rows among"):
        config.select(["e"])


def test_a_row_overrides_the_budget_and_its_run_config():
    config = StudyConfig(
        "x", [TrainRow("a"), TrainRow("b", changes={"learning_rate": 3e-4, "image_size": 64})]
    )
    a, b = (config.budget_of(r) for r in config.rows)
    assert a == config.budget and a.run.learning_rate == 1e-3
    assert b.run.learning_rate == 3e-4 and b.image_size == 64
    assert b.run.steps == a.run.steps and b.batch_size == a.batch_size


def test_forward_flops_count_the_model_not_this_machines_lowering():
    from jaxheads import layers
    from jaxheads.ops.conv import PATCHES_MIN_CHANNELS

    # A 3×3 "same" convolution on an 8×8 map: per axis the three taps read 7, 8 and 7
    # pixels inside the map, 22² tap positions in all; the taps on the zero padding are
    # not counted. (On CPU this layer runs as a product of patches, which computes them.)
    c_in, c_out = PATCHES_MIN_CHANNELS, 8
    layer = layers.Conv2D(c_out, 3, padding="same", use_bias=False)
    flops = forward_flops(layer, (None, 8, 8, c_in))
    assert flops == 2 * 22 * 22 * c_in * c_out


def test_a_name_is_a_packaged_study_and_the_current_folder_is_never_read(tmp_path, monkeypatch):
    # A folder that holds an experiments/heads.py of its own: only a path may run it.
    planted = tmp_path / "experiments" / "heads.py"
    planted.parent.mkdir()
    planted.write_text("raise RuntimeError('the current folder was read')\n")
    monkeypatch.chdir(tmp_path)
    packaged = studies.studies_dir() / "heads.py"
    assert studies.study_path(None) == packaged
    assert studies.study_path("heads") == packaged
    assert studies.load_study().get_config().name == "heads"
    assert studies.study_path("experiments/heads.py") == planted.relative_to(tmp_path)
    with pytest.raises(RuntimeError, match="current folder was read"):
        studies.load_study("experiments/heads.py")
    with pytest.raises(
        ValueError,
        match=r"\['budget', 'fc_head', 'heads', 'heads_digits', 'seeds', 'yolov2_path'\].*'hedas'.*"
        r"did you mean 'heads'",
    ):
        studies.load_study("hedas")


def test_compare_without_config_runs_the_packaged_default(tmp_path, monkeypatch):
    planted = tmp_path / "experiments" / "heads.py"
    planted.parent.mkdir()
    planted.write_text("raise RuntimeError('the current folder was read')\n")
    monkeypatch.chdir(tmp_path)
    ran = {}

    def fake_run_study(config, workdir, *, progress):
        ran.update(name=config.name, steps=config.budget.run.steps, workdir=workdir)
        ran.update(command=config.command)
        os.makedirs(workdir)
        (tmp_path / workdir / "results.md").write_text("table")

    monkeypatch.setattr("jaxheads.study.run.run_study", fake_run_study)
    assert main(["compare", "--quick", "--steps", "7", "--workdir", "w", "--no-progress"]) == 0
    assert ran == {
        "name": "heads",
        "steps": 7,
        "workdir": "w",
        # results.md quotes the command as typed, not the study's default one
        "command": "jaxheads compare --quick --steps 7 --workdir w --no-progress",
    }


def test_compare_publish_defaults_to_the_studys_docs_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    published = {}

    def fake_run_study(config, workdir, *, progress):
        os.makedirs(workdir)
        (tmp_path / workdir / "results.md").write_text("table")

    def fake_publish(workdir, dest, *, command, seconds):
        published.update(workdir=workdir, dest=dest, command=command, timed=seconds >= 0)

    def fake_dependence(workdir, *, seed, study):
        return {"kind": "dependence", "study": study.name, "workdir": workdir}

    monkeypatch.setattr("jaxheads.study.run.run_study", fake_run_study)
    monkeypatch.setattr("jaxheads.study.publish.publish_study", fake_publish)
    monkeypatch.setattr("jaxheads.study.analysis.measure_dependence", fake_dependence)
    argv = ["compare", "--quick", "--workdir", "w", "--no-progress", "--publish"]
    assert main(argv) == 0
    dest = os.path.join("docs", "results", "heads-quick")
    assert published == {
        "workdir": "w",
        "dest": dest,
        "command": "jaxheads " + " ".join(argv),
        "timed": True,
    }
    # the study's analyses (heads: where the boxes land) are published beside it
    with open(tmp_path / dest / "dependence.json") as f:
        record = json.load(f)
    assert record["study"] == "heads" and record["workdir"] == "w"
    assert record["command"] == "jaxheads " + " ".join(argv)


@pytest.mark.slow
def test_a_published_study_holds_what_made_it_and_every_curve(study, tmp_path):
    config, workdir, results = study
    dest = tmp_path / "published"
    publish_study(str(workdir), str(dest), seconds=12.0)
    with open(dest / "results.json") as f:
        published = json.load(f)
    assert published["heads"] == results["heads"]
    assert published["command"].startswith("jaxheads compare --config")
    assert published["run_time_s"] == 12.0
    assert published["environment"]["processor"] and published["environment"]["versions"]["jax"]
    assert all(r["train_seconds"] > 0 for r in published["runs"])
    with open(dest / "learning_curves.csv") as f:
        curve = list(csv.DictReader(f))
    # one row per logged step (log_every=1, 4 steps) of every (row, seed); an EvalRow
    # repeats the curve of the run whose weights it evaluates
    assert {(r["head"], r["step"]) for r in curve} == {
        (h, str(k)) for h in LABELS for k in range(1, 5)
    }
    for name in PLOTS:
        assert (dest / name).read_bytes() == (workdir / name).read_bytes()
    text = (dest / "results.md").read_text()
    assert text.startswith((workdir / "results.md").read_text().rstrip("\n"))
    assert published["environment"]["processor"] in text.splitlines()[-1]


@pytest.mark.parametrize(
    "error,status",
    [
        (ValueError("bad row"), 2),
        (FileNotFoundError("no data"), 2),
        (TrainingDiverged("loss nan at step 3"), 3),
        (CheckpointWriteError("checkpoint 4 not written: disk full"), 4),
        (KeyboardInterrupt(), 130),
    ],
    ids=["bad-input", "missing-file", "diverged", "disk-full", "interrupted"],
)
def test_compare_and_train_exit_alike_on_each_failure(tmp_path, monkeypatch, capsys, error, status):
    """compare and train/pretrain share one table of failures and exit statuses."""
    from jaxheads.cli.train import run_fit

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr("jaxheads.study.run.run_study", fail)
    assert main(["compare", "--quick", "--workdir", str(tmp_path / "w"), "--no-progress"]) == status
    compare_err = capsys.readouterr().err.splitlines()
    assert run_fit("train", "trained", fail, str(tmp_path / "t"), print) == status
    train_err = capsys.readouterr().err.splitlines()
    for err, command in ((compare_err, "compare"), (train_err, "train")):
        assert len(err) == 1 and err[0].startswith(f"jaxheads {command}: "), err
        assert err[0].endswith(str(error) or "interrupted"), err


def test_a_study_runs_seed_by_seed(tmp_path, monkeypatch):
    """Every row for the first seed before any row's second: a stopped study is one seed short."""
    import jaxheads.study.pretraining as pretraining_module
    import jaxheads.study.report as report_module
    import jaxheads.study.run as run_module

    order = []
    monkeypatch.setattr(pretraining_module, "run_stages", lambda *a, **k: [])
    monkeypatch.setattr(run_module, "plan_row", lambda config, row: row.label)
    monkeypatch.setattr(
        run_module,
        "run_row",
        lambda config, plan, seed, workdir, progress: order.append((plan, seed)) or plan,
    )
    monkeypatch.setattr(report_module, "write_report", lambda config, records, *a: records)
    config = StudyConfig("x", [TrainRow("a"), TrainRow("b"), TrainRow("c")], seeds=(0, 1))
    records = run_module.run_study(config, str(tmp_path), progress=False)
    assert order == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1), ("c", 1)]
    assert records == ["a", "b", "c", "a", "b", "c"]


def test_profile_reaches_the_study_and_quick_does_not_contradict_it(tmp_path, capsys):
    config = tmp_path / "echo.py"
    config.write_text(
        "def get_config(profile='full'):\n    raise ValueError(f'profile {profile} asked')\n"
    )
    base = ["compare", "--config", str(config), "--workdir", str(tmp_path / "out")]
    for flags, asked in [
        ([], "full"),
        (["--quick"], "quick"),
        (["--profile", "accelerator"], "accelerator"),
    ]:
        assert main(base + flags) == 2
        assert f"profile {asked} asked" in capsys.readouterr().err
    assert main(base + ["--quick", "--profile", "quick"]) == 2
    assert "profile quick asked" in capsys.readouterr().err
    assert main(base + ["--quick", "--profile", "cpu"]) == 2
    assert "expected --quick or --profile cpu, got both" in capsys.readouterr().err
