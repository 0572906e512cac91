"""jaxheads.predict against literal ports of darknet's C (tests/darknet_predict_port.py)."""

import io
import os

import darknet_predict_port as port
import jax
import numpy as np
import pytest
from compilations import compilations
from PIL import Image
from tiny_darknet import DETECTION_CFG, REGION_CFG, tiny_darknet

from jaxheads import Detector
from jaxheads.predict import (
    COCO_NAMES,
    VOC_NAMES,
    ImageError,
    class_probabilities,
    correct_region_boxes,
    detection_outputs,
    do_nms_sort,
    expand_image_paths,
    letterbox_image,
    letterbox_size,
    names_for,
    read_image,
    read_names,
    region_outputs,
    resize_image,
    to_rgb_float,
)

# (input w, h) -> (output w, h): odd, non-square, up and down, portrait and landscape.
RESIZES = [
    ((23, 17), (13, 9)),
    ((17, 23), (9, 13)),
    ((7, 5), (19, 11)),
    ((5, 9), (12, 21)),
    ((1, 6), (4, 3)),
    ((6, 1), (3, 4)),
    ((31, 31), (16, 16)),
    ((10, 4), (10, 4)),
]
LETTERBOX = [
    ((23, 17), (16, 12)),
    ((17, 23), (16, 12)),
    ((9, 29), (12, 16)),
    ((29, 9), (12, 16)),
    ((13, 13), (15, 11)),
    ((5, 7), (16, 16)),
]


def _image(w, h, seed=0):
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def _chw(a):
    return np.ascontiguousarray(np.transpose(a, (2, 0, 1)))


@pytest.mark.parametrize("size,out", RESIZES)
def test_resize_image_is_darknets_bit_for_bit(size, out):
    im = _image(*size)
    ours = resize_image(im, *out)
    assert ours.shape == (out[1], out[0], 3) and ours.dtype == np.float32
    np.testing.assert_array_equal(_chw(ours), port.resize_image(_chw(im), *out))


def test_resize_image_keeps_darknets_dark_last_row():
    # (h - 1)·((H - 1) / (h - 1)) rounds below H - 1 in float32 for 90 -> 76 rows: darknet's
    # last row is then only the (1 - dy) share of row H - 2 (1e-5 here).
    im = np.ones((90, 2, 1), np.float32)
    ours = resize_image(im, 2, 76)
    np.testing.assert_array_equal(_chw(ours), port.resize_image(_chw(im), 2, 76))
    assert ours[-1, 0, 0] < 1e-4 and ours[-2, 0, 0] == 1


@pytest.mark.parametrize("size,net", LETTERBOX)
def test_letterbox_image_is_darknets_bit_for_bit(size, net):
    im = _image(*size, seed=1)
    ours = letterbox_image(im, *net)
    assert ours.shape == (net[1], net[0], 3)
    np.testing.assert_array_equal(_chw(ours), port.letterbox_image(_chw(im), *net))
    new_w, new_h = letterbox_size(*size, *net)
    assert (new_w == net[0]) or (new_h == net[1])
    assert np.sum(ours[:, :, 0] != 0.5) <= new_w * new_h


def test_letterbox_refuses_a_zero_pixel_side():
    with pytest.raises(ValueError, match="letterboxed to 416x0"):
        letterbox_image(np.zeros((1, 1000, 3), np.float32), 416, 416)


@pytest.mark.parametrize(
    "size,net", LETTERBOX + [((500, 375), (416, 416)), ((375, 500), (416, 416))]
)
def test_correct_region_boxes_is_darknets_bit_for_bit(size, net):
    boxes = np.random.default_rng(2).random((50, 4), dtype=np.float32)
    dets = [{"bbox": dict(zip("xywh", b, strict=True))} for b in boxes]
    port.correct_region_boxes(dets, *size, *net)
    want = np.array([[d["bbox"][k] for k in "xywh"] for d in dets], np.float32)
    np.testing.assert_array_equal(correct_region_boxes(boxes, *size, *net), want)


