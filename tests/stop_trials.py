"""A training process that another process stops, again and again (``test_stop_signals.py``).

``python stop_trials.py ROOT`` trains the toy task of ``train_toy.py`` once without
interruption (``ROOT/reference``), prints ``REFERENCE <loop start> <loop end>`` (seconds
after the start of `fit`), then answers lines on stdin:

- ``GO k``: prints ``ARMED k`` and trains a fresh run in ``ROOT/k``, during which the
  other process sends SIGTERM or SIGINT; prints ``RESULT k <status> <step> <newest
  checkpoint> <where>``, ``where`` naming what the run was doing when the signal came
  (``batch``, ``eval``, ``save``, ``other`` for the rest of the loop, ``outside`` when
  it came before the loop or after `fit` returned).
- ``SENT k t``: the signal was sent at ``time.monotonic()`` ``t``.
- ``RESUME k``: runs the same run to its end and prints ``DONE k same`` when its
  logged losses and final checkpoint equal the reference's bit for bit, else
  ``DONE k differ <why>``.
- ``QUIT``.
"""

import os
import signal
import sys
import time

import numpy as np
from train_toy import final_checkpoint, logged_losses, toy_task

from jaxheads.train import loop
from jaxheads.train.checkpoints import CheckpointStore
from jaxheads.train.loop import RunConfig, Task, fit

STEPS = 12
phases: list[tuple[float, str]] = []  # (monotonic time, what begins)
signals: list[float] = []  # monotonic times the signals reached this process's handler


def mark(what: str) -> None:
    phases.append((time.monotonic(), what))


def task() -> Task:
    inner = toy_task()

    def batches(start, i, n):
        for batch in inner.batches(start, i, n):
            mark("batch")
            time.sleep(0.03)
            mark("other")
            yield batch

    def evaluate(params, state):
        mark("eval")
        time.sleep(0.05)
        value = {"param_sum": float(sum(np.sum(x) for x in loop.jax.tree.leaves(params)))}
        mark("other")
        return value

    return Task(inner.init, inner.loss_fn, batches, inner.examples_per_batch, evaluate)


class MarkedStore(CheckpointStore):
    def save(self, step, tree):
        mark("save")
        try:
            super().save(step, tree)
        finally:
            mark("other")


def run(workdir: str) -> dict:
    phases.clear()
    mark("outside")
    result = fit(
        task(),
        RunConfig(
            workdir=workdir,
            steps=STEPS,
            num_devices=1,
            optimizer="sgd",
            learning_rate=0.01,
            policy="constant",
            checkpoint_every=4,
            eval_every=3,
            log_every=2,
            progress=False,
        ),
    )
    mark("outside")
    return result


def where(t: float) -> str:
    """What the run was doing at monotonic time ``t``."""
    before = [what for when, what in phases if when <= t]
    inside = [when for when, what in phases if what == "batch"]
    if not inside or t < inside[0] or t >= phases[-1][0]:
        return "outside"
    return before[-1] if before else "outside"


def newest(workdir: str) -> int:
    store = CheckpointStore(workdir, writes=False)
    try:
        return store.latest_step() or 0
    finally:
        store.close()


def main(root: str) -> None:
    # A signal that lands outside `fit` (which installs its own handlers) is noted, not fatal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: signals.append(time.monotonic()))
    loop.CheckpointStore = MarkedStore
    reference = os.path.join(root, "reference")
    run(reference)
    # A second run times the loop as the trials meet it: with its step compiled already.
    t0 = time.monotonic()
    run(os.path.join(root, "timing"))
    batch_times = [when for when, what in phases if what == "batch"]
    print("REFERENCE", batch_times[0] - t0, phases[-1][0] - t0, flush=True)
    losses, final = logged_losses(reference), final_checkpoint(reference, STEPS)
    sent_at = {}
    for line in sys.stdin:
        words = line.split()
        if words[0] == "GO":
            k = words[1]
            signals.clear()
            print("ARMED", k, flush=True)
            result = run(os.path.join(root, k))
            # The signal may still be on its way when fit returns: wait for the parent's word.
            sent_at[k] = result
        elif words[0] == "SENT":
            k, t = words[1], float(words[2])
            result = sent_at[k]
            workdir = os.path.join(root, k)
            landed = "outside" if signals else where(t)
            print(
                "RESULT", k, result["status"], result["step"], newest(workdir), landed, flush=True
            )
        elif words[0] == "RESUME":
            k = words[1]
            workdir = os.path.join(root, k)
            result = run(workdir)
            why = []
            if result["status"] != "completed" or result["step"] != STEPS:
                why.append(f"{result['status']} at {result['step']}")
            if logged_losses(workdir) != losses:
                why.append("losses")
            try:
                loop.jax.tree.map(
                    np.testing.assert_array_equal, final_checkpoint(workdir, STEPS), final
                )
            except AssertionError:
                why.append("checkpoint")
            print("DONE", k, "same" if not why else "differ " + ",".join(why), flush=True)
        elif words[0] == "QUIT":
            return


if __name__ == "__main__":
    main(sys.argv[1])
