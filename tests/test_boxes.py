"""Property tests for `jaxheads.boxes`: format round trips and IoU invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxheads import boxes as B

# jit compile times make per-example deadlines meaningless; shapes are kept to a
# few sizes so that compiled kernels are reused across examples.
SETTINGS = settings(max_examples=50, deadline=None)
LIMIT = 1000.0
EPS32 = float(np.finfo(np.float32).eps)

coord = st.floats(-LIMIT, LIMIT, allow_nan=False, width=32)
size = st.floats(0.015625, LIMIT, allow_nan=False, width=32)  # 2**-6: exact in float32


@st.composite
def positive_boxes(draw):
    """One xyxy box of positive area, float32 [4]."""
    x0, y0, w, h = draw(coord), draw(coord), draw(size), draw(size)
    return np.array([x0, y0, x0 + w, y0 + h], np.float32)


any_box = st.lists(coord, min_size=4, max_size=4).map(lambda v: np.array(v, np.float32))


def _atol(*arrays) -> float:
    """A few float32 ulps of the largest coordinate: the error of one add and one halving."""
    return 8 * EPS32 * (1 + max(float(np.abs(a).max()) for a in arrays))


# ---------------------------------------------------------------- conversions


@SETTINGS
@given(box=any_box)
def test_xyxy_cxcywh_round_trip(box):
    back = np.asarray(B.cxcywh_to_xyxy(B.xyxy_to_cxcywh(box)))
    np.testing.assert_allclose(back, box, rtol=0, atol=_atol(box))


@SETTINGS
@given(box=any_box)
def test_xyxy_xywh_round_trip(box):
    back = np.asarray(B.xywh_to_xyxy(B.xyxy_to_xywh(box)))
    np.testing.assert_allclose(back, box, rtol=0, atol=_atol(box))


@SETTINGS
@given(cx=coord, cy=coord, w=size, h=size)
def test_cxcywh_xywh_round_trip_through_xyxy(cx, cy, w, h):
    cxcywh = np.array([cx, cy, w, h], np.float32)
    xywh = np.asarray(B.xyxy_to_xywh(B.cxcywh_to_xyxy(cxcywh)))
    np.testing.assert_allclose(xywh, [cx - w / 2, cy - h / 2, w, h], rtol=0, atol=_atol(cxcywh))
    back = np.asarray(B.xyxy_to_cxcywh(B.xywh_to_xyxy(xywh)))
    np.testing.assert_allclose(back, cxcywh, rtol=0, atol=_atol(cxcywh))


def test_conversions_closed_form_and_batched():
    xyxy = jnp.array([[[0.0, 0.0, 4.0, 2.0], [1.0, 2.0, 3.0, 6.0]]])  # [1, 2, 4]
    np.testing.assert_array_equal(
        B.xyxy_to_cxcywh(xyxy), [[[2.0, 1.0, 4.0, 2.0], [2.0, 4.0, 2.0, 4.0]]]
    )
    np.testing.assert_array_equal(
        B.xyxy_to_xywh(xyxy), [[[0.0, 0.0, 4.0, 2.0], [1.0, 2.0, 2.0, 4.0]]]
    )
    np.testing.assert_array_equal(B.box_area(xyxy), [[8.0, 8.0]])


# ---------------------------------------------------------------- iou


@SETTINGS
@given(a=any_box, b=any_box)
def test_iou_symmetric_bounded_finite(a, b):
    ab, ba = float(B.iou(a, b)), float(B.iou(b, a))
    assert ab == ba
    assert np.isfinite(ab)
    assert 0.0 <= ab <= 1.0


@SETTINGS
@given(a=positive_boxes())
def test_iou_self_is_one(a):
    np.testing.assert_allclose(float(B.iou(a, a)), 1.0, rtol=1e-6)


@SETTINGS
@given(
    a=positive_boxes(), b=positive_boxes(), gap=st.floats(0, 10, width=32), vertical=st.booleans()
)
def test_iou_disjoint_is_zero(a, b, gap, vertical):
    # Move b to the right of (or below) a; touching edges (gap 0) share no area either.
    axis = 1 if vertical else 0
    width = b[axis + 2] - b[axis]
    b = b.copy()
    b[axis] = a[axis + 2] + np.float32(gap)
    b[axis + 2] = b[axis] + width
    assert float(B.iou(a, b)) == 0.0


@SETTINGS
@given(a=any_box, b=any_box, squash=st.sampled_from(["x", "y", "both"]))
def test_iou_degenerate_or_inverted_is_zero(a, b, squash):
    # Make a zero-width / inverted box: its max corner at or before its min corner.
    a = a.copy()
    if squash in ("x", "both"):
        a[2] = a[0] - abs(a[2] - a[0])
    if squash in ("y", "both"):
        a[3] = a[1] - abs(a[3] - a[1])
    for value in (B.iou(a, b), B.iou(b, a), B.iou(a, a)):
        assert float(value) == 0.0
    assert float(B.box_area(a)) == 0.0


def test_iou_closed_form():
    a = jnp.array([0.0, 0.0, 2.0, 2.0])
    b = jnp.array([1.0, 1.0, 3.0, 3.0])
    np.testing.assert_allclose(float(B.iou(a, b)), 1.0 / 7.0, rtol=1e-6)
    np.testing.assert_allclose(
        float(B.cxcywh_iou(B.xyxy_to_cxcywh(a), B.xyxy_to_cxcywh(b))), 1 / 7, rtol=1e-6
    )


def test_iou_gradient_finite_for_degenerate_boxes():
    def loss(a, b):
        return B.iou(a, b).sum()

    a = jnp.array([[0.0, 0.0, 0.0, 0.0], [2.0, 2.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    b = jnp.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0]])
    grads = jax.grad(loss, argnums=(0, 1))(a, b)
    assert all(bool(jnp.isfinite(g).all()) for g in grads)


@SETTINGS
@given(
    a=st.lists(any_box, min_size=1, max_size=4),
    b=st.lists(any_box, min_size=1, max_size=4),
)
def test_pairwise_iou_equals_elementwise_loop(a, b):
    a, b = np.stack(a), np.stack(b)
    got = np.asarray(B.pairwise_iou(a, b))
    assert got.shape == (len(a), len(b))
    want = np.array([[float(B.iou(x, y)) for y in b] for x in a], np.float32)
    np.testing.assert_array_equal(got, want)


@SETTINGS
@given(w0=size, h0=size, w1=size, h1=size, cx=coord, cy=coord)
def test_shape_iou_equals_iou_of_centre_aligned_boxes(w0, h0, w1, h1, cx, cy):
    wh0, wh1 = np.array([w0, h0], np.float32), np.array([w1, h1], np.float32)
    got = float(B.shape_iou(wh0, wh1))
    # Centred at the origin halving is exact, so the boxes have exactly these sizes.
    at_origin = float(B.iou(np.r_[-wh0 / 2, wh0 / 2], np.r_[-wh1 / 2, wh1 / 2]))
    np.testing.assert_allclose(got, at_origin, rtol=1e-6)
    # Anywhere else the xyxy corners round, by a few ulps of the centre coordinate.
    centre = np.array([cx, cy, cx, cy], np.float32)
    moved = float(B.iou(centre + np.r_[-wh0 / 2, wh0 / 2], centre + np.r_[-wh1 / 2, wh1 / 2]))
    tol = 4 * EPS32 * (abs(cx) + abs(cy) + 1) / float(min(w0, h0, w1, h1))
    np.testing.assert_allclose(got, moved, rtol=1e-5, atol=tol)


def test_shape_iou_degenerate_is_zero_not_nan():
    wh = jnp.array([[0.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(B.shape_iou(wh, wh), [0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(B.shape_iou(wh, jnp.ones((4, 2))), [0.0, 0.0, 0.0, 0.0])


def test_jit_and_vmap_agree(maybe_jit):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 10, (3, 5, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(0.1, 5, (3, 5, 2)).astype(np.float32)], -1)
    got = maybe_jit(jax.vmap(B.pairwise_iou))(boxes, boxes)
    want = np.stack([np.asarray(B.pairwise_iou(b, b)) for b in boxes])
    np.testing.assert_allclose(got, want, rtol=1e-6)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "fn", [B.xyxy_to_cxcywh, B.cxcywh_to_xyxy, B.xyxy_to_xywh, B.xywh_to_xyxy, B.box_area]
)
def test_conversion_errors(fn):
    name = fn.__name__
    with pytest.raises(ValueError, match=rf"{name}: expected boxes\.shape\[-1\] == 4"):
        fn(jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match=rf"{name}: expected boxes with a floating dtype"):
        fn(jnp.zeros((2, 4), jnp.int32))
    with pytest.raises(ValueError, match=rf"{name}: expected boxes of rank >= 1"):
        fn(jnp.float32(1.0))


def test_iou_errors():
    good = jnp.zeros((2, 4))
    with pytest.raises(ValueError, match=r"iou: expected b\.shape\[-1\] == 4"):
        B.iou(good, jnp.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"iou: expected a with a floating dtype, got dtype int"):
        B.iou(np.zeros((2, 4), np.int64), good)
    with pytest.raises(ValueError, match=r"pairwise_iou: expected a of rank >= 2"):
        B.pairwise_iou(jnp.zeros(4), good)
    with pytest.raises(ValueError, match=r"pairwise_iou: expected b\.shape\[-1\] == 4"):
        B.pairwise_iou(good, jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"shape_iou: expected wh_b\.shape\[-1\] == 2"):
        B.shape_iou(jnp.ones((3, 2)), jnp.ones((3, 4)))


def test_iou_of_float16_pixel_boxes_does_not_overflow():
    # Areas of 300-pixel boxes (90,000) overflow float16 (max 65,504); their IoU does not.
    a = np.array([0.0, 0.0, 300.0, 300.0])
    b = np.array([0.0, 0.0, 300.0, 290.0])
    got = B.iou(jnp.asarray(a, jnp.float16), jnp.asarray(b, jnp.float16))
    assert got.dtype == jnp.float16
    np.testing.assert_allclose(float(got), 290 / 300, rtol=1e-3)
    from jaxheads.nms import nms

    boxes = jnp.asarray(np.stack([a, b, a + 400]), jnp.float16)
    keep, valid = nms(
        boxes, jnp.asarray([0.9, 0.8, 0.7], jnp.float16), iou_threshold=0.5, max_outputs=3
    )
    assert keep[valid].tolist() == [0, 2]  # the near duplicate is suppressed
