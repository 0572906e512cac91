"""Property tests: no input to the VOC and COCO loaders, the box utilities, NMS or a public
op's arguments may crash, hang or raise anything but the library's ValueError (or
FileNotFoundError for a missing file); what is accepted is well formed."""

import json
import math
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxheads import boxes as B
from jaxheads import layers as L
from jaxheads import ops
from jaxheads.data import COCODataset
from jaxheads.data.voc import VOC_CLASSES, parse_voc_xml
from jaxheads.nms import nms

# Fault injection and property tests are bounded: a hang is a failure, not a stuck CI.
pytestmark = pytest.mark.timeout(300)

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
OP_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numbers_as_text = st.one_of(
    st.integers(-5, 100).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e400", "0x10", "12px", "½", "１２"]),
    st.text(max_size=6),
)


@st.composite
def voc_documents(draw):
    """A VOC annotation with any field text, or any text at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=200))

    def field(tag, value):
        return "" if value is None else f"<{tag}>{escape(value)}</{tag}>"

    maybe = st.one_of(st.none(), numbers_as_text)
    parts = ["<annotation>"]
    if draw(st.booleans()):
        parts.append(
            "<size>" + field("width", draw(maybe)) + field("height", draw(maybe)) + "</size>"
        )
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.one_of(st.sampled_from(VOC_CLASSES), st.text(max_size=8), st.none()))
        box = "".join(field(t, draw(maybe)) for t in ("xmin", "ymin", "xmax", "ymax"))
        flag = draw(
            st.one_of(
                st.none(),
                st.sampled_from(["0", "1", "true", "false", "2", ""]),
                st.text(max_size=4),
            )
        )
        parts.append(
            "<object>"
            + field("name", name)
            + field("difficult", flag)
            + (f"<bndbox>{box}</bndbox>" if draw(st.booleans()) else "")
            + "</object>"
        )
    parts.append("</annotation>")
    return "".join(parts)


@SETTINGS
@given(document=voc_documents())
def test_voc_parser_reads_or_refuses_any_document(document):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.xml"
        path.write_text(document, encoding="utf-8", errors="surrogatepass")
        try:
            record = parse_voc_xml(path)
        except ValueError as error:
            assert "VOCDataset: expected" in str(error) and "a.xml" in str(error)
            return
    assert 1 <= record.width and 1 <= record.height
    assert np.all(np.isfinite(record.boxes))
    x0, y0, x1, y1 = record.boxes.T if len(record.boxes) else np.zeros((4, 0))
    assert np.all((0 <= x0) & (x0 < x1 + 1) & (x1 <= record.width))
    assert np.all((0 <= y0) & (y0 < y1 + 1) & (y1 <= record.height))
    assert record.difficult.dtype == bool and record.labels.max(initial=0) < len(VOC_CLASSES)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 50),
    st.integers(),
    st.text(max_size=8),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def _maybe(strategy):
    return st.one_of(strategy, strategy, strategy, json_values)


@st.composite
def coco_documents(draw):
    """A COCO json with any value in any field (mostly plausible ones)."""
    names = ["a.jpg", "b.jpg", "missing.jpg", "../a.jpg", "/etc/passwd", "", "sub/../a.jpg"]
    images = [
        {
            "id": draw(_maybe(st.integers(0, 4))),
            "file_name": draw(_maybe(st.sampled_from(names))),
            "width": draw(_maybe(st.integers(-1, 50))),
            "height": draw(_maybe(st.integers(-1, 50))),
        }
        for _ in range(draw(st.integers(0, 3)))
    ]
    categories = [
        {"id": draw(_maybe(st.integers(0, 3))), "name": draw(_maybe(st.text(max_size=4)))}
        for _ in range(draw(st.integers(0, 3)))
    ]
    coordinate = st.one_of(st.floats(-5, 60), st.sampled_from([math.nan, math.inf, -math.inf]))
    annotations = [
        {
            "image_id": draw(_maybe(st.integers(0, 4))),
            "category_id": draw(_maybe(st.integers(0, 3))),
            "bbox": draw(_maybe(st.lists(coordinate, min_size=3, max_size=5))),
            "iscrowd": draw(_maybe(st.sampled_from([0, 1, True, False, "0", "1", 0.0, 2]))),
        }
        for _ in range(draw(st.integers(0, 4)))
    ]
    document = {"images": images, "categories": categories, "annotations": annotations}
    for key in list(document):
        if draw(st.integers(0, 15)) == 0:
            document[key] = draw(json_values)
    return document


@SETTINGS
@given(document=coco_documents(), raw=st.one_of(st.none(), st.binary(max_size=64)))
def test_coco_loader_reads_or_refuses_any_document(document, raw):
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        for name in ("a.jpg", "b.jpg"):
            (images / name).write_bytes(b"")
        path = Path(tmp) / "instances.json"
        path.write_bytes(raw if raw is not None else json.dumps(document).encode())
        try:
            ds = COCODataset(path, images, image_size=8)
        except FileNotFoundError as error:
            assert "COCODataset: expected the image" in str(error)
            return
        except ValueError as error:
            assert "COCODataset: expected" in str(error) and "instances.json" in str(error)
            return
    assert len(set(ds.category_ids)) == len(ds.category_ids)
    for record in ds.records:
        assert record.file_name in ("a.jpg", "b.jpg")
        assert np.all(np.isfinite(record.boxes))
        assert np.all(record.boxes[:, :2] <= record.boxes[:, 2:])
        assert np.all((record.boxes >= 0) & (record.boxes <= [record.width, record.height] * 2))


box_arrays = st.one_of(
    st.tuples(st.sampled_from([0, 1, 3]), st.sampled_from([3, 4])).flatmap(
        lambda s: st.lists(
            st.floats(allow_nan=True, allow_infinity=True, width=32),
            min_size=s[0] * s[1],
            max_size=s[0] * s[1],
        ).map(lambda v, s=s: np.array(v, np.float32).reshape(s))
    ),
    st.sampled_from(
        [
            np.zeros((2, 4), np.int32),
            np.zeros((), np.float32),
            np.zeros((3,), np.float32),
            np.zeros((1, 2, 4), np.float16),
        ]
    ),
)


@OP_SETTINGS
@given(a=box_arrays, b=box_arrays)
def test_box_utilities_never_crash(a, b):
    for fn in (B.xyxy_to_cxcywh, B.cxcywh_to_xyxy, B.xyxy_to_xywh, B.xywh_to_xyxy, B.box_area):
        try:
            out = fn(a)
        except ValueError as error:
            assert "expected" in str(error)
        else:
            want = a.shape[:-1] if fn is B.box_area else a.shape
            assert out.shape == want
    for fn in (B.iou, B.pairwise_iou):
        try:
            out = np.asarray(fn(a, b))
        except ValueError:  # ours, or jax's refusal to promote ranks (the tests' strict mode)
            continue
        finite = np.isfinite(out)
        assert np.all((out[finite] >= 0) & (out[finite] <= 1 + 1e-6))


def _greedy_nms(boxes, scores, threshold, max_outputs):
    """Darknet's greedy rule, one pair at a time, for finite inputs."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    kept = []
    for i in order:
        if all(B.iou(boxes[i], boxes[k]) <= np.float32(threshold) for k in kept):
            kept.append(i)
    return kept[:max_outputs]


