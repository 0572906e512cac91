"""The input pipeline: examples, batches, a resumable order, prefetch and sharding.

An *example* is a dict of numpy arrays, the one format every data set returns:

  * ``image``: [H, W, 3] float32 in [0, 1].
  * ``boxes``: [M, 4] float32 ``xyxy`` normalised to [0, 1] (see `jaxheads.boxes`).
  * ``labels``: [M] int32 class indices.
  * ``mask``: [M] bool, which rows hold an object. Objects fill a prefix of the
    rows; the ``M = max_boxes`` rows are padded with zeros (and ``mask`` False).
  * ``difficult``: [M] bool, optional (VOC's ``difficult``, COCO's ``iscrowd``).

A *batch* stacks examples on a leading axis (``image`` [B, H, W, 3], ``boxes``
[B, M, 4], ``labels`` [B, M], ``mask`` [B, M]) and adds ``valid``: [B] bool,
False for the blank examples that pad the last batch of an epoch when
``drop_remainder=False``, so that every batch has the same shape and a jitted
step never recompiles.

`Batches` reads a data set in an order that is a pure function of
``(seed, epoch)``: global step ``k`` is batch ``k % steps_per_epoch`` of the
permutation of epoch ``k // steps_per_epoch``, and example ``i`` of epoch ``e``
is augmented with ``np.random.default_rng([seed, e, i])``. Nothing depends on
what was read before, so ``Batches(..., start_step=k)`` yields exactly the
batches that skipping ``k`` from the start would: a run resumed from a
checkpoint that stored its step (`Batches.step`) sees the same data as one that
never stopped. Every data set in `jaxheads.data` is random access (``example(i)`` is
a function of its seed and ``i``), which is what makes this cheap.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxheads._checks import check_positive_int, fail
from jaxheads.data.workers import ProcessLoader, load_example

__all__ = [
    "Batches",
    "DetectionDataset",
    "pad_targets",
    "per_device",
    "shard_batch",
    "stack_examples",
]

Example = dict[str, np.ndarray]
Augment = Callable[[Example, np.random.Generator], Example]


def pad_targets(
    boxes: np.ndarray,
    labels: np.ndarray,
    max_boxes: int,
    *,
    difficult: np.ndarray | None = None,
    op: str = "pad_targets",
) -> Example:
    """Pads ``N <= max_boxes`` objects to the fixed ``max_boxes`` rows of an example.

    Args:
      boxes: [N, 4] xyxy boxes normalised to [0, 1].
      labels: [N] integer class indices.
      max_boxes: M, the number of rows of the result.
      difficult: optional [N] bool flags.
      op: the name that error messages carry.

    Returns:
      ``{"boxes": [M, 4] float32, "labels": [M] int32, "mask": [M] bool}`` plus
      ``"difficult": [M] bool`` when ``difficult`` is given; rows past N are zero.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    labels = np.asarray(labels, np.int32).reshape(-1)
    n = boxes.shape[0]
    if labels.shape[0] != n:
        fail(op, f"as many labels as boxes ({n})", f"{labels.shape[0]} labels")
    if n > max_boxes:
        fail(op, f"at most max_boxes={max_boxes} objects", f"{n} objects")
    out = {
        "boxes": np.zeros((max_boxes, 4), np.float32),
        "labels": np.zeros((max_boxes,), np.int32),
        "mask": np.zeros((max_boxes,), bool),
    }
    out["boxes"][:n] = boxes
    out["labels"][:n] = labels
    out["mask"][:n] = True
    if difficult is not None:
        out["difficult"] = np.zeros((max_boxes,), bool)
        out["difficult"][:n] = np.asarray(difficult, bool).reshape(-1)
    return out


def stack_examples(examples: Sequence[Mapping[str, np.ndarray]]) -> Example:
    """Stacks examples (dicts with the same keys and shapes) on a new leading axis."""
    if not examples:
        fail("stack_examples", "at least one example", "an empty sequence")
    keys = examples[0].keys()
    for i, ex in enumerate(examples):
        if ex.keys() != keys:
            fail(
                "stack_examples", f"the keys {sorted(keys)}", f"{sorted(ex.keys())} in example {i}"
            )
    return {k: np.stack([ex[k] for ex in examples]) for k in keys}


