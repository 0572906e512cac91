"""YOLOv2's centre parameterisations: darknet's bounded σ offset and the paper's unbounded one.

`jaxheads.decode.UNBOUNDED` is what the YOLOv2 paper's Table 2 started from (an offset
from the cell centre in prior widths); a head built with it decodes and trains with it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxheads.decode import BOUNDED, UNBOUNDED, decode_yolov2
from jaxheads.heads import YOLOV2, yolov2
from jaxheads.losses import region_loss


def _scene(num_classes=3):
    anchors = np.array([[1.0, 1.5], [2.0, 1.0], [3.0, 3.0]], np.float32)
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(2, 4, 4, 3 * (5 + num_classes))).astype(np.float32)
    boxes = np.array(
        [
            [[0.1, 0.1, 0.4, 0.5], [0.5, 0.3, 0.9, 0.9], [0, 0, 0, 0]],
            [[0.2, 0.6, 0.5, 0.95], [0, 0, 0, 0], [0, 0, 0, 0]],
        ],
        np.float32,
    )
    labels = np.array([[0, 2, 0], [1, 0, 0]], np.int32)
    mask = np.array([[True, True, False], [True, False, False]])
    return anchors, pred, boxes, labels, mask


def _unbounded_head(anchors):
    return yolov2(anchors=anchors, num_classes=3, width=8, centre=UNBOUNDED)


def test_a_head_carries_its_centre_into_the_decoder_and_the_loss():
    anchors, pred, boxes, labels, mask = _scene()
    head = _unbounded_head(anchors)
    assert head.family.darknet_section is None  # darknet's [region] is bounded
    assert head.family.loss_kwargs(head)["centre"] is UNBOUNDED
    np.testing.assert_array_equal(
        head.decode(jnp.asarray(pred))[0],
        decode_yolov2(jnp.asarray(pred), anchors, num_classes=3, centre=UNBOUNDED)[0],
    )
    got = head.family.loss(jnp.asarray(pred), boxes, labels, mask, seen=0, **head.loss_kwargs())
    want = region_loss(jnp.asarray(pred), boxes, labels, mask, anchors, seen=0, centre=UNBOUNDED)
    np.testing.assert_array_equal(got, want)
    bounded = region_loss(jnp.asarray(pred), boxes, labels, mask, anchors, seen=0)
    assert not np.allclose(got, bounded)  # the centre term differs
    assert yolov2(anchors=anchors, num_classes=3, width=8).family is YOLOV2
    assert yolov2(anchors=anchors, num_classes=3, width=8, centre=BOUNDED).family is YOLOV2


@pytest.mark.parametrize("jit", [False, True], ids=["nojit", "jit"])
def test_unbounded_matches_bounded_at_the_cell_centre(jit):
    anchors, pred, boxes, labels, mask = _scene()
    p = pred.reshape(2, 4, 4, 3, 8)
    p[..., :2] = 0  # tx = ty = 0: σ(0) = 0.5 and the unbounded offset 0 are both the centre
    pred = p.reshape(pred.shape)
    decode = _unbounded_head(anchors).decode
    if jit:
        decode = jax.jit(decode)
    got = decode(jnp.asarray(pred))
    want = decode_yolov2(jnp.asarray(pred), anchors, num_classes=3)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
    # Past the warm-up and without the coordinate term both losses see the same boxes.
    loss = region_loss
    if jit:
        loss = jax.jit(loss, static_argnames=("coord_scale", "centre"))
    kwargs = dict(seen=20000, coord_scale=0.0)
    ours = loss(jnp.asarray(pred), boxes, labels, mask, anchors, centre=UNBOUNDED, **kwargs)
    theirs = region_loss(jnp.asarray(pred), boxes, labels, mask, anchors, **kwargs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_unbounded_targets_decode_to_the_truth():
    anchors, pred, boxes, labels, mask = _scene()
    truth = boxes[0, 1]  # centre (0.7, 0.6), size (0.4, 0.6): cell (2, 2), anchor 2
    cx, cy, w, h = (truth[0] + truth[2]) / 2, (truth[1] + truth[3]) / 2, *(truth[2:] - truth[:2])
    pw, ph = anchors[2]
    p = np.zeros((1, 4, 4, 3, 8), np.float32)
    p[0, 2, 2, 2, :4] = [
        (cx * 4 - 2 - 0.5) / pw,
        (cy * 4 - 2 - 0.5) / ph,
        np.log(w * 4 / pw),
        np.log(h * 4 / ph),
    ]
    pred = jnp.asarray(p.reshape(1, 4, 4, 24))
    decoded, _ = _unbounded_head(anchors).decode(pred)
    np.testing.assert_allclose(decoded[0, (2 * 4 + 2) * 3 + 2], truth, atol=1e-6)

    def loss(x, **kwargs):
        return region_loss(x, *args[1:], centre=UNBOUNDED, **kwargs)

    args = (pred, boxes[:1, 1:2], labels[:1, 1:2], mask[:1, 1:2], anchors)
    with_coords = loss(pred, seen=20000)
    without = loss(pred, seen=20000, coord_scale=0.0)
    np.testing.assert_allclose(with_coords, without, atol=1e-6)  # the coordinates are exact
    grad = jax.grad(lambda x: loss(x, seen=0).sum())(pred)
    assert bool(jnp.all(jnp.isfinite(grad)))
