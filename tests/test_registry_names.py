"""Every model, backbone and data set name a command takes is the registry's (`jaxheads.zoo`),
and a mistyped one is refused, before anything is written, with the closest name suggested."""

import argparse
import re

import pytest

from jaxheads import zoo
from jaxheads.cli import build_parser, main
from jaxheads.layers import abstract_init
from jaxheads.study import studies
from jaxheads.study.config import Budget
from jaxheads.train.detection import DetectionExperiment, model_names
from jaxheads.train.pretrain import PretrainExperiment


def _flag(command: str, flag: str) -> argparse.Action:
    subs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return next(a for a in subs.choices[command]._actions if flag in a.option_strings)


def _listed(help_text: str) -> list[str]:
    """The names a flag's help lists as ``a | b | c``."""
    (names,) = re.findall(r"[\w-]+(?: \| [\w-]+)+", help_text)
    return names.split(" | ")


@pytest.mark.parametrize(
    ("command", "flag", "registered"),
    [
        ("train", "--dataset", zoo.dataset_names()),
        ("pretrain", "--backbone", list(zoo.pretrainable())),
        ("compare", "--dataset", zoo.dataset_names(embedded=True)),
    ],
)
def test_the_names_a_flag_lists_are_the_registrys(command, flag, registered):
    action = _flag(command, flag)
    assert action.choices is None  # the registry refuses a name, with a suggestion
    assert _listed(action.help) == registered
    assert set(registered) <= set(zoo.dataset_names()) | set(zoo.names("backbone"))


def test_the_defaults_and_the_packaged_studies_name_registry_entries():
    assert model_names() == list(zoo.names("detector"))
    assert DetectionExperiment().model in zoo.names("detector")
    assert DetectionExperiment().dataset in zoo.dataset_names()
    assert PretrainExperiment().backbone in zoo.pretrainable()
    assert Budget().dataset in zoo.dataset_names(embedded=True)
    configs = [
        getattr(studies.load_study(n), "get_config", None) for n in studies.packaged_studies()
    ]
    assert len([c for c in configs if c]) >= 4
    for get_config in filter(None, configs):
        config, name = get_config(), get_config.__module__
        assert config.budget.dataset in zoo.dataset_names(embedded=True), name
        for stage in config.pretraining:
            assert stage.backbone in zoo.pretrainable(), (name, stage.label)
        for row in config.rows:
            model = getattr(row, "model", None)
            assert not isinstance(model, str) or model in zoo.names("detector"), row.label


@pytest.mark.parametrize("name", list(zoo.pretrainable()))
def test_a_pretrainable_backbone_builds_what_its_name_says(name):
    entry = zoo.entry(name, kind="backbone")
    layer, shape = entry.build()
    assert shape == (None, 96, 96, 3)
    _, params, _ = abstract_init(entry.pretrain().layer, shape)
    assert params.keys() == abstract_init(layer, shape)[1].keys()
    assert any(k.endswith("_bn") for k in params) == (not name.endswith("-nobn"))
    assert ("stem_conv" in params) == ("extraction" in name)


TINY = ["--steps", "1", "--batch-size", "8", "--image-size", "32", "--no-progress"]
COUNTS = ["--train-examples", "8", "--val-examples", "8"]


@pytest.mark.parametrize(
    ("argv", "typed", "meant"),
    [
        (["train", "--model", "small-yolov3", *TINY, *COUNTS], "small-yolov3", "small-yolov2"),
        (["train", "--dataset", "shape", *TINY, *COUNTS], "shape", "shapes"),
        (["pretrain", "--backbone", "small-nbn", *TINY, *COUNTS], "small-nbn", "small-nobn"),
        (["compare", "--dataset", "digit", "--no-progress"], "digit", "digits"),
    ],
)
def test_a_mistyped_name_is_refused_with_the_closest_before_anything_is_written(
    argv, typed, meant, tmp_path, capsys
):
    workdir = tmp_path / "run"
    assert main([*argv, "--workdir", str(workdir)]) == 2
    err = capsys.readouterr().err
    assert f"got {typed!r}; did you mean {meant!r}?" in err, err
    assert meant in err.split("expected", 1)[1]  # the known names are listed
    assert not workdir.exists()


def test_the_registry_refuses_a_name_of_the_wrong_kind():
    with pytest.raises(
        ValueError,
        match=r"an embedded dataset in \['digits', 'digits-device', 'shapes', 'shapes-device'\], "
        "got 'voc'",
    ):
        zoo.dataset("voc", embedded=True)
    with pytest.raises(ValueError, match="a backbone in .*got 'darknet19'"):
        zoo.pretrain_entry("darknet19")  # a backbone, with no pre-training recipe here
    with pytest.raises(
        ValueError, match="stage 'p': expected a backbone in .*did you mean 'small'"
    ):
        from jaxheads.study import Pretraining, StudyConfig, TrainRow

        StudyConfig("x", [TrainRow("a")], pretraining=[Pretraining("p", backbone="smal")])
    with pytest.raises(ValueError, match="Budget: expected an embedded dataset .*got 'coco'"):
        Budget(dataset="coco")
