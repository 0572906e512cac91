"""Loading a batch's examples in worker processes (`jaxheads.data.Batches` with ``processes``).

Decoding and augmenting an image is numpy and Pillow work that holds Python's
lock for much of its time, so threads of one process share about one core.
`ProcessLoader` spreads it over processes instead: each worker receives the data
set and the augmentation once, pickled when the pool starts, and loads runs of
consecutive examples of a batch, which it stacks into a block of shared memory
(pickling megabytes of pixels through a pipe would cost the caller more time per
image than the rest of its work); the caller copies the blocks into the batch
and frees them. An example is
the same function of ``(seed, epoch, index)`` in a worker as in the caller
(`load_example`), so the batches are the same bit for bit whatever the number
of processes or the order they finish in.

Workers are started with ``spawn``, never ``fork`` (the parent may run JAX's
threads), and run JAX on the CPU only, so that none of them claims the
accelerator the parent trains on.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pickle
from collections.abc import Callable, Sequence
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from jaxheads._checks import check_positive_int, fail

__all__ = ["ProcessLoader", "load_example"]

Example = dict[str, np.ndarray]


def load_example(
    dataset: Any,
    augment: Callable[[Example, np.random.Generator], Example] | None,
    seed: int,
    epoch: int,
    index: int,
) -> Example:
    """Example ``index`` of ``dataset``, augmented with ``default_rng([seed, epoch, index])``.

    A negative index is a blank example: example 0's arrays, all zeros,
    un-augmented (it pads the last batch of an epoch).
    """
    if index < 0:
        return {k: np.zeros_like(v) for k, v in dataset.example(0).items()}
    ex = dataset.example(int(index))
    if augment is not None:
        ex = augment(ex, np.random.default_rng([seed, epoch, int(index)]))
    return ex


# What a worker process loads from: (dataset, augment, seed), set once by `_start_worker`.
_worker_source: tuple[Any, Any, int] | None = None


def _start_worker(payload: bytes) -> None:
    global _worker_source
    import jax

    jax.config.update("jax_platforms", "cpu")
    _worker_source = pickle.loads(payload)


# A run's arrays in shared memory: the block's name and, per key, (dtype, shape, offset).
Layout = dict[str, tuple[str, tuple[int, ...], int]]


def _views(block: shared_memory.SharedMemory, layout: Layout) -> Example:
    return {
        k: np.ndarray(shape, np.dtype(dtype), buffer=block.buf, offset=offset)
        for k, (dtype, shape, offset) in layout.items()
    }


def _load_run(epoch: int, indices: Sequence[int]) -> tuple[str, Layout]:
    """Loads the examples ``indices`` and stacks them into a new block of shared memory."""
    dataset, augment, seed = _worker_source
    examples = [load_example(dataset, augment, seed, epoch, i) for i in indices]
    layout: Layout = {}
    size = 0
    for k, first in examples[0].items():
        shape = (len(examples), *np.shape(first))
        layout[k] = (np.asarray(first).dtype.str, shape, size)
        size += -(-int(np.prod(shape)) * np.asarray(first).dtype.itemsize // 64) * 64
    block = shared_memory.SharedMemory(create=True, size=max(size, 1))
    views = _views(block, layout)
    for k, view in views.items():
        np.stack([ex[k] for ex in examples], out=view)
    del views
    block.close()
    return block.name, layout


def _free(future: concurrent.futures.Future) -> None:
    """Frees the shared memory of a finished run whose batch nobody will collect."""
    if future.cancelled() or future.exception() is not None:
        return
    block = shared_memory.SharedMemory(future.result()[0])
    block.close()
    block.unlink()


class ProcessLoader:
    """Loads runs of a batch's examples in ``processes`` spawned worker processes.

    Args:
      dataset: anything with ``example(i)``; it must pickle.
      augment: ``augment(example, rng) -> example`` or None; it must pickle (a
        module-level function or a ``functools.partial`` of one, not a lambda).
      seed: the augmentation's seed (see `load_example`).
      processes: the number of worker processes.

    Raises:
      ValueError: when the data set or ``augment`` does not pickle, naming it.
    """

    def __init__(self, dataset: Any, augment: Any, seed: int, processes: int):
        check_positive_int("Batches", "processes", processes)
        for name, value in (("the data set", dataset), ("augment", augment)):
            try:
                pickle.dumps(value)
            except (pickle.PicklingError, TypeError, AttributeError) as error:
                fail(
                    "Batches",
                    f"{name} to pickle, to send it to worker processes (processes="
                    f"{processes}); a module-level function or functools.partial pickles, "
                    "a lambda or a local function does not",
                    f"{type(error).__name__}: {error}",
                )
        self.processes = int(processes)
        self._pool = concurrent.futures.ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(pickle.dumps((dataset, augment, int(seed))),),
        )
        self._outstanding: set[concurrent.futures.Future] = set()

    def submit(self, epoch: int, indices: np.ndarray) -> list[concurrent.futures.Future]:
        """Starts loading ``indices`` (in ``processes`` runs of consecutive examples)."""
        runs = [run for run in np.array_split(np.asarray(indices), self.processes) if run.size]
        futures = [self._pool.submit(_load_run, epoch, run.tolist()) for run in runs]
        self._outstanding.update(futures)
        return futures

    def collect(self, futures: list[concurrent.futures.Future]) -> Example:
        """The stacked examples of `submit`'s futures, in order; a worker's error is raised.

        Every run's shared memory is freed, also when another run failed.
        """
        concurrent.futures.wait(futures)
        self._outstanding.difference_update(futures)
        try:
            layouts = [future.result()[1] for future in futures]
            batch = {
                k: np.empty((sum(lay[k][1][0] for lay in layouts), *shape[1:]), np.dtype(dtype))
                for k, (dtype, shape, _) in layouts[0].items()
            }
            start = 0
            for future, layout in zip(futures, layouts, strict=True):
                block = shared_memory.SharedMemory(future.result()[0])
                views = _views(block, layout)
                n = next(iter(layout.values()))[1][0]
                for k, view in views.items():
                    batch[k][start : start + n] = view
                start += n
                del views
                block.close()
            return batch
        finally:
            for future in futures:
                _free(future)

    def discard(self, futures: list[concurrent.futures.Future]) -> None:
        """Cancels `submit`'s futures, or waits for them and frees their shared memory."""
        for future in futures:
            future.cancel()
        concurrent.futures.wait(futures)
        self._outstanding.difference_update(futures)
        for future in futures:
            _free(future)

    def close(self) -> None:
        """Stops the workers; loads not yet started are cancelled, finished ones freed."""
        for future in self._outstanding:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for future in self._outstanding:
            _free(future)
        self._outstanding = set()
