"""The packaged YOLO cfgs: darknet's parameter counts, summaries, the zoo, real round trips.

Big models are only ever built abstractly (`jaxheads.layers.abstract_init`);
real forward passes use yolov2-tiny at 64×64 and a small custom [detection] cfg.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compilations import compilations

from jaxheads import darknet, zoo
from jaxheads.cli import main
from jaxheads.layers import abstract_init, count

# --- darknet's own count, computed independently of jaxheads.darknet -----------------------


def _sections(text):
    """A minimal reading of darknet's read_cfg: all whitespace dropped, first key wins."""
    sections = []
    for raw in text.splitlines():
        line = "".join(raw.split())
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            sections.append((line[1:-1], {}))
        else:
            key, value = line.split("=", 1)
            sections[-1][1].setdefault(key, value)
    return sections


def darknet_floats(text):
    """Floats darknet's save_weights writes, and the last layer's (h, w, c) / outputs.

    Per layer, from the make_*_layer functions: a convolution stores n biases,
    3n batch-norm vectors if batch_normalize, and c/groups·n·size² weights; a
    local layer out_h·out_w·n biases and c·n·size²·out_h·out_w weights; a
    connected layer outputs + inputs·outputs (+ 3·outputs with batch norm).
    """
    sections = _sections(text)
    net = sections[0][1]
    h, w, c = int(net["height"]), int(net["width"]), int(net["channels"])
    shapes, total = [], 0
    for index, (kind, o) in enumerate(sections[1:]):

        def get(key, default=None, o=o):
            return int(o.get(key, default))

        if kind == "convolutional":
            n, size, stride, groups = (
                get("filters"),
                get("size"),
                get("stride", 1),
                get("groups", 1),
            )
            pad = size // 2 if get("pad", 0) else get("padding", 0)
            total += n + 3 * n * get("batch_normalize", 0) + c // groups * n * size * size
            h, w, c = (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1, n
        elif kind == "maxpool":
            stride = get("stride", 1)
            size = get("size", stride)
            pad = get("padding", size - 1)
            h, w = (h + pad - size) // stride + 1, (w + pad - size) // stride + 1
        elif kind == "local":
            n, size, stride, pad = get("filters"), get("size"), get("stride", 1), get("pad", 0)
            h = (h - (1 if pad else size)) // stride + 1
            w = (w - (1 if pad else size)) // stride + 1
            total += h * w * n + c * n * size * size * h * w
            c = n
        elif kind == "connected":
            out = get("output")
            total += out + h * w * c * out + 3 * out * get("batch_normalize", 0)
            h, w, c = 1, 1, out
        elif kind == "route":
            picked = [shapes[i if i >= 0 else index + i] for i in map(int, o["layers"].split(","))]
            h, w, c = picked[0][0], picked[0][1], sum(p[2] for p in picked)
        elif kind == "reorg":
            s = get("stride")
            h, w, c = h // s, w // s, c * s * s
        elif kind == "crop":
            h, w = get("crop_height"), get("crop_width")
        elif kind == "avgpool":
            h, w = 1, 1
        elif kind in ("region", "detection"):
            break
        shapes.append((h, w, c))
    return total, (h, w, c)


KNOWN = {
    "yolov2-voc": 50_676_061,
    "yolov1": 197_328_243,
    "yolov1-paper": 271_703_550,
    "yolov2": 50_983_561,
}


@pytest.mark.parametrize("name", darknet.CFG_NAMES)
def test_param_count_is_darknets_float_count(name):
    with open(darknet.cfg_path(name)) as f:
        expected, (h, w, c) = darknet_floats(f.read())
    model = darknet.from_cfg(name)
    out_shape, params, state = abstract_init(model.layer, model.input_shape)
    assert count(params) + count(state) == expected
    assert darknet.float_count(model.layers, params, state) == expected
    assert out_shape[1:] in ((h, w, c), (c,))
    if name in KNOWN:
        assert expected == KNOWN[name]


def test_cli_summary_of_yolov2_coco(capsys):
    assert main(["summary", "yolov2", "--image-size", "608", "--num-classes", "80"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "Total params: 50,983,561 (194.49 MB)" in lines
    assert "Trainable params: 50,962,889 (194.41 MB)" in lines
    assert "Non-trainable params: 20,672 (80.75 KB)" in lines
    last_row = lines[lines.index("Total params: 50,983,561 (194.49 MB)") - 2]
    assert last_row.startswith("30_convolutional (Conv2D)") and "(None, 19, 19, 425)" in last_row


def test_cli_summary_of_a_cfg_file(tmp_path, capsys):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(
        "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nbatch_normalize=1\n"
        "filters=4\nsize=3\npad=1\nactivation=leaky\n"
    )
    assert main(["summary", str(cfg), "--expand-nested"]) == 0
    out = capsys.readouterr().out
    assert "0_convolutional/batch_normalization (BatchNormalization)" in out
    assert "Total params: 124 " in out  # 3*3*3*4 + 4*4
    assert main(["summary", str(tmp_path / "missing.cfg")]) == 2
    assert "missing.cfg" in capsys.readouterr().err


def test_zoo_registrations_honour_overrides():
    names = zoo.names()
    for name in (
        "yolov1",
        "yolov1-paper",
        "yolov1-tiny",
        "fast-yolo",
        "yolov2",
        "yolov2-voc",
        "yolov2-tiny",
        "yolov2-tiny-voc",
    ):
        assert name in names
    layer, shape = zoo.build("fast-yolo", image_size=64, num_classes=3)
    assert shape == (None, 64, 64, 3)
    assert abstract_init(layer, shape)[0] == (None, 7 * 7 * (2 * 5 + 3))
    layer, shape = zoo.build("yolov2-tiny-voc", image_size=96, num_classes=1)
    assert abstract_init(layer, shape)[0] == (None, 3, 3, 5 * (5 + 1))


# --- real forward passes --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """yolov2-tiny at 64x64 with darknet-style random weights, saved and loaded back."""
    net = darknet.load("yolov2-tiny", image_size=64, seed=3)
    path = tmp_path_factory.mktemp("tiny") / "yolov2-tiny.weights"
    net.save_weights(path)
    return net, path


def test_real_cfg_round_trip(tiny, tmp_path):
    net, path = tiny
    loaded = darknet.load("yolov2-tiny", path, image_size=64)
    assert jax.tree.structure(loaded.params) == jax.tree.structure(net.params)
    for a, b in zip(
        jax.tree.leaves((net.params, net.state)),
        jax.tree.leaves((loaded.params, loaded.state)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    again = tmp_path / "again.weights"
    loaded.save_weights(again)
    assert again.read_bytes() == path.read_bytes()
    x = jnp.asarray(np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32))
    same_model = darknet.DarknetNet(net.model, loaded.params, loaded.state)
    with compilations("forward") as compiled:
        np.testing.assert_array_equal(np.asarray(same_model(x)), np.asarray(net(x)))
    assert len(compiled) <= 1  # a second params tree did not recompile
    with pytest.raises(ValueError, match=r"images of shape \(\*, 64, 64, 3\)"):
        net(jnp.zeros((1, 32, 32, 3)))


def test_region_detect_returns_padded_normalised_boxes(tiny):
    net, _ = tiny
    x = jnp.asarray(np.random.default_rng(1).random((2, 64, 64, 3), dtype=np.float32))
    det = net.detect(x, max_detections=50)
    assert det.boxes.shape == (2, 50, 4) and det.scores.shape == det.valid.shape == (2, 50)
    valid = np.asarray(det.valid)
    assert valid.any()
    boxes = np.asarray(det.boxes)[valid]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert np.all((centres >= 0) & (centres <= 1)) and np.all(boxes[:, 2:] >= boxes[:, :2])
    labels = np.asarray(det.labels)
    assert np.all((labels[valid] >= 0) & (labels[valid] < 80)) and np.all(labels[~valid] == -1)


DETECTION = """\
[net]
width=4
height=4
channels=1
[connected]
output=52
activation=linear
[detection]
classes=3
coords=4
num=2
side=2
sqrt=1
softmax=0
"""


def test_detection_decode_follows_darknets_output_layout(tmp_path):
    cfg = tmp_path / "v1.cfg"
    cfg.write_text(DETECTION)
    net = darknet.load(cfg, seed=5)
    x = jnp.asarray(np.random.default_rng(2).random((1, 4, 4, 1), dtype=np.float32))
    raw = np.asarray(net(x))[0]
    boxes, scores = (np.asarray(a)[0] for a in net.decode(net(x)))
    # get_detection_boxes in detection_layer.c, with w = h = 1.
    side, num, classes = 2, 2, 3
    for i in range(side * side):
        row, col = divmod(i, side)
        for n in range(num):
            index = i * num + n
            scale = raw[side * side * classes + index]
            b = raw[side * side * (classes + num) + index * 4 :][:4]
            cx, cy = (b[0] + col) / side, (b[1] + row) / side
            bw, bh = b[2] ** 2, b[3] ** 2
            np.testing.assert_allclose(
                boxes[index],
                [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2],
                rtol=1e-5,
                atol=1e-6,
            )
            np.testing.assert_allclose(
                scores[index], scale * raw[i * classes :][:classes], rtol=1e-5, atol=1e-6
            )
    det = net.detect(x, score_threshold=-1e9, max_detections=5)
    assert det.boxes.shape == (1, 5, 4) and bool(np.all(np.asarray(det.valid)))
