"""Darknet ``.weights`` files: read them into params/state and write them back.

The format (``load_weights_upto`` / ``save_weights`` in darknet's ``parser.c``):
three int32 ``major, minor, revision``; ``seen`` as a uint64 (``size_t``) when
``major·10 + minor >= 2`` (and both are below 1000), else as an int32; then
float32 arrays, layer by layer in cfg order, for the layers that have weights:

* ``[convolutional]``: ``biases [n]``; with ``batch_normalize``, ``scales [n]``,
  ``rolling_mean [n]``, ``rolling_variance [n]``; then ``weights [n, c/groups, kh, kw]``.
  Ours: ``kernel [kh, kw, c/groups, n]`` (HWIO); with batch norm the biases are
  the `BatchNormalization` ``bias`` (beta), scales its ``scale`` and the rolling
  statistics its ``mean``/``var`` state; without, the conv ``bias``.
* ``[connected]``: ``biases [out]``, ``weights [out, in]`` (``[in, out]`` when
  ``major`` or ``minor`` exceeds 1000, darknet's ``transpose`` flag), then with
  ``batch_normalize`` ``scales``, ``rolling_mean``, ``rolling_variance``. Ours:
  ``kernel [in, out]``. After a ``[H, W, C]`` map darknet's input index is
  ``(c·H + h)·W + w`` while our `Flatten` gives ``(h·W + w)·C + c``, so the
  kernel's rows are permuted (``[out, C, H, W] -> [H, W, C, out]``).
* ``[local]``: ``biases [n, out_h, out_w]`` (darknet's output layout) then, for
  each output location ``j = y·out_w + x``, a ``[n, c·kh·kw]`` matrix whose
  patch axis is im2col's channel-major ``(c, kh, kw)``. Ours: ``kernel [out_h,
  out_w, c·kh·kw, n]`` (same patch order) and ``bias [out_h, out_w, n]``.

A file may hold only the first layers (darknet's ``partial`` writes one, and its
``load_weights_upto`` reads until the file ends): `load_weights_upto` fills those
and leaves the rest as given. Unlike darknet, the reader refuses what it can tell
is wrong, before reading the floats: a header of an unknown version, a file
larger than the cfg needs, a file that ends inside a layer, or a batch-norm
layer whose rolling variance reads negative or non-finite (darknet's running
variance never is). A ``.weights`` file carries no shapes, so these size and
value checks are all there is: a file of another cfg whose layers happen to
end at one of this cfg's layer boundaries, with plausible statistics, loads.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads._checks import fail, not_a_regular_file

_WEIGHTED = ("convolutional", "connected", "local")
_log = logging.getLogger("jaxheads.darknet")

#: Versions darknet has written: ``major`` 0 or 1, ``minor`` 0 to 2 (``save_weights``
#: writes 0.2); darknet adds 1000 to either to mark ``[connected]`` weights stored
#: ``[in, out]``. Any other header is not a darknet file.
KNOWN_MAJORS, KNOWN_MINORS = (0, 1), (0, 1, 2)


class WeightsHeader(NamedTuple):
    """The header of a ``.weights`` file."""

    major: int
    minor: int
    revision: int
    seen: int

    @property
    def seen_is_64bit(self) -> bool:
        return self.major * 10 + self.minor >= 2 and self.major < 1000 and self.minor < 1000

    @property
    def transpose(self) -> bool:
        """Darknet's flag for ``[connected]`` weights stored ``[in, out]``."""
        return self.major > 1000 or self.minor > 1000

    @property
    def nbytes(self) -> int:
        return 12 + (8 if self.seen_is_64bit else 4)


def _check_regular(path) -> None:
    what = not_a_regular_file(path)
    if what:
        fail("load_weights", f"{os.fspath(path)}: a regular .weights file", what)


def read_header(path: str | os.PathLike) -> WeightsHeader:
    """Reads the header of a ``.weights`` file."""
    _check_regular(path)
    with open(path, "rb") as f:
        return _read_header(f, path)


def _read_header(f, path) -> WeightsHeader:
    head = f.read(12)
    if len(head) < 12:
        fail(
            "load_weights",
            f"{os.fspath(path)} to start with a 12-byte darknet header",
            f"{len(head)} bytes",
        )
    major, minor, revision = (int(v) for v in np.frombuffer(head, "<i4"))
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    raw = f.read(8 if wide else 4)
    if len(raw) < (8 if wide else 4):
        fail(
            "load_weights",
            f"{os.fspath(path)} to hold the 'seen' count after its header",
            "end of file",
        )
    seen = int(np.frombuffer(raw, "<u8" if wide else "<i4")[0])
    header = WeightsHeader(major, minor, revision, seen)
    base = (major - 1000 if major > 1000 else major, minor - 1000 if minor > 1000 else minor)
    if base[0] not in KNOWN_MAJORS or base[1] not in KNOWN_MINORS or revision < 0:
        fail(
            "load_weights",
            f"{os.fspath(path)} to start with a darknet header: version major in "
            f"{KNOWN_MAJORS}, minor in {KNOWN_MINORS} (1000 more on either for darknet's "
            "transposed [connected] layout), revision >= 0",
            f"major={major} minor={minor} revision={revision}",
        )
    return header


