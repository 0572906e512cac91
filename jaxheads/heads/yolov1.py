"""YOLOv1 heads: the paper's fully connected head, darknet's locally connected one,
and the per-cell Dense that many Keras ports build by accident.

All three map an ``S × S`` feature map ``[B, S, S, C_in]`` to the YOLOv1 output
``[B, S, S, nb·5 + C]``: per cell, ``(x, y, w, h, conf)`` for each of the ``nb``
boxes, then ``C`` class scores (the layout of `jaxheads.decode.decode_yolov1`
and `jaxheads.losses.yolov1_loss`). Leaky slope 0.1 is darknet's ``leaky``.
"""

from __future__ import annotations

from jaxheads import layers as L
from jaxheads._checks import fail
from jaxheads.heads.base import Head, check_rate, check_yolov1_sizes, yolov1_head
from jaxheads.layers.core import glorot_uniform


def yolov1_fc(
    *,
    side: int = 7,
    num_boxes: int = 2,
    num_classes: int = 20,
    hidden: int = 4096,
    dropout: float = 0.5,
    sqrt: bool = True,
    output_scale: float = 1.0,
    name: str = "yolov1_fc",
) -> Head:
    """The YOLO paper's head: every output sees the whole ``S × S`` map.

    ``Flatten -> Dense(hidden) -> LeakyReLU(0.1) -> Dropout -> Dense(S·S·(nb·5 + C))
    -> Reshape([S, S, nb·5 + C])``. On the paper's ``7 × 7 × 1024`` map the first
    Dense alone has 50,176·4096 + 4096 = 205,524,992 parameters.

    Args:
      side: the grid ``S``; the input must be ``[B, S, S, C_in]``.
      num_boxes: boxes per cell ``nb``.
      num_classes: ``C``.
      hidden: width of the hidden Dense (4096 in the paper).
      dropout: drop probability after the hidden layer (active with ``train=True``).
      sqrt: the decoder squares ``w, h`` (the paper predicts their square roots).
      output_scale: multiplies the output Dense's initial kernel (Glorot uniform; its
        bias starts at 0), so the head's initial outputs shrink by that factor.
      name: the layer's name.

    Returns:
      A `Head` whose layer maps ``[B, S, S, C_in] -> [B, S, S, nb·5 + C]``.

    >>> from jaxheads import summary
    >>> head = yolov1_fc()
    >>> print(summary(head.layer, (None, 7, 7, 1024)).splitlines()[-3])
    Total params: 211,547,582 (806.99 MB)
    """
    op = "yolov1_fc"
    out = check_yolov1_sizes(op, side, num_boxes, num_classes, hidden=hidden)
    rate = check_rate(op, dropout)
    if not isinstance(output_scale, (int, float)) or not 0 < output_scale < float("inf"):
        fail(op, "output_scale a finite number > 0", repr(output_scale))
    kernel_init = glorot_uniform
    if output_scale != 1.0:

        def kernel_init(key, shape, dtype):
            return glorot_uniform(key, shape, dtype) * output_scale

    layer = L.serial(
        L.Flatten(),
        L.Dense(hidden),
        L.LeakyReLU(0.1),
        L.Dropout(rate),
        L.Dense(side * side * out, kernel_init=kernel_init),
        L.Reshape((side, side, out)),
        name=name,
    )
    return yolov1_head(op, layer, side, num_boxes, num_classes, sqrt)


