"""`jaxheads.interop.from_yad2k` on a file in YAD2K's layout, against the Keras 3 build.

The network is YOLOv2 (``yolov2.cfg``'s 31 layers, passthrough included) at a
sixteenth of the widths and 64×64, built in Keras 3 the way YAD2K's ``yad2k.py``
builds it (``padding="same"`` convolutions, Keras' batch norm, LeakyReLU 0.1,
TensorFlow's ``space_to_depth`` on the passthrough); its weights are written
with h5py in the Keras 2 HDF5 layout of YAD2K's ``yolo.h5``. A second test converts a
darknet cfg and ``.weights`` the way ``yad2k.py`` does (``yad2k_h5.py``: its layer
names, order and weight layout) and compares the import with the darknet build.
"""

import json

import h5py
import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from yad2k_h5 import convert_like_yad2k_py, reduced_yolov2_cfg

from jaxheads import darknet
from jaxheads import layers as L
from jaxheads.interop import from_yad2k

# yolov2.cfg's convolutions: (filters, size); a sixteenth of the widths.
CONVS = [
    (32, 3),
    (64, 3),
    (128, 3),
    (64, 1),
    (128, 3),
    (256, 3),
    (128, 1),
    (256, 3),
    (512, 3),
    (256, 1),
    (512, 3),
    (256, 1),
    (512, 3),
    (1024, 3),
    (512, 1),
    (1024, 3),
    (512, 1),
    (1024, 3),
    (1024, 3),
    (1024, 3),
    (64, 1),
    (1024, 3),
]
POOL_AFTER = {1, 2, 5, 8, 13}  # 1-based conv numbers followed by a 2x2 maxpool
CLASSES, SIZE = 3, 64