class DetectionDataset:
    """What every data set in `jaxheads.data` provides.

    Subclasses set ``class_names``, ``image_size`` ((H, W)) and ``max_boxes``
    and implement ``__len__`` and ``example(i)``, which must be a deterministic
    function of the data set's arguments and ``i`` alone (random access).
    """

    class_names: tuple[str, ...] = ()
    image_size: tuple[int, int] = (0, 0)
    max_boxes: int = 0

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        raise NotImplementedError

    def example(self, i: int) -> Example:
        """Example ``i``: a dict of numpy arrays (see `jaxheads.data.pipeline`)."""
        raise NotImplementedError

    def __getitem__(self, i: int) -> Example:
        return self.example(i)

    def batches(self, batch_size: int, *, seed: int, **kwargs: Any) -> Batches:
        """``Batches(self, batch_size, seed=seed, **kwargs)``: see `Batches`."""
        return Batches(self, batch_size, seed=seed, **kwargs)

    def training_batches(self, batch_size: int, *, seed: int, augment: bool, **kwargs: Any):
        """The batches training reads: `Batches` with `jaxheads.data.augment.augment` when
        ``augment`` (a data set drawn elsewhere, e.g. on the device, overrides this)."""
        from jaxheads.data.augment import augment as augment_fn

        return Batches(
            self, batch_size, seed=seed, augment=augment_fn if augment else None, **kwargs
        )

    def _index(self, i: int) -> int:
        n = len(self)
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or not 0 <= i < n:
            raise IndexError(
                f"{type(self).__name__}.example: expected an index in [0, {n}), got {i!r}"
            )
        return int(i)


