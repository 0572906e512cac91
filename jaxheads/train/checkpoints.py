"""A run's checkpoints: orbax step folders, each with a checksum of its arrays.

``WORKDIR/checkpoints/N/`` is an orbax checkpoint of the train state after step
``N``; ``WORKDIR/checksums/N.json`` holds the SHA-256 of its arrays, written
*before* the checkpoint, so that every committed checkpoint has one. On restore
the newest checkpoint is read and its arrays hashed: a checkpoint that cannot
be read (a stray or partial step folder, truncated or random bytes) or whose
arrays do not match their checksum (flipped bits), or whose step — stored in the
train state and in its checksum file — is not its folder's name (a copy placed
under another step), is moved, with its checksum,
to ``WORKDIR/unreadable-checkpoints/`` with a warning, and the next older one is
tried. Nothing here deletes or overwrites a checkpoint that restores correctly.

A failed restore can leave an orbax ``CheckpointManager`` in a state in which
it reads nothing else (``reload()`` does not reset it), so every failure is
followed by a fresh manager.

In a multi-process run every barrier of a save is a collective over the devices
(`collective_barrier`), never a wait on JAX's coordination service: a process
that stops while the others save makes their save fail within seconds, as a
failed training step does, instead of after the coordination service's heartbeat
timeout (100 s by default).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

QUARANTINE = "unreadable-checkpoints"


class ChecksumMismatch(RuntimeError):
    """A checkpoint's arrays differ from the checksum written with them."""


class StepMismatch(RuntimeError):
    """A checkpoint's folder name differs from the step stored inside it or its checksum."""


