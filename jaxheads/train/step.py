"""One pure training step and three ways to run it across devices.

The step is ``(train_state, batch, key) -> (train_state, metrics)``: loss, grads,
an optax update, new batch-norm state. It is run by:

* `JitRunner` (the default): `jax.jit` with a `NamedSharding` on a 1-D ``Mesh``
  (axis ``"data"``): the batch is sharded on its leading axis, the train state
  replicated; XLA inserts the collectives. The math is that of one device on
  the global batch.
* `PmapRunner`: `jax.pmap` over the device axis; the batch is reshaped to
  ``[devices, per_device, ...]``, the loss is averaged per device and the
  grads, metrics and batch-norm state are ``pmean``-ed.
* `ShardMapRunner`: `jax.shard_map` over the same mesh. The params enter
  replicated (not device-varying), so the loss is ``pmean``-ed *inside* the
  differentiated function and JAX's transpose of the replication sums the
  per-device grads; ``pmean``-ing those grads again would be wrong.

With ``sync_batch_norm`` the per-device runners pass ``axis_name`` to the model
so that batch statistics are those of the global batch; then all three agree
with a single-device run. Dropout masks differ between runners (one key per
device under pmap/shard_map).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxheads._checks import fail
from jaxheads.data.pipeline import per_device, shard_batch

AXIS = "data"

# loss_fn(params, state, batch, key, axis_name, step) -> (loss, (new_state, metrics))
LossFn = Callable[..., tuple[jax.Array, tuple[Any, dict[str, jax.Array]]]]


class TrainState(NamedTuple):
    """Everything a step changes, as one pytree (checkpointed as is)."""

    step: jax.Array
    params: Any
    state: Any
    opt_state: Any


# The metric that says whether the state a step produced is finite (params, batch-norm
# statistics, optimizer moments): a finite loss can still give a NaN update (a NaN learning
# rate, an overflowing moment), and such a state must never be saved.
FINITE = "state_finite"


def all_finite(tree) -> jax.Array:
    """``True`` when every floating leaf of ``tree`` is finite (a scalar bool array)."""
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def init_train_state(params, state, optimizer: optax.GradientTransformation) -> TrainState:
    return TrainState(jnp.zeros((), jnp.int32), params, state, optimizer.init(params))


def _apply_grads(ts: TrainState, grads, new_state, optimizer) -> TrainState:
    # optax mixes Python floats with its int32 step count internally; our own code is
    # clean under strict promotion, the optimiser's internals need the standard rules.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = optimizer.update(grads, ts.opt_state, ts.params)
    return TrainState(ts.step + 1, optax.apply_updates(ts.params, updates), new_state, opt_state)


def make_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    mode: str = "global",
    axis_name: str | None = None,
) -> Callable:
    """The pure step ``(ts, batch, key) -> (ts, metrics)``.

    ``metrics`` holds the loss function's metrics, ``"loss"``, and ``FINITE``
    (``"state_finite"``): whether every float in the updated state is finite.

    Args:
      loss_fn: ``(params, state, batch, key, axis_name, step) -> (loss,
        (new_state, metrics))`` with ``loss`` the mean over the (local) batch and
        ``step`` the number of steps already taken (for warm-ups in the loss).
      optimizer: an optax transformation.
      mode: ``"global"`` (one program over the whole batch: single device or
        jit-with-sharding), ``"pmap"`` (replicated per-device params: average
        the grads) or ``"shard_map"`` (unvarying params: average the loss
        inside the differentiated function).
      axis_name: the device axis for ``pmap``/``shard_map``.
    """
    if mode not in ("global", "pmap", "shard_map"):
        fail("make_step", 'mode "global", "pmap" or "shard_map"', repr(mode))
    if mode != "global" and axis_name is None:
        fail("make_step", f"an axis_name for mode={mode!r}", None)

    def step(ts: TrainState, batch, key):
        if mode != "global":
            key = jax.random.fold_in(key, lax.axis_index(axis_name))
        key = jax.random.fold_in(key, ts.step)

        def objective(params):
            loss, (new_state, metrics) = loss_fn(params, ts.state, batch, key, axis_name, ts.step)
            if mode == "shard_map":
                loss = lax.pmean(loss, axis_name)
            return loss, (new_state, metrics)

        (loss, (new_state, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(ts.params)
        metrics = {**metrics, "loss": loss}
        if mode != "global":
            if mode == "pmap":
                grads = lax.pmean(grads, axis_name)
            metrics = lax.pmean(metrics, axis_name)
            new_state = lax.pmean(new_state, axis_name)
        new_ts = _apply_grads(ts, grads, new_state, optimizer)
        return new_ts, {**metrics, FINITE: all_finite(new_ts)}

    return step


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``"data"`` over ``devices`` (all devices by default)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (AXIS,))


def _check_divisible(batch, n: int) -> None:
    size = jax.tree.leaves(batch)[0].shape[0]
    if size % n:
        fail("train step", f"a global batch size divisible by the {n} devices", size)


class JitRunner:
    """`jax.jit` with the batch sharded on ``"data"`` and the state replicated."""

    name = "jit"

    def __init__(self, loss_fn: LossFn, optimizer, mesh: Mesh, *, sync_batch_norm=True):
        del sync_batch_norm  # the global program always sees the global batch
        self.mesh = mesh
        self.replicated = NamedSharding(mesh, P())
        self.batch_sharding = NamedSharding(mesh, P(AXIS))
        self._step = jax.jit(
            make_step(loss_fn, optimizer),
            donate_argnums=0,
            out_shardings=(self.replicated, self.replicated),
        )

    def place_state(self, ts: TrainState) -> TrainState:
        # A copy: the step donates its input, which must not be the caller's arrays.
        # (device_put may reuse the caller's buffer for one replica even with may_alias=False.)
        return jax.device_put(jax.tree.map(lambda a: jnp.array(a, copy=True), ts), self.replicated)

    def place_batch(self, batch):
        _check_divisible(batch, self.mesh.size)
        return shard_batch(batch, self.batch_sharding)

    def step(self, ts, batch, key):
        return self._step(ts, batch, key)

    def lower(self, ts, batch, key) -> jax.stages.Lowered:
        """The step's program lowered for these placed arguments: ``.compile()`` gives the
        executable `step` runs, so compilation can be timed (and its FLOPs read) apart."""
        return self._step.lower(ts, batch, key)

    def host_state(self, ts: TrainState) -> TrainState:
        return jax.device_get(ts)


class ShardMapRunner(JitRunner):
    """`jax.shard_map` over the ``"data"`` mesh axis, inside `jax.jit`."""

    name = "shard_map"

    def __init__(self, loss_fn: LossFn, optimizer, mesh: Mesh, *, sync_batch_norm=True):
        self.mesh = mesh
        self.replicated = NamedSharding(mesh, P())
        self.batch_sharding = NamedSharding(mesh, P(AXIS))
        inner = _bn_axis(loss_fn, sync_batch_norm)
        step = make_step(inner, optimizer, mode="shard_map", axis_name=AXIS)
        mapped = jax.shard_map(step, mesh=mesh, in_specs=(P(), P(AXIS), P()), out_specs=(P(), P()))
        self._step = jax.jit(mapped, donate_argnums=0)


class PmapRunner:
    """`jax.pmap` over the devices; each process feeds ``[local_devices, per_device, ...]``."""

    name = "pmap"

    def __init__(self, loss_fn: LossFn, optimizer, devices=None, *, sync_batch_norm=True):
        devices = jax.devices() if devices is None else list(devices)
        # In a multi-process run pmap maps over every process's devices, and each process
        # passes the leading slices for its own.
        self.local = [d for d in devices if d.process_index == jax.process_index()]
        # Batches made on the devices (`DeviceBatches.place_on`) are split over this
        # process's devices along the batch axis: reshaped to [local_devices, per_device]
        # each device keeps its rows, which pmap reads where they are.
        self.batch_sharding = NamedSharding(Mesh(np.asarray(self.local), (AXIS,)), P(AXIS))
        inner = _bn_axis(loss_fn, sync_batch_norm)
        step = make_step(inner, optimizer, mode="pmap", axis_name=AXIS)
        self._step = jax.pmap(
            step, axis_name=AXIS, in_axes=(0, 0, None), devices=devices, donate_argnums=0
        )

    def place_state(self, ts: TrainState) -> TrainState:
        n = len(self.local)
        return jax.tree.map(lambda a: jnp.broadcast_to(a, (n, *jnp.shape(a))), ts)

    def place_batch(self, batch):
        n = len(self.local)
        _check_divisible(batch, n)
        return per_device(batch, n)

    def step(self, ts, batch, key):
        ts, metrics = self._step(ts, batch, key)
        return ts, jax.tree.map(_first_replica, metrics)

    def host_state(self, ts: TrainState) -> TrainState:
        return jax.device_get(jax.tree.map(_first_replica, ts))


def _first_replica(a):
    """This process's first copy of a pmap-replicated value (others may live elsewhere)."""
    return jnp.reshape(a.addressable_data(0), a.shape[1:])


def _bn_axis(loss_fn: LossFn, sync: bool) -> LossFn:
    """Hides the device axis from the model unless batch norm is synchronised."""
    if sync:
        return loss_fn
    return lambda p, s, b, k, axis_name, step: loss_fn(p, s, b, k, None, step)


RUNNERS = {"jit": JitRunner, "pmap": PmapRunner, "shard_map": ShardMapRunner}


def make_runner(
    parallel: str, loss_fn: LossFn, optimizer, *, devices=None, sync_batch_norm: bool = True
):
    """Builds the runner named ``parallel`` (``"jit"``, ``"pmap"`` or ``"shard_map"``)."""
    if parallel not in RUNNERS:
        fail("make_runner", f"parallel in {sorted(RUNNERS)}", repr(parallel))
    if parallel == "pmap":
        return PmapRunner(loss_fn, optimizer, devices, sync_batch_norm=sync_batch_norm)
    return RUNNERS[parallel](
        loss_fn, optimizer, data_mesh(devices), sync_batch_norm=sync_batch_norm
    )
