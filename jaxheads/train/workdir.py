"""A run's work directory: its settings, its identity and its lock.

A work directory is identified by what it holds — its ``config.json`` — not by
the path it was given under: ``./W``, ``W/``, an absolute path, or the folder
moved or copied elsewhere all resume the same run. ``WORKDIR/.lock`` is held
with ``fcntl.flock`` for as long as a run trains, so a second run on the same
folder is refused; the kernel releases it when the process exits or is killed.

A run's length (``steps``) may grow when the learning-rate schedule does not
depend on it (``constant`` and ``steps`` policies): the rates of the steps
already taken stay what they were, so the longer run equals one trained that
long from the start. A cosine schedule decays to zero at the run's last step;
lengthening it would change the rates of the steps already taken, so it is
refused with what to do instead.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import tempfile

from jaxheads._checks import fail

# Settings that may differ between a run and its resumption (they decide nothing that is
# computed). ``workdir`` is where the run is, not what it is.
NOT_IDENTITY = (
    "workdir",
    "progress",
    "tensorboard",
    "log_every",
    "eval_every",
    "checkpoint_every",
    "max_to_keep",
)
# Policies whose rate at a step does not depend on the run's length.
EXTENDABLE_POLICIES = ("constant", "steps")
# Without 64-bit mode JAX keeps a seed's low 32 bits (2**32 gives seed 0's key), and the
# loop keys dropout with seed + 1; numpy's generators take any such seed as it is.
MAX_SEED = 2**31 - 1


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_config(cfg, *, workdir: bool = True) -> None:
    """Checks every field of a `RunConfig`; raises ValueError before anything is written.

    With ``workdir=False`` an empty work directory passes: a template config (a
    study's budget) names its run's folder only when a row is run.
    """

    def need_int(name, lo, value=None):
        value = getattr(cfg, name) if value is None else value
        if not _is_int(value) or value < lo:
            fail("train", f"{name} to be an integer >= {lo}", repr(value))

    def need_real(name, lo, *, strict=False, value=None):
        value = getattr(cfg, name) if value is None else value
        if (
            not _is_real(value)
            or not math.isfinite(value)
            or value < lo
            or (strict and value == lo)
        ):
            fail(
                "train", f"{name} to be a finite number {'>' if strict else '>='} {lo}", repr(value)
            )

    if not isinstance(cfg.workdir, (str, os.PathLike)) or (workdir and not str(cfg.workdir)):
        fail("train", "workdir to be a non-empty path", repr(cfg.workdir))
    need_int("steps", 1)
    if not _is_int(cfg.seed) or not 0 <= cfg.seed <= MAX_SEED:
        fail("train", f"seed to be an integer from 0 to {MAX_SEED}", repr(cfg.seed))
    if cfg.num_devices is not None:
        need_int("num_devices", 1)
    for name in ("checkpoint_every", "max_to_keep", "log_every"):
        need_int(name, 1)
    need_int("eval_every", 0)
    if cfg.tensorboard is not None and not isinstance(cfg.tensorboard, bool):
        fail("train", "tensorboard to be True, False or None", repr(cfg.tensorboard))
    need_int("freeze", 0)
    need_int("burn_in", 0)
    need_real("learning_rate", 0)
    need_real("momentum", 0)
    need_real("weight_decay", 0)
    if cfg.clip_norm is not None:
        need_real("clip_norm", 0, strict=True)
    for s in cfg.lr_steps:
        need_int("lr_steps", 0, value=s)
    for s in cfg.lr_scales:
        need_real("lr_scales", 0, value=s)
    if len(cfg.lr_steps) != len(cfg.lr_scales):
        fail(
            "train",
            "as many lr_scales as lr_steps",
            f"{len(cfg.lr_scales)} scales for {len(cfg.lr_steps)} steps",
        )


def jsonable(d):
    return json.loads(json.dumps(d, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def atomic_write(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def open_workdir(workdir: str) -> None:
    """Creates ``workdir`` if needed and checks that files can be written in it."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=workdir, prefix=".probe-")
        probe.close()
    except OSError as err:
        fail("train", f"a writable workdir ({err.strerror})", workdir)


class WorkdirLock:
    """An exclusive ``flock`` on ``WORKDIR/.lock`` (a context manager)."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, ".lock")
        self._fd = None

    def __enter__(self):
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                fail(
                    "train",
                    f"no other run training in {os.path.dirname(self.path)} "
                    "(wait for it to finish, or stop it first)",
                    f"one running as {holder}",
                )
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


# Settings of the experiment (``RunConfig.extra``) that may differ likewise: how the same
# batches are loaded.
NOT_IDENTITY_EXTRA = ("loader_processes",)
# Settings of the experiment added after runs were recorded without them: such a run had
# the default.
EXTRA_DEFAULTS = {
    "augment_on_device": False,
    "data_seed": None,
    "train_sizes": [],
    "loss_options": {},
}


def _identity(d: dict) -> dict:
    out = {k: v for k, v in d.items() if k not in NOT_IDENTITY}
    if isinstance(out.get("extra"), dict):
        extra = {**EXTRA_DEFAULTS, **out["extra"]}
        out["extra"] = {k: v for k, v in extra.items() if k not in NOT_IDENTITY_EXTRA}
    return out


def reconcile_config(cfg, *, writes: bool = True) -> int | None:
    """Writes ``config.json`` for a new run, or checks ``cfg`` against the run already there.

    Returns the run's previous length when ``cfg.steps`` extends it (``config.json``
    then says the new length), else None.
    """
    path = os.path.join(cfg.workdir, "config.json")
    mine = jsonable(dataclasses.asdict(cfg))
    if not os.path.exists(path):
        if writes:
            atomic_write(path, json.dumps(mine, indent=2))
        return None
    try:
        with open(path) as f:
            theirs = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        fail("train", f"a readable {path}", f"{type(err).__name__} ({err})")
    if not isinstance(theirs, dict):
        fail("train", f"a JSON object in {path}", type(theirs).__name__)
    a, b = _identity(theirs), _identity(mine)
    diff = sorted(k for k in set(a) | set(b) if k != "steps" and a.get(k) != b.get(k))
    if diff:
        fail(
            "train",
            f"the same settings as the run already in {cfg.workdir} "
            "(use a new --workdir for a different run)",
            ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in diff),
        )
    before = theirs.get("steps")
    if before == cfg.steps:
        return None
    if not _is_int(before):
        fail("train", f"an integer 'steps' in {path}", repr(before))
    if cfg.steps < before:
        fail(
            "train",
            f"steps >= {before}, the length of the run in {cfg.workdir} (a run "
            "cannot be shortened; use a new --workdir for a shorter run)",
            cfg.steps,
        )
    if cfg.policy not in EXTENDABLE_POLICIES:
        fail(
            "train",
            f"steps {before}, the length of the run in {cfg.workdir}: its "
            f"{cfg.policy} schedule decays to zero at step {before}, and a longer one would "
            "change the rates of the steps already taken (train a new run with --workdir "
            f"NEW --steps {cfg.steps}, or use --policy constant or steps, which can be "
            "extended)",
            cfg.steps,
        )
    if writes:
        atomic_write(path, json.dumps({**theirs, "steps": cfg.steps}, indent=2))
    return before


__all__ = ["WorkdirLock", "open_workdir", "reconcile_config", "validate_config"]
