"""A head's family is an object the head carries: code outside `jaxheads.heads` asks it."""

import ast
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads import layers
from jaxheads.decode import decode_yolov1
from jaxheads.heads import YOLOV1, YOLOV2, Head, HeadFamily
from jaxheads.heads.base import check_feature_map, guarded
from jaxheads.models import detector, small_backbone
from jaxheads.train.detection import (
    build_detector,
    detection_loss,
    detection_task,
    make_dataset,
    make_predict,
)

PACKAGE = Path(__file__).resolve().parents[1] / "jaxheads"
FAMILY_NAMES = {"yolov1", "yolov2"}


def family_tests(source: str) -> list[int]:
    """Lines that test a head family by its name: ``head.kind == ...``, ``kind != "yolov1"``."""

    def names_a_kind(node) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "kind") or (
            isinstance(node, ast.Name) and node.id == "kind"
        )

    def of_a_head(node) -> bool:
        return isinstance(node, ast.Attribute) and "head" in ast.unparse(node.value)

    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        literals = {
            c.value
            for o in operands
            for c in ast.walk(o)
            if isinstance(c, ast.Constant) and isinstance(c.value, str)
        }
        if any(names_a_kind(o) and of_a_head(o) for o in operands) or (
            literals & FAMILY_NAMES and any(names_a_kind(o) for o in operands)
        ):
            found.append(node.lineno)
    return found


def test_the_checker_finds_what_it_looks_for():
    assert family_tests('if head.kind == "yolov1": pass') == [1]
    assert family_tests('x = model.head.kind in ("yolov2",)') == [1]
    assert family_tests('kind = 3\nif kind != "yolov2": pass') == [2]
    assert family_tests('if layer.kind == "Conv2D": pass') == []
    assert family_tests('if head.family.darknet_section == "region": pass') == []


def test_no_family_is_tested_by_name_outside_heads():
    found = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if "heads" not in path.relative_to(PACKAGE).parts[:1]
        and (lines := family_tests(path.read_text()))
    }
    assert not found


def test_the_library_heads_carry_their_family():
    for name, family in [("small-yolov1-fc", YOLOV1), ("small-yolov2", YOLOV2)]:
        det, _ = build_detector(name, image_size=32, num_classes=3)
        assert det.head.family is family and det.head.kind == family.name


# --- A family the library does not know, defined here, through the generic paths. -----------


def _squares(raw, boxes, labels, mask, *, seen, scale):
    """A toy loss: ``scale`` × the mean square of the raw prediction, per image."""
    del boxes, labels, mask, seen
    return scale * jnp.mean(jnp.square(raw), axis=(1, 2, 3))


TOY = HeadFamily("toy", None, lambda head: {"scale": 0.5}, _squares)


def toy_detector(image_size=32, num_classes=3):
    backbone = small_backbone(width=4)
    side = image_size // backbone.stride
    layer = guarded(
        layers.Conv2D(5 + num_classes, 1, name="toy_head"),
        lambda shape: check_feature_map("toy_head", shape, side),
    )
    decode = functools.partial(decode_yolov1, num_boxes=1, num_classes=num_classes, sqrt=True)
    head = Head(layer, decode, TOY, 1, num_classes, side=side)
    det = detector(backbone, head, image_size=image_size, name="toy")
    return det, jax.jit(lambda key: det.layer.init(key, det.input_shape)[1:])


def test_a_head_of_a_new_family_computes_its_loss_and_decodes():
    det, init = toy_detector()
    train = make_dataset("shapes", "train", image_size=32, num_examples=8)
    task = detection_task(det, init, train, batch_size=4, seed=0, augment=False)
    params, state = init(jax.random.key(0))

    # The training loss is the family's, and it has gradients for the head.
    batch = next(iter(task.batches(0, 0, 1)))
    loss_fn = detection_loss(det, global_batch=4)
    step = jnp.zeros((), jnp.int32)
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, state, batch, jax.random.key(1), None, step
    )
    raw, _ = det.layer.apply(params, state, jnp.asarray(batch["image"]), train=True)
    np.testing.assert_allclose(loss, 0.5 * jnp.mean(jnp.square(raw)), rtol=1e-6)
    assert np.any(np.asarray(grads["head"]["kernel"]) != 0)
    assert task.loss_fn is not None

    # Decoded through the generic prediction path.
    out = make_predict(det)(params, state, jnp.asarray(batch["image"]))
    assert all(leaf.shape[0] == 4 for leaf in jax.tree.leaves(out))
