"""Bad darknet cfg and ``.weights`` files: a `ValueError` naming the thing, never a crash.

Each case reproduces a fault found by hand (an XLA abort from a huge padding,
tracebacks from zero sizes, a NUL-byte cfg echoed into the error, a whole
weights file read before its size was checked, a header of an unknown version
read as darknet's transposed layout); the property-based tests then feed the
parser and the reader generated input, bounded in size and time.
"""

import math
import tracemalloc

import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from jaxheads import darknet
from jaxheads.darknet.cfg import MAX_CFG_BYTES, MAX_ECHO
from jaxheads.ops import conv2d

# Fault injection and property tests are bounded: a hang is a failure, not a stuck CI.
pytestmark = pytest.mark.timeout(300)

NET = "[net]\nheight=8\nwidth=8\nchannels=3\n"


def test_conv2d_refuses_padding_that_would_abort_xla():
    x, kernel = jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 4))
    with pytest.raises(ValueError, match=r"conv2d: expected padding of at most 18 .*got 1000000"):
        conv2d(x, kernel, padding=10**6)
    with pytest.raises(ValueError, match=r"at most 18 .*got \(\(0, 0\), \(0, 19\)\)"):
        conv2d(x, kernel, padding=((0, 0), (0, 19)))
    assert conv2d(x, kernel, padding=18).shape == (1, 39, 39, 4)


@pytest.mark.parametrize(
    "body,match",
    [
        (
            "[convolutional]\nfilters=2\nsize=3\npadding=100000\n",
            r"padding in \[0, 8\].*layer 0 \[convolutional\] \(line 5\), got 100000",
        ),
        (
            "[maxpool]\nsize=2\npadding=100000\n",
            r"padding in \[0, 8\].*layer 0 \[maxpool\] \(line 5\), got 100000",
        ),
        (
            "[local]\nfilters=2\nsize=3\npad=100000\n",
            r"padding in \[0, 8\].*layer 0 \[local\] \(line 5\), got 100000",
        ),
        ("[connected]\noutput=0\n", r"positive output in layer 0 \[connected\] \(line 5\)"),
        ("[maxpool]\nsize=2\nstride=0\n", r"positive stride in layer 0 \[maxpool\] \(line 5\)"),
        (
            "[convolutional]\nfilters=2\nsize=0\n",
            r"positive size in layer 0 \[convolutional\] \(line 5\), got size=0",
        ),
        (
            "[convolutional]\nfilters=-4\nsize=1\n",
            r"positive filters in layer 0 \[convolutional\] \(line 5\), got filters=-4",
        ),
        ("[local]\nfilters=0\nsize=3\npad=1\n", r"positive filters in layer 0 \[local\]"),
        ("[local]\nfilters=2\nsize=3\nstride=0\n", r"positive stride in layer 0 \[local\]"),
        (
            "[connected]\noutput=4\n[detection]\nside=0\nclasses=2\n",
            r"positive side in layer 1 \[detection\] \(line 7\), got side=0",
        ),
        (
            "[connected]\noutput=4\n[detection]\nside=1\nnum=-1\n",
            r"positive num in layer 1 \[detection\]",
        ),
        (
            "[convolutional]\nfilters=5\nsize=1\n[region]\nnum=1\nclasses=0\n",
            r"positive classes in layer 1 \[region\]",
        ),
        ("[softmax]\ntemperature=0\n", r"positive, finite temperature in layer 0 \[softmax\]"),
    ],
)
def test_degenerate_cfg_values_name_the_section(body, match):
    with pytest.raises(ValueError, match=match):
        darknet.build_model(darknet.parse_cfg(NET + body))


def test_cfg_of_nul_bytes_is_refused_before_parsing(tmp_path):
    path = tmp_path / "nul.cfg"
    path.write_bytes(b"\0" * 100_000)
    with pytest.raises(ValueError) as err:
        darknet.read_cfg(path)
    assert "expected" in str(err.value) and "a text file, got a NUL byte at offset 0" in str(
        err.value
    )
    assert len(str(err.value)) < 300


