"""A tiny regression task for exercising the training machinery quickly."""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads import layers as L
from jaxheads.train.loop import Task

MODEL = L.serial(
    L.Conv2D(4, 3, padding="same", use_bias=False),
    L.BatchNormalization(),
    L.LeakyReLU(0.1),
    L.Flatten(),
    L.Dense(1),
)


def batch_at(step: int, batch_size: int, seed: int = 0):
    rng = np.random.default_rng((seed, step))
    x = rng.normal(size=(batch_size, 6, 6, 2)).astype(np.float32)
    return {"x": x, "t": (x.sum(axis=(1, 2, 3)) * 0.1).astype(np.float32)}


@jax.custom_vjp
def nan_gradient(x, on):
    """``x`` unchanged going forward; a NaN gradient going back where ``on`` is 1."""
    return x


def _nan_gradient_fwd(x, on):
    return x, on


def _nan_gradient_bwd(on, g):
    return jnp.where(on > 0, jnp.nan, g), jnp.zeros_like(on)


nan_gradient.defvjp(_nan_gradient_fwd, _nan_gradient_bwd)


def toy_task(
    batch_size: int = 16,
    nan_at_step: int | None = None,
    nan_update_at_step: int | None = None,
    evaluate=None,
) -> Task:
    """``nan_at_step``: the loss is NaN from that step on; ``nan_update_at_step``: the loss
    stays finite but its gradient, hence the updated parameters, is NaN from that step on."""

    def init(key):
        _, params, state = MODEL.init(key, (None, 6, 6, 2))
        return params, state

    def loss_fn(params, state, batch, key, axis_name, step):
        y, new_state = MODEL.apply(
            params, state, batch["x"], train=True, key=key, axis_name=axis_name
        )
        loss = jnp.mean((y[:, 0] - batch["t"]) ** 2)
        if nan_at_step is not None:
            loss = jnp.where(step + 1 >= nan_at_step, jnp.nan, loss)
        if nan_update_at_step is not None:
            loss = nan_gradient(loss, (step + 1 >= nan_update_at_step).astype(loss.dtype))
        return loss, (new_state, {})

    def batches(start, process_index, process_count):
        share = batch_size // process_count
        lo, hi = process_index * share, (process_index + 1) * share
        step = start
        while True:
            yield jax.tree.map(lambda a: a[lo:hi], batch_at(step, batch_size))
            step += 1

    return Task(
        init=init,
        loss_fn=loss_fn,
        batches=batches,
        examples_per_batch=batch_size,
        evaluate=evaluate,
    )


def slowed(task: Task, seconds: float) -> Task:
    """``task`` whose batches each wait ``seconds`` first (time for a test to act mid-run)."""
    import time

    def batches(start, i, n):
        for batch in task.batches(start, i, n):
            time.sleep(seconds)
            yield batch

    return Task(task.init, task.loss_fn, batches, task.examples_per_batch, task.evaluate)


class _PlacedIterator:
    """An iterator of batches made where the step reads them, as `DeviceBatches` are:
    this process's rows go to the devices of the sharding `place_on` gave (required)
    first, and the batch is computed there (a jitted identity)."""

    def __init__(self, batches):
        self.batches, self.sharding = batches, None

    def place_on(self, sharding) -> None:
        self.sharding = sharding

    def __iter__(self):
        return self

    def __next__(self):
        from jaxheads.data.pipeline import shard_batch

        assert self.sharding is not None, "a batch asked for before place_on"
        batch = next(self.batches)
        return jax.jit(lambda b: b)(shard_batch(batch, self.sharding))


def placed(task: Task) -> Task:
    """``task`` whose batches the training loop places before they are made (`place_on`)."""

    def batches(start, i, n):
        return _PlacedIterator(iter(task.batches(start, i, n)))

    return Task(task.init, task.loss_fn, batches, task.examples_per_batch, task.evaluate)