# ---------------------------------------------------------------------------
# Per-layer conversion between darknet arrays and our params.
# ---------------------------------------------------------------------------


def _leaves(record, params, state):
    """``(leaf params, bn params, bn state)`` of a weighted layer's node."""
    node_p, node_s = params.get(record.name, {}), state.get(record.name, {})
    parts = record.parts
    main = next(k for k in ("Conv2D", "Dense", "LocallyConnected2D") if k in parts)
    key = parts[main]
    leaf = node_p if key is None else node_p[key]
    if "BatchNormalization" in parts:
        bn_key = parts["BatchNormalization"]
        return leaf, node_p[bn_key], node_s[bn_key]
    return leaf, None, None


def _shape(a) -> tuple[int, ...]:
    return tuple(a.shape)


def layer_float_count(record, params, state) -> int:
    """Floats darknet stores for one layer (0 for layers without weights)."""
    if record.type not in _WEIGHTED:
        return 0
    leaf, bn, bn_state = _leaves(record, params, state)
    n = sum(math.prod(_shape(v)) for v in leaf.values())
    if bn is not None:
        n += sum(math.prod(_shape(v)) for v in (*bn.values(), *bn_state.values()))
    return n


def float_count(layers: Sequence, params, state) -> int:
    """Floats after the header of the ``.weights`` file for these layers and params."""
    return sum(layer_float_count(r, params, state) for r in layers)


def _dense_rows(record) -> tuple[int, int, int] | None:
    """``(H, W, C)`` when a [connected] layer reads a map (its rows need permuting)."""
    return record.input_shape if len(record.input_shape) == 3 else None


def to_darknet(record, params, state) -> list[np.ndarray]:
    """One layer's float32 arrays in darknet's file order and layouts."""
    leaf, bn, bn_state = _leaves(record, params, state)
    a = {k: np.asarray(v, np.float32) for k, v in leaf.items()}
    stats = (
        []
        if bn is None
        else [
            np.asarray(bn["scale"], np.float32),
            np.asarray(bn_state["mean"], np.float32),
            np.asarray(bn_state["var"], np.float32),
        ]
    )
    bias = a["bias"] if bn is None else np.asarray(bn["bias"], np.float32)
    if record.type == "convolutional":
        return [bias, *stats, a["kernel"].transpose(3, 2, 0, 1)]
    if record.type == "connected":
        kernel = a["kernel"]
        rows = _dense_rows(record)
        if rows is not None:
            h, w, c = rows
            weights = kernel.reshape(h, w, c, -1).transpose(3, 2, 0, 1)
        else:
            weights = kernel.T
        return [bias, weights, *stats]
    # local
    return [a["bias"].transpose(2, 0, 1), a["kernel"].transpose(0, 1, 3, 2)]


def _take(flat: np.ndarray, offset: int, shape) -> tuple[np.ndarray, int]:
    n = math.prod(shape)
    return flat[offset : offset + n].reshape(shape), offset + n


def from_darknet(
    record, flat: np.ndarray, offset: int, params, state, *, transpose: bool = False
) -> int:
    """Reads one layer from ``flat`` at ``offset`` into ``params``/``state`` (in place).

    ``params``/``state`` are mutable copies of the trees; their leaves give the
    shapes. Returns the new offset.
    """
    leaf, bn, bn_state = _leaves(record, params, state)
    if record.type == "convolutional":
        kh, kw, cin, n = _shape(leaf["kernel"])
        bias, offset = _take(flat, offset, (n,))
        if bn is not None:
            bn["bias"] = bias
            bn["scale"], offset = _take(flat, offset, (n,))
            bn_state["mean"], offset = _take(flat, offset, (n,))
            bn_state["var"], offset = _take(flat, offset, (n,))
        else:
            leaf["bias"] = bias
        weights, offset = _take(flat, offset, (n, cin, kh, kw))
        leaf["kernel"] = weights.transpose(2, 3, 1, 0)
        return offset
    if record.type == "connected":
        inputs, out = _shape(leaf["kernel"])
        bias, offset = _take(flat, offset, (out,))
        if transpose:
            weights, offset = _take(flat, offset, (inputs, out))
            weights = weights.T
        else:
            weights, offset = _take(flat, offset, (out, inputs))
        rows = _dense_rows(record)
        if rows is not None:
            h, w, c = rows
            leaf["kernel"] = (
                weights.reshape(out, c, h, w).transpose(2, 3, 1, 0).reshape(inputs, out)
            )
        else:
            leaf["kernel"] = weights.T
        if bn is not None:
            bn["bias"] = bias
            bn["scale"], offset = _take(flat, offset, (out,))
            bn_state["mean"], offset = _take(flat, offset, (out,))
            bn_state["var"], offset = _take(flat, offset, (out,))
        else:
            leaf["bias"] = bias
        return offset
    oh, ow, patch, n = _shape(leaf["kernel"])
    bias, offset = _take(flat, offset, (n, oh, ow))
    leaf["bias"] = bias.transpose(1, 2, 0)
    weights, offset = _take(flat, offset, (oh, ow, n, patch))
    leaf["kernel"] = weights.transpose(0, 1, 3, 2)
    return offset


