"""Partial darknet ``.weights`` files: darknet's ``partial`` command and ``load_weights_upto``.

The expected bytes are built from a port of darknet's float counts
(``load_convolutional_weights``: ``n`` biases, three more ``n`` with batch norm,
``c/groups·n·size²`` weights) and its ``save_weights_upto`` header (``0, 2, 0``,
``seen`` as a ``size_t``, 0 after ``load_network(..., clear=1)``), not from the
writer under test.
"""

import logging
import os

import jax
import numpy as np
import pytest

from jaxheads import darknet
from jaxheads import layers as L
from jaxheads.cli import main
from jaxheads.darknet.commands import partial

NET = "[net]\nheight={h}\nwidth={w}\nchannels={c}\n"
CONV = "[convolutional]\nbatch_normalize={bn}\nfilters={n}\nsize={k}\npad=1\nactivation=leaky\n"
# Layers 0..4: conv 4, maxpool, conv 6 (no batch norm), conv 5, then a connected head.
SMALL = (
    NET.format(h=8, w=8, c=3)
    + CONV.format(bn=1, n=4, k=3)
    + "[maxpool]\nsize=2\nstride=2\n"
    + CONV.format(bn=0, n=6, k=1)
    + CONV.format(bn=1, n=5, k=3)
    + "[connected]\noutput=7\nactivation=linear\n"
)


def darknet_counts(layers):
    """Floats per layer as darknet's loaders read them, from (type, c, n, k, bn, inputs)."""
    out = []
    for kind, c, n, k, bn, inputs in layers:
        if kind == "convolutional":
            out.append(n + 3 * n * bn + c * n * k * k)
        elif kind == "connected":
            out.append(n + inputs * n + 3 * n * bn)
        else:
            out.append(0)
    return out


SMALL_COUNTS = darknet_counts(
    [
        ("convolutional", 3, 4, 3, 1, 0),
        ("maxpool", 0, 0, 0, 0, 0),
        ("convolutional", 4, 6, 1, 0, 0),
        ("convolutional", 6, 5, 3, 1, 0),
        ("connected", 0, 7, 0, 0, 4 * 4 * 5),
    ]
)


def header(seen, major=0, minor=2, revision=0):
    return np.array([major, minor, revision], "<i4").tobytes() + np.array([seen], "<u8").tobytes()


def _random_statistics(net, seed=0):
    """Batch-norm state with positive variances unlike the init's ones, so mixing shows."""
    rng = np.random.default_rng(seed)
    state = jax.tree.map(
        lambda a: np.asarray(rng.uniform(0.5, 2.0, a.shape), np.float32), net.state
    )
    return darknet.DarknetNet(net.model, net.params, state, seen=net.seen)


def assert_node_equal(net, ref, name):
    """One graph node's params and state are bitwise the same in two nets."""
    for tree, want in ((net.params, ref.params), (net.state, ref.state)):
        got, expected = tree.get(name, {}), want.get(name, {})
        assert jax.tree.structure(got) == jax.tree.structure(expected)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture
def small(tmp_path):
    cfg = tmp_path / "small.cfg"
    cfg.write_text(SMALL)
    net = _random_statistics(darknet.load(cfg, seed=3))
    net = darknet.DarknetNet(net.model, net.params, net.state, seen=2**33 + 17)
    full = tmp_path / "full.weights"
    net.save_weights(full)
    return cfg, full, net


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 99])
def test_partial_writes_darknets_bytes(small, tmp_path, n, capsys):
    cfg, full, _ = small
    data = full.read_bytes()
    assert data[:20] == header(2**33 + 17)
    assert len(data) == 20 + 4 * sum(SMALL_COUNTS)
    out = tmp_path / "part.weights"
    assert main(["darknet", "partial", str(cfg), str(full), str(out), str(n)]) == 0
    kept = sum(SMALL_COUNTS[:n])
    assert out.read_bytes() == header(0) + data[20 : 20 + 4 * kept]
    assert f"{kept} floats" in capsys.readouterr().out


def test_partial_of_a_partial_file_and_of_an_old_header(small, tmp_path):
    """Darknet's partial reads any file load_weights_upto reads: a partial one, an int32 seen."""
    cfg, full, _ = small
    body = full.read_bytes()[20:]
    old = tmp_path / "old.weights"
    old.write_bytes(np.array([0, 1, 0, 5], "<i4").tobytes() + body[: 4 * sum(SMALL_COUNTS[:4])])
    out = tmp_path / "out.weights"
    partial(cfg, old, out, 3)
    assert out.read_bytes() == header(0) + body[: 4 * sum(SMALL_COUNTS[:3])]