def test_letterbox_then_correct_maps_a_box_back_to_the_image():
    # A box drawn on the original image, letterboxed, is found again by correct_region_boxes.
    w, h, net_w, net_h = 300, 120, 64, 64
    new_w, new_h = letterbox_size(w, h, net_w, net_h)
    box = np.array([[0.25, 0.5, 0.2, 0.4]], np.float32)  # relative to the image
    on_net = box * [new_w / net_w, new_h / net_h, new_w / net_w, new_h / net_h] + [
        (net_w - new_w) / 2 / net_w,
        (net_h - new_h) / 2 / net_h,
        0,
        0,
    ]
    np.testing.assert_allclose(
        correct_region_boxes(on_net, w, h, net_w, net_h), box, rtol=1e-6, atol=1e-7
    )


def _nms_case(seed, n=60, classes=4):
    rng = np.random.default_rng(seed)
    centres = rng.random((n, 2)) * 0.6 + 0.2
    sizes = rng.random((n, 2)) * 0.3 + 0.05
    boxes = np.concatenate([centres, sizes], 1).astype(np.float32)
    probs = rng.random((n, classes)).astype(np.float32)
    probs[probs < 0.4] = 0  # below darknet's thresh
    objectness = np.where(probs.max(1) > 0, rng.random(n) * 0.5 + 0.5, 0).astype(np.float32)
    return boxes, probs, objectness


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("thresh", [0.3, 0.45])
def test_do_nms_sort_is_darknets(seed, thresh):
    boxes, probs, objectness = _nms_case(seed)
    dets = [
        {"bbox": dict(zip("xywh", b, strict=True)), "prob": list(p), "objectness": o, "index": i}
        for i, (b, p, o) in enumerate(zip(boxes, probs, objectness, strict=True))
    ]
    port.do_nms_sort(dets, probs.shape[1], thresh)
    want = np.zeros_like(probs)
    for d in dets:
        want[d["index"]] = d["prob"]
    ours = do_nms_sort(boxes, probs, thresh, objectness=objectness)
    np.testing.assert_array_equal(ours, want)
    assert 0 < np.count_nonzero(ours) < np.count_nonzero(probs)  # the case suppresses some


def _region_raw(h, w, a, c, seed=3):
    return np.random.default_rng(seed).normal(0, 2, (1, h, w, a * (5 + c))).astype(np.float32)


@pytest.mark.parametrize("softmax", [True, False])
def test_region_detections_are_darknets(softmax, maybe_jit):
    h, w, a, c, thresh = 5, 7, 2, 3, 0.2
    anchors = np.array([[1.0, 1.5], [2.5, 2.0]], np.float32)
    raw = _region_raw(h, w, a, c)
    boxes, obj, cls = maybe_jit(
        lambda r: region_outputs(r, anchors, num_classes=c, softmax=softmax)
    )(raw)
    # darknet's memory: channel n·(5 + C) + e of location (row, col) at [channel, row, col].
    flat = _chw(raw[0]).reshape(-1)
    pred = port.forward_region_layer(flat, w, h, a, c, softmax)
    dets = port.get_region_detections(pred, w, h, a, c, anchors.reshape(-1), thresh)
    want_boxes = np.array([[d["bbox"][k] for k in "xywh"] for d in dets], np.float32)
    want_probs = np.array([d["prob"] for d in dets], np.float32)
    # float32 exp/sigmoid in XLA against darknet's double exp rounded to float.
    np.testing.assert_allclose(boxes[0], want_boxes, rtol=2e-6, atol=1e-7)
    probs = class_probabilities(np.asarray(obj[0]), np.asarray(cls[0]), thresh)
    np.testing.assert_allclose(probs, want_probs, rtol=2e-6, atol=1e-7)
    assert np.count_nonzero(want_probs) > 0


