"""Training throughput: jaxheads, Keras 3 and Flax NNX on the same network, batch and loss.

`Contenders` builds the four trainers of one network from the same weights:

* ``jaxheads``: `jaxheads.train.step.make_step` run by `JitRunner` on one device
  (the program ``jaxheads train`` runs), the loss that of `detection_loss`;
* ``keras_train_on_batch`` and ``keras_stateless``: `benchmarks.keras_models`;
* ``flax_nnx``: `benchmarks.flax_models`.

All use SGD with momentum 0.9, float32, the same batch of
`jaxheads.data.ShapesDataset` images, and ``Network.loss``.
"""

from __future__ import annotations

import contextlib
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import networks as nw
from jaxheads.bench import cost_flops, timing
from jaxheads.bench.figures import Figures
from jaxheads.data import Batches
from jaxheads.train.step import JitRunner, data_mesh, init_train_state

LEARNING_RATE = 1e-3


@contextlib.contextmanager
def foreign_code():
    """JAX's default numerics for code that is not ours (Keras, Flax, optax internals).

    The test suite runs with strict dtype promotion and rank promotion as an error,
    which jaxheads honours but other libraries need not.
    """
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        yield


def jaxheads_loss_fn(network: nw.Network):
    """`jaxheads.train.detection.detection_loss` with ``Network.loss`` (a fixed ``seen``)."""
    layer = network.detector.layer

    def loss_fn(params, state, batch, key, axis_name, step):
        raw, new_state = layer.apply(
            params, state, batch["image"], train=True, key=key, axis_name=axis_name
        )
        per_image = network.loss(
            raw.astype(jnp.float32), batch["boxes"], batch["labels"], batch["mask"]
        )
        return jnp.mean(per_image), (new_state, {})

    return loss_fn


class JaxheadsTrainer:
    """The `JitRunner` program, compiled ahead of time so that compilation is timed apart.

    ``trainer(batch) -> loss`` runs one step on a placed batch (loss not waited for).
    """

    def __init__(self, network: nw.Network, params, state, *, devices=None):
        optimizer = optax.sgd(LEARNING_RATE, momentum=0.9)
        self.runner = JitRunner(
            jaxheads_loss_fn(network), optimizer, data_mesh(devices or jax.devices()[:1])
        )
        self.state = self.runner.place_state(init_train_state(params, state, optimizer))
        self.key = jax.random.key(1)
        self.compiled = None
        self.lower_s = self.compile_s = math.nan

    def compile(self, batch) -> None:
        # The runner's own step (exactly the program `jaxheads train` runs), lowered and
        # compiled ahead of time.
        lowered, self.lower_s = timing.timed(lambda: self.runner.lower(self.state, batch, self.key))
        self.compiled, self.compile_s = timing.timed(lowered.compile)

    def place(self, host_batch):
        return self.runner.place_batch(host_batch)

    def __call__(self, batch):
        self.state, metrics = self.compiled(self.state, batch, self.key)
        return metrics["loss"]


