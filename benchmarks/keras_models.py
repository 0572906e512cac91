"""The benchmark networks written in Keras 3 (JAX backend), trained three Keras ways.

* `train_on_batch`: ``model.compile(SGD, loss)`` then ``model.train_on_batch``,
  the plain Keras API (it converts inputs and writes the variables back every call).
* `stateless_step`: the "best Keras" step of the Keras JAX guide: a
  ``jax.jit``-ed function of ``model.stateless_call`` and
  ``optimizer.stateless_apply`` with the state donated.
* `fit`: ``model.fit`` fed through a ``keras.utils.PyDataset`` (threaded workers)
  that reads the same `jaxheads.data.ShapesDataset` batches as jaxheads' `Batches`.

The loss is the jaxheads detection loss of the network (`Network.loss`), given
the targets packed into one ``[B, M, 6]`` array (`pack_targets`), since Keras
passes one ``y`` per output.
"""

from __future__ import annotations

import os

if os.environ.setdefault("KERAS_BACKEND", "jax") != "jax":
    raise ImportError(
        f"benchmarks.keras_models: needs KERAS_BACKEND=jax, got {os.environ['KERAS_BACKEND']!r}"
    )

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import networks as nw  # noqa: E402

if keras.backend.backend() != "jax":
    raise ImportError(
        f"benchmarks.keras_models: Keras was imported with the "
        f"{keras.backend.backend()!r} backend before KERAS_BACKEND=jax was set"
    )


def build(network: nw.Network) -> keras.Sequential:
    """``network.spec`` as a ``keras.Sequential`` on ``[B, S, S, 3]`` images.

    Kernels start at zero: `set_weights` overwrites them, and Keras draws random
    initial values eagerly, one compiled JAX op per shape, which costs seconds.
    """
    layers: list = [keras.Input((network.image_size, network.image_size, 3))]
    for spec in network.spec:
        if isinstance(spec, nw.Conv):
            layers.append(
                keras.layers.Conv2D(
                    spec.filters,
                    spec.size,
                    padding="same",
                    use_bias=not spec.batch_norm,
                    kernel_initializer="zeros",
                )
            )
            if spec.batch_norm:
                layers.append(
                    keras.layers.BatchNormalization(momentum=nw.BN_MOMENTUM, epsilon=spec.epsilon)
                )
            if spec.leaky:
                layers.append(keras.layers.LeakyReLU(negative_slope=nw.LEAKY_SLOPE))
        elif isinstance(spec, nw.MaxPool):
            layers.append(keras.layers.MaxPooling2D(spec.size, spec.stride, padding=spec.padding))
        elif isinstance(spec, nw.Flatten):
            layers.append(keras.layers.Flatten())
        elif isinstance(spec, nw.Dense):
            layers.append(keras.layers.Dense(spec.units, kernel_initializer="zeros"))
            if spec.leaky:
                layers.append(keras.layers.LeakyReLU(negative_slope=nw.LEAKY_SLOPE))
        elif isinstance(spec, nw.Dropout):
            layers.append(keras.layers.Dropout(spec.rate, seed=0))
        elif isinstance(spec, nw.Reshape):
            layers.append(keras.layers.Reshape(spec.shape))
    return keras.Sequential(layers, name=network.name)


def set_weights(model: keras.Sequential, weights: list[dict[str, np.ndarray]]) -> None:
    """Copies `benchmarks.networks.layer_weights` into the model (Keras layouts are ours)."""
    pending = list(weights)
    current: dict[str, np.ndarray] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            current = pending.pop(0)
            layer.kernel.assign(current["kernel"])
            if layer.use_bias:
                layer.bias.assign(current["bias"])
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(current["scale"])
            layer.beta.assign(current["offset"])
            layer.moving_mean.assign(current["mean"])
            layer.moving_variance.assign(current["var"])
    if pending:
        raise ValueError(f"set_weights: {len(pending)} weight sets left over")


class DetectionLoss(keras.losses.Loss):
    """``Network.loss`` on packed targets; Keras averages the per-image values."""

    def __init__(self, network: nw.Network):
        super().__init__(name=f"{network.name}_loss", reduction="sum_over_batch_size")
        self.network = network

    def call(self, y_true, y_pred):
        return self.network.loss(y_pred, *nw.unpack_targets(y_true))


def optimizer(learning_rate: float) -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)


def compiled_model(network: nw.Network, weights, learning_rate: float) -> keras.Sequential:
    """The Keras model with jaxheads' weights, compiled for `train_on_batch` and `fit`."""
    model = build(network)
    set_weights(model, weights)
    model.compile(optimizer=optimizer(learning_rate), loss=DetectionLoss(network))
    return model


def predict(model: keras.Sequential, images: np.ndarray) -> np.ndarray:
    """Inference-mode output (batch norm with the moving statistics), jitted by Keras."""
    return np.asarray(model.predict_on_batch(images))


class StatelessStep:
    """The Keras JAX guide's custom step: ``jax.jit`` over ``stateless_call``.

    ``step(x, y)`` runs one update on device arrays and returns the loss
    (not waited for); the state lives in this object, donated to each call.
    """

    def __init__(self, network: nw.Network, weights, learning_rate: float):
        model = build(network)
        set_weights(model, weights)
        opt = optimizer(learning_rate)
        opt.build(model.trainable_variables)
        loss_fn = DetectionLoss(network)

        def compute(trainable, non_trainable, x, y):
            y_pred, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
            return loss_fn(y, y_pred), non_trainable

        grad = jax.value_and_grad(compute, has_aux=True)

        def step(state, x, y):
            trainable, non_trainable, opt_vars = state
            (loss, non_trainable), grads = grad(trainable, non_trainable, x, y)
            trainable, opt_vars = opt.stateless_apply(opt_vars, grads, trainable)
            return (trainable, non_trainable, opt_vars), loss

        self.jitted = jax.jit(step, donate_argnums=0)
        self.state = tuple(
            [jnp.array(v.value, copy=True) for v in vs]
            for vs in (model.trainable_variables, model.non_trainable_variables, opt.variables)
        )
        self.compiled = None

    def compile(self, x, y):
        """Lowers and compiles (AOT); returns the compiled executable."""
        self.compiled = self.jitted.lower(self.state, x, y).compile()
        return self.compiled

    def __call__(self, x, y):
        self.state, loss = (self.compiled or self.jitted)(self.state, x, y)
        return loss


class ShapesPyDataset(keras.utils.PyDataset):
    """The batches of a `jaxheads.data.Batches` order as ``(images, packed targets)``.

    Each ``__getitem__`` draws its examples with the data set's own ``example``,
    as `Batches` does; Keras' threaded workers prepare them ahead.
    """

    def __init__(self, batches, steps: int, *, workers: int = 2):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=4)
        self.batches = batches
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        batch = self.batches.load(index)
        # (x, y, sample_weight=None) is the structure `train_on_batch` passes to the
        # jitted train step, so `fit` reuses that compilation instead of tracing anew.
        return batch["image"], nw.pack_targets(batch), None