def test_detection_detections_are_darknets(maybe_jit):
    side, n, c, thresh = 3, 2, 2, 0.05
    raw = (
        np.random.default_rng(4).normal(0.5, 0.3, (1, side * side * (c + 5 * n))).astype(np.float32)
    )
    boxes, obj, cls = maybe_jit(
        lambda r: detection_outputs(r, side=side, num=n, num_classes=c, sqrt=True, softmax=True)
    )(raw)
    dets = port.get_detection_detections(raw[0], side, n, c, True, True, thresh)
    want_boxes = np.array([[d["bbox"][k] for k in "xywh"] for d in dets], np.float32)
    want_probs = np.array([d["prob"] for d in dets], np.float32)
    np.testing.assert_allclose(boxes[0], want_boxes, rtol=2e-6, atol=1e-7)
    probs = class_probabilities(np.asarray(obj[0]), np.asarray(cls[0]), thresh, gate=False)
    np.testing.assert_allclose(probs, want_probs, rtol=2e-6, atol=1e-7)


def _darknet_reference(net, image, thresh, nms):
    """darknet's test_detector on one float [H, W, 3] image, through the ports."""
    h, w = image.shape[:2]
    net_h, net_w = net.input_shape[1:3]
    sized = port.letterbox_image(_chw(image), net_w, net_h)
    raw = np.asarray(net(np.transpose(sized, (1, 2, 0))[None]))
    head = net.head
    if head.kind == "yolov2":
        pred = port.forward_region_layer(
            _chw(raw[0]).reshape(-1),
            raw.shape[2],
            raw.shape[1],
            head.num_boxes,
            head.num_classes,
            head.softmax,
        )
        dets = port.get_region_detections(
            pred,
            raw.shape[2],
            raw.shape[1],
            head.num_boxes,
            head.num_classes,
            np.asarray(head.anchors, np.float32).reshape(-1),
            thresh,
        )
    else:
        dets = port.get_detection_detections(
            raw.reshape(-1),
            head.side,
            head.num_boxes,
            head.num_classes,
            head.sqrt,
            head.softmax,
            thresh,
        )
    port.correct_region_boxes(dets, w, h, net_w, net_h)
    port.do_nms_sort(dets, head.num_classes, nms)
    out = []
    for d in dets:
        b = d["bbox"]
        for j, p in enumerate(d["prob"]):
            if p > thresh:
                box = np.clip(
                    [
                        (b["x"] - b["w"] / 2) * w,
                        (b["y"] - b["h"] / 2) * h,
                        (b["x"] + b["w"] / 2) * w,
                        (b["y"] + b["h"] / 2) * h,
                    ],
                    0,
                    [w, h, w, h],
                )
                out.append((j, float(p), box))
    return sorted(out, key=lambda t: -t[1])


@pytest.mark.parametrize("kind", ["region", "detection"])
def test_detector_is_darknets_test_detector(tmp_path, kind):
    text, thresh = (REGION_CFG, 0.1) if kind == "region" else (DETECTION_CFG, 0.05)
    cfg, weights, net = tiny_darknet(tmp_path, text, kind)
    det = Detector.from_darknet(cfg, weights, batch_size=2)
    # landscape, portrait, odd, square: one call, mixed sizes and kinds of input
    images = [_image(53, 31, 6), _image(29, 61, 7), _image(40, 40, 8)]
    sources = [
        images[0],
        Image.fromarray((images[1] * 255).astype(np.uint8)),
        (images[2] * 255).astype(np.uint8),
    ]
    with compilations("predict") as compiled:
        records = det.detect(sources, thresh=thresh)
    as_read = [images[0]] + [to_rgb_float((im * 255).astype(np.uint8)) for im in images[1:]]
    total = 0
    for record, image in zip(records, as_read, strict=True):
        assert (record.width, record.height) == image.shape[1::-1]
        want = _darknet_reference(net, image, thresh, 0.45)
        assert len(record) == len(want)
        total += len(want)
        np.testing.assert_array_equal(record.class_ids, [j for j, _, _ in want])
        np.testing.assert_allclose(record.scores, [p for _, p, _ in want], rtol=1e-5)
        np.testing.assert_allclose(
            record.boxes, np.array([b for *_, b in want]).reshape(-1, 4), rtol=1e-5, atol=1e-3
        )
        assert np.all(record.boxes >= 0) and np.all(record.boxes[:, 2] <= record.width)
        assert np.all(record.boxes[:, 3] <= record.height)
        assert record.labels == tuple(f"class_{c}" for c in record.class_ids)
    assert total > 0
    # one compilation for every batch, the padded last one included
    assert len(compiled) == 1
    with compilations("predict") as compiled:
        det.detect([images[1]] * 3, thresh=thresh)
    assert not compiled


