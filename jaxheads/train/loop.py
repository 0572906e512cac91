"""The training loop: checkpoints, resume, metrics, signals, NaN guard.

A run lives in a work directory::

    WORKDIR/config.json      what was run (a resumed run must match it)
    WORKDIR/metrics.jsonl    one JSON object per logged step ({"step", "loss", ...})
    WORKDIR/checkpoints/N/   orbax checkpoints (written to a temporary name, then renamed)
    WORKDIR/checksums/N.json the SHA-256 of checkpoint N's arrays (written before it)
    WORKDIR/tensorboard/     metrics.jsonl as TensorBoard event files (`jaxheads.train.tensorboard`)
    WORKDIR/.lock            held while a run trains (see `jaxheads.train.workdir`)

Every setting is checked before anything is written. Running the same command
again — under any spelling of the folder's path, or after moving it — resumes
from the newest checkpoint that reads and matches its checksum: the data
pipeline is a pure function of (seed, step) and the dropout key is folded with
the step, so a resumed run reproduces the uninterrupted one — parameters and
logged losses alike. A checkpoint that cannot be read or fails its checksum is
skipped with a warning and moved to ``WORKDIR/unreadable-checkpoints/``; only
that one (see `jaxheads.train.checkpoints`). A non-finite loss, or a finite
loss whose update leaves a non-finite parameter or optimizer state, stops the
run (`TrainingDiverged`) before that state is saved, so every checkpoint is
finite. SIGTERM/SIGINT finish the current step, save, and return. In a
multi-process run a signal to any one process stops them all after the same
step, which each saves (a preemption signals each host at its own moment).

A metrics row holds the step's loss and metrics, ``lr``, and the rate since the
row before (``steps_per_s``, ``images_per_s``), which leaves out each start's
first step. The first row after each start (a new run or a resume) also holds
``compile_s``, that first step's time less a typical step's — compilation,
mostly, which the persistent cache (`jaxheads.train.compilation_cache`) turns
into a load — and ``device``, the kind of device it ran on; the progress bar
shows the loss, images/s and the compile time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxheads._checks import fail
from jaxheads.train.checkpoints import CheckpointStore, peer_lost
from jaxheads.train.optim import make_optimizer, schedule
from jaxheads.train.step import FINITE, LossFn, init_train_state, make_runner
from jaxheads.train.tensorboard import EventLog
from jaxheads.train.workdir import (
    WorkdirLock,
    atomic_write,
    open_workdir,
    reconcile_config,
    validate_config,
)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class PeerLost(RuntimeError):
    """Another process of a multi-process run stopped; every saved checkpoint was kept.

    JAX's own shutdown waits for the lost process's heartbeat to time out (a minute or
    more) and then aborts: a command that catches this should exit at once (`os._exit`).
    """


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


@dataclasses.dataclass(frozen=True)
class Task:
    """What the loop trains.

    Attributes:
      init: ``key -> (params, state)``.
      loss_fn: see `jaxheads.train.step.make_step`.
      batches: ``(start_step, process_index, process_count) -> iterator`` of
        this process's share of each global batch, starting at ``start_step``. An
        iterator with a ``place_on(sharding)`` method (batches made on the device,
        `jaxheads.data.DeviceBatches`) is given the runner's batch sharding first,
        and then yields batches laid out by it (global ones under jit and shard_map,
        this process's rows over its own devices under pmap).
      evaluate: optional ``(params, state) -> dict`` of evaluation results.
      examples_per_batch: the global batch size (for images/s).
    """

    init: Callable
    loss_fn: LossFn
    batches: Callable[..., Iterator[Any]]
    examples_per_batch: int
    evaluate: Callable | None = None


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How to train; everything but the presentation fields must match on resume."""

    workdir: str
    steps: int = 1000
    seed: int = 0
    parallel: str = "jit"
    num_devices: int | None = None
    sync_batch_norm: bool = True
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    policy: str = "cosine"
    burn_in: int = 100
    lr_steps: tuple[int, ...] = ()
    lr_scales: tuple[float, ...] = ()
    momentum: float = 0.9
    weight_decay: float = 5e-4
    clip_norm: float | None = 10.0
    checkpoint_every: int = 250
    max_to_keep: int = 3
    log_every: int = 10
    eval_every: int = 0
    # The first `freeze` layers (`jaxheads.train.freeze.layer_paths`) are not trained;
    # their batch-norm statistics stay fixed too unless `freeze_bn_stats` is False.
    freeze: int = 0
    freeze_bn_stats: bool = True
    # presentation only: may change between a run and its resumption
    progress: bool = True
    # TensorBoard event files of metrics.jsonl in WORKDIR/tensorboard/
    # (`jaxheads.train.tensorboard`): None writes them when tensorboardX is installed, True
    # asks for them (one line on stderr if it is not), False writes none.
    tensorboard: bool | None = None
    extra: dict = dataclasses.field(default_factory=dict)
    # The settings a resumption may change: `jaxheads.train.workdir.NOT_IDENTITY`.

    def __post_init__(self):
        validate_config(self, workdir=False)


class MetricsLog:
    """``metrics.jsonl``: appended line by line, truncated on resume.

    Only the process that ``writes`` (process 0 of a multi-process run) touches the file.
    """

    def __init__(self, path: str, *, writes: bool = True):
        self.path = path
        self.writes = writes

    def read(self) -> list[dict]:
        if not os.path.exists(self.path):
            return []
        rows = []
        with open(self.path) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line cut by a kill: everything after it is dropped
        return rows

    def truncate_after(self, step: int) -> list[dict]:
        """Drops the rows after ``step`` (a resumed run logs them again); the rows kept."""
        rows = [r for r in self.read() if r["step"] <= step]
        if self.writes:
            atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in rows))
        return rows

    def append(self, row: dict) -> None:
        if not self.writes:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()


