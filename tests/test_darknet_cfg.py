"""The darknet cfg parser and builder: sections, node names, weightless layers, errors.

Reference values come from NumPy ports of darknet's own loops (``maxpool_layer.c``,
``reorg_layer.c``/``blas.c``, ``crop_layer.c``, ``activations.h``), written on
NCHW buffers as darknet stores them, never from the library under test.
"""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxheads import darknet

NET = "[net]\nheight={h}\nwidth={w}\nchannels={c}\n"


def _model(body: str, h=4, w=4, c=2):
    return darknet.build_model(darknet.parse_cfg(NET.format(h=h, w=w, c=c) + textwrap.dedent(body)))


def _run(model, x_chw):
    """Runs a weightless model on one NCHW image; returns the NCHW output."""
    _, params, state = model.layer.init(jax.random.key(0), model.input_shape)
    y, _ = model.layer.apply(params, state, jnp.asarray(x_chw.transpose(1, 2, 0)[None]))
    y = np.asarray(y)[0]
    return y.transpose(2, 0, 1) if y.ndim == 3 else y


def _image(c, h, w, seed=0):
    return np.random.default_rng(seed).standard_normal((c, h, w)).astype(np.float32)


# --- darknet's loops, ported literally to NumPy (NCHW) ------------------------------------


