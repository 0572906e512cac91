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


# Rows of close values: pairs a hair apart in mAP50 and in size, the smallest pressed
# against the axes' floor (the heads-digits study's rows, rounded).
CLOSE_ROWS = [
    ("yolov1_fc", 0.003, 2.9e6),
    ("yolov1_fc@pre64", 0.005, 2.9e6),
    ("yolov1_percell", 0.15, 4.6e5),
    ("yolov1_percell@pre64", 0.337, 4.6e5),
    ("yolov1_local", 0.028, 3.8e6),
    ("yolov1_local@pre64", 0.069, 3.8e6),
    ("gap", 0.008, 5.8e5),
    ("gap@pre64", 0.02, 5.8e5),
    ("yolov2", 0.487, 9.9e5),
    ("yolov2@pre64", 0.735, 9.9e5),
    ("yolov2_passthrough", 0.469, 1.06e6),
    ("yolov2_passthrough@pre64", 0.760, 1.06e6),
]


def _drawn_texts(ax) -> list:
    """The texts matplotlib draws for ``ax``: title, axis labels, the ticks' labels within
    its limits, and the texts placed in it."""
    texts = [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
    for axis in (ax.xaxis, ax.yaxis):
        low, high = sorted(axis.get_view_interval())
        for tick in axis.get_major_ticks() + axis.get_minor_ticks():
            if low <= tick.get_loc() <= high:
                texts.append(tick.label1)
    return [t for t in texts if t.get_visible() and t.get_text()]


@pytest.mark.parametrize("copies", [1, 2])
def test_no_two_texts_of_the_overview_overlap(copies):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from jaxheads.study.plots import overview_figure

    heads = [
        {"head": f"{name}{'#' * k}", "mAP50": m, "mAP50_std": 0.004, "params": p * (1 + k / 50)}
        for k in range(copies)
        for name, m, p in CLOSE_ROWS
    ]
    fig = overview_figure(plt, heads)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        texts = [t for ax in fig.axes for t in _drawn_texts(ax)]
        named = {t.get_text() for t in texts}
        assert {h["head"] for h in heads} <= named  # every row named on the bars and points
        # the text alone: an annotation's extent would include its leader line
        boxes = [(t.get_text(), Text.get_window_extent(t, renderer)) for t in texts]
        for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
            assert not box_a.overlaps(box_b), (a, box_a.extents, b, box_b.extents)
    finally:
        plt.close(fig)