REFERENCE = os.path.join(os.path.dirname(__file__), "darknet_reference")


@pytest.mark.parametrize("model", ["region", "detection"])
def test_detector_gives_darknets_own_boxes(model):
    """Against darknet itself: darknet.json is what darknet's C gave for these files
    (tests/darknet_reference/make.py), not a port written here."""
    import json

    with open(os.path.join(REFERENCE, "darknet.json")) as f:
        want = json.load(f)[model]
    det = Detector.from_darknet(
        os.path.join(REFERENCE, f"{model}.cfg"), os.path.join(REFERENCE, f"{model}.weights")
    )
    files = [os.path.join(REFERENCE, image["file"]) for image in want["images"]]
    records = det.detect(files, thresh=want["thresh"], nms=want["nms"])
    total = 0
    for record, image in zip(records, want["images"], strict=True):
        w, h = image["width"], image["height"]
        assert (record.width, record.height) == (w, h)
        boxes = np.array([d["bbox"] for d in image["detections"]], np.float64).reshape(-1, 4)
        if model == "detection":  # get_detection_detections scales its boxes by (w, h) itself
            boxes /= [w, h, w, h]
        corners = np.clip(
            np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], 1)
            * [w, h, w, h],
            0,
            [w, h, w, h],
        )
        theirs = sorted(
            (d["class_id"], d["prob"], tuple(c))
            for d, c in zip(image["detections"], corners, strict=True)
        )
        ours = sorted(
            (int(c), float(p), tuple(b))
            for c, p, b in zip(record.class_ids, record.scores, record.boxes, strict=True)
        )
        assert len(ours) == len(theirs), (image["file"], len(ours), len(theirs))
        assert [c for c, _, _ in ours] == [c for c, _, _ in theirs]
        np.testing.assert_allclose([p for _, p, _ in ours], [p for _, p, _ in theirs], rtol=1e-5)
        np.testing.assert_allclose(
            [b for *_, b in ours], [b for *_, b in theirs], rtol=1e-5, atol=1e-3
        )
        total += len(ours)
    assert total == {"region": 167, "detection": 7}[model]


@pytest.mark.parametrize("kind", ["region", "detection"])
def test_detector_maps_letterboxed_boxes_back_to_the_image(kind):
    # An 80x40 image letterboxed into 32x32 is 32x16 at dy = 8. The object at pixels
    # (20, 10)-(60, 30) is (cx, cy, w, h) = (.5, .5, .5, .25) on the network input.
    # Darknet's detector test leaves [detection] boxes there, i.e. at y 15..25.
    def predict(params, state, images):
        b = images.shape[0]
        box = jax.numpy.tile(jax.numpy.array([[[0.5, 0.5, 0.5, 0.25]]]), (b, 1, 1))
        return box, jax.numpy.full((b, 1), 0.9), jax.numpy.ones((b, 1, 1))

    det = Detector(predict, {}, {}, input_size=(32, 32), class_names=("thing",), kind=kind)
    (record,) = det.detect(np.zeros((40, 80, 3), np.uint8))
    np.testing.assert_allclose(record.boxes, [[20, 10, 60, 30]], rtol=1e-6)
    assert record.lines() == ["thing: 90%"]


