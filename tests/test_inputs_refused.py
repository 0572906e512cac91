"""Inputs that used to hang, eat memory or pass without a word are refused by name.

Each test here failed before its fix: a FIFO given as an image blocked ``jaxheads
detect`` for ever (and one inside a folder was skipped silently), an unwritable
``--json`` was found only after every image, ``--image-size 7`` ran a 1x1 grid, a cfg
of 10⁸ filters allocated without limit, and ``Detector.detect(None)`` gave a bare
``TypeError``.
"""

import os

import numpy as np
import pytest
from PIL import Image
from tiny_darknet import REGION_CFG, tiny_darknet

from jaxheads import Detector, darknet
from jaxheads.cli import main
from jaxheads.predict import read_image
from jaxheads.predict.images import ImageError, expand_image_paths

pytestmark = pytest.mark.timeout(120)  # a FIFO that is opened blocks: fail, do not hang


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("model")
    cfg, weights, _ = tiny_darknet(tmp, REGION_CFG, "tiny")
    return cfg, weights


def _image(path):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path)
    return path


def test_a_fifo_is_refused_by_name_not_opened(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match=r"pipe\.png: expected a regular image file, got a FIFO"):
        read_image(fifo)


def test_a_fifo_as_cfg_or_weights_is_refused_by_name(tmp_path, model):
    cfg, weights = model
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"pipe: a regular cfg file, got a FIFO"):
        darknet.load(fifo)
    with pytest.raises(ValueError, match=r"pipe: a regular \.weights file, got a FIFO"):
        darknet.load(cfg, fifo)
    with pytest.raises(ValueError, match=r"a regular \.weights file, got a directory"):
        darknet.load(cfg, tmp_path)


def test_a_fifo_in_a_folder_is_named_and_counted(tmp_path, capsys, model):
    cfg, weights = model
    folder = tmp_path / "images"
    folder.mkdir()
    _image(folder / "a.png")
    os.mkfifo(folder / "b.png")
    assert [os.path.basename(p) for p in expand_image_paths([folder])] == ["a.png", "b.png"]
    assert main(["detect", cfg, weights, str(folder), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "b.png: expected a regular image file, got a FIFO" in err
    assert "1 of 2 could not be read" in err


def test_an_unusable_json_path_is_refused_before_any_image_is_read(tmp_path, capsys, model):
    cfg, weights = model
    image = _image(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    out = tmp_path / "notes.txt" / "boxes.json"
    assert main(["detect", cfg, weights, str(image), "--json", str(out)]) == 2
    captured = capsys.readouterr()
    assert "expected --json in a directory that exists or can be made" in captured.err
    assert "notes.txt is a file" in captured.err
    assert "a.png" not in captured.out  # no image was processed
    # a folder that can be made is made, as --save's is
    made = tmp_path / "new" / "boxes.json"
    assert main(["detect", cfg, weights, str(image), "--json", str(made), "--quiet"]) == 0
    assert made.exists()


def test_an_input_size_off_the_models_stride_is_refused(model, capsys):
    cfg, weights = model
    with pytest.raises(ValueError, match=r"image_size a multiple of 4, the model's stride.*got 7"):
        Detector.from_darknet(cfg, weights, image_size=7)
    assert main(["detect", cfg, weights, "x.png", "--image-size", "7"]) == 2
    assert "a multiple of 4" in capsys.readouterr().err
    assert Detector.from_darknet(cfg, weights, image_size=32).input_size == (32, 32)


@pytest.mark.parametrize("bad", [None, np.float64(3.0), 5])
def test_detect_of_no_image_is_a_value_error(model, bad):
    cfg, weights = model
    detector = Detector.from_darknet(cfg, weights)
    with pytest.raises(ValueError, match="Detector.detect: expected an image .* or a list"):
        detector.detect(bad)


HUGE = """
[net]
width=32
height=32
channels=3

[convolutional]
filters=8
size=3
stride=1
pad=1
activation=leaky

[convolutional]
filters=100000000
size=3
stride=1
pad=1
activation=leaky
"""


def test_a_huge_cfg_is_refused_before_anything_is_allocated(tmp_path, capsys):
    cfg = tmp_path / "huge.cfg"
    cfg.write_text(HUGE)
    # 100,000,000 filters of 3x3x8 floats and their biases: 29.2 GB of parameters
    match = (
        r"at most 8,589,934,592 bytes of parameters.*up to layer 1 \[convolutional\] \(line 14\)"
    )
    with pytest.raises(ValueError, match=match):
        darknet.load(cfg)
    weights = tmp_path / "huge.weights"
    weights.write_bytes(np.zeros(5, "<i4").tobytes())
    with pytest.raises(ValueError, match=match):
        darknet.load(cfg, weights)
    # the limit is a setting: a small one refuses the small first layer's activations
    with pytest.raises(ValueError, match=r"1,000 bytes of activations.*layer 0 \[conv"):
        darknet.from_cfg(cfg, max_bytes=1000)
    assert main(["detect", str(cfg), "random", "x.png", "--max-model-bytes", "1000"]) == 2
    assert "1,000 bytes of activations" in capsys.readouterr().err


def test_an_image_past_pillows_own_limit_says_so(tmp_path, monkeypatch):
    path = _image(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 600 pixels > twice this
    with pytest.raises(ImageError, match=r"at most 200 pixels, Pillow's own limit"):
        read_image(path, max_pixels=10**9)
