"""Tests for `jaxheads.data.pipeline`: order, resume, process slices, prefetch, sharding."""

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxheads.data import Batches, DetectionDataset, ShapesDataset, per_device, shard_batch
from jaxheads.data.pipeline import pad_targets, stack_examples


class Counting(DetectionDataset):
    """Example ``i`` is a 2x2 image filled with ``i``, with ``i % 3`` boxes."""

    class_names = ("a", "b")
    image_size = (2, 2)
    max_boxes = 3

    def __init__(self, n, fail_at=None):
        self.n = n
        self.fail_at = fail_at

    def __len__(self):
        return self.n

    def example(self, i):
        i = self._index(i)
        if i == self.fail_at:
            raise RuntimeError(f"broken example {i}")
        k = i % 3
        ex = pad_targets(np.full((k, 4), 0.5), np.full(k, i % 2), self.max_boxes)
        ex["image"] = np.full((2, 2, 3), i, np.float32)
        return ex


def noisy(example, rng):
    """An augmentation whose output shows the generator it was given."""
    out = dict(example)
    out["image"] = example["image"] + rng.random(dtype=np.float32)
    return out


def ids(batch):
    """The data set indices of a batch of `Counting` examples (-1 for padding)."""
    return np.where(batch["valid"], batch["image"][:, 0, 0, 0].astype(int), -1)


def take(it, n):
    return [next(it) for _ in range(n)]


def assert_batches_equal(xs, ys):
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_each_epoch_is_a_permutation_fixed_by_seed_and_epoch():
    it = Batches(Counting(12), 4, seed=5, prefetch=0)
    epochs = [np.concatenate([ids(b) for b in take(it, 3)]) for _ in range(3)]
    for e in epochs:
        np.testing.assert_array_equal(np.sort(e), np.arange(12))
    assert not np.array_equal(epochs[0], epochs[1])
    again = Batches(Counting(12), 4, seed=5, prefetch=0)
    np.testing.assert_array_equal(np.concatenate([ids(b) for b in take(again, 3)]), epochs[0])
    other = Batches(Counting(12), 4, seed=6, prefetch=0)
    assert not np.array_equal(np.concatenate([ids(b) for b in take(other, 3)]), epochs[0])
    ordered = Batches(Counting(12), 4, seed=5, shuffle=False, prefetch=0)
    np.testing.assert_array_equal(ids(next(ordered)), [0, 1, 2, 3])


@pytest.mark.parametrize("prefetch", [0, 2])
@pytest.mark.parametrize("k", [0, 1, 4, 7])
def test_start_step_k_equals_skipping_k(prefetch, k):
    # 10 examples, batch 3: 3 steps an epoch, so the runs cross epoch boundaries.
    def batches(start):
        return Batches(Counting(10), 3, seed=1, augment=noisy, start_step=start, prefetch=prefetch)

    with batches(0) as full, batches(k) as resumed:
        want = take(full, k + 5)[k:]
        assert_batches_equal(take(resumed, 5), want)
        assert resumed.step == k + 5 and resumed.epoch == (k + 5) // 3


def test_augmentation_is_seeded_by_seed_epoch_index():
    batch = next(Batches(Counting(6), 6, seed=4, augment=noisy, shuffle=False, prefetch=0))
    for i in range(6):
        want = i + np.random.default_rng([4, 0, i]).random(dtype=np.float32)
        np.testing.assert_allclose(batch["image"][i], np.full((2, 2, 3), want, np.float32))


def test_drop_remainder_false_pads_the_last_batch():
    it = Batches(Counting(7), 3, seed=0, drop_remainder=False, num_epochs=2, prefetch=0)
    out = list(it)
    assert len(out) == 6 and it.steps_per_epoch == 3
    for b in out:
        assert b["image"].shape == (3, 2, 2, 3) and b["mask"].shape == (3, 3)
    for epoch in (out[:3], out[3:]):
        seen = np.concatenate([ids(b) for b in epoch])
        np.testing.assert_array_equal(np.sort(seen[seen >= 0]), np.arange(7))
    last = out[2]
    np.testing.assert_array_equal(last["valid"], [True, False, False])
    assert not last["mask"][1:].any() and not last["image"][1:].any()
    with pytest.raises(StopIteration):
        next(it)


