"""``jaxheads export``: a trained darknet run as darknet's .cfg and .weights, read back exactly."""

import json
import os
from types import MappingProxyType

import jax
import numpy as np
import pytest
from tiny_darknet import DETECTION_CFG, REGION_CFG

from jaxheads import darknet, zoo
from jaxheads.cli import main
from jaxheads.train.freeze import layer_paths
from jaxheads.train.restore import restore_checkpoint


def small_run(steps: int) -> list[str]:
    """``jaxheads train`` options of a tiny run, a checkpoint at its last step."""
    return [
        "--steps",
        str(steps),
        "--batch-size",
        "8",
        "--image-size",
        "32",
        "--train-examples",
        "16",
        "--val-examples",
        "8",
        "--checkpoint-every",
        str(steps),
        "--burn-in",
        "0",
        "--no-progress",
    ]


@pytest.fixture
def tiny_models(tmp_path, monkeypatch):
    """Two tiny darknet cfgs registered as detectors, as a user registers their own cfg."""
    registry = dict(zoo.BUILTIN)
    for name, text, head in (
        ("tiny-region", REGION_CFG, "yolov2"),
        ("tiny-detection", DETECTION_CFG, "yolov1"),
    ):
        path = tmp_path / f"{name}.cfg"
        path.write_text(text)
        entry = zoo.darknet_entry(
            name, str(path), description=f"{name}.cfg", image_size=32, head=head
        )
        zoo.register(registry, entry)
    monkeypatch.setattr(zoo, "BUILTIN", MappingProxyType(registry))
    return {name: str(tmp_path / f"{name}.cfg") for name in ("tiny-region", "tiny-detection")}


def _checkpoint(workdir):
    """The run's detector and its newest checkpoint, rebuilt as ``--init WORKDIR`` does."""
    return restore_checkpoint(workdir)[1:]


def _read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def _bitwise_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype == np.float32 and x.shape == y.shape
        assert np.array_equal(x.view(np.uint32), y.view(np.uint32))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny-region", "tiny-detection"])
def test_trained_run_exports_what_darknet_load_reads_back_bitwise(tiny_models, tmp_path, name):
    workdir, out = str(tmp_path / "run"), str(tmp_path / "out" / "tiny.weights")
    os.makedirs(os.path.dirname(out))
    assert main(["train", "--model", name, "--workdir", workdir, *small_run(2)]) == 0
    assert main(["export", workdir, out]) == 0
    cfg_out = out.removesuffix(".weights") + ".cfg"
    assert sorted(os.listdir(os.path.dirname(out))) == ["tiny.cfg", "tiny.weights"]

    detector, params, state, step = _checkpoint(workdir)
    net = darknet.load(cfg_out, out)
    assert step == 2 and net.layers_from_file == len(net.layers)
    _bitwise_equal(net.params, darknet.model_params(net.model, params, state)[0])
    _bitwise_equal(net.state, darknet.model_params(net.model, params, state)[1])
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    ours = jax.jit(lambda p, s, x: detector.layer.apply(p, s, x)[0])(params, state, x)
    raw = net(x)
    if net.head.kind == "yolov1":
        raw = darknet.detection_cells(raw, net.head)
    np.testing.assert_array_equal(np.asarray(raw), np.asarray(ours))

    # darknet's seen: the images trained on (2 steps of 8); the cfg as the run built it.
    assert darknet.read_header(out) == darknet.WeightsHeader(0, 2, 0, 16)
    source, text = _read(tiny_models[name]), _read(cfg_out)
    sections = darknet.read_cfg(cfg_out)
    assert sections[0].options["width"] == sections[0].options["height"] == "32"
    assert sections[-1].options["classes"] == "3"
    if name == "tiny-detection":  # 2 classes in the cfg: the [connected] output follows
        assert "classes=2" in source and sections[-2].options["output"] == str(3 * 3 * (10 + 3))
    else:  # already 3 classes: only the image size changed
        assert [line for line in text.splitlines() if line not in source.splitlines()] == [
            "width=32",
            "height=32",
        ]

    # OUT exists: refused unless --force, and nothing is touched.
    before = _read(out, "rb")
    assert main(["export", workdir, out]) == 2
    assert main(["export", workdir, out, "--force"]) == 0
    assert _read(out, "rb") == before


@pytest.mark.slow
def test_a_weights_file_exports_to_the_same_bytes(tiny_models, tmp_path):
    """``--init FILE`` with every layer frozen, then export: the file's bytes again.

    Only the header's ``seen`` differs: it counts the images the run trained on
    (1 step of 8), where the file said 0.
    """
    cfg = tiny_models["tiny-region"]
    net = darknet.load(cfg, seed=3, image_size=32)
    rng = np.random.default_rng(4)

    def draw(path, a):  # every float set, batch-norm statistics included (variances > 0)
        value = (
            rng.uniform(0.5, 2.0, a.shape) if path[-1].key == "var" else rng.normal(0, 0.1, a.shape)
        )
        return value.astype(np.float32)

    params, state = jax.tree_util.tree_map_with_path(draw, (net.params, net.state))
    source = str(tmp_path / "source.weights")
    darknet.DarknetNet(net.model, params, state).save_weights(source)
    workdir, out = str(tmp_path / "run"), str(tmp_path / "again.weights")
    every = str(len(layer_paths(params)))
    argv = ["train", "--model", "tiny-region", "--workdir", workdir, "--init", source]
    assert main([*argv, "--freeze", every, *small_run(1)]) == 0
    assert main(["export", workdir, out]) == 0
    a, b = _read(source, "rb"), _read(out, "rb")
    assert len(a) == len(b) and a[:12] == b[:12] and a[20:] == b[20:]
    assert darknet.read_header(out).seen == 8 and darknet.read_header(source).seen == 0


def test_models_without_a_darknet_cfg_are_refused_before_writing(tmp_path, capsys):
    workdir = tmp_path / "run"
    workdir.mkdir()
    extra = {"model": "small-yolov2", "dataset": "shapes", "image_size": 96}
    config = {"workdir": str(workdir), "extra": extra}
    (workdir / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out.weights"
    assert main(["export", str(workdir), str(out)]) == 2
    err = capsys.readouterr().err
    assert "model 'small-yolov2', which has no darknet cfg" in err
    assert "'yolov2-tiny-voc'" in err and "fast-yolo" in err
    assert not out.exists() and not (tmp_path / "out.cfg").exists()
    config["extra"] = {"kind": "pretrain", "backbone": "small", "image_size": 64}
    (workdir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model 'small'"):
        from jaxheads.train.export import export_workdir

        export_workdir(workdir, out)
    assert main(["export", str(tmp_path / "nothing"), str(out)]) == 2
    assert "a jaxheads work directory with a readable" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_an_existing_out_is_refused_before_the_run_is_read(tmp_path, capsys):
    workdir = tmp_path / "run"
    workdir.mkdir()
    config = {"workdir": str(workdir), "extra": {"model": "yolov2-tiny-voc", "image_size": 64}}
    (workdir / "config.json").write_text(json.dumps(config))
    (tmp_path / "out.cfg").write_text("mine")
    assert main(["export", str(workdir), str(tmp_path / "out.weights")]) == 2
    assert "out.cfg not to exist (--force replaces it)" in capsys.readouterr().err
    assert (tmp_path / "out.cfg").read_text() == "mine"
