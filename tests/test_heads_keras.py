"""Heads against Keras 3 layers holding the same weights (Keras's JAX backend)."""

import contextlib
import functools
import math

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from numpy_init import numpy_init as _init

from jaxheads import heads, ops
from jaxheads import layers as L

S = 3  # the grid side of the YOLOv1 heads here
ANCHORS = ((1.0, 1.0), (2.0, 1.5))


@contextlib.contextmanager
def _keras_numerics():
    """Keras relies on NumPy-style broadcasting, which these tests otherwise forbid."""
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        yield


def _copy_from_keras(model, params, state, keras_layers):
    """Copies weights of Keras layers into the nodes of ``model`` in order (skipping empties)."""
    params, state = dict(params), dict(state)
    weighted = [n for n in model.nodes if n.name in params]
    with_weights = [k for k in keras_layers if k.get_weights()]
    for node, klayer in zip(weighted, with_weights, strict=True):
        w = [jnp.asarray(v) for v in klayer.get_weights()]
        if node.layer.kind == "BatchNormalization":
            params[node.name] = {"scale": w[0], "bias": w[1]}
            state[node.name] = {"mean": w[2], "var": w[3]}
        else:
            params[node.name] = dict(zip(["kernel", "bias"], w, strict=False))
    return params, state


def _randomize(keras_model, rng):
    """NumPy-random weights and batch-norm statistics for every Keras layer.

    The Keras layers are built with zero initialisers (cheap to compile), so
    every weight is set here.
    """
    for layer in keras_model.layers:
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            c = weights[0].shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, c),
                    rng.normal(size=c),
                    rng.normal(size=c),
                    rng.uniform(0.5, 2.0, c),
                ]
            )
        elif weights:
            kernel = weights[0]
            fan_in = math.prod(kernel.shape[:-1])
            layer.set_weights(
                [
                    rng.normal(0.0, 1.0 / math.sqrt(fan_in), kernel.shape),
                    *[rng.normal(size=w.shape) for w in weights[1:]],
                ]
            )


def _max_rel_err(ours, theirs):
    return float(np.max(np.abs(np.asarray(ours) - theirs)) / np.max(np.abs(theirs)))


def _yolov1_keras(kind):
    kl, out = keras.layers, 2 * 5 + 3
    dense = functools.partial(kl.Dense, kernel_initializer="zeros")
    body = {
        "fc": [
            kl.Flatten(),
            dense(16),
            kl.LeakyReLU(negative_slope=0.1),
            kl.Dropout(0.5),
            dense(S * S * out),
            kl.Reshape((S, S, out)),
        ],
        "percell": [dense(16), kl.LeakyReLU(negative_slope=0.1), kl.Dropout(0.5), dense(out)],
        "gap": [kl.GlobalAveragePooling2D(), dense(S * S * out), kl.Reshape((S, S, out))],
    }[kind]
    return keras.Sequential([keras.Input((S, S, 8)), *body])


@pytest.mark.parametrize(
    "kind,make",
    [
        ("fc", lambda: heads.yolov1_fc(side=S, num_classes=3, hidden=16)),
        ("percell", lambda: heads.yolov1_percell(side=S, num_classes=3, hidden=16)),
        ("gap", lambda: heads.gap(side=S, num_classes=3)),
    ],
)
def test_yolov1_heads_match_keras(kind, make):
    rng = np.random.default_rng(0)
    with _keras_numerics():
        km = _yolov1_keras(kind)
        _randomize(km, rng)
    head = make()
    shape, params, state = _init(head.layer, (None, S, S, 8))
    assert shape == tuple(km.output_shape)
    params, state = _copy_from_keras(head.layer, params, state, km.layers)
    assert L.count(params) == km.count_params()
    x = rng.normal(size=(4, S, S, 8)).astype(np.float32)
    ours, _ = head.layer.apply(params, state, jnp.asarray(x))
    with _keras_numerics():
        theirs = np.asarray(km(x, training=False))
    assert _max_rel_err(ours, theirs) <= 1e-5