def maxpool_reference(x, size, stride, pad):
    c, h, w = x.shape
    oh, ow = (h + pad - size) // stride + 1, (w + pad - size) // stride + 1
    offset = -(pad // 2)  # darknet's -l.pad/2 (C division truncates toward zero)
    out = np.empty((c, oh, ow), np.float32)
    for k in range(c):
        for i in range(oh):
            for j in range(ow):
                best = -np.finfo(np.float32).max
                for n in range(size):
                    for m in range(size):
                        y, x_ = offset + i * stride + n, offset + j * stride + m
                        if 0 <= y < h and 0 <= x_ < w:
                            best = max(best, x[k, y, x_])
                out[k, i, j] = best
    return out


def reorg_reference(x, stride):
    """``forward_reorg_layer``: ``reorg_cpu(input, w, h, c, batch, stride, 0, output)``."""
    c, h, w = x.shape
    flat_in, out = x.reshape(-1), np.empty(x.size, np.float32)
    out_c = c // (stride * stride)
    for k in range(c):
        for j in range(h):
            for i in range(w):
                in_index = i + w * (j + h * k)
                c2, offset = k % out_c, k // out_c
                w2, h2 = i * stride + offset % stride, j * stride + offset // stride
                out_index = w2 + w * stride * (h2 + h * stride * c2)
                out[in_index] = flat_in[out_index]
    return out.reshape(c * stride * stride, h // stride, w // stride)


def crop_reference(x, crop_h, crop_w, noadjust):
    c, h, w = x.shape
    dh, dw = (h - crop_h) // 2, (w - crop_w) // 2
    scale, trans = (1, 0) if noadjust else (2, -1)
    return x[:, dh : dh + crop_h, dw : dw + crop_w] * scale + trans


# --- parser ---------------------------------------------------------------------------------


def test_parse_comments_spacing_aliases_and_indices():
    text = textwrap.dedent("""\
        # a comment
        [network]
        width = 416
        ; another comment
        height=416
        channels=3

        [conv]
        filters = 8
        filters = 9
        anchors =  0.5, 1.5 , 2
        [max]
        [soft]
        """)
    sections = darknet.parse_cfg(text)
    assert [s.type for s in sections] == ["net", "convolutional", "maxpool", "softmax"]
    assert [s.index for s in sections] == [-1, 0, 1, 2]
    assert [s.line for s in sections] == [2, 8, 12, 13]
    conv = sections[1]
    assert conv.get_int("filters") == 8  # the first occurrence wins, as in darknet
    assert conv.get_list("anchors") == (0.5, 1.5, 2.0)
    assert sections[0].get_int("width") == 416


@pytest.mark.parametrize(
    "text,match",
    [
        ("[net]\nwidth=4\n[yolo]\nmask=0\n", r"\[yolo\] as layer 0 at line 3"),
        ("[net]\n[convolutional]\n[upsample]\n", r"\[upsample\] as layer 1 at line 3"),
        ("width=4\n[net]\n", r"before any \[section\] at line 1"),
        ("[net]\nwidth\n", r"key=value line in the \[net\] section \(line 1\).*line 2"),
        ("[convolutional]\nfilters=1\n", r"\[net\].*first.*\[convolutional\] at line 1"),
        ("[net]\n[maxpool\n", r"section header.*line 2"),
    ],
)
def test_parse_errors_name_the_section_and_line(text, match):
    with pytest.raises(ValueError, match=match):
        darknet.parse_cfg(text)


CLASSIFIERS = ("darknet19", "darknet19_448", "extraction", "tiny")


def test_packaged_cfgs_parse_and_cfg_path():
    for name in darknet.CFG_NAMES:
        sections = darknet.read_cfg(darknet.cfg_path(name))
        last = ("softmax",) if name in CLASSIFIERS else ("region", "detection")
        assert sections[0].type == "net" and sections[-1].type in last
    with pytest.raises(ValueError, match="cfg_path: expected one of"):
        darknet.cfg_path("yolov3")


# --- builder: names, shapes, errors ---------------------------------------------------------


def test_node_names_are_darknet_indices_and_routes_wire_them():
    model = darknet.from_cfg("yolov2-voc")
    names = [n.name for n in model.layer.nodes]
    assert names[0] == "0_convolutional" and names[27] == "27_reorg"
    nodes = {n.name: n for n in model.layer.nodes}
    assert nodes["25_route"].inputs == "16_convolutional"
    assert nodes["28_route"].inputs == ("27_reorg", "24_convolutional")
    assert nodes["26_convolutional"].inputs == "25_route"
    assert [r.name for r in model.layers] == names
    conv0 = model.layers[0]
    assert conv0.batch_normalize and conv0.parts == {
        "Conv2D": "conv2d",
        "BatchNormalization": "batch_normalization",
        "LeakyReLU": "leaky_re_lu",
    }
    assert model.layers[-1].parts == {"Conv2D": None}  # linear, no batch norm: a bare Conv2D


def test_net_config_and_region_head():
    model = darknet.from_cfg("yolov2-tiny-voc")
    net = model.net
    assert (net.width, net.height, net.channels) == (416, 416, 3)
    assert net.steps == (-1, 100, 20000, 30000) and net.scales == (0.1, 10, 0.1, 0.1)
    assert net.max_batches == 40200 and net.policy == "steps" and net.learning_rate == 0.001
    head = model.head
    assert (head.kind, head.num_classes, head.num_boxes, head.coords) == ("yolov2", 20, 5, 4)
    assert head.layer is model.layer and head.side is None and len(head.anchors) == 5
    # The anchors as darknet reads them: float32.
    assert head.anchors[0] == (float(np.float32(1.08)), float(np.float32(1.19)))
    assert head.softmax and head.options["bias_match"] == "1" and head.options["thresh"] == ".6"
    assert head.options["object_scale"] == "5" and head.options["noobject_scale"] == "1"


def test_detection_head():
    head = darknet.from_cfg("yolov1").head
    sizes = (head.side, head.num_boxes, head.num_classes, head.coords)
    assert head.kind == "yolov1" and sizes == (7, 3, 20, 4)
    assert head.sqrt and not head.softmax and head.anchors is None
    assert (head.options["coord_scale"], head.options["noobject_scale"]) == ("5", ".5")


@pytest.mark.parametrize(
    "body,match",
    [
        (
            "[convolutional]\nfilters=2\nsize=1\nactivation=swish\n",
            r"activation.*layer 0 \[convolutional\] \(line 5\).*'swish'",
        ),
        (
            "[maxpool]\nsize=2\nstride=2\n[route]\nlayers=-2\n",
            r"route layers naming earlier layers 0\.\.0 in layer 1 \[route\] \(line 8\).*-2",
        ),
        ("[maxpool]\nsize=2\nstride=2\n[route]\nlayers=1\n", r"got 1 \(layer 1\)"),
        ("[convolutional]\nsize=3\n", r"option 'filters' in layer 0 \[convolutional\]"),
        ("[connected]\nactivation=linear\n", r"option 'output' in layer 0 \[connected\]"),
        (
            "[maxpool]\nsize=2\nstride=2\n[maxpool]\nsize=2\nstride=2\n[route]\nlayers=-1,-2\n",
            r"routed layers of one spatial size.*layer 1: \(1, 1, 2\), layer 0: \(2, 2, 2\)",
        ),
        (
            "[region]\ncoords=0\nclasses=1\nnum=1\n[maxpool]\n",
            r"\[region\]/\[detection\] as the last section",
        ),
        ("[region]\nclasses=1\nnum=1\n", r"num\*\(coords\+1\+classes\) = 6 channels"),
        (
            "[connected]\noutput=10\n[detection]\nside=1\nnum=2\ncoords=4\nclasses=1\n",
            r"side\*side\*\(\(1\+coords\)\*num\+classes\) = 11 values",
        ),
        ("[local]\nfilters=2\nsize=5\npad=1\n", r"\[local\] whose output size darknet computes"),
        ("[reorg]\nstride=2\n", r"C by stride\*\*2 in layer 0 \[reorg\]"),
        ("[convolutional]\nfilters=2\nsize=1\nbinary=1\n", r"no binary=1 in layer 0"),
        ("[convolutional]\nfilters=3\nsize=1\ngroups=2\n", r"groups dividing 2 input channels"),
        ("[crop]\ncrop_height=5\ncrop_width=2\n", r"crop inside the 4x4 input"),
        (
            "[connected]\noutput=2\n[maxpool]\n",
            r"an image \(H, W, C\) input to layer 1 \[maxpool\]",
        ),
        ("[convolutional]\nfilters=x\nsize=1\n", r"an integer for 'filters'.*'x'"),
    ],
)
def test_build_errors_name_the_section(body, match):
    with pytest.raises(ValueError, match=match):
        _model(body)


def test_overrides_resize_input_crop_and_the_layer_feeding_the_head():
    model = darknet.from_cfg("yolov1-paper-tiny", image_size=64, num_classes=3)
    assert model.input_shape == (None, 64, 64, 3)
    crop = model.sections[1]
    assert crop.type == "crop" and crop.get_int("crop_height") == crop.get_int("crop_width") == 64
    assert model.head.num_classes == 3 and model.layers[-1].output_shape == (7 * 7 * (2 * 5 + 3),)
    region = darknet.from_cfg("yolov2-voc", image_size=(96, 64), num_classes=2)
    assert region.input_shape == (None, 96, 64, 3)
    assert region.layers[-1].output_shape == (3, 2, 5 * (5 + 2)) and region.head.num_classes == 2
    with pytest.raises(ValueError, match="num_classes"):
        darknet.build_model(
            darknet.parse_cfg(NET.format(h=2, w=2, c=1) + "[maxpool]\n"), num_classes=3
        )


@pytest.mark.parametrize("name", sorted(darknet.MODELS))
def test_with_options_writes_the_overrides_into_the_cfg_text(name):
    path = darknet.cfg_path(darknet.MODELS[name].cfg)
    text = darknet.cfg.read_cfg_text(path)
    model = darknet.from_cfg(path, image_size=(64, 96), num_classes=3)
    written = darknet.with_options(text, model.sections)
    again = darknet.parse_cfg(written)
    assert [s.options for s in again] == [s.options for s in model.sections]
    assert [s.line for s in again] == [s.line for s in darknet.parse_cfg(text)]  # lines kept
    # Only the lines of the options the overrides changed differ.
    want = {
        f"{k}={v}"
        for old, new in zip(darknet.parse_cfg(text), model.sections, strict=True)
        for k, v in new.options.items()
        if old.options.get(k) != v
    }
    assert {"width=96", "height=64", "classes=3"} <= want
    assert set(written.splitlines()) - set(text.splitlines()) == want
    # Windows line endings stay, and an option the section lacked is added under its header.
    crlf = "[net]\r\n# size\r\nwidth=8\r\n[region]\r\n"
    sections = darknet.parse_cfg(crlf)
    sections[0].options.update(width="16", height="16")
    sections[1].options["classes"] = "3"
    assert darknet.with_options(crlf, sections) == (
        "[net]\r\nheight=16\r\n# size\r\nwidth=16\r\n[region]\r\nclasses=3\r\n"
    )
    with pytest.raises(ValueError, match="with_options: expected the sections of the text"):
        darknet.with_options(crlf, sections[:1])


# --- weightless layers against darknet's loops ------------------------------------------------


@pytest.mark.parametrize(
    "h,w,size,stride,padding",
    [
        (5, 5, 2, 1, None),  # yolov2-tiny's 2x2/1 maxpool on an odd map: 5 -> 5
        (7, 6, 2, 2, None),  # 7 -> 4: the last window hangs over darknet's padding
        (5, 7, 3, 2, None),  # size 3: one pixel of padding before, one after
        (6, 6, 3, 2, 0),  # explicit padding=0
        (5, 5, 3, 1, 4),  # more padding than the window needs
    ],
)
def test_maxpool_matches_darknet(h, w, size, stride, padding):
    pad = size - 1 if padding is None else padding
    extra = "" if padding is None else f"padding={padding}\n"
    model = _model(f"[maxpool]\nsize={size}\nstride={stride}\n{extra}", h=h, w=w, c=3)
    x = _image(3, h, w)
    y = _run(model, x)
    np.testing.assert_array_equal(y, maxpool_reference(x, size, stride, pad))
    assert model.layers[0].output_shape == (*y.shape[1:], 3)


def test_reorg_matches_darknet_reorg_cpu():
    model = _model("[reorg]\nstride=2\n", h=4, w=6, c=8)
    x = _image(8, 4, 6)
    np.testing.assert_array_equal(_run(model, x), reorg_reference(x, 2))


@pytest.mark.parametrize("noadjust", [0, 1])
def test_crop_is_darknets_inference_crop(noadjust):
    model = _model(
        f"[crop]\ncrop_height=3\ncrop_width=2\nnoadjust={noadjust}\nflip=1\n", h=6, w=5, c=2
    )
    x = np.random.default_rng(1).random((2, 6, 5), dtype=np.float32)
    np.testing.assert_allclose(_run(model, x), crop_reference(x, 3, 2, noadjust), rtol=1e-6)


def test_route_concatenates_in_listed_order_and_single_route_is_identity():
    body = """\
        [maxpool]
        size=2
        stride=2
        [maxpool]
        size=2
        stride=1
        [route]
        layers=-1,0
        """
    model = _model(body, h=4, w=4, c=3)
    x = _image(3, 4, 4)
    a = maxpool_reference(x, 2, 2, 1)
    b = maxpool_reference(a, 2, 1, 1)
    np.testing.assert_array_equal(_run(model, x), np.concatenate([b, a], axis=0))
    single = _model(body.replace("layers=-1,0", "layers=0"), h=4, w=4, c=3)
    np.testing.assert_array_equal(_run(single, x), a)
    assert single.layers[2].parts == {"Identity": None}


def test_dropout_is_identity_at_inference_and_drops_in_training():
    model = _model("[maxpool]\nsize=1\nstride=1\n[dropout]\nprobability=.25\n", h=8, w=8, c=4)
    x = np.abs(_image(4, 8, 8)) + 1
    np.testing.assert_array_equal(_run(model, x), x)
    y, _ = model.layer.apply(
        {}, {}, jnp.asarray(x.transpose(1, 2, 0)[None]), train=True, key=jax.random.key(0)
    )
    kept = np.asarray(y) != 0
    np.testing.assert_allclose(
        np.asarray(y)[kept], (x.transpose(1, 2, 0)[None] / 0.75)[kept], rtol=1e-6
    )
    assert 0 < kept.mean() < 1


def test_avgpool_and_softmax():
    model = _model("[avgpool]\n[softmax]\n", h=3, w=2, c=5)
    x = _image(5, 3, 2)
    mean = x.mean(axis=(1, 2))
    expected = np.exp(mean - mean.max()) / np.exp(mean - mean.max()).sum()
    np.testing.assert_allclose(_run(model, x), expected[:, None, None], rtol=1e-5)
    assert model.layers[1].output_shape == (1, 1, 5)


def test_summary_shows_darknet_layers_or_keras_rows():
    model = _model(
        "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\n"
        "activation=leaky\n[maxpool]\nsize=2\nstride=2\n"
    )
    text = darknet.DarknetNet(model, {}, {}).summary()
    assert "0_convolutional (Sequential)" in text and "1_maxpool (MaxPooling2D)" in text
    nested = darknet.DarknetNet(model, {}, {}).summary(expand_nested=True)
    for row in (
        "0_convolutional/conv2d (Conv2D)",
        "0_convolutional/batch_normalization (BatchNormalization)",
        "0_convolutional/leaky_re_lu (LeakyReLU)",
    ):
        assert row in nested
    # 2*4*9 kernel + 4 scale + 4 bias (trainable) + 4 mean + 4 var.
    assert "Total params: 88 " in text and "Non-trainable params: 8 " in text
