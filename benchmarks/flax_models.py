"""The benchmark networks hand-written in Flax NNX, trained the way the Flax guides do.

``nnx.Conv`` / ``nnx.BatchNorm`` / ``nnx.leaky_relu`` / ``nnx.max_pool`` modules,
an ``nnx.Optimizer`` over optax SGD with momentum, and an ``@nnx.jit`` train step
with ``nnx.value_and_grad``; batch statistics and dropout keys are updated in
place by NNX. The loss is the jaxheads detection loss of the network.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks import networks as nw

# Kernels start at zero: `set_weights` overwrites them, and random initial values
# drawn eagerly cost one compiled JAX op per shape.
ZEROS = nnx.initializers.zeros_init()


class ConvBlock(nnx.Module):
    """A "same" convolution, batch norm and leaky ReLU: one darknet ``[convolutional]``."""

    def __init__(self, in_features: int, spec: nw.Conv, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(
            in_features,
            spec.filters,
            (spec.size, spec.size),
            padding="SAME",
            use_bias=not spec.batch_norm,
            kernel_init=ZEROS,
            rngs=rngs,
        )
        self.bn = (
            nnx.BatchNorm(spec.filters, momentum=nw.BN_MOMENTUM, epsilon=spec.epsilon, rngs=rngs)
            if spec.batch_norm
            else None
        )
        self.leaky = spec.leaky

    def __call__(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return nnx.leaky_relu(x, nw.LEAKY_SLOPE) if self.leaky else x


class Detector(nnx.Module):
    """``network.spec`` as an NNX module: ``[B, S, S, 3] -> raw head output``."""

    def __init__(self, network: nw.Network, *, rngs: nnx.Rngs):
        self.spec = network.spec
        layers = []
        side, c = network.image_size, 3
        for spec in network.spec:
            if isinstance(spec, nw.Conv):
                layers.append(ConvBlock(c, spec, rngs=rngs))
                c = spec.filters
            elif isinstance(spec, nw.MaxPool) and spec.padding == "valid":
                side = (side - spec.size) // spec.stride + 1
            elif isinstance(spec, nw.Flatten):
                side, c = 1, side * side * c
            elif isinstance(spec, nw.Dense):
                layers.append(nnx.Linear(c, spec.units, kernel_init=ZEROS, rngs=rngs))
                c = spec.units
            elif isinstance(spec, nw.Dropout):
                layers.append(nnx.Dropout(spec.rate, rngs=rngs))
        self.layers = nnx.List(layers)

    def __call__(self, x):
        modules = iter(self.layers)
        for spec in self.spec:
            if isinstance(spec, nw.Conv | nw.Dropout):
                x = next(modules)(x)
            elif isinstance(spec, nw.Dense):
                x = next(modules)(x)
                x = nnx.leaky_relu(x, nw.LEAKY_SLOPE) if spec.leaky else x
            elif isinstance(spec, nw.MaxPool):
                x = nnx.max_pool(
                    x, (spec.size, spec.size), (spec.stride, spec.stride), spec.padding.upper()
                )
            elif isinstance(spec, nw.Flatten):
                x = x.reshape(x.shape[0], -1)
            elif isinstance(spec, nw.Reshape):
                x = x.reshape(x.shape[0], *spec.shape)
        return x


def set_weights(model: Detector, weights: list[dict[str, np.ndarray]]) -> None:
    """Copies `benchmarks.networks.layer_weights` into the module (HWIO, ``[in, out]``)."""
    pending = list(weights)
    for layer in model.layers:
        if isinstance(layer, ConvBlock):
            w = pending.pop(0)
            layer.conv.kernel.set_value(jnp.asarray(w["kernel"]))
            if layer.conv.bias is not None:
                layer.conv.bias.set_value(jnp.asarray(w["bias"]))
            if layer.bn is not None:
                layer.bn.scale.set_value(jnp.asarray(w["scale"]))
                layer.bn.bias.set_value(jnp.asarray(w["offset"]))
                layer.bn.mean.set_value(jnp.asarray(w["mean"]))
                layer.bn.var.set_value(jnp.asarray(w["var"]))
        elif isinstance(layer, nnx.Linear):
            w = pending.pop(0)
            layer.kernel.set_value(jnp.asarray(w["kernel"]))
            layer.bias.set_value(jnp.asarray(w["bias"]))
    if pending:
        raise ValueError(f"set_weights: {len(pending)} weight sets left over")


def build(network: nw.Network, weights) -> Detector:
    model = Detector(network, rngs=nnx.Rngs(params=0, dropout=1))
    set_weights(model, weights)
    return model


@nnx.jit
def _forward(model: Detector, images):
    return model(images)


def predict(model: Detector, images: np.ndarray) -> np.ndarray:
    """Inference-mode output (running batch statistics, no dropout)."""
    model.eval()
    out = np.asarray(_forward(model, jnp.asarray(images)))
    model.train()
    return out


def make_train_step(loss_fn):
    """The Flax guides' ``@nnx.jit`` step for ``loss_fn(raw, boxes, labels, mask) -> [B]``."""

    @nnx.jit
    def train_step(model: Detector, optimizer: nnx.Optimizer, batch):
        def objective(model):
            raw = model(batch["image"])
            return jnp.mean(loss_fn(raw, batch["boxes"], batch["labels"], batch["mask"]))

        loss, grads = nnx.value_and_grad(objective)(model)
        optimizer.update(model, grads)
        return loss

    return train_step


class Trainer:
    """The module, its optimizer and the jitted step: ``trainer(batch) -> loss``."""

    def __init__(self, network: nw.Network, weights, learning_rate: float):
        self.model = build(network, weights)
        self.model.train()
        self.optimizer = nnx.Optimizer(
            self.model, optax.sgd(learning_rate, momentum=0.9), wrt=nnx.Param
        )
        self.step = make_train_step(network.loss)

    def __call__(self, batch):
        return self.step(self.model, self.optimizer, batch)
