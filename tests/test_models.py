"""Small detectors and the zoo: shapes, jit/vmap/grad, composition, losses, parameter counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compilations import compilations
from numpy_init import numpy_init as _init

from jaxheads import decode, heads, losses, zoo
from jaxheads import layers as L
from jaxheads.cli import main
from jaxheads.models import (
    SMALL_HEADS,
    Backbone,
    detector,
    small_anchors,
    small_backbone,
    small_detector,
)
from jaxheads.summary import summary

IMAGE, WIDTH, CLASSES = 32, 4, 2  # a 2×2 grid, a 4×4 fine tap: small enough for CPU tests
NAMES = list(SMALL_HEADS)


def _model(name):
    return small_detector(name, image_size=IMAGE, num_classes=CLASSES, width=WIDTH)


def _images(batch, seed=0):
    return jax.random.uniform(jax.random.key(seed), (batch, IMAGE, IMAGE, 3), jnp.float32)


def _expected(head):
    grid = IMAGE // 16
    per_cell = (
        head.num_boxes * (5 + CLASSES) if head.kind == "yolov2" else head.num_boxes * 5 + CLASSES
    )
    return (None, grid, grid, per_cell), grid * grid * head.num_boxes


@pytest.mark.parametrize("name", NAMES)
def test_small_model_init_matches_apply(name, maybe_jit):
    model = _model(name)
    out_shape, params, state = _init(model.layer, model.input_shape)
    expected, n = _expected(model.head)
    assert out_shape == expected
    apply = maybe_jit(model.layer.apply)
    y, new_state = apply(params, state, _images(2))
    assert (None, *y.shape[1:]) == out_shape and y.shape[0] == 2
    if hasattr(apply, "lower"):  # the jitted run: new values, no new compilation
        images = _images(2, seed=1)
        with compilations("apply") as compiled:
            apply(params, state, images)
        assert not compiled
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    boxes, scores = model.head.decode(y)
    assert boxes.shape == (2, n, 4) and scores.shape == (2, n, CLASSES)
    assert bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize("name", NAMES)
def test_small_model_jit_vmap_matches_eager_loop(name):
    model = _model(name)
    _, params, state = _init(model.layer, model.input_shape, seed=1)
    xs = jnp.stack([_images(2, seed=1), _images(2, seed=2)])

    def f(x):
        return model.layer.apply(params, state, x)[0]

    eager = np.stack([f(x) for x in xs])
    np.testing.assert_allclose(jax.jit(jax.vmap(f))(xs), eager, rtol=1e-5, atol=1e-5)


def _ground_truth():
    boxes = jnp.asarray([[[0.1, 0.1, 0.4, 0.5], [0.5, 0.6, 0.9, 0.9], [0.0, 0.0, 0.0, 0.0]]] * 2)
    labels = jnp.asarray([[0, 1, 0]] * 2, jnp.int32)
    mask = jnp.asarray([[True, True, False], [True, False, False]])
    return boxes, labels, mask


def _detection_loss(model, params, state, x, key):
    """The mean loss of the head's kind, configured by ``head.loss_kwargs()``."""
    y, new_state = model.layer.apply(params, state, x, train=True, key=key)
    gt = _ground_truth()
    if model.head.kind == "yolov1":
        per_image = losses.yolov1_loss(y, *gt, **model.head.loss_kwargs())
    else:
        per_image = losses.region_loss(y, *gt, seen=jnp.asarray(64), **model.head.loss_kwargs())
    return jnp.mean(per_image), new_state


@pytest.mark.parametrize("name", NAMES)
def test_small_model_trains_with_its_loss_without_recompiling(name):
    model = _model(name)
    _, params, state = _init(model.layer, model.input_shape)

    @jax.jit
    def step(p, x, key):
        (value, new_state), grad = jax.value_and_grad(
            lambda p: _detection_loss(model, p, state, x, key), has_aux=True
        )(p)
        return value, grad, new_state

    x = _images(2)
    value, grad, new_state = step(params, x, jax.random.key(3))
    assert bool(jnp.isfinite(value)) and float(value) > 0
    assert jax.tree.structure(grad) == jax.tree.structure(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grad))
    assert all(bool(jnp.any(g != 0)) for g in jax.tree.leaves(grad["backbone"]))
    # Training updates the batch-norm statistics, and hands them back.
    assert not np.allclose(
        new_state["backbone"]["stage1_1_bn"]["mean"], state["backbone"]["stage1_1_bn"]["mean"]
    )
    x, key = x + 1, jax.random.key(4)
    with compilations("step") as compiled:
        step(params, x, key)
    assert not compiled


@pytest.mark.parametrize("name", ["yolov1-fc", "yolov2-passthrough"])
def test_detector_is_backbone_then_head(name):
    model = _model(name)
    _, params, state = _init(model.layer, model.input_shape)
    x = _images(2)
    y, _ = model.layer.apply(params, state, x)
    backbone = small_backbone(width=WIDTH)
    (coarse, fine), _ = backbone.layer.apply(params["backbone"], state["backbone"], x)
    features = [coarse, fine] if model.head.passthrough else coarse
    by_hand, _ = model.head.layer.apply(params["head"], state.get("head", {}), features)
    np.testing.assert_array_equal(y, by_hand)