@pytest.mark.parametrize("n,count", [(1, 2), (2, 2), (3, 3), (4, 4), (5, 5)])
def test_partial_file_loads_into_the_first_layers(small, tmp_path, n, count, caplog):
    """Layers before the first one the file misses come from it, bitwise; the rest are the
    init's. ``count`` is darknet's N up to weightless layers (layer 1 is a maxpool)."""
    cfg, full, net = small
    out = tmp_path / "part.weights"
    partial(cfg, full, out, n)
    with caplog.at_level(logging.INFO, logger="jaxheads.darknet"):
        loaded = darknet.load(cfg, out, seed=11, partial=True)
    fresh = darknet.load(cfg, seed=11)
    assert loaded.layers_from_file == count and loaded.seen == 0
    assert f"{count} of 5 darknet layers from the file" in caplog.text
    for record in net.layers:
        assert_node_equal(loaded, net if record.index < count else fresh, record.name)


def test_a_file_of_the_first_layers_must_be_asked_for_by_name(small, tmp_path):
    """Without ``partial=True`` a file must fill the model; a bare header never loads."""
    cfg, full, _ = small
    out = tmp_path / "part.weights"
    partial(cfg, full, out, 3)
    with pytest.raises(ValueError, match=rf"to hold {sum(SMALL_COUNTS)} floats.*got"):
        darknet.load(cfg, out)
    bare = tmp_path / "bare.weights"
    partial(cfg, full, bare, 0)
    assert bare.stat().st_size == 20
    with pytest.raises(ValueError, match=rf"to hold {sum(SMALL_COUNTS)} floats.*got 0 floats"):
        darknet.load(cfg, bare)
    with pytest.raises(ValueError, match="at least the first weighted layer.*none after"):
        darknet.load(cfg, bare, partial=True)


def test_full_file_counts_every_layer(small):
    cfg, full, net = small
    loaded = darknet.load(cfg, full)
    assert loaded.layers_from_file == 5 and loaded.seen == net.seen


def test_darknet19_448_backbone_into_yolov2_voc(tmp_path):
    """``partial darknet19_448 ... 23`` then ``load("yolov2-voc", ...)``: YOLOv2's recipe."""
    classifier = _random_statistics(darknet.load("darknet19_448", seed=1), seed=2)
    assert classifier.layers[23].type == "convolutional" and len(classifier.layers) == 26
    full, backbone = tmp_path / "darknet19_448.weights", tmp_path / "darknet19_448.conv.23"
    classifier.save_weights(full)
    assert main(["darknet", "partial", "darknet19_448", str(full), str(backbone), "23"]) == 0
    detector = darknet.load("yolov2-voc", backbone, image_size=64, seed=5, partial=True)
    assert detector.layers_from_file == 23
    backbone_names = [r.name for r in detector.layers if r.index < 23]
    assert backbone_names == [r.name for r in classifier.layers if r.index < 23]
    for name in backbone_names:
        assert_node_equal(detector, classifier, name)
    # The rest is the init's (checked leaf by leaf on small cfgs above): layer 23 is YOLOv2's
    # 3x3x1024 convolution, not darknet19_448's 1000 1x1 filters, with darknet's init statistics.
    rest = detector.params["23_convolutional"]
    assert rest["conv2d"]["kernel"].shape == (3, 3, 1024, 1024)
    np.testing.assert_array_equal(
        np.asarray(detector.state["23_convolutional"]["batch_normalization"]["var"]),
        np.ones(1024, np.float32),
    )


def test_a_file_for_another_cfg_is_refused_naming_the_layer(tmp_path):
    """yolov2-tiny-voc's first layers read as yolov2-voc's: layer 0 has 16 filters, not 32, so
    its kernel lands in the rolling variance; nothing is returned."""
    tiny = _random_statistics(darknet.load("yolov2-tiny-voc", image_size=64, seed=1))
    full, part = tmp_path / "tiny.weights", tmp_path / "tiny.conv.13"
    tiny.save_weights(full)
    partial("yolov2-tiny-voc", full, part, 13)
    with pytest.raises(
        ValueError,
        match=r"to fit layer 0 \[convolutional\] \(kernel \(3, 3, 3, 32\), batch norm \(32\)\)"
        r": a rolling variance >= 0.*negative or non-finite.*another cfg",
    ):
        darknet.load("yolov2-voc", part, image_size=64, partial=True)


