"""TensorBoard's view of a run: ``WORKDIR/tensorboard/``, rebuilt from ``metrics.jsonl``.

Every row of ``metrics.jsonl`` is written as TensorBoard scalars at the row's step: a
training row's numbers under ``train/`` (``train/loss``, the loss's parts, ``train/lr``,
``train/steps_per_s``, ``train/images_per_s``, ``train/compile_s``), an evaluation's under
``eval/`` (``eval/mAP50``, ``eval/per_class_ap50/3``, ...). Text (``device``) and missing
values (an mAP of ``None``) are left out. Scalars are float32, as TensorBoard keeps them.

``metrics.jsonl`` stays the record; the event files are a view of it. Each start of a run,
new or resumed, removes the event files of the starts before and writes its rows again into
a new one, after the resume has cut ``metrics.jsonl`` back to the step it resumed from, so
a step a killed run logged past its last checkpoint is never shown beside the resumed run's
value: the event files hold each step once, with the value ``metrics.jsonl`` holds. The new
file starts with a restart marker at step 0, which makes a TensorBoard already reading the
folder drop what it read from the removed files. An event lost in a kill is written again
by the next start, so nothing is flushed for the sake of a checkpoint: the file is flushed
(and synced) at the first row written `FLUSH_SECONDS` or more after the last flush, and at
the end, which keeps a watching TensorBoard close behind and costs a slow disk (a mounted
Drive) little. Each row is one event, written in the loop's thread: no thread, no queue.

Writing needs tensorboardX (``pip install 'jaxheads[tensorboard]'``). `EventLog.open`
returns None when it is not installed: silently when the event files were left to
default, with one line on stderr when they were asked for.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from collections.abc import Iterable, Mapping

# Where the event files go, inside the work directory.
EVENTS_DIR = "tensorboard"
# The names TensorBoard's event files have (tensorboardX and TensorFlow alike).
EVENT_FILE_PREFIX = "events.out.tfevents."
# The least time between two flushes of the event file (TensorBoard reloads every 5 s).
FLUSH_SECONDS = 5.0
MISSING = (
    "TensorBoard event files not written: tensorboardX is not installed "
    "(pip install 'jaxheads[tensorboard]'); metrics.jsonl holds every logged step"
)


def _numbers(prefix: str, values: Mapping) -> Iterable[tuple[str, float]]:
    for key, value in values.items():
        tag = f"{prefix}/{key}"
        if isinstance(value, Mapping):
            yield from _numbers(tag, value)
        elif (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ):
            yield tag, float(value)


def scalars(row: Mapping) -> dict[str, float]:
    """The TensorBoard scalars of one ``metrics.jsonl`` row, by tag (its step aside).

    >>> scalars({"step": 10, "loss": 0.5, "lr": 1e-3, "device": "cpu"})
    {'train/loss': 0.5, 'train/lr': 0.001}
    >>> scalars({"step": 10, "eval": {"mAP50": 0.25, "mAP": None, "per_class_ap50": {"0": 1}}})
    {'eval/mAP50': 0.25, 'eval/per_class_ap50/0': 1.0}
    """
    if "eval" in row:
        return dict(_numbers("eval", row["eval"]))
    return dict(_numbers("train", {k: v for k, v in row.items() if k != "step"}))


def event_files(workdir: str) -> list[str]:
    """The paths of the event files in ``WORKDIR/tensorboard/``, oldest name first."""
    folder = os.path.join(workdir, EVENTS_DIR)
    if not os.path.isdir(folder):
        return []
    return [
        os.path.join(folder, name)
        for name in sorted(os.listdir(folder))
        if name.startswith(EVENT_FILE_PREFIX)
    ]


class EventLog:
    """A run's TensorBoard event file, written row by row beside ``metrics.jsonl``."""

    def __init__(self, folder: str):
        from tensorboardX import RecordWriter
        from tensorboardX.proto import event_pb2, summary_pb2

        self._pb = event_pb2
        self._summary = summary_pb2.Summary
        now = time.time()
        # The name tensorboardX and TensorFlow give an event file: TensorBoard reads a
        # folder's files in name order.
        name = f"{EVENT_FILE_PREFIX}{int(now):010d}.{socket.gethostname()}"
        self._writer = RecordWriter(os.path.join(folder, name))
        self._event(file_version="brain.Event:2", wall_time=now)
        # A restart marker before every step (step 0): a TensorBoard that read the files of
        # an earlier start drops what it read from them.
        self._event(step=0, session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START))
        self._flushed = -math.inf

    def _event(self, **fields) -> None:
        event = self._pb.Event(**{"wall_time": time.time(), **fields})
        self._writer.write(event.SerializeToString())

    @classmethod
    def open(cls, workdir: str, rows: Iterable[Mapping], *, asked: bool) -> EventLog | None:
        """Replaces the event files in ``WORKDIR/tensorboard/`` by one holding ``rows``.

        Args:
          workdir: the run's work directory.
          rows: ``metrics.jsonl``'s rows as the run starts (after a resume's cut).
          asked: whether the event files were asked for (a missing tensorboardX is then
            said on stderr, in one line) rather than left to default.

        Returns:
          The open log, or None when tensorboardX is not installed.
        """
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            if asked:
                print(MISSING, file=sys.stderr, flush=True)
            return None
        for path in event_files(workdir):
            os.unlink(path)
        folder = os.path.join(workdir, EVENTS_DIR)
        os.makedirs(folder, exist_ok=True)
        log = cls(folder)
        for row in rows:
            log.write(row)
        log.flush()
        return log

    def write(self, row: Mapping) -> None:
        """Writes one ``metrics.jsonl`` row's `scalars` at its step, as one event."""
        values = [
            self._summary.Value(tag=tag, simple_value=value) for tag, value in scalars(row).items()
        ]
        if values:
            self._event(step=int(row["step"]), summary=self._summary(value=values))
        if time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._writer.flush()
        self._flushed = time.monotonic()

    def close(self) -> None:
        self.flush()
        self._writer.close()


__all__ = ["EVENTS_DIR", "FLUSH_SECONDS", "EventLog", "event_files", "scalars"]