class _StopRequest:
    """Turns SIGTERM/SIGINT into a flag the loop reads once after each step."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def requested(self) -> bool:
        """Whether a stop was asked for: read it once a step and act on that reading."""
        return self.signum is not None

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _AgreedStop:
    """`_StopRequest` of a multi-process run: every process acts on the same reading.

    Processes are signalled at different moments; one that saves and stops while
    another trains on would leave both waiting on mismatched collectives. After each
    step every process contributes its flag to a maximum over all devices, dispatched
    without waiting, and reads the maximum of the step before: the same value, at the
    same step, everywhere, so that a signal to any process stops all of them one step
    later (the host runs at most one step ahead of the devices).
    """

    def __init__(self, local: _StopRequest):
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        self.local = local
        mesh = Mesh(np.array(jax.devices()), ("processes",))
        self._sharding = NamedSharding(mesh, PartitionSpec("processes"))
        self._reduce = jax.jit(
            lambda flags: flags.max(), out_shardings=NamedSharding(mesh, PartitionSpec())
        )
        self._pending = None

    def requested(self) -> bool:
        """Whether any process asked to stop one step ago (call it once a step)."""
        agreed = self._pending is not None and bool(self._pending.addressable_data(0))
        flags = np.full(jax.local_device_count(), self.local.requested(), np.int32)
        self._pending = self._reduce(jax.make_array_from_process_local_data(self._sharding, flags))
        return agreed


def _devices(cfg: RunConfig):
    devices = jax.devices()
    if cfg.num_devices is None or jax.process_count() > 1:
        # In a multi-process run every process's devices take part (--devices forces the
        # host-device count per process on CPU).
        return devices
    if cfg.num_devices > len(devices):
        fail(
            "train",
            f"at most {len(devices)} devices (on CPU, pass --devices before jax "
            "starts to force more)",
            cfg.num_devices,
        )
    return devices[: cfg.num_devices]


def _initial_state(task: Task, cfg: RunConfig):
    """The schedule, the optimizer and the step-0 train state (on the host) of a run."""
    lr = schedule(
        cfg.learning_rate,
        total_steps=cfg.steps,
        policy=cfg.policy,
        burn_in=cfg.burn_in,
        steps=cfg.lr_steps,
        scales=cfg.lr_scales,
    )
    optimizer = make_optimizer(
        cfg.optimizer,
        lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        clip_norm=cfg.clip_norm,
    )
    params, state = task.init(jax.random.key(cfg.seed))
    if cfg.freeze:
        optimizer = frozen_optimizer(optimizer, params, cfg.freeze)
    # One compiled program instead of one small compile per optimizer-state leaf.
    ts = jax.jit(lambda p, s: init_train_state(p, s, optimizer))(params, state)
    return lr, optimizer, jax.device_get(ts)


def frozen_optimizer(optimizer, params, freeze: int):
    """``optimizer`` on every parameter but those of the first ``freeze`` layers (zeroed)."""
    from jaxheads.train.freeze import trainable_mask

    labels = jax.tree.map(lambda t: "train" if t else "frozen", trainable_mask(params, freeze))
    return optax.multi_transform({"train": optimizer, "frozen": optax.set_to_zero()}, labels)


def frozen_loss(loss_fn, params, state, freeze: int):
    """``loss_fn`` whose new batch-norm statistics of the first ``freeze`` layers are the old."""
    from jaxheads.train.freeze import frozen_state_mask, layer_paths

    mask = frozen_state_mask(state, set(layer_paths(params)[:freeze]))

    def wrapped(p, s, batch, key, axis_name, step):
        loss, (new_state, metrics) = loss_fn(p, s, batch, key, axis_name, step)
        new_state = jax.tree.map(lambda m, old, new: old if m else new, mask, s, new_state)
        return loss, (new_state, metrics)

    return wrapped


def _finished_run(
    task: Task, cfg: RunConfig, rows: list[dict], record: Callable[[dict], None], step: int, host
) -> tuple:
    """The final loss and evaluation of a run that has nothing left to train."""
    losses = [r["loss"] for r in rows if r.get("step") == step and "loss" in r]
    evals = [r["eval"] for r in rows if r.get("step") == step and "eval" in r]
    loss = float(losses[-1]) if losses else math.nan
    result = evals[-1] if evals else None
    if result is None and task.evaluate and cfg.eval_every:
        result = task.evaluate(host.params, host.state)
        record({"step": step, "eval": result})
    return loss, result


class _Record:
    """Writes a metrics row to ``metrics.jsonl`` and, when open, to the TensorBoard events."""

    def __init__(self, cfg: RunConfig, log: MetricsLog, rows: list[dict]):
        """``rows``: what ``metrics.jsonl`` holds now (the TensorBoard files restart from it)."""
        self.log = log
        self.events = None
        if log.writes and cfg.tensorboard is not False:
            self.events = EventLog.open(cfg.workdir, rows, asked=cfg.tensorboard is True)

    def __call__(self, row: dict) -> None:
        self.log.append(row)
        if self.events is not None:
            self.events.write(row)

    def close(self) -> None:
        if self.events is not None:
            self.events.close()


class _Compiled:
    """The compile time of a run's first step, and whether a metrics row has it yet."""

    def __init__(self):
        self.seconds: float | None = None
        self.written = False

    def record(self) -> dict:
        """``{"compile_s", "device"}`` for the first metrics row once known, then ``{}``."""
        if self.seconds is None or self.written:
            return {}
        self.written = True
        return {"compile_s": self.seconds, "device": jax.devices()[0].device_kind}