@OP_SETTINGS
@given(
    n=st.integers(0, 6),
    seed=st.integers(0, 2**16),
    threshold=st.one_of(st.floats(-1, 2), st.sampled_from([math.nan, math.inf, 0.0, 1.0])),
    max_outputs=st.integers(-1, 8),
    nan_rows=st.booleans(),
)
def test_nms_never_crashes_and_keeps_greedy_boxes(n, seed, threshold, max_outputs, nan_rows):
    rng = np.random.default_rng(seed)
    xy = rng.integers(0, 8, (n, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.integers(1, 6, (n, 2))], axis=1)
    scores = rng.permutation(n).astype(np.float32)
    if nan_rows and n:
        boxes[0, 0] = np.nan
    try:
        indices, valid = nms(
            jnp.asarray(boxes),
            jnp.asarray(scores),
            iou_threshold=threshold,
            max_outputs=max_outputs,
        )
    except ValueError as error:
        assert not (0 <= threshold <= 1) or max_outputs < 1, error
        return
    indices, valid = np.asarray(indices), np.asarray(valid)
    k = int(valid.sum())
    assert valid[:k].all() and not valid[k:].any()
    assert np.all((indices >= 0) & (indices < max(n, 1)))
    if not nan_rows:
        assert indices[:k].tolist() == _greedy_nms(boxes, scores, threshold, max_outputs)


int_args = st.one_of(
    st.integers(-2, 5),
    st.floats(-2, 5),
    st.none(),
    st.text(max_size=2),
    st.tuples(st.integers(-1, 4), st.integers(-1, 4)),
    st.tuples(st.floats(0, 3), st.integers(1, 3)),
)
paddings = st.one_of(
    st.sampled_from(["same", "valid", "SAME", "full", ""]),
    st.integers(-1, 3),
    st.floats(0, 2),
    st.just(((1, 0), (0, 1))),
)


