"""The YOLOv2 detection head (darknet ``yolov2-voc.cfg`` after the Darknet-19 backbone).

With ``passthrough=True`` the head is layers 23–30 of ``yolov2-voc.cfg``:

====  ==========================================  =======================
cfg   darknet                                     node here
====  ==========================================  =======================
23    conv 3×3 ×1024, BN, leaky (13×13 map)       ``conv1 bn1 leaky1``
24    conv 3×3 ×1024, BN, leaky                   ``conv2 bn2 leaky2``
25    route -9 (layer 16, the 26×26×512 map)      ``fine``
26    conv 1×1 ×64, BN, leaky                     ``pass_conv pass_bn pass_leaky``
27    reorg stride=2 → 13×13×256                  ``reorg``
28    route -1,-4 (reorg output first, then 24)   ``route``
29    conv 3×3 ×1024, BN, leaky                   ``conv3 bn3 leaky3``
30    conv 1×1 ×A·(5 + C), linear, with bias      ``output``
====  ==========================================  =======================

Without passthrough, layers 25–28 are left out (the paper's "convolutional
with anchor boxes" step before it added the passthrough), and
``extra_convs=False`` leaves out the three 3×3 convolutions as well, so only
the final 1×1 convolution remains. The output ``[B, H, W, A·(5 + C)]`` is laid
out as `jaxheads.decode.decode_yolov2` and `jaxheads.losses.region_loss` read it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from jaxheads import layers as L
from jaxheads._checks import check_positive_int, fail
from jaxheads.decode import BOUNDED, RegionCentre, decode_yolov2
from jaxheads.heads.base import Head, check_feature_map, guarded, normalize_anchors, select
from jaxheads.heads.family import region_family
from jaxheads.layers.base import is_multi
from jaxheads.layers.combinators import INPUT, Node

#: yolov2-voc.cfg ``[region] anchors=`` (widths, heights in cells of the 13×13 grid).
VOC_ANCHORS = (
    (1.3221, 1.73145),
    (3.19275, 4.00944),
    (5.05587, 8.09892),
    (9.47112, 4.84053),
    (11.2364, 10.0071),
)

#: The passthrough's reorganisation layers by name (``yolov2(reorg=...)``).
REORGS = {"darknet": L.DarknetReorg, "space_to_depth": L.SpaceToDepth}


def _conv_bn_leaky(prefix: str, suffix: str, filters: int, size: int, source: str) -> list[Node]:
    # Darknet's batch_normalize=1 convolutions have no bias: BN's beta plays its part.
    return [
        Node(
            f"{prefix}conv{suffix}", L.Conv2D(filters, size, padding="same", use_bias=False), source
        ),
        Node(f"{prefix}bn{suffix}", L.BatchNormalization()),
        Node(f"{prefix}leaky{suffix}", L.LeakyReLU(0.1)),
    ]


def _check_input(op: str, shape, passthrough: bool) -> None:
    if not passthrough:
        check_feature_map(op, shape)
        return
    want = "[coarse [B, H, W, C], fine [B, 2H, 2W, C']] (passthrough=True)"
    if not is_multi(shape) or len(shape) != 2:
        fail(op, want, f"shape {tuple(shape)}" if not is_multi(shape) else list(shape))
    coarse, fine = shape
    if len(coarse) != 4 or len(fine) != 4:
        fail(op, want, list(shape))
    if tuple(fine[1:3]) != (2 * coarse[1], 2 * coarse[2]):
        fail(op, f"{want} with the fine map twice the coarse map's size", list(shape))


def yolov2(
    *,
    anchors: Sequence = VOC_ANCHORS,
    num_classes: int = 20,
    passthrough: bool = False,
    reorg: str = "darknet",
    passthrough_channels: int = 64,
    width: int = 1024,
    extra_convs: bool = True,
    centre: RegionCentre = BOUNDED,
    name: str = "yolov2",
) -> Head:
    """The YOLOv2 head (see the module docstring for the darknet layer it mirrors).

    Args:
      anchors: ``[A, 2]`` prior widths and heights in grid cells (default:
        ``yolov2-voc.cfg``'s five).
      num_classes: ``C``.
      passthrough: also read the fine map: 1×1 conv to ``passthrough_channels``,
        reorg to half the size, concatenated in front of the coarse path.
      reorg: ``"darknet"`` (`jaxheads.ops.darknet_reorg`, what darknet computes,
        needed for darknet weights) or ``"space_to_depth"`` (TensorFlow's order,
        used by YAD2K and most Keras ports).
      passthrough_channels: filters of the passthrough's 1×1 convolution (64 in
        darknet); a multiple of 4 for ``reorg="darknet"``.
      width: filters of the 3×3 convolutions (1024 in darknet).
      extra_convs: include the three 3×3 convolutions; without them only the
        final 1×1 convolution (after the route, with passthrough) remains.
      centre: where ``tx, ty`` put a box centre, in the decoder and the loss alike:
        `jaxheads.decode.BOUNDED` (darknet's ``σ(t) + c``) or `jaxheads.decode.UNBOUNDED`
        (the paper's starting point; such a head has no darknet section).
      name: the layer's name.

    Returns:
      A `Head` whose layer maps ``[B, H, W, C_in]`` (or, with passthrough,
      ``[coarse [B, H, W, C_in], fine [B, 2H, 2W, C_fine]]``) to
      ``[B, H, W, A·(5 + C)]``.

    >>> from jaxheads import summary
    >>> head = yolov2(passthrough=True)
    >>> text = summary(head.layer, [(None, 13, 13, 1024), (None, 26, 26, 512)])
    >>> print(text.splitlines()[-3])
    Total params: 30,844,285 (117.66 MB)
    """
    op = "yolov2"
    anchors = normalize_anchors(op, anchors)
    check_positive_int(op, "num_classes", num_classes)
    check_positive_int(op, "passthrough_channels", passthrough_channels)
    check_positive_int(op, "width", width)
    if reorg not in REORGS:
        fail(op, f"reorg in {sorted(REORGS)}", repr(reorg))
    out = len(anchors) * (5 + num_classes)

    nodes: list[Node] = []
    coarse = INPUT
    if passthrough:
        nodes += [
            Node("coarse", select(0, name="coarse"), INPUT),
            Node("fine", select(1, name="fine"), INPUT),
        ]
        coarse = "coarse"
    if extra_convs:
        nodes += _conv_bn_leaky("", "1", width, 3, coarse)
        nodes += _conv_bn_leaky("", "2", width, 3, None)
        coarse = "leaky2"
    last = coarse
    if passthrough:
        nodes += _conv_bn_leaky("pass_", "", passthrough_channels, 1, "fine")
        nodes += [
            Node("reorg", REORGS[reorg](2)),
            # darknet's route order: the reorganised fine map first.
            Node("route", L.Concatenate(), ("reorg", coarse)),
        ]
        last = "route"
    if extra_convs:
        nodes += _conv_bn_leaky("", "3", width, 3, last)
        last = "leaky3"
    nodes.append(Node("output", L.Conv2D(out, 1), last))

    layer = guarded(L.graph(nodes, name=name), lambda shape: _check_input(op, shape, passthrough))
    decode = functools.partial(
        decode_yolov2, anchors=anchors, num_classes=num_classes, centre=centre
    )
    return Head(
        layer,
        decode,
        region_family(centre),
        len(anchors),
        num_classes,
        anchors=anchors,
        passthrough=bool(passthrough),
        softmax=True,
    )