def _yolov2_keras(coarse, fine, *, width, pc, out):
    """The passthrough head as a Keras functional model, space-to-depth by Reshape/Permute.

    Returns the model and its layers by our node names, so the same Keras layers
    can be rewired around a different reorg.
    """
    kl = keras.layers
    conv = functools.partial(kl.Conv2D, kernel_initializer="zeros")
    named = {}

    def block(x, prefix, suffix, filters, size):
        for name, layer in [
            (f"{prefix}conv{suffix}", conv(filters, size, padding="same", use_bias=False)),
            (f"{prefix}bn{suffix}", kl.BatchNormalization()),
            (f"{prefix}leaky{suffix}", kl.LeakyReLU(negative_slope=0.1)),
        ]:
            named[name] = layer
            x = layer(x)
        return x

    c_in, f_in = keras.Input(coarse[1:]), keras.Input(fine[1:])
    x = block(block(c_in, "", "1", width, 3), "", "2", width, 3)
    p = block(f_in, "pass_", "", pc, 1)
    h, w = coarse[1:3]
    # TensorFlow's space_to_depth: channel (dy·2 + dx)·C + c of cell (i, j) holds
    # input (2i + dy, 2j + dx, c).
    s2d = kl.Reshape((h, 2, w, 2 * pc))(p)
    s2d = kl.Permute((1, 3, 2, 4))(s2d)
    s2d = kl.Reshape((h, w, 4 * pc))(s2d)
    y = block(kl.Concatenate()([s2d, x]), "", "3", width, 3)
    named["output"] = conv(out, 1)
    model = keras.Model([c_in, f_in], named["output"](y))
    return model, named, keras.Model(c_in, x), keras.Model(f_in, p)


def _copy_named(params, state, named):
    params, state = dict(params), dict(state)
    for name, klayer in named.items():
        w = [jnp.asarray(v) for v in klayer.get_weights()]
        if isinstance(klayer, keras.layers.BatchNormalization):
            params[name] = {"scale": w[0], "bias": w[1]}
            state[name] = {"mean": w[2], "var": w[3]}
        elif w:
            params[name] = dict(zip(["kernel", "bias"], w, strict=False))
    return params, state


def test_yolov2_passthrough_reorg_choice_against_keras():
    rng = np.random.default_rng(1)
    coarse, fine = (None, 2, 3, 6), (None, 4, 6, 5)
    width, pc, out = 8, 4, len(ANCHORS) * (5 + 3)
    x = [
        rng.normal(size=(3, *coarse[1:])).astype(np.float32),
        rng.normal(size=(3, *fine[1:])).astype(np.float32),
    ]
    with _keras_numerics():
        km, named, k_coarse, k_fine = _yolov2_keras(coarse, fine, width=width, pc=pc, out=out)
        _randomize(km, rng)
        theirs = np.asarray(km(x, training=False))
        fine_features = np.asarray(k_fine(x[1], training=False))
        coarse_features = np.asarray(k_coarse(x[0], training=False))

    results = {}
    for reorg in heads.REORGS:
        head = heads.yolov2(
            anchors=ANCHORS,
            num_classes=3,
            width=width,
            passthrough=True,
            passthrough_channels=pc,
            reorg=reorg,
        )
        shape, params, state = _init(head.layer, (coarse, fine))
        assert shape == tuple(km.output_shape)
        params, state = _copy_named(params, state, named)
        assert L.count(params) + L.count(state) == km.count_params()
        results[reorg], _ = head.layer.apply(params, state, [jnp.asarray(a) for a in x])

    assert _max_rel_err(results["space_to_depth"], theirs) <= 1e-5
    # Darknet's reorg is a different permutation: the same weights give another output ...
    assert _max_rel_err(results["darknet"], theirs) > 1e-2
    # ... which is Keras' convolutions around jaxheads.ops.darknet_reorg by hand.
    route = np.concatenate(
        [np.asarray(ops.darknet_reorg(jnp.asarray(fine_features))), coarse_features], axis=-1
    )
    with _keras_numerics():
        t_in = keras.Input((2, 3, 4 * pc + width))
        t = t_in
        for name in ("conv3", "bn3", "leaky3", "output"):
            t = named[name](t)
        by_hand = np.asarray(keras.Model(t_in, t)(route, training=False))
    assert _max_rel_err(results["darknet"], by_hand) <= 1e-5