def _space_to_depth_x2(x):
    h, w, c = x.shape[1:]
    x = keras.layers.Reshape((h // 2, 2, w // 2, 2, c))(x)
    x = keras.layers.Permute((1, 3, 2, 4, 5))(x)
    return keras.layers.Reshape((h // 2, w // 2, 4 * c))(x)


def keras_yolov2():
    """YAD2K's Keras YOLOv2 (as yad2k.py builds it from yolov2.cfg), Keras 2 layer names."""
    inp = keras.Input((SIZE, SIZE, 3))
    x, taps = inp, {}

    def conv(x, i, filters, size):
        x = keras.layers.Conv2D(filters, size, padding="same", use_bias=False, name=f"conv2d_{i}")(
            x
        )
        x = keras.layers.BatchNormalization(name=f"batch_normalization_{i}")(x)
        return keras.layers.LeakyReLU(negative_slope=0.1, name=f"leaky_re_lu_{i}")(x)

    pools = 0
    for i, (filters, size) in enumerate(CONVS[:20], start=1):
        x = conv(x, i, max(filters // 16, 2), size)
        taps[i] = x
        if i in POOL_AFTER:
            pools += 1
            x = keras.layers.MaxPooling2D(2, padding="same", name=f"max_pooling2d_{pools}")(x)
    passthrough = conv(taps[13], 21, CONVS[20][0] // 16, 1)
    x = keras.layers.Concatenate(name="concatenate_1")([_space_to_depth_x2(passthrough), x])
    x = conv(x, 22, CONVS[21][0] // 16, 3)
    out = keras.layers.Conv2D(5 * (5 + CLASSES), 1, name="conv2d_23")(x)
    return keras.Model(inp, out)


def _randomize(model, rng):
    for layer in model.layers:
        values = [
            rng.uniform(0.5, 2.0, w.shape)
            if w.name == "moving_variance"
            else rng.normal(0, 0.4, w.shape)
            for w in layer.weights
        ]
        if values:
            layer.set_weights([v.astype(np.float32) for v in values])


def write_yad2k_h5(model, path, *, drop=(), replace=None):
    """The Keras 2 HDF5 layout of YAD2K's yolo.h5: model_config + model_weights groups."""
    replace = replace or {}
    names = ["input_1"] + [
        layer.name
        for layer in model.layers[1:]
        if not layer.name.startswith(("reshape", "permute"))
    ]
    names.insert(names.index("concatenate_1"), "space_to_depth_x2")
    names = [n for n in names if n not in drop]
    config = {
        "class_name": "Model",
        "config": {
            "name": "model_1",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "name": "input_1",
                    "config": {"batch_input_shape": [None, SIZE, SIZE, 3], "name": "input_1"},
                },
                {
                    "class_name": "BatchNormalization",
                    "name": "batch_normalization_1",
                    "config": {"epsilon": 0.001, "name": "batch_normalization_1"},
                },
            ],
        },
    }
    by_name = {layer.name: layer for layer in model.layers}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.1.5"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = np.array([n.encode() for n in names])
        for name in names:
            g = group.create_group(name)
            layer = by_name.get(name)
            weights = (
                [] if layer is None else list(zip(layer.weights, layer.get_weights(), strict=True))
            )
            g.attrs["weight_names"] = np.array(
                [f"{name}/{w.name}:0".encode() for w, _ in weights], dtype="S"
            )
            for w, value in weights:
                g.create_dataset(f"{name}/{w.name}:0", data=replace.get((name, w.name), value))


@pytest.fixture(scope="module")
def yolov2():
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        model = keras_yolov2()
        _randomize(model, np.random.default_rng(0))
        return model


@pytest.mark.slow  # Keras builds and runs a 70-layer functional model op by op
def test_yad2k_file_equals_the_keras_build(yolov2, tmp_path):
    model = yolov2
    x = np.random.default_rng(1).random((2, SIZE, SIZE, 3), dtype=np.float32)
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        theirs = np.asarray(model(x, training=False))
    path = tmp_path / "yolo.h5"
    write_yad2k_h5(model, path)
    net = from_yad2k(path)
    assert net.input_shape == (None, SIZE, SIZE, 3)
    assert net.head.kind == "yolov2" and net.head.num_classes == CLASSES
    assert [n.layer.kind for n in net.layer.nodes if n.name == "27_reorg"] == ["SpaceToDepth"]
    assert L.count(net.params) + L.count(net.state) == model.count_params()
    ours = np.asarray(net(jnp.asarray(x)))
    assert ours.shape == theirs.shape == (2, 2, 2, 5 * (5 + CLASSES))
    err = np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs))
    assert err <= 1e-4, err
    # The triple alone computes the same (un-jitted: float32 rounding may differ).
    y, _ = net.layer.apply(net.params, net.state, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), ours, rtol=1e-5, atol=1e-4)


def test_missing_groups_are_refused(yolov2, tmp_path):
    model = yolov2
    path = tmp_path / "no_s2d.h5"
    write_yad2k_h5(model, path, drop=("space_to_depth_x2",))
    with pytest.raises(
        ValueError,
        match=r"23 conv2d_N.*got 23 conv2d, 22 batch_normalization, "
        r"space_to_depth_x2 absent",
    ):
        from_yad2k(path)
    path = tmp_path / "short.h5"
    write_yad2k_h5(model, path, drop=("conv2d_7", "batch_normalization_7"))
    with pytest.raises(ValueError, match=r"got 22 conv2d, 21 batch_normalization"):
        from_yad2k(path)


def test_a_mismatched_weight_names_the_layer_and_both_shapes(yolov2, tmp_path):
    model = yolov2
    path = tmp_path / "bad.h5"
    bad = np.zeros((3, 3, 5, 8), np.float32)  # conv2d_5 reads 4 channels, not 5
    write_yad2k_h5(model, path, replace={("conv2d_5", "kernel"): bad})
    with pytest.raises(
        ValueError,
        match=r"conv2d/kernel of shape \(3, 3, 4, 8\) for YOLOv2's "
        r"6_convolutional params \(from group 'conv2d_5'.*got shape \(3, 3, 5, 8\)",
    ):
        from_yad2k(path)
    bn = tmp_path / "bad_bn.h5"
    write_yad2k_h5(
        model, bn, replace={("batch_normalization_3", "moving_variance"): np.ones(3, np.float32)}
    )
    with pytest.raises(ValueError, match=r"var of shape \(8,\).*got shape \(3,\)"):
        from_yad2k(bn)


def test_not_an_hdf5_file(tmp_path):
    path = tmp_path / "x.h5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"from_yad2k: expected .*x\.h5: an HDF5 file"):
        from_yad2k(path)
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_group("something")
    with pytest.raises(ValueError, match=r"Keras' HDF5 layout.*got groups \['something'\]"):
        from_yad2k(tmp_path / "empty.h5")


def _with_yad2k_changes(net):
    """The darknet graph with the two changes YAD2K's Keras model makes: TensorFlow's
    ``space_to_depth`` for ``[reorg]`` and Keras' batch-norm epsilon 1e-3 for darknet's."""
    nodes = []
    for node in net.layer.nodes:
        layer = node.layer
        if layer.kind == "DarknetReorg":
            layer = L.SpaceToDepth(2)
        elif layer.kind == "Sequential":
            parts = [
                L.BatchNormalization(epsilon=1e-3)
                if n.layer.kind == "BatchNormalization"
                else n.layer
                for n in layer.nodes
            ]
            layer = L.serial(*parts, name=layer.name)
        nodes.append(L.Node(node.name, layer, node.inputs))
    return L.graph(nodes)


def test_the_file_yad2k_py_writes_imports_to_the_darknet_network(tmp_path):
    cfg = tmp_path / "yolov2-small.cfg"
    with open(darknet.cfg_path("yolov2")) as f:
        cfg.write_text(reduced_yolov2_cfg(f.read(), divide=16, size=SIZE, classes=CLASSES))
    rng = np.random.default_rng(2)
    random = darknet.load(cfg, seed=1)
    params = jax.tree.map(lambda a: rng.normal(0, 0.4, a.shape).astype(np.float32), random.params)
    state = jax.tree.map(lambda a: rng.uniform(0.5, 2.0, a.shape).astype(np.float32), random.state)
    weights = tmp_path / "small.weights"
    darknet.save_weights(weights, random.layers, params, state)
    # As yolov2.weights: version 0.1, whose ``seen`` is an int32 (yad2k.py reads 16 bytes).
    body = weights.read_bytes()[20:]
    weights.write_bytes(np.array([0, 1, 0, 0], "<i4").tobytes() + body)
    reference = darknet.load(cfg, weights)

    h5 = tmp_path / "yolo.h5"
    names = convert_like_yad2k_py(cfg, weights, h5)
    assert names[:5] == [
        "input_1",
        "conv2d_1",
        "batch_normalization_1",
        "leaky_re_lu_1",
        "max_pooling2d_1",
    ]
    assert names[-5:] == [
        "concatenate_1",
        "conv2d_22",
        "batch_normalization_22",
        "leaky_re_lu_22",
        "conv2d_23",
    ]
    # Keras 2 lists a layer by its depth from the output: the passthrough's layers sit
    # among the main chain's, not after it.
    assert names.index("conv2d_21") < names.index("conv2d_20")
    net = from_yad2k(h5)
    assert net.input_shape == reference.input_shape == (None, SIZE, SIZE, 3)
    jax.tree.map(np.testing.assert_array_equal, net.params, reference.params)
    jax.tree.map(np.testing.assert_array_equal, net.state, reference.state)

    x = jnp.asarray(rng.random((2, SIZE, SIZE, 3), dtype=np.float32))
    # Both un-jitted: the same ops in the same order give the same bits.
    ours, _ = net.layer.apply(net.params, net.state, x)
    want, _ = _with_yad2k_changes(reference).apply(reference.params, reference.state, x)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(want))
    ours = np.asarray(net(x))
    # The file is not darknet's network: YAD2K's passthrough and epsilon change the output.
    assert np.max(np.abs(ours - np.asarray(reference(x)))) > 1e-2