def test_huge_cfg_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.cfg"
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB of NUL bytes
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=rf"at most {MAX_CFG_BYTES} bytes, got a larger file"):
            darknet.read_cfg(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_CFG_BYTES


def test_errors_quote_at_most_a_short_piece_of_a_line():
    line = "x" * 500_000
    for text in (f"[net]\n{line}\n", f"[net]\nwidth={line}\n", f"{line}\n"):
        with pytest.raises(ValueError) as err:
            darknet.build_model(darknet.parse_cfg(text))
        message = str(err.value)
        assert len(message) < MAX_ECHO + 300 and "(500000 characters)" in message
    with pytest.raises(ValueError, match=r"at most \d+ characters, got \d+"):
        darknet.parse_cfg("#" * (MAX_CFG_BYTES + 1))


def _small_model():
    text = NET + "[convolutional]\nbatch_normalize=1\nfilters=2\nsize=1\n[connected]\noutput=3\n"
    return darknet.build_model(darknet.parse_cfg(text))


def test_weights_size_is_checked_before_reading(tmp_path):
    model = _small_model()
    path = tmp_path / "huge.weights"
    with open(path, "wb") as f:
        f.write(np.array([0, 2, 0, 0, 0], "<i4").tobytes())
        f.truncate(2 << 30)  # sparse 2 GiB
    params, state = model.init()
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"left over after the last layer"):
            darknet.load_weights(path, model.layers, params, state)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_transposed_connected_layout_needs_darknets_marker(tmp_path):
    """Darknet reads [connected] weights as [in, out] when major or minor exceeds 1000; only
    1000 plus a known version is that marker, a huge major is not a darknet file."""
    model = _small_model()
    params, state = model.init()
    floats = darknet.float_count(model.layers, params, state)
    body = np.abs(np.random.default_rng(0).standard_normal(floats)).astype("<f4").tobytes()
    path = tmp_path / "t.weights"
    path.write_bytes(np.array([0, 1002, 0, 0], "<i4").tobytes() + body)
    _, _, header = darknet.load_weights(path, model.layers, params, state)
    assert header.transpose
    path.write_bytes(np.array([123456, 2, 0, 0], "<i4").tobytes() + body)
    with pytest.raises(ValueError, match=r"darknet header.*got major=123456 minor=2"):
        darknet.load_weights(path, model.layers, params, state)


# --- property-based: generated cfgs and weights files ---------------------------------------

KEYS = (
    "filters",
    "size",
    "stride",
    "pad",
    "padding",
    "output",
    "groups",
    "layers",
    "side",
    "num",
    "classes",
    "coords",
    "batch_normalize",
    "activation",
    "probability",
    "crop_height",
    "crop_width",
    "anchors",
    "temperature",
    "noadjust",
)
VALUES = st.one_of(
    st.integers(-3, 40).map(str),
    st.sampled_from(
        [
            "100000",
            "-100000",
            "99999999999999999999",
            "nan",
            "inf",
            "",
            "1,2",
            "-1,-2",
            "leaky",
            "linear",
            "x",
            "0.5",
            "1e9",
        ]
    ),
)
SECTION = st.tuples(
    st.sampled_from([s for s in darknet.SUPPORTED if s != "net"] + ["conv", "max", "yolo"]),
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5),
)


def _cfg_text(sections, h, w, c):
    lines = [f"[net]\nheight={h}\nwidth={w}\nchannels={c}"]
    for kind, options in sections:
        lines.append(f"[{kind}]")
        lines.extend(f"{k}={v}" for k, v in options.items())
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sections=st.lists(SECTION, min_size=1, max_size=5),
    h=st.integers(-1, 16),
    w=st.integers(1, 16),
    c=st.integers(0, 4),
)
def test_generated_cfgs_build_or_raise_value_error(sections, h, w, c):
    """Parsing and building (shapes only, nothing allocated) either succeed or raise
    ValueError; a built model's input and output shapes are bounded by its cfg."""
    try:
        model = darknet.build_model(darknet.parse_cfg(_cfg_text(sections, h, w, c)))
    except ValueError:
        return
    assert model.input_shape == (None, h, w, c)
    for record in model.layers:
        # Every built map is at most as large as the padded input allows.
        assert math.prod(record.output_shape) < 10**12


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=400))
def test_generated_text_parses_or_raises_value_error(text):
    try:
        sections = darknet.parse_cfg(text)
    except ValueError as err:
        assert len(str(err)) < 2 * MAX_ECHO + 300
        return
    assert sections[0].type == "net"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    head=st.tuples(st.integers(-5, 2**31 - 1), st.integers(-5, 2**31 - 1), st.integers(-5, 9)),
    data=st.binary(max_size=200),
    seen=st.binary(min_size=0, max_size=8),
)
def test_generated_weights_files_load_or_raise_value_error(tmp_path_factory, head, data, seen):
    model = _small_model()
    params, state = model.init()
    path = tmp_path_factory.mktemp("w") / "x.weights"
    path.write_bytes(np.array(head, "<i4").tobytes() + seen + data)
    try:
        loaded, loaded_state, _, count = darknet.load_weights_upto(
            path, model.layers, params, state
        )
    except ValueError:
        return
    assert 0 <= count <= len(model.layers)
    assert all(
        np.all(np.asarray(v) >= 0)
        for v in [loaded_state["0_convolutional"]["batch_normalization"]["var"]]
    )


def test_cfg_with_bom_and_crlf_reads_and_non_utf8_is_refused(tmp_path):
    path = tmp_path / "win.cfg"
    path.write_bytes(b"\xef\xbb\xbf[net]\r\nwidth=8\r\nheight=8\r\nchannels=3\r\n[maxpool]\r\n")
    assert [s.type for s in darknet.read_cfg(path)] == ["net", "maxpool"]
    path.write_bytes(b"[net]\nwidth=\xff\n")
    with pytest.raises(ValueError, match=r"UTF-8 text, got byte 0xff at offset 12"):
        darknet.read_cfg(path)
