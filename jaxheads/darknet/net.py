"""A built darknet model with its parameters: `DarknetNet`, and `load` to make one."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import jax

from jaxheads import layers as L
from jaxheads._checks import check_floating, check_rank, check_shape, fail
from jaxheads.darknet import weights as weights_io
from jaxheads.darknet.build import MAX_MODEL_BYTES, DarknetLayer, DarknetModel, from_cfg
from jaxheads.darknet.cfg import Section
from jaxheads.darknet.sections import NetConfig
from jaxheads.heads import Head
from jaxheads.layers.base import Layer


@dataclass(frozen=True, eq=False)
class DarknetNet:
    """A darknet model ready to run: a `DarknetModel` plus params and state.

    Attributes:
      model: the `DarknetModel`.
      params: trainable parameters keyed by node name.
      state: batch-norm running statistics keyed by node name.
      seen: darknet's count of training images, kept from the weights file.
      layers_from_file: how many leading darknet layers took their weights from
        a file (all of them for a full file, ``N`` for darknet's ``partial ... N``
        of a backbone, 0 without a file); the others are initialised.
    """

    model: DarknetModel
    params: Any
    state: Any
    seen: int = 0
    layers_from_file: int = 0

    @property
    def layer(self) -> Layer:
        return self.model.layer

    @property
    def input_shape(self) -> tuple:
        return self.model.input_shape

    @property
    def sections(self) -> tuple[Section, ...]:
        return self.model.sections

    @property
    def head(self) -> Head | None:
        return self.model.head

    @property
    def net(self) -> NetConfig:
        return self.model.net

    @property
    def layers(self) -> tuple[DarknetLayer, ...]:
        return self.model.layers

    def _check_images(self, images):
        op = "DarknetNet"
        check_rank(op, "images", images, 4, "[B, H, W, C]")
        check_floating(op, "images", images)
        check_shape(op, "images", images, (None, *self.input_shape[1:]))

    def __call__(self, images: jax.Array) -> jax.Array:
        """Runs the network in inference mode.

        Args:
          images: ``[B, H, W, C]`` floats in ``[0, 1]`` (darknet's input range),
            ``H, W, C`` as in `input_shape`.

        Returns:
          The raw output of the last layer before ``[region]``/``[detection]``:
          ``[B, h, w, c]`` after a convolution, ``[B, n]`` after ``[connected]``.
        """
        self._check_images(images)
        return self.model.forward(self.params, self.state, images)

    def decode(self, raw: jax.Array):
        """See `DarknetModel.decode`."""
        return self.model.decode(raw)

    def detect(
        self,
        images: jax.Array,
        *,
        score_threshold: float = 0.005,
        iou_threshold: float = 0.45,
        max_detections: int = 100,
    ):
        """Images to padded detections (`jaxheads.detect.postprocess`).

        Args:
          images: ``[B, H, W, C]`` in ``[0, 1]``.
          score_threshold, iou_threshold, max_detections: see `postprocess`.

        Returns:
          `jaxheads.detect.Detections` with ``boxes [B, K, 4]`` xyxy normalised
          to the image, ``scores``, ``labels`` and ``valid`` ``[B, K]``.
        """
        self._check_images(images)
        return self.model.detect(
            self.params,
            self.state,
            images,
            score_threshold=score_threshold,
            iou_threshold=iou_threshold,
            max_detections=max_detections,
        )

    def save_weights(self, path: str | os.PathLike) -> None:
        """Writes a darknet ``.weights`` file (atomically; see `jaxheads.darknet.save_weights`)."""
        weights_io.save_weights(path, self.layers, self.params, self.state, seen=self.seen)

    def summary(self, *, expand_nested: bool = False) -> str:
        """The Keras-style table of `jaxheads.summary`."""
        from jaxheads.summary import summary

        return summary(self.layer, self.input_shape, expand_nested=expand_nested)


def _filled(loaded, initial):
    return initial if isinstance(loaded, jax.ShapeDtypeStruct) else loaded


def load(
    cfg: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    *,
    image_size: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    partial: bool = False,
    max_bytes: int = MAX_MODEL_BYTES,
) -> DarknetNet:
    """Builds a cfg and loads darknet weights into it (or initialises it randomly).

    Args:
      cfg: a ``.cfg`` path, or a packaged model's name (`jaxheads.darknet.MODELS`, e.g.
        ``"fast-yolo"``) or cfg's (`jaxheads.darknet.CFG_NAMES`).
      weights: a darknet ``.weights`` file that fills the model (with ``partial``,
        one that holds only its first layers); None for darknet-style random
        params (`DarknetModel.init`).
      image_size, num_classes: overrides (see `build_model`).
      seed: the init's PRNG seed for the layers no file covers.
      partial: accept a file of the first layers, as darknet's ``partial`` writes
        (a backbone to train a detector from): the others are initialised as with
        no file, and `DarknetNet.layers_from_file` says how many came from it. A
        file of no layer's floats (a bare header) is refused either way.
      max_bytes: the largest model built (see `build_model`): a cfg past it is
        refused before any array is made, weights file or not.

    Returns:
      A `DarknetNet`.

    >>> import jax.numpy as jnp
    >>> net = load("yolov2-tiny-voc", image_size=64)
    >>> net(jnp.zeros((1, 64, 64, 3))).shape
    (1, 2, 2, 125)
    """
    model = from_cfg(cfg, image_size=image_size, num_classes=num_classes, max_bytes=max_bytes)
    if weights is None:
        return DarknetNet(model, *model.init(seed), 0)
    _, template_params, template_state = L.abstract_init(model.layer, model.input_shape)
    # The file is read (and checked) before the init draws what it does not hold.
    if not partial:
        params, state, header = weights_io.load_weights(
            weights, model.layers, template_params, template_state
        )
        return DarknetNet(model, params, state, header.seen, len(model.layers))
    params, state, header, count = weights_io.load_weights_upto(
        weights, model.layers, template_params, template_state
    )
    if os.path.getsize(weights) == header.nbytes:
        fail(
            "load",
            f"{os.fspath(weights)} to hold at least the first weighted layer's floats",
            "none after its header (a file of no layer: darknet's `partial ... 0`?)",
        )
    if count < len(model.layers):
        params, state = jax.tree.map(_filled, (params, state), model.init(seed))
    return DarknetNet(model, params, state, header.seen, count)
