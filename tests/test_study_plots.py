"""The study plots' label placement: no two labels of the accuracy-against-size scatter overlap."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxheads.study.plots import spread_labels

HEIGHT = 9.2

boxes_strategy = st.lists(
    st.tuples(
        st.floats(0, 300, allow_nan=False),  # left
        st.floats(10, 150, allow_nan=False),  # width
        st.floats(0, 200, allow_nan=False),  # y
    ).map(lambda t: (t[0], t[0] + t[1], t[2])),
    max_size=24,
)


@settings(max_examples=200, deadline=None)
@given(boxes_strategy)
def test_no_two_labels_overlap_after_spreading(boxes):
    ys = spread_labels(boxes, HEIGHT)
    assert len(ys) == len(boxes)
    for (a, b), (ya, yb) in zip(
        itertools.combinations(boxes, 2), itertools.combinations(ys, 2), strict=True
    ):
        if a[1] > b[0] and b[1] > a[0]:  # spans overlap
            assert abs(ya - yb) >= HEIGHT - 1e-6, (a, b, ya, yb)


@given(boxes_strategy)
def test_labels_move_apart_symmetrically_and_only_when_they_share_a_span(boxes):
    ys = spread_labels(boxes, HEIGHT)
    # pushes are symmetric: the labels' mean height is kept (a cluster stays centred)
    assert abs(sum(ys) - sum(b[2] for b in boxes)) < 1e-6 * (1 + len(boxes) * 200)
    for i, (box, y) in enumerate(zip(boxes, ys, strict=True)):
        if all(o[1] <= box[0] or box[1] <= o[0] for j, o in enumerate(boxes) if j != i):
            assert y == box[2]  # shares its span with no other label: stays where it was


def test_a_cluster_is_spread_around_its_centre():
    # three labels at one height: one stays, the others go one label height down and up
    ys = spread_labels([(0, 40, 50), (0, 40, 50), (0, 40, 50)], HEIGHT)
    assert sorted(ys) == pytest.approx([50 - HEIGHT, 50, 50 + HEIGHT], abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(boxes_strategy.filter(lambda b: len(b) * HEIGHT <= 200))
def test_labels_stay_inside_bounds_and_still_apart(boxes):
    # the axes from 0 to 200 points: room for every label even if all share one span
    ys = spread_labels(boxes, HEIGHT, bounds=(0, 200))
    assert all(0 <= y <= 200 for y in ys)
    for (a, b), (ya, yb) in zip(
        itertools.combinations(boxes, 2), itertools.combinations(ys, 2), strict=True
    ):
        if a[1] > b[0] and b[1] > a[0]:
            assert abs(ya - yb) >= HEIGHT - 1e-6, (a, b, ya, yb)
