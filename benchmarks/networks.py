"""The benchmark networks, described once so that jaxheads, Keras 3 and Flax NNX build the same.

A `Network` carries:

* the jaxheads `Detector` (what ``jaxheads train`` would build);
* ``spec``: the same network as a flat list of `Conv`, `MaxPool`, `Flatten`,
  `Dense`, `Dropout` and `Reshape` records, from which `benchmarks.keras_models`
  and `benchmarks.flax_models` build their hand-written versions;
* ``loss``: ``(raw, boxes, labels, mask) -> [B]``, the jaxheads detection loss
  of the head (`jaxheads.losses.region_loss` or `jaxheads.losses.yolov1_loss`),
  minimised by all three frameworks.

`layer_weights` reads jaxheads' params in ``spec`` order, so the Keras and Flax
models start from the same weights and the benchmark can check that the three
compute the same function before it times them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads.darknet import DARKNET_BN_EPSILON
from jaxheads.layers.base import abstract_init
from jaxheads.losses import region_loss, yolov1_loss
from jaxheads.models import Detector
from jaxheads.train.detection import build_detector

#: Keras' BatchNormalization epsilon, which jaxheads' small backbone keeps.
KERAS_BN_EPSILON = 1e-3
LEAKY_SLOPE = 0.1
BN_MOMENTUM = 0.99


class Conv(NamedTuple):
    """A stride-1 "same" convolution, optionally batch-normalised (then without bias)."""

    filters: int
    size: int
    batch_norm: bool
    leaky: bool
    epsilon: float = DARKNET_BN_EPSILON


class MaxPool(NamedTuple):
    """Max pooling; ``"same"`` pads the bottom/right (darknet's 2×2 stride-1 pool)."""

    size: int
    stride: int
    padding: str = "valid"


class Flatten(NamedTuple):
    pass


class Dense(NamedTuple):
    units: int
    leaky: bool


class Dropout(NamedTuple):
    rate: float


class Reshape(NamedTuple):
    shape: tuple[int, ...]


Spec = tuple[Conv | MaxPool | Flatten | Dense | Dropout | Reshape, ...]


class Network(NamedTuple):
    """One benchmark network in the three frameworks' common description.

    Attributes:
      name: ``"yolov2_tiny"`` or ``"yolov1_fc"``, the suffix of the JSON figures.
      title: a human description.
      detector: the jaxheads detector.
      spec: the layers, in order, for the Keras and Flax builders.
      image_size: the square input side.
      num_classes: ``C``.
      loss: ``(raw, boxes [B, M, 4], labels [B, M], mask [B, M]) -> [B]`` float32.
    """

    name: str
    title: str
    detector: Detector
    spec: Spec
    image_size: int
    num_classes: int
    loss: Callable[..., jax.Array]


def yolov2_tiny(image_size: int = 416, num_classes: int = 20) -> Network:
    """Darknet's ``yolov2-tiny.cfg`` with ``C`` classes, trained with the region loss.

    The region loss runs with ``seen = 0`` (darknet's prior warm-up is on) in all
    three frameworks: a constant, so no framework keeps a branch another drops.
    """
    det, _ = build_detector("yolov2-tiny", image_size=image_size, num_classes=num_classes)
    conv = [16, 32, 64, 128, 256]
    spec: list = []
    for filters in conv:
        spec += [Conv(filters, 3, True, True), MaxPool(2, 2)]
    spec += [Conv(512, 3, True, True), MaxPool(2, 1, "same"), Conv(1024, 3, True, True)]
    spec += [
        Conv(512, 3, True, True),
        Conv(det.head.num_boxes * (5 + num_classes), 1, False, False),
    ]
    kwargs = det.head.loss_kwargs()

    def loss(raw, boxes, labels, mask):
        return region_loss(raw, boxes, labels, mask, seen=jnp.zeros((), jnp.float32), **kwargs)

    title = f"YOLOv2-tiny (darknet cfg), {image_size}x{image_size}, {num_classes} classes"
    return Network("yolov2_tiny", title, det, tuple(spec), image_size, num_classes, loss)


def yolov1_fc(image_size: int = 96, num_classes: int = 20) -> Network:
    """``small-yolov1-fc``: the small backbone with the paper's Flatten → Dense head.

    Trained with the YOLOv1 loss; the head's dropout (0.5) is active in all three.
    """
    det, _ = build_detector("small-yolov1-fc", image_size=image_size, num_classes=num_classes)
    side = det.head.side
    out = det.head.num_boxes * 5 + num_classes
    spec: list = []
    for i in range(4):
        spec += [Conv(16 * 2**i, 3, True, True, KERAS_BN_EPSILON), MaxPool(2, 2)]
    spec += [
        Conv(256, 3, True, True, KERAS_BN_EPSILON),
        Flatten(),
        Dense(256, True),
        Dropout(0.5),
        Dense(side * side * out, False),
        Reshape((side, side, out)),
    ]
    kwargs = det.head.loss_kwargs()

    def loss(raw, boxes, labels, mask):
        return yolov1_loss(raw, boxes, labels, mask, **kwargs)

    title = (
        f"small backbone + yolov1_fc head (hidden 256), {image_size}x{image_size}, "
        f"{side}x{side} grid, {num_classes} classes"
    )
    return Network("yolov1_fc", title, det, tuple(spec), image_size, num_classes, loss)


NETWORKS = {"yolov2_tiny": yolov2_tiny, "yolov1_fc": yolov1_fc}


def numpy_init(network: Network, seed: int = 0):
    """``(params, state)`` of the detector drawn with NumPy, without compiling anything.

    He-normal kernels, zero biases, unit batch-norm scales and variances: the values
    do not change the timings, and the detector's jitted init costs seconds of
    compilation per process (the darknet model's own init is NumPy already).
    """
    _, params, state = abstract_init(network.detector.layer, network.detector.input_shape)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name, shape = path[-1].key, tuple(leaf.shape)
        if name == "kernel":
            std = math.sqrt(2.0 / math.prod(shape[:-1]))
            return jnp.asarray(rng.standard_normal(shape, dtype=np.float32) * np.float32(std))
        return jnp.full(shape, 1.0 if name in ("scale", "var") else 0.0, jnp.float32)

    return (
        jax.tree_util.tree_map_with_path(fill, params),
        jax.tree_util.tree_map_with_path(fill, state),
    )


def _leaves(layer, params, state):
    """Every leaf layer of a graph in execution order, with its params and state."""
    if layer.nodes:
        for node in layer.nodes:
            yield from _leaves(node.layer, params.get(node.name, {}), state.get(node.name, {}))
    else:
        yield layer.kind, params, state


def layer_weights(network: Network, params, state) -> list[dict[str, np.ndarray]]:
    """The weights of each `Conv` and `Dense` of ``network.spec``, from jaxheads' params.

    Returns:
      One dict per `Conv`/`Dense`, in order: ``kernel`` (HWIO or ``[in, out]``),
      ``bias`` when the layer has one, and for batch-normalised convolutions
      ``scale``, ``offset``, ``mean`` and ``var``.
    """
    out: list[dict[str, Any]] = []
    for kind, p, s in _leaves(network.detector.layer, params, state):
        if kind in ("Conv2D", "Dense"):
            out.append({k: np.asarray(v) for k, v in p.items()})
        elif kind == "BatchNormalization":
            out[-1].update(
                scale=np.asarray(p["scale"]),
                offset=np.asarray(p["bias"]),
                mean=np.asarray(s["mean"]),
                var=np.asarray(s["var"]),
            )
    expected = sum(isinstance(layer, Conv | Dense) for layer in network.spec)
    if len(out) != expected:
        raise ValueError(
            f"layer_weights: expected {expected} conv/dense layers in "
            f"{network.name}, got {len(out)}"
        )
    return out


def forward_flops(network: Network) -> float:
    """Multiply-adds ×2 of one image's forward pass (convolutions and dense layers)."""
    h = w = network.image_size
    c = 3
    flops = 0.0
    for layer in network.spec:
        if isinstance(layer, Conv):
            flops += 2.0 * h * w * layer.size**2 * c * layer.filters
            c = layer.filters
        elif isinstance(layer, MaxPool) and layer.padding == "valid":
            h, w = (h - layer.size) // layer.stride + 1, (w - layer.size) // layer.stride + 1
        elif isinstance(layer, Flatten):
            c, h, w = h * w * c, 1, 1
        elif isinstance(layer, Dense):
            flops += 2.0 * c * layer.units
            c = layer.units
    return flops


def training_flops(network: Network, batch_size: int) -> float:
    """Model FLOPs of one training step: forward, input and weight gradients (3× forward)."""
    return 3.0 * forward_flops(network) * batch_size


def example_batch(network: Network, batch_size: int, *, seed: int = 0) -> dict[str, np.ndarray]:
    """One batch of `jaxheads.data.ShapesDataset` at the network's size, as `Batches` gives it."""
    from jaxheads.data import Batches

    batches = Batches(
        shapes_data(network, batch_size), batch_size, seed=seed, prefetch=0, num_workers=1
    )
    return batches.load(0)


def shapes_data(network: Network, num_examples: int):
    """The procedural shapes data at the network's image size (5 of its classes occur)."""
    from jaxheads.data import ShapesDataset

    return ShapesDataset(
        num_examples,
        image_size=network.image_size,
        max_boxes=8,
        num_classes=min(5, network.num_classes),
        seed=0,
    )


class Predrawn:
    """A data set's examples drawn once into memory: the same data, without the drawing."""

    def __init__(self, dataset):
        self.examples = [dataset.example(i) for i in range(len(dataset))]
        self.class_names, self.image_size = dataset.class_names, dataset.image_size
        self.max_boxes = dataset.max_boxes

    def __len__(self) -> int:
        return len(self.examples)

    def example(self, i: int) -> dict[str, np.ndarray]:
        return self.examples[i]


def pack_targets(batch: dict[str, np.ndarray]) -> np.ndarray:
    """``[B, M, 6]`` float32: boxes, label and mask in one array, the ``y`` Keras takes."""
    return np.concatenate(
        [
            batch["boxes"],
            batch["labels"][..., None].astype(np.float32),
            batch["mask"][..., None].astype(np.float32),
        ],
        axis=-1,
    )


def unpack_targets(packed):
    """Inverse of `pack_targets` (inside a traced loss): ``(boxes, labels, mask)``."""
    return (packed[..., :4], packed[..., 4].astype(jnp.int32), packed[..., 5] > 0.5)