class _Failure:
    """Carries an exception from the producer thread to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


_END = object()


class Batches(Iterator[Example]):
    """A deterministic, resumable, prefetching iterator of batches.

    Args:
      dataset: a `DetectionDataset` (anything with ``__len__`` and ``example(i)``).
      batch_size: the *global* batch size B, summed over processes.
      seed: fixes the order (a permutation per epoch) and the augmentation.
      shuffle: False reads every epoch in index order.
      augment: ``augment(example, rng) -> example`` applied to each example with
        ``rng = np.random.default_rng([seed, epoch, index])``, e.g.
        `jaxheads.data.augment.augment` or a ``functools.partial`` of it.
      drop_remainder: True drops the last ``len(dataset) % B`` examples of each
        epoch; False pads the last batch with blank examples (``valid`` False).
      start_step: the global step to start at (a checkpoint's `Batches.step`).
      num_epochs: stop after this many epochs; None iterates for ever.
      prefetch: how many batches a background thread prepares ahead; 0 loads
        each batch in the caller's thread when it is asked for.
      num_workers: threads that load the examples of one batch in parallel;
        None uses ``min(4, os.cpu_count())``. Ignored when ``processes`` > 0.
      processes: worker processes that load and augment the examples (see
        `jaxheads.data.workers`): each loads a run of consecutive examples of a
        batch, and the next ``max(1, prefetch)`` batches are started before one
        is returned, so the workers keep busy while the caller trains. The data
        set and ``augment`` must pickle. 0 (the default) loads in this process.
        The batches are the same bit for bit whatever the number of processes.
      process_index: this process's index (``jax.process_index()``).
      process_count: the number of processes (``jax.process_count()``). Each
        process loads only its contiguous slice of ``B // process_count``
        examples of every global batch, so B must be divisible by it.

    Yields:
      This process's part of each global batch: ``image`` [B/P, H, W, 3],
      ``boxes`` [B/P, M, 4], ``labels`` [B/P, M], ``mask`` [B/P, M],
      ``valid`` [B/P] (and ``difficult`` [B/P, M] when the data set has it).

    An exception raised by the data set or ``augment`` in the background thread
    is raised again by ``next()`` in the caller, after the thread has stopped.
    `close` (or leaving a ``with`` block) stops the thread; iterating again
    afterwards resumes from `step` with a fresh thread.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        *,
        seed: int,
        shuffle: bool = True,
        augment: Augment | None = None,
        drop_remainder: bool = True,
        start_step: int = 0,
        num_epochs: int | None = None,
        prefetch: int = 2,
        num_workers: int | None = None,
        process_index: int = 0,
        process_count: int = 1,
        processes: int = 0,
    ):
        op = "Batches"
        check_positive_int(op, "batch_size", batch_size)
        check_positive_int(op, "process_count", process_count)
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            fail(op, "seed to be a non-negative integer", repr(seed))
        if not isinstance(start_step, (int, np.integer)) or start_step < 0:
            fail(op, "start_step to be a non-negative integer", repr(start_step))
        if num_epochs is not None:
            check_positive_int(op, "num_epochs", num_epochs)
        if not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
            fail(op, "prefetch to be a non-negative integer", repr(prefetch))
        if not isinstance(processes, (int, np.integer)) or processes < 0:
            fail(op, "processes to be a non-negative integer", repr(processes))
        if augment is not None and not callable(augment):
            fail(op, "augment to be a function (example, rng) -> example", repr(augment))
        if num_workers is None:
            num_workers = min(4, os.cpu_count() or 1)
        check_positive_int(op, "num_workers", num_workers)
        if not isinstance(process_index, (int, np.integer)) or not (
            0 <= process_index < process_count
        ):
            fail(op, f"process_index in [0, {process_count})", repr(process_index))
        if batch_size % process_count:
            fail(
                op,
                f"batch_size divisible by process_count={process_count}",
                f"batch_size={batch_size}",
            )
        n = len(dataset)
        if drop_remainder and n < batch_size:
            fail(op, f"at least batch_size={batch_size} examples (drop_remainder=True)", n)
        if n == 0:
            fail(op, "a non-empty data set", "0 examples")

        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.local_batch_size = self.batch_size // process_count
        self.seed = int(seed)
        self.shuffle = shuffle
        self.augment = augment
        self.drop_remainder = drop_remainder
        self.num_epochs = num_epochs
        self.prefetch = int(prefetch)
        self.num_workers = int(num_workers)
        self.processes = int(processes)
        self.process_index = int(process_index)
        self.process_count = int(process_count)
        self.steps_per_epoch = n // batch_size if drop_remainder else -(-n // batch_size)
        self._size = n
        self._step = int(start_step)
        self._permutations: dict[int, np.ndarray] = {}
        self._blank: Example | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._loader: ProcessLoader | None = None
        self._pending: dict[int, list[concurrent.futures.Future]] = {}
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()

    # -- the order -----------------------------------------------------------

    @property
    def step(self) -> int:
        """The global step of the next batch ``next()`` returns."""
        return self._step

    @property
    def epoch(self) -> int:
        return self._step // self.steps_per_epoch

    def _permutation(self, epoch: int) -> np.ndarray:
        perm = self._permutations.get(epoch)
        if perm is None:
            if self.shuffle:
                perm = np.random.default_rng([self.seed, epoch]).permutation(self._size)
            else:
                perm = np.arange(self._size)
            # One epoch at a time is read; a race only computes it twice.
            self._permutations = {epoch: perm}
        return perm

    def indices(self, step: int) -> np.ndarray:
        """[B/P] data set indices of this process's part of global step ``step``; -1 pads."""
        epoch, b = divmod(step, self.steps_per_epoch)
        glob = np.full(self.batch_size, -1, np.int64)
        chunk = self._permutation(epoch)[b * self.batch_size : (b + 1) * self.batch_size]
        glob[: chunk.shape[0]] = chunk
        lo = self.process_index * self.local_batch_size
        return glob[lo : lo + self.local_batch_size]

    # -- loading -------------------------------------------------------------

    def _example(self, epoch: int, index: int) -> Example:
        if index < 0:
            if self._blank is None:
                self._blank = load_example(self.dataset, None, self.seed, epoch, -1)
            return self._blank
        return load_example(self.dataset, self.augment, self.seed, epoch, index)

    def _load_in_processes(self, step: int) -> Example:
        if self._loader is None:
            self._loader = ProcessLoader(self.dataset, self.augment, self.seed, self.processes)
        for stale in [k for k in self._pending if k < step]:
            self._loader.discard(self._pending.pop(stale))
        for ahead in range(step, step + 1 + max(1, self.prefetch)):
            if ahead not in self._pending and (ahead == step or not self._finished(ahead)):
                epoch = ahead // self.steps_per_epoch
                self._pending[ahead] = self._loader.submit(epoch, self.indices(ahead))
        batch = self._loader.collect(self._pending.pop(step))
        batch["valid"] = self.indices(step) >= 0
        return batch

    def load(self, step: int) -> Example:
        """This process's part of global step ``step``, loaded in the caller's thread.

        With ``processes`` > 0 the worker processes load it (and start on the
        batches after it), and the caller waits for them.
        """
        if self.processes:
            return self._load_in_processes(step)
        epoch = step // self.steps_per_epoch
        idx = self.indices(step)
        if self.num_workers > 1 and idx.shape[0] > 1:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(self.num_workers)
            examples = list(self._pool.map(lambda i: self._example(epoch, i), idx))
        else:
            examples = [self._example(epoch, i) for i in idx]
        batch = stack_examples(examples)
        batch["valid"] = idx >= 0
        return batch

    def _finished(self, step: int) -> bool:
        return self.num_epochs is not None and step >= self.num_epochs * self.steps_per_epoch

    def _start(self) -> None:
        self._stop = threading.Event()
        self._queue = queue.Queue(maxsize=self.prefetch)
        # The thread holds a weak reference, so an abandoned iterator is collected
        # and its finaliser stops the thread.
        self._thread = threading.Thread(
            target=_produce,
            args=(weakref.ref(self), self._step, self._stop, self._queue),
            name="jaxheads-Batches",
            daemon=True,
        )
        self._thread.start()

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> Example:
        if self._finished(self._step):
            raise StopIteration
        if self.prefetch == 0:
            batch = self.load(self._step)
        else:
            if self._thread is None:
                self._start()
            item = self._get()
            if item is _END:
                self.close()
                raise StopIteration
            if isinstance(item, _Failure):
                self.close()
                raise item.error
            batch = item
        self._step += 1
        return batch

    def _get(self) -> object:
        """The next item from the thread; an error if it died without leaving one."""
        while True:
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                if self.running:
                    continue
                try:  # it may have put its last item just before it ended
                    return self._queue.get_nowait()
                except queue.Empty:
                    self.close()
                    raise RuntimeError(
                        "Batches: the prefetch thread ended without a batch or an error"
                    ) from None

    def close(self) -> None:
        """Stops the prefetch thread and the workers; iteration may resume later."""
        thread, self._thread = self._thread, None
        self._stop.set()
        # A finaliser may run in the thread itself, which cannot join itself; the
        # stop event ends it all the same.
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._queue = queue.Queue()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        loader, self._loader = self._loader, None
        self._pending = {}
        if loader is not None:
            loader.close()

    @property
    def running(self) -> bool:
        """Whether a prefetch thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Batches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass


def _put(item: object, stop: threading.Event, out: queue.Queue) -> bool:
    """Puts ``item`` unless ``stop`` is set first; returns whether it was put."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _produce(ref: weakref.ref, step: int, stop: threading.Event, out: queue.Queue) -> None:
    """The prefetch thread: loads batches from ``step`` on into ``out``."""
    try:
        while True:
            batches = ref()
            if batches is None:
                return
            item = _END if batches._finished(step) else batches.load(step)
            batches = None
            if not _put(item, stop, out) or item is _END:
                return
            step += 1
    except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
        batches = None
        _put(_Failure(error), stop, out)