def yolov1_percell(
    *,
    side: int = 7,
    num_boxes: int = 2,
    num_classes: int = 20,
    hidden: int = 4096,
    dropout: float = 0.5,
    sqrt: bool = True,
    name: str = "yolov1_percell",
) -> Head:
    """Dense layers applied to each cell on its own: a pair of 1×1 convolutions.

    ``Dense(hidden) -> LeakyReLU(0.1) -> Dropout -> Dense(nb·5 + C)`` on
    ``[B, S, S, C_in]`` without a Flatten. Keras ``Dense`` contracts the last
    axis only, so this is what ``Dense(4096)`` on a 7×7×1024 map builds: on the
    paper's map it has 1024·4096 + 4096 = 4,198,400 and 4096·30 + 30 = 122,910
    parameters, 4,321,310 in all, against the FC head's 211,547,582.

    What it cannot do: no cell sees another. Each cell's boxes and classes are a
    function of that cell's ``C_in`` features alone, with the same weights at
    every position, so the head cannot weigh evidence across cells (an object
    larger than the backbone's receptive field, which cell owns an object, or
    where in the image the cell is) — only the backbone's receptive field
    mixes space.

    Args:
      side: the grid ``S``; the input must be ``[B, S, S, C_in]``.
      num_boxes: boxes per cell ``nb``.
      num_classes: ``C``.
      hidden: width of the hidden per-cell Dense.
      dropout: drop probability after the hidden layer.
      sqrt: the decoder squares ``w, h``.
      name: the layer's name.

    Returns:
      A `Head` whose layer maps ``[B, S, S, C_in] -> [B, S, S, nb·5 + C]``.

    >>> from jaxheads import summary
    >>> print(summary(yolov1_percell().layer, (None, 7, 7, 1024)).splitlines()[-3])
    Total params: 4,321,310 (16.48 MB)
    """
    op = "yolov1_percell"
    out = check_yolov1_sizes(op, side, num_boxes, num_classes, hidden=hidden)
    rate = check_rate(op, dropout)
    layer = L.serial(L.Dense(hidden), L.LeakyReLU(0.1), L.Dropout(rate), L.Dense(out), name=name)
    return yolov1_head(op, layer, side, num_boxes, num_classes, sqrt)


def yolov1_local(
    *,
    side: int = 7,
    num_boxes: int = 2,
    num_classes: int = 20,
    filters: int = 256,
    dropout: float = 0.5,
    sqrt: bool = True,
    name: str = "yolov1_local",
) -> Head:
    """Darknet ``yolov1.cfg``'s head: a locally connected layer, then one Dense.

    ``LocallyConnected2D(filters, 3, padding=1) -> LeakyReLU(0.1) -> Dropout ->
    Flatten -> Dense(S·S·(nb·5 + C)) -> Reshape([S, S, nb·5 + C])``, i.e. the
    cfg's ``[local] size=3 stride=1 pad=1 filters=256 activation=leaky``,
    ``[dropout] probability=.5`` and ``[connected] activation=linear``. (The cfg
    itself uses ``num=3`` boxes, ``output=1715``, and darknet's own output
    order; see `jaxheads.losses.yolov1_from_darknet_layout`.) Each cell's 3×3
    neighbourhood has its own weights; the final Dense sees every cell.

    Args:
      side: the grid ``S``; the input must be ``[B, S, S, C_in]``.
      num_boxes: boxes per cell ``nb``.
      num_classes: ``C``.
      filters: output channels of the locally connected layer.
      dropout: drop probability after it.
      sqrt: the decoder squares ``w, h``.
      name: the layer's name.

    Returns:
      A `Head` whose layer maps ``[B, S, S, C_in] -> [B, S, S, nb·5 + C]``.

    >>> from jaxheads import summary
    >>> print(summary(yolov1_local().layer, (None, 7, 7, 1024)).splitlines()[-3])
    Total params: 134,059,198 (511.40 MB)
    """
    op = "yolov1_local"
    out = check_yolov1_sizes(op, side, num_boxes, num_classes, filters=filters)
    rate = check_rate(op, dropout)
    layer = L.serial(
        L.LocallyConnected2D(filters, 3, padding=1),
        L.LeakyReLU(0.1),
        L.Dropout(rate),
        L.Flatten(),
        L.Dense(side * side * out),
        L.Reshape((side, side, out)),
        name=name,
    )
    return yolov1_head(op, layer, side, num_boxes, num_classes, sqrt)
