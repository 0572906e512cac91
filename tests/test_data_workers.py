"""Tests for `jaxheads.data.workers`: batches loaded in worker processes are the in-process ones."""

import functools
import os

import numpy as np
import pytest
from test_data_pipeline import Counting, assert_batches_equal, ids, take

from jaxheads.data import Batches, SyntheticVOC, VOCDataset, write_synthetic_voc
from jaxheads.data.augment import augment

pytest.importorskip("PIL.Image")

# Each pool spawns interpreters that import jax: bounded, so a hang fails rather than stalls.
pytestmark = pytest.mark.timeout(300)


def shared_blocks():
    """The names of the POSIX shared-memory blocks (Linux), to see that none is left over."""
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    """A VOC directory of 11 JPEGs (train split: 6), read at 40x48 with the default augmentation."""
    root = tmp_path_factory.mktemp("voc") / "VOC2007"
    write_synthetic_voc(root, SyntheticVOC(images=11, image_size=(45, 60)))
    return VOCDataset(root, split="trainval", image_size=(40, 48))


def test_process_batches_equal_in_process_bit_for_bit(voc):
    """Default augmentation, a padded last batch, two epochs: the same arrays as one process."""
    kwargs = dict(seed=3, augment=augment, drop_remainder=False)
    want = take(Batches(voc, 4, prefetch=0, num_workers=1, **kwargs), 6)
    assert not want[2]["valid"].all(), "the last batch of an epoch is padded"
    with Batches(voc, 4, processes=2, prefetch=2, **kwargs) as it:
        assert_batches_equal(take(it, 6), want)
    with Batches(voc, 4, processes=3, prefetch=0, **kwargs) as it:
        assert_batches_equal(take(it, 6), want)


def test_process_batches_resume_at_a_step(voc):
    """start_step=k in worker processes equals steps k.. of an uninterrupted run, and so
    does iterating again after `close` stopped the workers."""
    kwargs = dict(seed=5, augment=functools.partial(augment, crop=1.0))
    want = take(Batches(voc, 2, prefetch=0, num_workers=1, **kwargs), 7)
    before = shared_blocks()
    it = Batches(voc, 2, processes=2, start_step=3, prefetch=0, **kwargs)
    first = take(it, 2)
    it.close()  # with the next batch loaded ahead: its shared memory is freed
    assert shared_blocks() == before
    assert_batches_equal(first + take(it, 2), want[3:])
    it.close()
    assert shared_blocks() == before


def test_worker_error_reaches_the_caller():
    before = shared_blocks()
    it = Batches(Counting(12, fail_at=5), 4, seed=0, shuffle=False, processes=2)
    assert ids(next(it)).tolist() == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match="broken example 5"):
        next(it)
    assert not it.running and it.step == 1
    it.close()
    assert shared_blocks() == before


def test_unpicklable_augment_is_refused_by_name():
    it = Batches(Counting(4), 2, seed=0, augment=lambda ex, rng: ex, processes=2, prefetch=0)
    with pytest.raises(ValueError, match="Batches: expected augment to pickle"):
        next(it)


def test_processes_argument_error():
    with pytest.raises(ValueError, match="Batches: expected processes to be a non-negative"):
        Batches(Counting(4), 2, seed=0, processes=-1)


def test_blank_example_is_zeros_of_example_zero():
    from jaxheads.data.workers import load_example

    blank = load_example(Counting(3), None, 0, 0, -1)
    assert blank.keys() == Counting(3).example(0).keys()
    assert all(not np.any(v) for v in blank.values())