def _check_batch(task: Task, devices) -> None:
    if task.examples_per_batch % len(devices):
        fail(
            "train",
            f"a global batch size divisible by the {len(devices)} devices",
            task.examples_per_batch,
        )


def fit(task: Task, cfg: RunConfig) -> dict:
    """Trains ``task`` as ``cfg`` says, resuming from ``cfg.workdir`` if it holds a run.

    Every setting is checked before anything is written. The work directory is
    locked while the run trains (a second run on it is refused). A run whose
    schedule does not depend on its length (``constant``, ``steps``) is extended
    by a larger ``cfg.steps``; a finished run trains nothing and returns its final
    loss and evaluation.

    Returns:
      ``{"status": "completed" | "interrupted", "step", "loss", "params", "state",
      "eval", "compile_s"}`` with host (numpy) params and state; ``compile_s`` is the
      first step's compile time (the module's docstring), ``None`` if nothing trained.

    Raises:
      TrainingDiverged: on a non-finite loss or updated state (nothing non-finite is saved).
      ValueError: for bad settings, an unusable or locked workdir, or settings that differ
        from the run in it.
    """
    validate_config(cfg)
    devices = _devices(cfg)
    _check_batch(task, devices)
    lr, optimizer, ts = _initial_state(task, cfg)
    loss_fn = task.loss_fn
    if cfg.freeze and cfg.freeze_bn_stats:
        loss_fn = frozen_loss(loss_fn, ts.params, ts.state, cfg.freeze)
    runner = make_runner(
        cfg.parallel, loss_fn, optimizer, devices=devices, sync_batch_norm=cfg.sync_batch_norm
    )
    writer = jax.process_index() == 0
    open_workdir(cfg.workdir)
    with WorkdirLock(cfg.workdir) if writer else contextlib.nullcontext():
        reconcile_config(cfg, writes=writer)
        return _train(task, cfg, lr, ts, runner, writer)