def test_small_backbone_shapes_and_fine_tap():
    backbone = small_backbone(width=4, stages=3, depth=2)
    assert isinstance(backbone, Backbone)
    assert (backbone.stride, backbone.channels, backbone.fine_channels) == (8, 32, 16)
    (coarse, fine), params, state = L.abstract_init(backbone.layer, (None, 32, 32, 3))
    assert coarse == (None, 4, 4, 32) and fine == (None, 8, 8, 16)
    # 3 stages of 2 conv-BN-leaky blocks and a pool, then 2 blocks on the coarse map.
    assert len(backbone.layer.nodes) == 3 * (2 * 3 + 1) + 2 * 3
    assert "stage3_2_bn" in params and "stage3_2_bn" in state
    assert backbone.layer.nodes[-1].name == "stage4_2_leaky"


def test_detector_rejects_mismatched_sizes():
    backbone = small_backbone(width=4)
    with pytest.raises(ValueError, match=r"detector: expected image_size == side·stride = 3·16"):
        detector(backbone, heads.yolov1_fc(side=3), image_size=32)
    with pytest.raises(ValueError, match=r"detector: expected image_size divisible by the"):
        detector(backbone, heads.yolov2(), image_size=40)
    with pytest.raises(ValueError, match=r"small_detector: expected head in \["):
        small_detector("yolov3")
    with pytest.raises(ValueError, match=r"small_detector: expected image_size divisible by 16"):
        small_detector("gap", image_size=100)


def test_small_detector_takes_the_heads_options():
    """An option of the head's builder reaches it; the sizes SMALL_HEADS sets are defaults."""
    key = jax.random.key(3)

    def head_params(det):
        return det.layer.init(key, det.input_shape)[1]["head"]

    base = head_params(_model("yolov1-fc"))
    # output_scale multiplies the output Dense's initial kernel, and nothing else
    scaled = head_params(
        small_detector(
            "yolov1-fc", image_size=IMAGE, num_classes=CLASSES, width=WIDTH, output_scale=0.01
        )
    )
    np.testing.assert_array_equal(scaled["dense_1"]["kernel"], base["dense_1"]["kernel"] * 0.01)
    np.testing.assert_array_equal(scaled["dense"]["kernel"], base["dense"]["kernel"])
    wide = small_detector("yolov1-fc", image_size=IMAGE, num_classes=CLASSES, hidden=32)
    assert head_params(wide)["dense"]["kernel"].shape[-1] == 32
    unbounded = small_detector(
        "yolov2", image_size=IMAGE, num_classes=CLASSES, centre=decode.UNBOUNDED, anchors=((1, 2),)
    )
    assert unbounded.head.anchors == ((1.0, 2.0),) and unbounded.head.family.darknet_section is None
    with pytest.raises(
        ValueError, match=r"head options of yolov1_fc among \[.*'dropout'.*\['dropuot'\]"
    ):
        small_detector("yolov1-fc", dropuot=0.0)
    with pytest.raises(ValueError, match=r"head options of yolov2 among .*\['passthrough'\]"):
        small_detector("yolov2", passthrough=True)  # a head of its own: yolov2-passthrough
    with pytest.raises(ValueError, match=r"yolov1_fc: expected output_scale a finite number > 0"):
        small_detector("yolov1-fc", output_scale=0.0)


def test_small_anchors_rescale_voc():
    np.testing.assert_allclose(small_anchors(13), heads.VOC_ANCHORS)
    np.testing.assert_allclose(np.asarray(small_anchors(6)) * 13 / 6, heads.VOC_ANCHORS)


# --- the zoo ---------------------------------------------------------------------------------

SMALL_ZOO = {
    "small-yolov1-fc": 13,
    "small-yolov1-percell": 13,
    "small-yolov1-local": 13,
    "small-gap": 13,
    "small-yolov2": 40,
    "small-yolov2-passthrough": 40,
}
PAPER_HEADS = {
    "yolov1-fc-head": 211_547_582,
    "yolov1-percell-head": 4_321_310,
    "yolov1-local-head": 134_059_198,
    "gap-head": 1_506_750,
    "yolov2-head": 30_844_285,
}


def test_zoo_registers_every_model():
    assert set(SMALL_ZOO) | set(PAPER_HEADS) <= set(zoo.names())


@pytest.mark.parametrize("name,channels", SMALL_ZOO.items())
def test_zoo_small_models_default_to_96px_and_3_classes(name, channels):
    layer, shape = zoo.build(name)
    assert shape == (None, 96, 96, 3)
    out, _, _ = L.abstract_init(layer, shape)
    assert out == (None, 6, 6, channels)


@pytest.mark.parametrize("name,total", PAPER_HEADS.items())
def test_zoo_paper_heads_total_params(name, total):
    layer, shape = zoo.build(name)
    assert f"Total params: {total:,} " in summary(layer, shape)


def test_zoo_image_size_is_the_image_side(capsys):
    assert zoo.build("yolov1-percell-head", image_size=448)[1] == (None, 7, 7, 1024)
    assert zoo.build("yolov2-head", image_size=608)[1] == (
        (None, 19, 19, 1024),
        (None, 38, 38, 512),
    )
    assert zoo.build("small-yolov2", image_size=128, num_classes=20)[1] == (None, 128, 128, 3)
    with pytest.raises(ValueError, match="zoo.build: expected an image_size that is a positive"):
        zoo.build("gap-head", image_size=100)
    assert main(["summary", "yolov2-head"]) == 0
    assert "Total params: 30,844,285" in capsys.readouterr().out