def test_drop_remainder_true_drops_and_stops():
    it = Batches(Counting(7), 3, seed=0, num_epochs=1, prefetch=1)
    out = list(it)
    assert len(out) == 2 and all(b["valid"].all() for b in out)


@pytest.mark.parametrize("count", [2, 4])
def test_process_slices_partition_the_global_batch(count):
    def run(index, n):
        it = Batches(
            Counting(20),
            8,
            seed=2,
            augment=noisy,
            process_index=index,
            process_count=n,
            prefetch=0,
            start_step=1,
        )
        return take(it, 4)

    whole = run(0, 1)
    parts = [run(p, count) for p in range(count)]
    for step, want in enumerate(whole):
        joined = {k: np.concatenate([p[step][k] for p in parts]) for k in want}
        assert_batches_equal([joined], [want])
        assert parts[0][step]["image"].shape[0] == 8 // count


def test_process_slice_loads_only_its_examples():
    class Recording(Counting):
        def __init__(self, n):
            super().__init__(n)
            self.read = set()

        def example(self, i):
            self.read.add(i)
            return super().example(i)

    ds = Recording(16)
    it = Batches(ds, 8, seed=0, process_index=1, process_count=2, prefetch=0)
    batch = next(it)
    assert ds.read == set(ids(batch).tolist()) and len(ds.read) == 4


def test_prefetch_propagates_dataset_exception_and_stops_thread():
    it = Batches(Counting(12, fail_at=5), 4, seed=0, shuffle=False, prefetch=2)
    assert ids(next(it)).tolist() == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match="broken example 5"):
        next(it)
    assert not it.running and it.step == 1
    # Asking again raises again: the error is a property of the data, not of the thread.
    with pytest.raises(RuntimeError, match="broken example 5"):
        next(it)
    assert not it.running


def test_prefetch_propagates_augment_exception():
    def broken(example, rng):
        raise KeyError("no such augmentation")

    with Batches(Counting(4), 2, seed=0, augment=broken, num_workers=2) as it:
        with pytest.raises(KeyError, match="no such augmentation"):
            next(it)


def test_close_stops_the_thread_and_iteration_resumes():
    it = Batches(Counting(12), 2, seed=0, prefetch=3)
    first = take(it, 2)
    assert it.running
    it.close()
    assert not it.running
    resumed = take(it, 2)
    assert_batches_equal(first + resumed, take(Batches(Counting(12), 2, seed=0, prefetch=0), 4))
    it.close()


def test_argument_errors():
    with pytest.raises(ValueError, match="Batches: expected batch_size divisible by process_count"):
        Batches(Counting(12), 6, seed=0, process_count=4)
    with pytest.raises(ValueError, match="Batches: expected process_index in"):
        Batches(Counting(12), 6, seed=0, process_index=2, process_count=2)
    with pytest.raises(ValueError, match="Batches: expected at least batch_size=8 examples"):
        Batches(Counting(5), 8, seed=0)
    with pytest.raises(ValueError, match="Batches: expected augment to be a function"):
        Batches(Counting(5), 2, seed=0, augment="flip")


def test_per_device_reshapes_and_rejects_indivisible_batch():
    batch = stack_examples([Counting(6).example(i) for i in range(6)])
    split = per_device(batch, 3)
    assert split["image"].shape == (3, 2, 2, 2, 3) and split["mask"].shape == (3, 2, 3)
    np.testing.assert_array_equal(split["labels"].reshape(6, 3), batch["labels"])
    with pytest.raises(ValueError, match="per_device: expected a batch size divisible by n=4"):
        per_device(batch, 4)


def test_shard_batch_places_on_the_sharding():
    batch = next(Batches(Counting(4), 4, seed=0, prefetch=0))
    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    placed = shard_batch(batch, sharding)
    for key, value in batch.items():
        assert isinstance(placed[key], jax.Array) and placed[key].sharding == sharding
        np.testing.assert_array_equal(np.asarray(placed[key]), value)


def test_dataset_batches_method_with_shapes():
    ds = ShapesDataset(8, image_size=32, max_boxes=4)
    with ds.batches(4, seed=0, num_epochs=1) as it:
        out = list(it)
    assert len(out) == 2
    assert out[0]["image"].shape == (4, 32, 32, 3) and out[0]["boxes"].shape == (4, 4, 4)
    assert out[0]["labels"].dtype == np.int32 and out[0]["valid"].all()