def _train(task: Task, cfg: RunConfig, lr, ts, runner, writer: bool) -> dict:
    store = CheckpointStore(cfg.workdir, max_to_keep=cfg.max_to_keep, writes=writer)
    log = MetricsLog(os.path.join(cfg.workdir, "metrics.jsonl"), writes=writer)
    restored, start = store.restore_latest(ts)
    if restored is not None:
        ts = type(ts)(*restored) if not isinstance(restored, type(ts)) else restored
    rows = log.truncate_after(start)
    if start > cfg.steps:
        store.close()
        fail(
            "train",
            f"checkpoints of at most {cfg.steps} steps, the run's length in {cfg.workdir}",
            f"checkpoint {start} (written by a longer run; use a new --workdir)",
        )
    if start >= cfg.steps:
        record = None
        try:
            record = _Record(cfg, log, rows)
            loss, result = _finished_run(task, cfg, rows, record, start, ts)
        finally:
            store.close()
            if record is not None:
                record.close()
        return {
            "status": "completed",
            "step": start,
            "loss": loss,
            "params": ts.params,
            "state": ts.state,
            "eval": result,
            "compile_s": None,
        }

    device_ts = runner.place_state(ts)
    batches = task.batches(start, jax.process_index(), jax.process_count())
    sharding = getattr(runner, "batch_sharding", None)
    if sharding is not None and hasattr(batches, "place_on"):
        batches.place_on(sharding)  # each device makes its own rows of each batch
    key = jax.random.key(cfg.seed + 1)
    pending: list[tuple[int, dict]] = []
    last_loss, status, eval_result = math.nan, "completed", None
    bar = tqdm(
        total=cfg.steps, initial=start, disable=not cfg.progress, unit="step", dynamic_ncols=True
    )
    t0, steps_timed = time.perf_counter(), 0
    # The first step compiles: it is timed alone and kept out of the images/s, and its time
    # less a typical step's is the compile time, written once a typical step is known.
    first_step_s: float | None = None
    compiled = _Compiled()

    def diverged(what, step):
        good = store.latest_step()
        return TrainingDiverged(
            f"{what} at step {step}; stopped without saving — the last good checkpoint in "
            f"{cfg.workdir} is "
            + (f"step {good}" if good is not None else "none (no step was saved before)")
        )

    def flush(final: bool):
        nonlocal last_loss, t0, steps_timed
        host = jax.device_get(pending)
        elapsed = time.perf_counter() - t0
        rate = steps_timed / elapsed if steps_timed and elapsed > 0 else None
        if first_step_s is not None and compiled.seconds is None and (rate or final):
            compiled.seconds = max(first_step_s - (1 / rate if rate else 0.0), 0.0)
        for step, metrics in host:
            metrics = dict(metrics)
            finite = bool(metrics.pop(FINITE))
            loss = float(metrics["loss"])
            if not math.isfinite(loss):
                raise diverged(f"the loss is {loss}", step)
            if not finite:
                raise diverged(
                    f"the loss is {loss:.6g} but the updated parameters or "
                    "optimizer state are not finite (NaN or inf)",
                    step,
                )
            last_loss = loss
            if step % cfg.log_every == 0 or step == cfg.steps:
                row = {
                    "step": step,
                    **{k: float(v) for k, v in metrics.items()},
                    "lr": float(lr(step - 1)),
                }
                if rate:
                    row["steps_per_s"] = rate
                    row["images_per_s"] = rate * task.examples_per_batch
                record(row | compiled.record())
        pending.clear()
        shown = {"loss": f"{last_loss:.4g}"}
        if rate:
            shown["img_s"] = f"{rate * task.examples_per_batch:.1f}"
        if compiled.seconds is not None:
            shown["compile"] = f"{compiled.seconds:.1f}s"
        bar.set_postfix(shown)
        t0, steps_timed = time.perf_counter(), 0

    record = _Record(cfg, log, rows)
    try:
        with _StopRequest() as local_stop:
            stop = local_stop if jax.process_count() == 1 else _AgreedStop(local_stop)
            for step in range(start + 1, cfg.steps + 1):
                batch = runner.place_batch(next(batches))
                device_ts, metrics = runner.step(device_ts, batch, key)
                pending.append((step, metrics))
                if first_step_s is None:
                    jax.block_until_ready(metrics)
                    first_step_s = time.perf_counter() - t0
                    t0 = time.perf_counter()
                else:
                    steps_timed += 1
                bar.update(1)
                last = step == cfg.steps
                # The stop flag is read here, once a step, and only this reading is acted on:
                # a signal that lands later in the step (waiting for its metrics, saving,
                # evaluating) is read after the next step, which is then saved.
                stopping = stop.requested()
                checkpoint = step % cfg.checkpoint_every == 0 or last or stopping
                if checkpoint or step % cfg.log_every == 0:
                    # raises TrainingDiverged before a non-finite state is saved
                    flush(last or stopping)
                if checkpoint:
                    store.save(step, runner.host_state(device_ts))
                if task.evaluate and cfg.eval_every and (step % cfg.eval_every == 0 or last):
                    host = runner.host_state(device_ts)
                    eval_result = task.evaluate(host.params, host.state)
                    record({"step": step, "eval": eval_result})
                if stopping and not last:
                    status = "interrupted"
                    break
    except Exception as err:
        if not peer_lost(err):
            raise
        raise PeerLost(
            f"a collective with the run's other processes failed ({_first_line(err)}): one of "
            f"them has probably stopped. Checkpoints up to step {store.latest_step() or 0} "
            f"are kept in {cfg.workdir}: start every process again with the same command "
            "to resume"
        ) from err
    finally:
        bar.close()
        store.close()
        record.close()
        close = getattr(batches, "close", None)
        if close:
            close()
    host = runner.host_state(device_ts)
    return {
        "status": status,
        "step": int(host.step),
        "loss": last_loss,
        "params": host.params,
        "state": host.state,
        "eval": eval_result,
        "compile_s": compiled.seconds,
    }


def restore_params(workdir: str, task: Task, cfg: RunConfig, *, op: str = "evaluate"):
    """The newest readable, verified checkpoint's ``(params, state, step)`` (for evaluation).

    Nothing is moved or written: an unusable checkpoint is only skipped, with a warning.
    ``op`` names the caller in the error raised when no checkpoint is readable.
    """
    _, _, template = _initial_state(task, cfg)
    store = CheckpointStore(workdir, writes=False)
    try:
        restored, step = store.restore_latest(template)
    finally:
        store.close()
    if restored is None:
        fail(op, f"a checkpoint in {workdir}/checkpoints", "none readable")
    return (
        restored.params if hasattr(restored, "params") else restored[1],
        (restored.state if hasattr(restored, "state") else restored[2]),
        step,
    )


__all__ = [
    "MetricsLog",
    "PeerLost",
    "RunConfig",
    "Task",
    "TrainingDiverged",
    "fit",
    "restore_params",
]