def logged_losses(workdir) -> list[tuple[int, float]]:
    """``(step, loss)`` of every logged step in a run's ``metrics.jsonl``."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if '"loss"' in line]
    return [(r["step"], r["loss"]) for r in records]


def assert_same_tree(a, b) -> None:
    """Two pytrees of arrays are equal bit for bit."""
    jax.tree.map(np.testing.assert_array_equal, a, b)


def paused_commit(step: int, gate: str):
    """An orbax temporary-path class whose commit of checkpoint ``step`` waits on a file.

    Once every file of checkpoint ``step`` is written into its temporary folder, and
    before that folder is renamed to ``step``, the save creates ``GATE/inside`` and
    waits until ``GATE/release`` exists: a test kills the process there, inside the save.
    """
    import asyncio
    import inspect

    import orbax.checkpoint as ocp

    base = ocp.path.atomicity.AtomicRenameTemporaryPath

    def arrived() -> bool:
        """Marks the arrival once; True while the gate is still closed."""
        if not os.path.exists(os.path.join(gate, "inside")):
            open(os.path.join(gate, "inside"), "w").close()
        return not os.path.exists(os.path.join(gate, "release"))

    # orbax's finalize became a coroutine between the oldest supported and the newest
    # release: the pause must take the form the installed orbax awaits or calls.
    if inspect.iscoroutinefunction(base.finalize):

        class PausedCommit(base):
            async def finalize(self, *args, **kwargs):
                if self.get_final().name == str(step):
                    while arrived():
                        await asyncio.sleep(0.01)
                await super().finalize(*args, **kwargs)

    else:

        class PausedCommit(base):
            def finalize(self, *args, **kwargs):
                if self.get_final().name == str(step):
                    while arrived():
                        time.sleep(0.01)
                super().finalize(*args, **kwargs)

    return PausedCommit


def spawn_toy(workdir, steps: int, slow: float = 0.0, pause: tuple[int, str] | None = None):
    """This script training ``steps`` steps in ``workdir`` in a new process (jit, 2 devices).

    ``slow`` seconds of sleep a step give a test time to kill or stop it mid-run;
    ``pause=(step, gate)`` stops the save of checkpoint ``step`` before it commits
    (``paused_commit``).
    """
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    path = here + os.pathsep + os.environ.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, os.path.join(here, "train_toy.py"), str(workdir), str(steps), "jit", "2"]
        + [str(slow)]
        + ([f"{pause[0]}:{pause[1]}"] if pause else []),
        env={**os.environ, "PYTHONPATH": path},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def final_checkpoint(workdir, step: int):
    """The arrays of checkpoint ``step`` of a run in ``workdir``."""
    import orbax.checkpoint as ocp

    manager = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")))
    try:
        return manager.restore(step)
    finally:
        manager.close()


if __name__ == "__main__":
    # python train_toy.py WORKDIR STEPS [PARALLEL] [DEVICES] [SLOW] [STEP:GATE]: used by
    # the kill/resume tests.
    import functools
    import sys

    jax.config.update("jax_num_cpu_devices", 8)
    from jaxheads.train.loop import RunConfig, fit

    workdir, steps = sys.argv[1], int(sys.argv[2])
    parallel = sys.argv[3] if len(sys.argv) > 3 else "jit"
    devices = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    slow = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    task = slowed(toy_task(), slow) if slow else toy_task()
    if len(sys.argv) > 6:
        from jaxheads.train import loop
        from jaxheads.train.checkpoints import CheckpointStore

        pause_step, gate = sys.argv[6].split(":", 1)
        loop.CheckpointStore = functools.partial(
            CheckpointStore, temporary_path_class=paused_commit(int(pause_step), gate)
        )
    result = fit(
        task,
        RunConfig(
            workdir=workdir,
            steps=steps,
            parallel=parallel,
            num_devices=devices,
            checkpoint_every=5,
            log_every=1,
            optimizer="sgd",
            learning_rate=0.01,
            progress=False,
        ),
    )
    print("STATUS", result["status"], result["step"], flush=True)
