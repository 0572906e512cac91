"""``jaxheads darknet ...``: darknet's own file commands.

``jaxheads darknet partial CFG WEIGHTS OUT N`` is darknet's
``./darknet partial CFG WEIGHTS OUT N``: it loads ``WEIGHTS`` (full or partial)
into ``CFG`` and writes the weights of layers ``0 .. N-1`` to ``OUT``, byte for
byte as darknet does (``load_network(..., clear=1)`` then ``save_weights_upto``:
header ``0, 2, 0`` and ``seen`` 0), e.g. the Darknet-19 backbone YOLOv2 starts from::

    jaxheads darknet partial darknet19_448 darknet19_448.weights darknet19_448.conv.23 23
"""

from __future__ import annotations

import os

from jaxheads._checks import fail


def partial(
    cfg: str | os.PathLike, weights: str | os.PathLike, out: str | os.PathLike, upto: int
) -> int:
    """Writes the first ``upto`` layers of a ``.weights`` file as darknet's ``partial`` does.

    Args:
      cfg: a ``.cfg`` path or a packaged cfg's name.
      weights: a ``.weights`` file for ``cfg`` (full, or its first layers).
      out: the file to write (atomically; nothing is written on error).
      upto: the number of leading darknet layers to keep (``>= 0``; a count
        past the last layer keeps them all, as in darknet).

    Returns:
      The number of floats written after the header.
    """
    from jaxheads.darknet import weights as weights_io
    from jaxheads.darknet.net import load

    if not isinstance(upto, int) or isinstance(upto, bool) or upto < 0:
        fail("darknet partial", "N: a layer count >= 0", repr(upto))
    net = load(cfg, weights, partial=True)
    kept = [r for r in net.layers if r.index < upto]
    weights_io.save_weights(out, net.layers, net.params, net.state, seen=0, upto=upto)
    return weights_io.float_count(kept, net.params, net.state)