class Contenders:
    """The trainers of one network, built from the same weights and batch.

    Attributes:
      network: the `Network`.
      batch_size: B.
      host_batch: the numpy batch (``image``, ``boxes``, ``labels``, ``mask``, ``valid``).
      figures: what building and warming them up measured (compile and first-step
        times, XLA FLOPs, the agreement checks), as ``train`` `Figure` records.
    """

    def __init__(self, network: nw.Network, batch_size: int):
        import benchmarks.flax_models as fx
        import benchmarks.keras_models as kx

        self.network, self.batch_size = network, batch_size
        self.host_batch = nw.example_batch(network, batch_size)
        params, state = nw.numpy_init(network)
        weights = nw.layer_weights(network, params, state)
        f = Figures()

        def add(metric, value, framework):
            f.add("train", metric, value, model=network.name, framework=framework, batch=batch_size)

        images = self.host_batch["image"]
        with foreign_code():
            self.keras_model = kx.compiled_model(network, weights, LEARNING_RATE)
            self.keras_stateless = kx.StatelessStep(network, weights, LEARNING_RATE)
            self.flax = fx.Trainer(network, weights, LEARNING_RATE)
        dropout = any(isinstance(layer, nw.Dropout) for layer in network.spec)
        if dropout:
            # The same function: inference outputs from the same weights. (Without
            # dropout the first training losses below are compared instead.)
            forward = jax.jit(lambda p, s, x: network.detector.layer.apply(p, s, x)[0])
            ours = np.asarray(forward(params, state, jnp.asarray(images)))
            with foreign_code():
                outputs = {
                    "keras": kx.predict(self.keras_model, images),
                    "flax_nnx": fx.predict(self.flax.model, images),
                }
            scale = max(1.0, float(np.max(np.abs(ours))))
            for fw, out in outputs.items():
                diff = float(np.max(np.abs(out - ours)))
                add("same_function_max_abs_diff", diff, fw)
                if not diff <= 1e-3 * scale:
                    raise AssertionError(
                        f"{fw} {network.name} computes another function: max |diff| "
                        f"{diff:.3g} against outputs up to {scale:.3g}"
                    )

        # jaxheads: lower + compile, then the first step.
        self.jaxheads = JaxheadsTrainer(network, params, state)
        self.device_batch = self.jaxheads.place(self.host_batch)
        self.jaxheads.compile(self.device_batch)
        add("lower_s", self.jaxheads.lower_s, "jaxheads")
        add("compile_s", self.jaxheads.compile_s, "jaxheads")
        add("xla_flops_per_step", cost_flops(self.jaxheads.compiled.cost_analysis()), "jaxheads")
        losses, first_s = {}, {}
        losses["jaxheads"], first = timing.timed(lambda: float(self.jaxheads(self.device_batch)))
        first_s["jaxheads"] = self.jaxheads.lower_s + self.jaxheads.compile_s + first

        self.x = jnp.asarray(images)
        self.y_host = nw.pack_targets(self.host_batch)
        self.y = jnp.asarray(self.y_host)
        self.flax_batch = {k: jnp.asarray(v) for k, v in self.host_batch.items()}
        with foreign_code():
            compiled, compile_s = timing.timed(lambda: self.keras_stateless.compile(self.x, self.y))
            add("compile_s", compile_s, "keras_stateless")
            add("xla_flops_per_step", cost_flops(compiled.cost_analysis()), "keras_stateless")
            losses["keras_stateless"], first = timing.timed(
                lambda: float(self.keras_stateless(self.x, self.y))
            )
            first_s["keras_stateless"] = compile_s + first
            losses["keras_train_on_batch"], first_s["keras_train_on_batch"] = timing.timed(
                lambda: float(self.keras_model.train_on_batch(images, self.y_host))
            )
            losses["flax_nnx"], first_s["flax_nnx"] = timing.timed(
                lambda: float(self.flax(self.flax_batch))
            )
        for fw, seconds in first_s.items():
            add("first_step_s", seconds, fw)
        for fw, loss in losses.items():
            add("first_loss", loss, fw)
        if not dropout:
            # Without dropout the first step is the same computation in all four.
            ref = losses["jaxheads"]
            for fw, loss in losses.items():
                add("first_loss_rel_diff", abs(loss - ref) / max(1.0, abs(ref)), fw)
                if not abs(loss - ref) <= 1e-3 * max(1.0, abs(ref)):
                    raise AssertionError(
                        f"first-step loss of {fw} on {network.name}: {loss} against jaxheads' {ref}"
                    )
        self.figures = list(f)

    def step_runners(self, steps: int) -> dict:
        """``name -> run()``: ``steps`` training steps of each trainer, waited for."""

        def jaxheads():
            for _ in range(steps):
                loss = self.jaxheads(self.device_batch)
            jax.block_until_ready(loss)

        def keras_train_on_batch():
            with foreign_code():
                for _ in range(steps):
                    self.keras_model.train_on_batch(self.host_batch["image"], self.y_host)

        def keras_stateless():
            for _ in range(steps):
                loss = self.keras_stateless(self.x, self.y)
            jax.block_until_ready(loss)

        def flax_nnx():
            with foreign_code():
                for _ in range(steps):
                    loss = self.flax(self.flax_batch)
                jax.block_until_ready(loss)

        return {
            "jaxheads": jaxheads,
            "keras_train_on_batch": keras_train_on_batch,
            "keras_stateless": keras_stateless,
            "flax_nnx": flax_nnx,
        }

    def end_to_end_runners(self, steps: int, waits: dict | None = None) -> dict:
        """``name -> run()``: ``steps`` steps fed by each framework's own data interface.

        jaxheads: `Batches` (prefetch thread, worker threads) and `JitRunner.place_batch`;
        ``jaxheads_predrawn``: the same over the same examples drawn beforehand into
        memory, which leaves the pipeline's own cost (threads, queue, stacking, the
        copy to the device) without the drawing; Keras: ``model.fit`` over a
        ``PyDataset`` (two worker threads) of the same batches. With ``waits`` (a
        dict), the seconds each jaxheads run spent in ``next()`` waiting for a batch
        are appended under its name: near zero when the pipeline keeps ahead.
        """
        import benchmarks.keras_models as kx

        data = nw.shapes_data(self.network, max(steps, 1) * self.batch_size)
        predrawn = nw.Predrawn(data)

        def fed(dataset, name):
            def run():
                waited = 0.0
                with Batches(dataset, self.batch_size, seed=0, prefetch=2) as batches:
                    for _ in range(steps):
                        start = time.perf_counter()
                        batch = next(batches)
                        waited += time.perf_counter() - start
                        loss = self.jaxheads(self.jaxheads.place(batch))
                    jax.block_until_ready(loss)
                if waits is not None:
                    waits.setdefault(name, []).append(waited)

            return run

        def keras_fit():
            batches = Batches(data, self.batch_size, seed=0, prefetch=0, num_workers=1)
            with foreign_code():
                self.keras_model.fit(kx.ShapesPyDataset(batches, steps), epochs=1, verbose=0)

        return {
            "jaxheads": fed(data, "jaxheads"),
            "jaxheads_predrawn": fed(predrawn, "jaxheads_predrawn"),
            "keras_fit": keras_fit,
        }