def _stored_step(tree) -> int | None:
    """The ``step`` a train state holds (``None`` for a tree without one)."""
    value = getattr(tree, "step", None)
    if value is None and isinstance(tree, dict):
        value = tree.get("step")
    if value is None or np.ndim(value) != 0:
        return None
    return int(np.asarray(value))


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a quota, a failing device).

    The partial files of that checkpoint were removed; every earlier checkpoint is
    kept, so the same command resumes from the newest one once there is room.
    """


def tree_checksum(tree) -> str:
    """SHA-256 over every leaf's path, dtype, shape and bytes (host arrays)."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        a = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}|{a.dtype.str}|{a.shape}|".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _write_json(path: str, value) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(value, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    """Removes a file or folder if it is there; never raises."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def _reason(err: Exception, limit: int = 300) -> str:
    """An error's text for one line: tensorstore's spec dumps (kilobytes of JSON) cut off."""
    text = " ".join(str(err).split()).split(" [tensorstore_spec")[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def collective_barrier(*, key: str, timeout_ms: int) -> None:
    """Orbax's ``BarrierSyncFn`` as a collective over every device of every process.

    A lost process breaks the collective's connection at once (`jax.errors.JaxRuntimeError`);
    the coordination service's barrier, orbax's default for its save-progress flag, only
    fails when the lost process's heartbeat times out. ``timeout_ms`` is not used: a
    collective waits for its peers as long as they live.
    """
    from jax.experimental import multihost_utils

    del timeout_ms
    multihost_utils.sync_global_devices(key)


def peer_lost(err: BaseException) -> bool:
    """Whether ``err`` (or what it was raised from) is a failed collective of a
    multi-process run: another process stopped, nothing is wrong with the disk."""
    if jax.process_count() == 1:
        return False
    while err is not None:
        if isinstance(err, jax.errors.JaxRuntimeError):
            return True
        err = err.__cause__ or err.__context__
    return False


class CheckpointStore:
    """Saves and restores one run's train states with verified checksums.

    Args:
      workdir: the run's work directory.
      max_to_keep: how many of the newest checkpoints orbax keeps.
      writes: whether this process moves unreadable checkpoints aside and writes
        checksums (process 0 of a multi-process run).
      temporary_path_class: for tests only: orbax's class of the folder a save
        writes into and renames when complete (``None``: orbax's default). The
        kill tests pass a subclass whose commit waits on a file, so that a process
        is stopped inside a save (``tests/train_toy.py``).
    """

    def __init__(
        self,
        workdir: str,
        *,
        max_to_keep: int | None = None,
        writes: bool = True,
        temporary_path_class: type | None = None,
    ):
        self.workdir = os.path.abspath(workdir)
        self.directory = os.path.join(self.workdir, "checkpoints")
        self.checksums = os.path.join(self.workdir, "checksums")
        self.max_to_keep = max_to_keep
        self.writes = writes
        self.temporary_path_class = temporary_path_class
        self._manager = self._new_manager()

    def _new_manager(self) -> ocp.CheckpointManager:
        return ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=self.max_to_keep,
                enable_async_checkpointing=False,
                temporary_path_class=self.temporary_path_class,
                async_options=ocp.AsyncOptions(barrier_sync_fn=collective_barrier),
            ),
        )

    def _checksum_path(self, step: int) -> str:
        return os.path.join(self.checksums, f"{step}.json")

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, step: int, tree) -> None:
        """Writes ``tree`` (host arrays) as checkpoint ``step``, its checksum first.

        Raises:
          CheckpointWriteError: the write failed (e.g. no space left); the checkpoint's
            partial files were removed and the earlier checkpoints are untouched.
          jax.errors.JaxRuntimeError: a collective of the save failed in a multi-process
            run (another process stopped); its partial folder is left for orbax to
            ignore, and the earlier checkpoints are untouched.
        """
        try:
            if self.writes:
                os.makedirs(self.checksums, exist_ok=True)
                _write_json(
                    self._checksum_path(step), {"step": step, "sha256": tree_checksum(tree)}
                )
            self._manager.save(step, args=ocp.args.StandardSave(tree), force=True)
            self._manager.wait_until_finished()
        except Exception as err:  # noqa: BLE001 — orbax and tensorstore raise many kinds
            if peer_lost(err):
                raise  # tidying up would wait on the lost process; the caller reports it
            raise self._write_failed(step, err) from err
        if self.writes:
            self._prune_checksums()

    def _write_failed(self, step: int, err: Exception) -> CheckpointWriteError:
        """Removes what a failed save of ``step`` left (never a committed checkpoint)."""
        self._manager.close()
        self._manager = self._new_manager()
        if self.writes and step not in self._manager.all_steps():
            _remove(self._checksum_path(step))
            # orbax writes into "<step>.orbax-checkpoint-tmp…" and renames it when complete
            for name in os.listdir(self.directory) if os.path.isdir(self.directory) else ():
                if name.startswith(f"{step}.orbax-checkpoint-tmp"):
                    _remove(os.path.join(self.directory, name))
        kept = self.steps()
        # tensorstore's errors carry the OS's code in their text only
        found = re.search(r"os_error_code='(\d+)'", str(err))
        code = getattr(err, "errno", None) or (int(found.group(1)) if found else None)
        cause = os.strerror(code) if code else f"{type(err).__name__}: {str(err)[:300]}"
        error = CheckpointWriteError(
            f"could not write checkpoint {step} to {self.directory} ({cause}); "
            + (
                f"its partial files were removed and checkpoints {', '.join(map(str, kept))} "
                "are kept: make room and run the same command to resume"
                if kept
                else "its partial files were removed; no checkpoint was written yet"
            )
        )
        error.errno = code
        return error

    def _prune_checksums(self) -> None:
        # Checksums of checkpoints that orbax retired (max_to_keep) or never committed.
        kept = set(self.steps())
        for name in os.listdir(self.checksums):
            stem = name.removesuffix(".json")
            if name.endswith(".json") and stem.isdigit() and int(stem) not in kept:
                os.unlink(os.path.join(self.checksums, name))

    def _read(self, step: int, template):
        restored = self._manager.restore(step, args=ocp.args.StandardRestore(template))
        stored = _stored_step(restored)
        if stored is not None and stored != step:
            # a checkpoint copied or renamed to another step's folder
            raise StepMismatch(f"its folder says step {step}, the state inside is {stored}")
        path = self._checksum_path(step)
        if not os.path.exists(path):
            warnings.warn(
                f"checkpoint {step} in {self.directory} has no checksum "
                f"({path}); restored without verifying its arrays",
                stacklevel=3,
            )
            return restored
        try:
            with open(path) as f:
                record = json.load(f)
            want = record["sha256"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ChecksumMismatch(f"its checksum file {path} is unreadable ({err})") from err
        if record.get("step", step) != step:
            raise StepMismatch(
                f"its folder says step {step}, its checksum file {path} says {record['step']!r}"
            )
        got = tree_checksum(restored)
        if got != want:
            raise ChecksumMismatch(
                f"its arrays hash to {got[:16]}…, the checksum written with them is {want[:16]}…"
            )
        return restored

    def restore_latest(self, template) -> tuple[Any, int]:
        """The newest checkpoint that reads and verifies, and its step (``(None, 0)``: none).

        ``template`` is a tree of host arrays with the checkpoint's structure.
        """
        for step in sorted(self.steps(), reverse=True):
            try:
                return self._read(step, template), step
            except Exception as err:  # noqa: BLE001 — any unusable checkpoint is skipped
                moved = self._set_aside(step)
                warnings.warn(
                    f"checkpoint {step} in {self.directory} is unreadable "
                    f"({type(err).__name__}: {_reason(err)}){moved}; trying an older one",
                    stacklevel=2,
                )
                self._manager.close()
                self._manager = self._new_manager()
        return None, 0

    def _set_aside(self, step: int) -> str:
        if not self.writes:
            return ""
        target = os.path.join(self.workdir, QUARANTINE, f"{step}-{time.time_ns()}")
        os.makedirs(target)
        os.replace(os.path.join(self.directory, str(step)), os.path.join(target, str(step)))
        checksum = self._checksum_path(step)
        if os.path.exists(checksum):
            shutil.move(checksum, os.path.join(target, "checksum.json"))
        return f"; moved to {target}"

    def close(self) -> None:
        self._manager.close()


__all__ = [
    "CheckpointStore",
    "CheckpointWriteError",
    "ChecksumMismatch",
    "StepMismatch",
    "collective_barrier",
    "peer_lost",
    "tree_checksum",
]
