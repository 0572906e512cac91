"""Side-by-side timing: contenders run interleaved in one process, medians of repeats.

On a shared machine the load drifts over seconds; running every contender once per
repeat, in an order that rotates from repeat to repeat, exposes all of them to the
same drift, and a ratio of medians is then far steadier than either median.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (``os.getloadavg``), or NaNs where unknown."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return [float("nan")] * 3


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``(fn(), seconds it took)``; ``fn`` must wait for its own results."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def wall(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` takes."""
    return timed(fn)[1]


def interleaved(
    contenders: dict[str, Callable[[], object]],
    *,
    repeats: int,
    cpu: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Wall seconds per call of each contender, ``repeats`` calls each, interleaved.

    Repeat ``r`` runs the contenders in their order rotated by ``r``, so none is
    always first after a slow neighbour. With ``cpu`` (a dict), the process's CPU
    seconds per call (all its threads: XLA's and the input pipeline's) go there:
    on a machine shared with other jobs they measure the work done, where wall
    time also measures the share of the cores the job got.
    """
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    if cpu is not None:
        cpu.update({name: [] for name in names})
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            start_cpu = time.process_time()
            times[name].append(wall(contenders[name]))
            if cpu is not None:
                cpu[name].append(time.process_time() - start_cpu)
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values))