def _to_jax(a) -> jax.Array:
    if isinstance(a, jax.ShapeDtypeStruct):  # a leaf no file layer filled stays a template
        return a
    return jnp.asarray(np.ascontiguousarray(a), jnp.float32)


def _mutable(tree):
    """A copy of nested dicts (leaves shared) that can be filled in place."""
    return {k: _mutable(v) if isinstance(v, dict) else v for k, v in tree.items()}


# ---------------------------------------------------------------------------
# Files.
# ---------------------------------------------------------------------------


class LayerSpan(NamedTuple):
    """Where one weighted layer's floats sit in the file body (after the header)."""

    record: Any
    start: int
    count: int


def layer_spans(layers: Sequence, params, state) -> list[LayerSpan]:
    """``LayerSpan`` of every weighted layer, in file order."""
    spans, offset = [], 0
    for record in layers:
        n = layer_float_count(record, params, state)
        if n:
            spans.append(LayerSpan(record, offset, n))
            offset += n
    return spans


def _describe(record, params, state) -> str:
    """``"layer 23 [convolutional] (kernel (3, 3, 512, 1024), batch norm)"``."""
    leaf, bn, _ = _leaves(record, params, state)
    shapes = ", ".join(f"{k} {_shape(v)}" for k, v in sorted(leaf.items()))
    norm = f", batch norm ({_shape(bn['scale'])[0]})" if bn is not None else ""
    return f"layer {record.index} [{record.type}] ({shapes}{norm})"


def _size_problem(path, header, spans, params, state, size: int, partial: bool):
    """``(expected, got)`` of the size error the file has, or None; and floats to read.

    Only ``os.fstat``'s size is used: at most the cfg's floats are ever read.
    """
    expected = spans[-1].start + spans[-1].count if spans else 0
    ask = f"{os.fspath(path)} to hold {expected} floats after its {header.nbytes}-byte header "
    ask += (
        "(darknet's count for this cfg, or those of its first layers)"
        if partial
        else ("(darknet's count for this cfg)")
    )
    floats = size // 4
    readable = [sp for sp in spans if sp.start + sp.count <= floats]
    if size % 4:
        return (ask, f"{size} bytes (not a whole number of floats)"), readable
    if floats > expected:
        got = f"{floats} floats: {floats - expected} left over after the last layer "
        return (ask, got + "(a file for a larger cfg?)"), readable
    if floats < expected and not partial:
        return (ask, f"{floats} floats"), readable
    inside = next((sp for sp in spans if sp.start < floats < sp.start + sp.count), None)
    if inside is not None:
        want = (
            f"{os.fspath(path)} to end at a layer boundary of this cfg: "
            f"{_describe(inside.record, params, state)} needs {inside.count} floats "
            f"from float {inside.start}"
        )
        got = (
            f"{floats} floats: the file ends {floats - inside.start} floats into "
            f"layer {inside.record.index} (a file for another cfg?)"
        )
        return (want, got), readable
    return None, readable


def _read(path, layers, params, state, *, partial: bool):
    """Reads the layers the file covers; ``(params, state, header, weighted layers read)``.

    The file's size is checked against the cfg before any float is read, and no
    more floats than the cfg needs are read. When the size is wrong, the layers
    that fit are still read and checked first, so that the error names the
    first layer that does not fit when its statistics show it.
    """
    spans = layer_spans(layers, params, state)
    _check_regular(path)
    with open(path, "rb") as f:
        header = _read_header(f, path)
        size = os.fstat(f.fileno()).st_size - header.nbytes
        problem, readable = _size_problem(path, header, spans, params, state, size, partial)
        floats = readable[-1].start + readable[-1].count if readable else 0
        body = f.read(4 * floats)
    if len(body) != 4 * floats:
        fail("load_weights", f"{os.fspath(path)} to hold {floats} floats", "a shorter read")
    flat = np.frombuffer(body, "<f4")
    params, state = _mutable(params), _mutable(state)
    for span in readable:
        from_darknet(span.record, flat, span.start, params, state, transpose=header.transpose)
        _check_statistics(path, span.record, params, state)
    if problem is not None:
        fail("load_weights", *problem)
    params, state = jax.tree.map(_to_jax, params), jax.tree.map(_to_jax, state)
    count = len(layers) if len(readable) == len(spans) else spans[len(readable)].record.index
    _log.info(
        "%s: %d of %d darknet layers from the file (%d of %d weighted layers)",
        os.fspath(path),
        count,
        len(layers),
        len(readable),
        len(spans),
    )
    return params, state, header, count