@OP_SETTINGS
@given(
    pool=int_args,
    strides=int_args,
    padding=paddings,
    kernel=st.integers(1, 4),
    dilation=int_args,
    groups=int_args,
    block=int_args,
)
def test_public_ops_refuse_bad_arguments_with_value_error(
    pool, strides, padding, kernel, dilation, groups, block
):
    x = jnp.ones((1, 6, 6, 4))
    calls = [
        lambda: ops.max_pool2d(x, pool, strides, padding),
        lambda: ops.avg_pool2d(x, pool, strides, padding),
        lambda: ops.conv2d(
            x,
            jnp.ones((kernel, kernel, 2, 4)),
            strides=strides,
            padding=padding,
            dilation=dilation,
            groups=groups,
        ),
        lambda: ops.space_to_depth(x, block),
        lambda: ops.darknet_reorg(x, block),
        lambda: ops.dropout(x, pool if not isinstance(pool, tuple) else 0.5, deterministic=True),
    ]
    for call in calls:
        try:
            out = call()
        except ValueError as error:
            assert ": expected " in str(error), error
        else:
            assert out.ndim == 4


@OP_SETTINGS
@given(
    size=int_args,
    strides=int_args,
    padding=paddings,
    epsilon=st.floats(allow_nan=True),
    momentum=st.floats(allow_nan=True),
    rate=st.floats(allow_nan=True),
)
def test_layer_constructors_refuse_bad_arguments_with_value_error(
    size, strides, padding, epsilon, momentum, rate
):
    builders = [
        lambda: L.Dense(size),
        lambda: L.Conv2D(size, 3, strides=strides, padding=padding),
        lambda: L.Conv2D(4, size, strides=strides, padding=padding),
        lambda: L.MaxPooling2D(size, strides, padding),
        lambda: L.AveragePooling2D(size, strides, padding),
        lambda: L.BatchNormalization(momentum=momentum, epsilon=epsilon),
        lambda: L.Dropout(rate),
        lambda: L.SpaceToDepth(size),
        lambda: L.LocallyConnected2D(size, 2, strides=strides, padding=padding),
    ]
    for build in builders:
        try:
            build()
        except ValueError as error:
            assert ": expected " in str(error), error


# Every public op, given arrays of any rank and size and any scalar arguments: a result,
# or the library's ValueError naming the op, what it expected and what it got.
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=5).map(tuple)
small_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=5).map(tuple)
scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 5),
    st.none(),
    st.text(max_size=2),
    st.booleans(),
)


def _ones(shape):
    return jnp.ones(shape, jnp.float32)


def _assert_value_error_or_result(name, call):
    try:
        out = call()
    except ValueError as error:
        assert f"{name}: expected " in str(error) or ": expected " in str(error), (name, error)
        return None
    return out


@OP_SETTINGS
@given(x=shapes, a=shapes, b=shapes, c=shapes, d=shapes, s=scalars, t=scalars, flag=st.booleans())
def test_every_public_op_refuses_bad_arrays_and_scalars_with_value_error(x, a, b, c, d, s, t, flag):
    X, A, B_, C, D = (_ones(v) for v in (x, a, b, c, d))
    calls = {
        "dense": lambda: ops.dense(X, A, B_ if flag else None),
        "flatten": lambda: ops.flatten(X),
        "global_avg_pool2d": lambda: ops.global_avg_pool2d(X, keepdims=flag),
        "global_max_pool2d": lambda: ops.global_max_pool2d(X, keepdims=flag),
        "leaky_relu": lambda: ops.leaky_relu(X, s),
        "flat_softmax": lambda: ops.flat_softmax(X, s),
        "center_crop": lambda: ops.center_crop(X, s, t),
        "batch_moments": lambda: ops.batch_moments(X),
        "batch_norm": lambda: ops.batch_norm(X, A, B_, C, D, epsilon=s),
        "batch_norm_train": lambda: ops.batch_norm_train(X, A, B_, epsilon=s),
        "update_moving_stats": lambda: ops.update_moving_stats(A, B_, C, D, momentum=s),
        "locally_connected2d": lambda: ops.locally_connected2d(
            X, A, B_ if flag else None, kernel_size=s, strides=t
        ),
        "conv_lstm2d": lambda: ops.conv_lstm2d(X, A, B_, C if flag else None, strides=s),
        "conv2d": lambda: ops.conv2d(X, A, B_ if flag else None, strides=s, dilation=t),
        "max_pool2d": lambda: ops.max_pool2d(X, s, t),
        "avg_pool2d": lambda: ops.avg_pool2d(X, s, t),
        "space_to_depth": lambda: ops.space_to_depth(X, s),
        "darknet_reorg": lambda: ops.darknet_reorg(X, s),
        "dropout": lambda: ops.dropout(X, s, deterministic=flag, key=jax.random.key(0)),
    }
    assert sorted(calls) == sorted(n for n in ops.__all__ if n != "DARKNET_ACTIVATIONS")
    for name, call in calls.items():
        _assert_value_error_or_result(name, call)