def test_a_file_ending_inside_a_layer_is_refused_naming_it(small, tmp_path):
    cfg, full, _ = small
    data = full.read_bytes()
    cut = tmp_path / "cut.weights"
    inside = sum(SMALL_COUNTS[:3]) + 10  # 10 floats into layer 3
    cut.write_bytes(data[: 20 + 4 * inside])
    with pytest.raises(
        ValueError,
        match=r"end at a layer boundary.*layer 3 \[convolutional\] \(kernel \(3, 3, 6, 5\), "
        rf"batch norm \(5\)\) needs {SMALL_COUNTS[3]} floats.*ends 10 floats into layer 3",
    ):
        darknet.load(cfg, cut, partial=True)
    longer = tmp_path / "longer.weights"
    longer.write_bytes(data + b"\0" * 12)
    with pytest.raises(ValueError, match=r"3 left over after the last layer"):
        darknet.load(cfg, longer, partial=True)
    # The strict reader wants every layer.
    part = tmp_path / "part.weights"
    part.write_bytes(data[: 20 + 4 * SMALL_COUNTS[0]])
    model = darknet.from_cfg(cfg)
    params, state = model.init()
    with pytest.raises(ValueError, match=rf"to hold {sum(SMALL_COUNTS)} floats.*got"):
        darknet.load_weights(part, model.layers, params, state)


@pytest.mark.parametrize("major,minor", [(7, 2), (2**30, 2), (0, 3), (0, 5000), (1000, 2), (-1, 2)])
def test_unknown_header_versions_are_refused(small, tmp_path, major, minor):
    cfg, full, _ = small
    body = full.read_bytes()[20:]
    path = tmp_path / "odd.weights"
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    seen = np.array([0], "<u8" if wide else "<i4").tobytes()
    path.write_bytes(np.array([major, minor, 0], "<i4").tobytes() + seen + body)
    with pytest.raises(ValueError, match=rf"darknet header.*got major={major} minor={minor}"):
        darknet.load(cfg, path)


def test_partial_refuses_bad_arguments_and_writes_nothing(small, tmp_path, capsys):
    cfg, full, _ = small
    out = tmp_path / "out.weights"
    assert main(["darknet", "partial", str(cfg), str(full), str(out), "-1"]) == 2
    assert "N: a layer count >= 0" in capsys.readouterr().err
    cut = tmp_path / "cut.weights"
    cut.write_bytes(full.read_bytes()[:32])
    assert main(["darknet", "partial", str(cfg), str(cut), str(out), "2"]) == 2
    assert "end at a layer boundary" in capsys.readouterr().err
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["cut.weights", "full.weights", "small.cfg"]


@pytest.mark.parametrize("name", ["darknet19", "darknet19_448", "extraction", "tiny"])
def test_classification_cfgs_build(name):
    """The classifiers darknet ships end in [avgpool] and [softmax]: a 1000-way distribution."""
    model = darknet.from_cfg(name)
    out, _, _ = L.abstract_init(model.layer, model.input_shape)
    assert out == (None, 1, 1, 1000) and model.head is None
    assert [r.type for r in model.layers[-2:]] == ["avgpool", "softmax"]


@pytest.mark.parametrize(
    "name",
    [
        "tiny",
        pytest.param("darknet19", marks=pytest.mark.slow),
        pytest.param("extraction", marks=pytest.mark.slow),
    ],
)
def test_classification_cfgs_load_and_run(name, tmp_path):
    """Weights round-trip through a file and the output sums to one per image."""
    net = darknet.load(name, image_size=32, seed=0)
    path = tmp_path / "w.weights"
    net.save_weights(path)
    again = darknet.load(name, path, image_size=32)
    assert again.layers_from_file == len(net.layers)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    y = np.asarray(again(x))
    assert y.shape == (2, 1, 1, 1000)
    np.testing.assert_allclose(y.sum(axis=(1, 2, 3)), 1.0, rtol=1e-5)
    for record in net.layers:
        assert_node_equal(again, net, record.name)


def test_cost_section_is_the_identity_at_inference(tmp_path):
    cfg = tmp_path / "c.cfg"
    cfg.write_text(NET.format(h=4, w=4, c=2) + "[avgpool]\n[softmax]\ngroups=1\n[cost]\ntype=sse\n")
    net = darknet.load(cfg)
    x = np.random.default_rng(1).random((1, 4, 4, 2), dtype=np.float32)
    mean = x.mean(axis=(1, 2))
    want = np.exp(mean) / np.exp(mean).sum()
    np.testing.assert_allclose(np.asarray(net(x))[:, 0, 0], want, rtol=1e-6)
    assert [r.type for r in net.layers] == ["avgpool", "softmax", "cost"]