def test_read_image_modes(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    gray = rgb[:, :, 0]
    paths = {}
    for name, image in [
        ("rgb.png", Image.fromarray(rgb)),
        ("gray.png", Image.fromarray(gray)),
        ("rgba.png", Image.fromarray(np.dstack([rgb, gray]))),
        ("pal.png", Image.fromarray(rgb).quantize(16)),
        ("cmyk.jpg", Image.fromarray(rgb).convert("CMYK")),
    ]:
        paths[name] = tmp_path / name
        image.save(paths[name])
    byte = (np.arange(256) / 255.0).astype(np.float32)
    np.testing.assert_array_equal(read_image(paths["rgb.png"]), byte[rgb])
    np.testing.assert_array_equal(read_image(paths["gray.png"]), byte[np.dstack([gray] * 3)])
    np.testing.assert_array_equal(read_image(paths["rgba.png"]), byte[rgb])  # alpha dropped
    with Image.open(paths["pal.png"]) as image:
        pal = image.convert("RGB")
    np.testing.assert_array_equal(read_image(paths["pal.png"]), byte[np.asarray(pal)])
    cmyk = read_image(paths["cmyk.jpg"])
    assert cmyk.shape == (5, 7, 3) and np.abs(cmyk - byte[rgb]).mean() < 0.1


def test_read_sixteen_bit_png_is_scaled_by_65535(tmp_path):
    values = np.array([[0, 1000, 32768], [65535, 257, 40000]], np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as image:
        assert image.mode == "I;16"
    got = read_image(path)
    want = (values / 65535.0).astype(np.float32)
    np.testing.assert_array_equal(got, np.dstack([want] * 3))
    assert got.max() == 1.0 and got.min() == 0.0  # not all white


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((10, 20, 3), np.uint8)
    image[:, :5] = 255  # a white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(image).save(path, exif=exif, quality=100)
    got = read_image(path)
    assert got.shape == (20, 10, 3)
    assert got[:5].mean() > 0.9 and got[-5:].mean() < 0.1  # the band is now on top


def test_bad_files_are_named(tmp_path):
    good = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(good, format="PNG")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.getvalue()[:60])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    big = tmp_path / "big.png"
    big.write_bytes(good.getvalue())
    cases = [
        (tmp_path / "missing.png", "no such file"),
        (truncated, "complete image"),
        (text, "cannot identify"),
        (tmp_path, "directory"),
    ]
    for path, message in cases:
        with pytest.raises(ImageError, match=message) as err:
            read_image(path)
        assert str(path) in str(err.value)
    with pytest.raises(ImageError, match=r"at most 1,000 pixels.*64x64 = 4,096"):
        read_image(big, max_pixels=1000)
    with pytest.raises(ImageError, match="float pixels in"):
        to_rgb_float(np.full((2, 2), 2.0))
    with pytest.raises(ImageError, match="shape"):
        to_rgb_float(np.zeros((2, 2, 2)))


def test_expand_image_paths(tmp_path):
    for name in ["b.png", "a.JPG", "c.txt"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    folder = expand_image_paths([tmp_path])
    assert [os.path.basename(p) for p in folder] == ["a.JPG", "b.png"]
    assert expand_image_paths([str(tmp_path / "*.png")]) == [str(tmp_path / "b.png")]
    assert expand_image_paths(["nothere.png"]) == ["nothere.png"]  # reported when read


def test_names(tmp_path):
    assert names_for(20) == VOC_NAMES and names_for(80) == COCO_NAMES
    assert len(set(COCO_NAMES)) == 80 and COCO_NAMES[16] == "dog"
    path = tmp_path / "x.names"
    path.write_text("cat\ndog\n\n")
    assert read_names(path) == ("cat", "dog")
    with pytest.raises(ValueError, match="expected 3 class names"):
        names_for(3, ("cat", "dog"))
    path.write_text("cat\n\ndog\n")
    with pytest.raises(ValueError, match="1 of them empty"):
        read_names(path)