def shard_batch(batch: Mapping[str, Any], sharding: jax.sharding.Sharding) -> dict[str, jax.Array]:
    """Places a host batch on devices with ``sharding`` (e.g. split along the batch axis).

    With one process this is ``jax.device_put(batch, sharding)``. With several,
    each process holds only its slice of the global batch (see `Batches`), and
    ``jax.make_array_from_process_local_data`` assembles the global arrays (of this
    process's rows alone for a sharding over its own devices, as pmap's).

    Args:
      batch: a dict of host arrays, each [B_local, ...].
      sharding: e.g. ``NamedSharding(mesh, PartitionSpec("data"))``.

    Returns:
      The same dict of global ``jax.Array`` s laid out by ``sharding``; an array laid
      out so already is returned as it is.
    """

    def place(a):
        if isinstance(a, jax.Array) and a.sharding.is_equivalent_to(sharding, a.ndim):
            return a  # made in this layout already (`DeviceBatches.place_on`)
        if jax.process_count() == 1:
            return jax.device_put(a, sharding)
        return jax.make_array_from_process_local_data(sharding, a)

    return jax.tree.map(place, dict(batch))


def per_device(batch: Mapping[str, Any], n: int) -> dict[str, Any]:
    """Reshapes every array's leading axis B to [n, B // n] for ``jax.pmap``.

    A `jax.Array` split over ``n`` devices along B (`PmapRunner.batch_sharding`) stays
    where it is: each device's rows become its slice of the leading axis.

    Raises:
      ValueError: when B is not divisible by ``n``, or the arrays disagree on B.
    """
    check_positive_int("per_device", "n", n)
    sizes = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in batch.items()}
    for k, b in sizes.items():
        if b is None:
            fail("per_device", "arrays with a leading batch axis", f"a scalar at key {k!r}")
        if b % n:
            fail("per_device", f"a batch size divisible by n={n}", f"{b} at key {k!r}")
    if len(set(sizes.values())) > 1:
        fail("per_device", "one batch size for every array", sizes)
    return {k: v.reshape((n, v.shape[0] // n) + tuple(v.shape[1:])) for k, v in batch.items()}