def _check_statistics(path, record, params, state) -> None:
    """Darknet's rolling variance is never negative: one that is means misread floats."""
    _, bn, bn_state = _leaves(record, params, state)
    if bn is None:
        return
    var = np.asarray(bn_state["var"])
    bad = ~np.isfinite(var) | (var < 0)
    if bad.any():
        fail(
            "load_weights",
            f"{os.fspath(path)} to fit {_describe(record, params, state)}: a rolling "
            "variance >= 0 at every channel",
            f"{int(bad.sum())} of {var.size} negative or non-finite (first {var[bad][0]!r}): "
            "the file was written for another cfg, whose layers differ in size here or before",
        )


def load_weights_upto(path: str | os.PathLike, layers: Sequence, params, state):
    """Reads a darknet ``.weights`` file that may hold only the first layers.

    As darknet's ``load_weights_upto``, the layers are read in order until the
    file ends; unlike it, the file must end at a layer boundary.

    Args:
      path: the file.
      layers: the model's `jaxheads.darknet.DarknetLayer` records, in order.
      params, state: the model's params and state: the values the layers the
        file does not cover keep (``jax.ShapeDtypeStruct`` leaves stay as they are).

    Returns:
      ``(params, state, header, count)``: new trees of float32 arrays, the
      `WeightsHeader`, and ``count``, the number of leading darknet layers the
      file determines (every layer before the first weighted layer it does not
      hold; ``len(layers)`` for a full file). Darknet's ``partial ... N`` on the
      same cfg gives ``count == N`` when layer ``N`` has weights.

    Raises:
      ValueError: an unknown header, leftover floats, a file ending inside a
        layer, or a negative rolling variance (see the module docstring).
    """
    return _read(path, layers, params, state, partial=True)


def load_weights(path: str | os.PathLike, layers: Sequence, params, state):
    """Reads a darknet ``.weights`` file that holds every layer of the cfg.

    Args:
      path: the file.
      layers: the model's `jaxheads.darknet.DarknetLayer` records, in order.
      params, state: trees of the model's params and state (arrays or
        ``jax.ShapeDtypeStruct``: only their shapes are used).

    Returns:
      ``(params, state, header)``: new trees of float32 arrays and the
      `WeightsHeader` (its ``seen`` is darknet's training-image count).

    Raises:
      ValueError: the file holds more or fewer floats than the cfg needs (its
        size is checked before its floats are read), or see `load_weights_upto`.
    """
    params, state, header, _ = _read(path, layers, params, state, partial=False)
    return params, state, header


def save_weights(
    path: str | os.PathLike,
    layers: Sequence,
    params,
    state,
    *,
    seen: int = 0,
    upto: int | None = None,
) -> None:
    """Writes a darknet ``.weights`` file that darknet itself loads.

    The header is ``major=0, minor=2, revision=0`` with ``seen`` as a uint64,
    as darknet's own ``save_weights`` writes it. The file is written to a
    temporary name in the same directory and renamed over ``path``, so a
    reader never sees half a file.

    Args:
      path: the destination.
      layers: the model's `DarknetLayer` records, in order.
      params, state: the model's params and state.
      seen: darknet's training-image count to store.
      upto: write only layers ``0 .. upto - 1`` (darknet's ``save_weights_upto``,
        which its ``partial`` command calls with ``seen`` 0); None for all.
    """
    if upto is not None and (
        not isinstance(upto, (int, np.integer)) or isinstance(upto, bool) or upto < 0
    ):
        fail("save_weights", "upto: a layer count >= 0", repr(upto))
    if not isinstance(seen, (int, np.integer)) or isinstance(seen, bool) or not 0 <= seen < 2**64:
        fail("save_weights", "seen: an integer in [0, 2**64)", repr(seen))
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".weights.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(np.array([0, 2, 0], "<i4").tobytes())
            f.write(np.array([seen], "<u8").tobytes())
            for record in layers:
                if upto is not None and record.index >= upto:
                    break
                if record.type in _WEIGHTED:
                    for a in to_darknet(record, params, state):
                        f.write(np.ascontiguousarray(a, "<f4").tobytes())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
