"""The study files in experiments/: they load, their configs are valid, their numbers hold."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from jaxheads.anchors import mean_best_iou
from jaxheads.decode import BOUNDED, UNBOUNDED
from jaxheads.study import (
    QUICK_BUDGET,
    StudyConfig,
    TrainRow,
    box_sizes,
    load_study,
    measure_params,
    packaged_studies,
)
from jaxheads.study.studies import studies_dir
from jaxheads.train.detection import build_detector, make_dataset, model_names

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
STUDIES = sorted(p.stem for p in EXPERIMENTS.glob("*.py") if p.stem != "__init__")
TRAINING_STUDIES = ["fc_head", "heads", "heads_digits", "yolov2_path"]


def _load(name):
    return load_study(EXPERIMENTS / f"{name}.py")


def test_every_study_is_tested():
    assert STUDIES == ["budget", "fc_head", "heads", "heads_digits", "seeds", "yolov2_path"]
    assert STUDIES == packaged_studies()


@pytest.mark.parametrize("name", TRAINING_STUDIES)
def test_study_loads_and_its_configs_are_valid(name):
    module = _load(name)
    assert module.__doc__ and "Command" in module.__doc__
    assert "jaxheads compare" in module.__doc__ and "Expected result" in module.__doc__
    quick, full = module.get_config("quick"), module.get_config("full")
    for config in (quick, full):
        assert isinstance(config, StudyConfig) and config.name == name
    assert [r.label for r in quick.rows] == [r.label for r in full.rows]
    assert len(quick.seeds) <= len(full.seeds)
    assert quick.budget.run.steps <= full.budget.run.steps
    with pytest.raises(ValueError, match="expected profile"):
        module.get_config("huge")


@pytest.mark.parametrize(
    ("name", "seeds"),
    [("fc_head", (0,)), ("heads", (0, 1)), ("heads_digits", (0, 1)), ("yolov2_path", (0, 1))],
)
def test_training_studies_share_the_profiles_their_docstrings_state(name, seeds):
    module = _load(name)
    full, quick = module.get_config("full"), module.get_config("quick")
    b, run = full.budget, full.budget.run
    assert (full.seeds, run.steps, b.batch_size, b.image_size, b.val_examples, run.burn_in) == (
        seeds,
        1000,
        32,
        96,
        256,
        100,
    )
    shown = "one seed" if len(seeds) == 1 else f"{len(seeds)} seeds"
    assert "96×96, batch 32, 1000" in module.__doc__ and shown in module.__doc__
    assert full.pretraining and [p.label for p in quick.pretraining] == [
        p.label for p in full.pretraining
    ]
    assert quick.seeds == (0,) and quick.budget == full.budget.replace(**QUICK_BUDGET)
    assert "--quick" in quick.command and "--quick" not in full.command


@pytest.mark.parametrize(
    ("name", "steps"),
    [("fc_head", 20_000), ("heads", 20_000), ("heads_digits", 20_000), ("yolov2_path", 15_000)],
)
def test_accelerator_profiles_are_the_full_study_with_three_seeds_and_more_steps(name, steps):
    module = _load(name)
    full, acc = module.get_config("full"), module.get_config("accelerator")
    assert acc.seeds == (0, 1, 2)
    assert [r.label for r in acc.rows] == [r.label for r in full.rows]
    assert acc.pretraining == full.pretraining
    # the scenes drawn on the chip: the host only picks each batch's indices
    device = f"{full.budget.dataset}-device"
    assert acc.budget == full.budget.replace(steps=steps, checkpoint_every=2_000, dataset=device)
    assert "--profile accelerator" in acc.command and "--quick" not in acc.command
    doc = " ".join(module.__doc__.split())
    assert f"--profile accelerator``: 3 seeds of {steps:,} steps" in doc
    for machine in ("one H100", "Colab TPU v5e-1", "2-core CPU"):
        assert machine in doc, machine


def test_heads_study_is_the_six_heads_on_one_budget():
    module = _load("heads")
    full, quick = module.get_config("full"), module.get_config("quick")
    heads = ["yolov1_fc", "yolov1_percell", "yolov1_local", "gap", "yolov2", "yolov2_passthrough"]
    assert [r.label for r in full.rows] == [x for h in heads for x in (h, f"{h}@pre64")]
    assert [r.init for r in full.rows] == [None, "pre64"] * 6
    assert all(isinstance(r, TrainRow) for r in full.rows)
    assert all(r.model in model_names() and not r.changes for r in full.rows)
    assert len(full.seeds) >= 2 and full.budget.run.steps >= 1000
    # --quick must fit in a few minutes on 2 CPU cores for all six heads, twice.
    assert quick.seeds == (0,) and quick.budget.run.steps * quick.budget.batch_size <= 2000
    assert quick.budget.image_size == 64 and quick.budget.val_examples <= 32


def test_digits_study_is_the_heads_study_on_digits():
    heads, digits = _load("heads"), _load("heads_digits")
    for profile in ("full", "quick"):
        a, b = heads.get_config(profile), digits.get_config(profile)
        assert b.budget == a.budget.replace(dataset="digits") and a.budget.dataset == "shapes"
        assert (b.rows, b.seeds, b.pretraining) == (a.rows, a.seeds, a.pretraining)
    assert make_dataset("digits", "val", image_size=96).num_classes == 10


def test_default_study_is_heads():
    assert load_study().__file__ == str(studies_dir() / "heads.py")
    assert load_study("seeds").__file__ == str(studies_dir() / "seeds.py")


def test_seeds_study_numbers(tmp_path):
    module = _load("seeds")
    assert not hasattr(module, "get_config")  # it trains nothing: no study config to fake
    rows = module.run(str(tmp_path), progress=False)
    got = {
        r["name"]: (r["params"], r["output_shape"], r["cells_seen"], r["under_shuffle"])
        for r in rows
    }
    assert got == {
        "Dense(4096) per cell": (4_198_400, "(None, 7, 7, 4096)", 1, "equivariant"),
        "Flatten + Dense(4096)": (205_524_992, "(None, 4096)", 49, "position-aware"),
        "GlobalAveragePooling2D + Dense(4096)": (4_198_400, "(None, 4096)", 49, "invariant"),
        "yolov1-percell-head": (4_321_310, "(None, 7, 7, 30)", 1, "equivariant"),
        "yolov1-fc-head": (211_547_582, "(None, 7, 7, 30)", 49, "position-aware"),
        "yolov1-local-head": (134_059_198, "(None, 7, 7, 30)", 49, "position-aware"),
        "gap-head": (1_506_750, "(None, 7, 7, 30)", 49, "invariant"),
    }
    with open(tmp_path / "results.json") as f:
        assert json.load(f)["rows"] == json.loads(json.dumps(rows))
    text = (tmp_path / "results.md").read_text()
    assert "| Flatten + Dense(4096) | 205,524,992 | (None, 4096) | 49 |" in text
    assert (tmp_path / "params.png").stat().st_size > 10_000
    for line in ("4,198,400", "205,524,992", "4,321,310", "211,547,582", "1,506,750"):
        assert line in module.__doc__


# --- the YOLOv2 path study's pieces ---------------------------------------------------------


def test_yolov2_path_rows_and_paper_numbers():
    module = _load("yolov2_path")
    config = module.get_config("full")
    labels = [r.label for r in config.rows]
    path = [
        "yolo",
        "batch_norm",
        "anchor_boxes",
        "new_network",
        "dimension_priors",
        "location_prediction",
        "passthrough",
        "multi_scale",
        "hi_res_detector",
    ]
    stages = ["old_nobn", "old", "old_hires", "new_hires", "new_hires", "new_hires", "new_hires"]
    stages += ["new_hires", "new_hires"]
    pre = [f"{row}@{stage}" for row, stage in zip(path, stages, strict=True)]
    control = "single_scale_hi_res"  # the passthrough's single-scale weights at 128²
    pre_control = f"{control}@new_hires"
    assert labels == (
        path + [control] + pre[:2] + ["hi_res_classifier@old_hires"] + pre[2:] + [pre_control]
    )
    assert set(config.paper) == set(path) | {"hi_res_classifier", control}
    assert config.paper["batch_norm"] == "65.8" and config.paper["new_network"] == "69.6"
    assert "69.2" in config.paper["anchor_boxes"] and "88%" in config.paper["anchor_boxes"]
    specs = {r.label: r for r in config.rows}
    extraction = {"head": "yolov1-fc", "backbone": "extraction"}
    assert specs["yolo"].model == {**extraction, "batch_norm": False}
    assert specs["hi_res_classifier@old_hires"].model == extraction
    assert specs["anchor_boxes"].model.keywords["backbone_kind"] == "extraction"
    assert "backbone_kind" not in specs["new_network"].model.keywords
    # The unbounded rows carry their centre in the head: decoder and loss alike.
    train = make_dataset("shapes", "train", image_size=64, num_examples=32)
    for label, centre in [("anchor_boxes", UNBOUNDED), ("location_prediction", BOUNDED)]:
        assert specs[label].loss_options == {}
        det, _ = build_detector(specs[label].model, image_size=96, num_classes=3, train_data=train)
        assert det.head.loss_kwargs().get("centre", BOUNDED) is centre
        assert det.head.decode.keywords["centre"] is centre
    assert len(specs["multi_scale"].train_sizes) > 1
    assert specs["hi_res_detector"].weights_from == "multi_scale"
    assert specs["hi_res_detector"].eval_image_size == 128
    assert specs[control].weights_from == "passthrough" and specs[control].eval_image_size == 128
    assert specs[pre_control].weights_from == "passthrough@new_hires"


def test_yolov2_path_detectors_and_priors():
    module = _load("yolov2_path")
    train = make_dataset("shapes", "train", image_size=64, num_examples=300)
    wh = box_sizes(train) * 4
    quick = {r.label: r for r in module.get_config("quick").rows}
    params = {}
    labels = ("yolo", "batch_norm", "anchor_boxes", "new_network", "dimension_priors")
    for label in (*labels, "passthrough"):
        det, _ = build_detector(quick[label].model, image_size=64, num_classes=3, train_data=train)
        params[label] = measure_params(det)
        if label in ("new_network", "dimension_priors"):
            anchors = np.asarray(det.head.anchors)
            assert anchors.shape == (5, 2)
            params[label]["iou"] = mean_best_iou(wh, anchors)
    # Without batch norm the convs get biases and lose the BN statistics.
    assert params["yolo"]["params"] != params["batch_norm"]["params"]
    # Same head, other priors: the same parameters; k-means priors fit the boxes better.
    assert params["new_network"]["params"] == params["dimension_priors"]["params"]
    assert params["dimension_priors"]["iou"] > params["new_network"]["iou"]
    # The old network: the same head on the YOLOv1-like backbone, other parameters.
    assert params["anchor_boxes"]["params"] != params["new_network"]["params"]
    assert params["passthrough"]["params"] > params["dimension_priors"]["params"]
    # Priors stay in cells of the training grid when built at another size.
    big, _ = build_detector(
        quick["passthrough"].model, image_size=96, num_classes=3, train_data=train
    )
    small, _ = build_detector(
        quick["passthrough"].model, image_size=64, num_classes=3, train_data=train
    )
    assert big.head.anchors == small.head.anchors


def test_fc_head_warm_up_rows_train_with_their_own_warm_up():
    from jaxheads.study.run import warm_up

    config = _load("fc_head").get_config("full")
    got = {r.label: warm_up(config.budget_of(r), r) for r in config.rows}
    assert (got["baseline"], got["warmup_0"], got["warmup_300"]) == (100, 0, 300)


# --- the budget sweep -----------------------------------------------------------------------


def test_budget_profiles_sweep_three_heads_from_scratch_and_pre_trained():
    from jaxheads.study.sweep import sweep_of

    module, heads = _load("budget"), _load("heads")
    for phrase in ("jaxheads compare --config budget --profile quick", "--profile cpu"):
        assert phrase in module.__doc__
    assert "--profile accelerator" in module.__doc__ and "Expected result" in module.__doc__
    assert module.get_config("full") == module.get_config("cpu")
    want = {"quick": ((5, 10), (0,)), "cpu": ((1000, 3000, 10000), (0, 1))}
    want["accelerator"] = ((1000, 3000, 10000, 30000), (0, 1, 2))
    for profile, (budgets, seeds) in want.items():
        config = module.get_config(profile)
        assert config.name == "budget" and config.seeds == seeds
        got = {sweep_of(r.label) for r in config.rows}
        series = ["yolov1_fc", "yolov1_percell", "yolov2"]
        series += [f"{s}@pre64" for s in series]
        assert got == {(s, n) for s in series for n in budgets}
        for r in config.rows:
            assert config.budget_of(r).run.steps == sweep_of(r.label)[1]
            assert r.model == heads.HEADS[r.label.split("+")[0]]
        assert f"--profile {profile}" in config.command
    # cpu: the pre-training's 64² at batch 8, so that it fits a sitting; accelerator: the
    # heads study's 96² at batch 32
    for profile, size, batch in (("cpu", 64, 8), ("accelerator", 96, 32)):
        config = module.get_config(profile)
        b = config.budget
        assert (b.image_size, b.batch_size, b.run.learning_rate, b.run.policy) == (
            size,
            batch,
            1e-3,
            "cosine",
        )
        assert (b.run.optimizer, b.run.burn_in, b.val_examples) == ("adam", 100, 256)
        assert b.dataset == {"cpu": "shapes", "accelerator": "shapes-device"}[profile]
        assert list(config.pretraining) == [heads.PRETRAIN]  # the heads study's stage
    with pytest.raises(ValueError, match="expected profile"):
        module.get_config("huge")


@pytest.mark.slow
def test_budget_quick_profile_end_to_end(tmp_path):
    """``jaxheads compare --config budget --profile quick``: the table has every head × init ×
    budget, the ranking per budget, the plot, and every seed's mAP50 per budget."""
    from jaxheads.cli import main

    workdir = tmp_path / "budget"
    code = main(
        ["compare", "--config", "budget", "--profile", "quick", "--workdir", str(workdir)]
        + ["--no-progress"]
    )
    assert code == 0
    config = _load("budget").get_config("quick")
    text = (workdir / "results.md").read_text()
    assert "| head | init | 5 steps (40 img) | 10 steps (80 img) |" in text
    for head in ("yolov1_fc", "yolov1_percell", "yolov2"):
        for init in ("scratch", "pre64"):
            assert re.search(rf"^\| {head} \| {init} \| [\d.]+ \| [\d.]+ \|$", text, re.M)
    for budget in ("5 steps (40 img)", "10 steps (80 img)"):
        line = re.search(rf"^- {re.escape(budget)}: (.*)$", text, re.M)
        assert line and line.group(1).count(" >? ") + line.group(1).count(" = ") == 5
    assert (workdir / "budget_sweep.png").stat().st_size > 10_000
    assert "![budget_sweep](budget_sweep.png)" in text
    with open(workdir / "results.json") as f:
        results = json.load(f)
    sweep = results["sweep"]
    assert sweep["budgets"] == [5, 10] and len(sweep["series"]) == 6
    runs = {(r["head"], r["seed"]): r["mAP50"] for r in results["runs"]}
    for series in sweep["series"]:
        for point in series["points"]:
            assert set(point["per_seed"]) == {str(s) for s in config.seeds}
            for seed, value in point["per_seed"].items():
                assert value == runs[(point["label"], int(seed))] and 0 <= value <= 1
    assert [r["steps"] for r in sweep["rankings"]] == [5, 10]
    assert all(len(r["order"]) == 6 for r in sweep["rankings"])
