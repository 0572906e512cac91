"""Host-loaded batches augmented on the device (``--augment-on-device``)."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from jaxheads.cli import main
from jaxheads.data import ShapesDataset, SyntheticVOC, write_synthetic_voc
from jaxheads.data.device_augment import DeviceAugment
from jaxheads.data.device_pipeline import DeviceAugmentedBatches, DeviceDataset, augment_key
from jaxheads.data.device_shapes import ShapesSpec

KEYS = ("image", "boxes", "labels", "mask")


def test_each_row_is_its_host_example_augmented_with_its_own_key():
    # 10 examples, batches of 4: the third batch of an epoch pads two rows with -1
    data = ShapesDataset(10, image_size=32, max_boxes=4, seed=1)
    batches = DeviceAugmentedBatches(data, 4, seed=3, prefetch=0)
    augment = jax.jit(DeviceAugment())
    for step in (2, 5):  # epoch 0's last batch, epoch 1's second
        batch = jax.device_get(batches.load(step))
        idx = batches.indices(step)
        epoch = step // batches.steps_per_epoch
        np.testing.assert_array_equal(batch["valid"], idx >= 0)
        for b, i in enumerate(idx):
            if i < 0:  # a padded row stays the blank example
                assert not batch["mask"][b].any() and not batch["image"][b].any()
                continue
            want = augment(
                {k: data.example(int(i))[k] for k in KEYS}, augment_key(3, epoch, int(i))
            )
            for k in KEYS:
                np.testing.assert_allclose(batch[k][b], want[k], atol=1e-5, err_msg=f"{k} {i}")
    # augmented: not the host's example
    plain = data.example(int(batches.indices(5)[0]))["image"]
    assert not np.allclose(jax.device_get(batches.load(5))["image"][0], plain)


def test_a_resumed_iterator_gives_the_uninterrupted_batches_bit_for_bit():
    data = ShapesDataset(24, image_size=32, max_boxes=4, seed=2)
    whole = DeviceAugmentedBatches(data, 8, seed=5, num_epochs=2)
    got = [jax.device_get(b) for b in whole]
    assert len(got) == 6
    resumed = DeviceAugmentedBatches(data, 8, seed=5, num_epochs=2, start_step=4, prefetch=0)
    for want, batch in zip(got[4:], resumed, strict=True):
        for k in (*KEYS, "valid"):
            np.testing.assert_array_equal(jax.device_get(batch[k]), want[k])
    other = jax.device_get(DeviceAugmentedBatches(data, 8, seed=6, prefetch=0).load(0))
    assert not np.array_equal(other["image"], got[0]["image"])


def test_bad_input_is_refused_by_name():
    data = ShapesDataset(8, image_size=32, max_boxes=4)
    with pytest.raises(ValueError, match=r"DeviceAugmentedBatches: expected augment to be a"):
        DeviceAugmentedBatches(data, 4, seed=0, augment=lambda e, r: e)
    device = DeviceDataset(ShapesSpec(image_size=(32, 32), max_boxes=4, max_objects=3), 8)
    with pytest.raises(ValueError, match=r"a data set loaded on the host .* got DeviceDataset"):
        DeviceAugmentedBatches(device, 4, seed=0)
    with pytest.raises(ValueError, match=r"seed an integer in \[0, 2\*\*32\), got -1"):
        DeviceAugmentedBatches(data, 4, seed=-1)


SMALL = ["--image-size", "32", "--batch-size", "8", "--val-examples", "8", "--no-progress"]


@pytest.mark.parametrize(
    "extra,message",
    [
        (
            ["--dataset", "shapes-device"],
            "expected augment_on_device False for 'shapes-device' (drawn and augmented",
        ),
        (["--no-augment"], "expected augment_on_device without no_augment (nothing to augment)"),
    ],
)
def test_the_flag_is_refused_where_it_means_nothing(tmp_path, capsys, extra, message):
    workdir = tmp_path / "run"
    argv = ["train", "--workdir", str(workdir), *SMALL, "--augment-on-device", *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not workdir.exists()


def _losses(workdir):
    with open(workdir / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_training_on_image_files_resumes_exactly_in_worker_processes(tmp_path):
    """``--augment-on-device`` trains a VOC directory; a resume in two worker processes
    gives the uninterrupted run's losses, and the host augmentation other ones."""
    pytest.importorskip("PIL.Image")
    root = tmp_path / "VOC2007"
    write_synthetic_voc(root, SyntheticVOC(images=16, image_size=(45, 60)))

    def train(name, steps, *flags):
        argv = ["train", "--workdir", str(tmp_path / name), "--model", "small-yolov2"]
        argv += ["--dataset", "voc", "--data-dir", str(root), *SMALL, "--steps", str(steps)]
        argv += ["--policy", "constant", "--burn-in", "0", "--checkpoint-every", "2"]
        argv += ["--log-every", "1", "--no-tensorboard", *flags]
        assert main(argv) == 0

    train("device", 4, "--augment-on-device")
    want = _losses(tmp_path / "device")
    assert len(want) == 4
    saved = json.loads((tmp_path / "device" / "config.json").read_text())
    assert saved["extra"]["augment_on_device"] is True
    train("resumed", 2, "--augment-on-device")
    train("resumed", 4, "--augment-on-device", "--loader-processes", "2")
    assert _losses(tmp_path / "resumed") == want
    train("host", 4)
    assert _losses(tmp_path / "host")[1:] != want[1:]
    # a run recorded before the settings added since existed (augment_on_device among
    # them) had their defaults, the host augmentation: it extends as such, and refuses
    # to go on augmenting on the device
    from jaxheads.train.workdir import EXTRA_DEFAULTS

    config = tmp_path / "host" / "config.json"
    saved = json.loads(config.read_text())
    for key, default in EXTRA_DEFAULTS.items():
        assert saved["extra"].pop(key) == default, key
    config.write_text(json.dumps(saved))
    train("host", 6)
    assert len(_losses(tmp_path / "host")) == 6
    with pytest.raises(AssertionError):
        train("host", 8, "--augment-on-device")


def test_placed_batches_are_made_by_every_device_and_equal_the_unplaced_ones():
    """`place_on` the step's sharding: each of the 8 devices makes its own rows, and the
    batch is the one the default device makes alone (the integers exactly, the floats to
    float32 rounding: XLA compiles a 2-row program otherwise than a 16-row one)."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from jaxheads.data.device_pipeline import DeviceBatches
    from jaxheads.data.pipeline import per_device, shard_batch

    devices = jax.devices()
    assert len(devices) == 8
    sharding = NamedSharding(Mesh(np.array(devices), ("data",)), PartitionSpec("data"))
    host = ShapesDataset(20, image_size=32, max_boxes=4, seed=1)
    drawn = DeviceDataset(ShapesSpec(image_size=(32, 32), max_objects=4, max_boxes=4), 20, seed=1)
    makers = {
        "augmented": lambda: DeviceAugmentedBatches(host, 16, seed=3, prefetch=0),
        "drawn": lambda: DeviceBatches(drawn, 16, seed=3, augment=DeviceAugment()),
    }
    for name, make in makers.items():
        alone, placed = make(), make()
        placed.place_on(sharding)
        for step in (0, 1):  # the second batch of the epoch pads 12 rows
            want, got = alone.load(step), placed.load(step)
            assert set(got) == set(want), name
            for k, a in got.items():
                assert a.sharding.is_equivalent_to(sharding, a.ndim), (name, k)
                assert {s.data.shape[0] for s in a.addressable_shards} == {2}, (name, k)
                a_host, want_host = jax.device_get(a), jax.device_get(want[k])
                if np.issubdtype(a_host.dtype, np.floating):
                    np.testing.assert_allclose(a_host, want_host, rtol=0, atol=1e-6)
                else:
                    np.testing.assert_array_equal(a_host, want_host, err_msg=f"{name} {k}")
                assert shard_batch({k: a}, sharding)[k] is a  # placed already: not moved
            # pmap's layout [devices, per_device, ...]: each device keeps its own rows.
            for k, a in per_device(got, len(devices)).items():
                rows = {s.device: s.data for s in got[k].addressable_shards}
                assert len(a.addressable_shards) == len(devices), (name, k)
                for s in a.addressable_shards:
                    assert s.data.shape[:2] == (1, 2), (name, k)
                    np.testing.assert_array_equal(jax.device_get(s.data[0]), rows[s.device])


@pytest.mark.slow
def test_runs_on_placed_batches_train_alike_under_jit_and_pmap(tmp_path):
    """Both runners give drawn batches their sharding (`place_on`), split over the eight
    devices: the same losses to float32 rounding."""
    from jaxheads.train.detection import build_detector, detection_task, make_dataset
    from jaxheads.train.loop import RunConfig, fit

    detector, init = build_detector("small-yolov2", image_size=64, num_classes=3)
    train = make_dataset("shapes-device", "train", image_size=64, num_examples=64)
    task = detection_task(detector, init, train, batch_size=16, seed=0, augment=True)
    placed = []
    task = dataclasses.replace(task, batches=_noting(task.batches, placed))
    losses = {}
    for parallel in ("jit", "pmap"):
        cfg = RunConfig(
            workdir=str(tmp_path / parallel),
            steps=3,
            parallel=parallel,
            log_every=1,
            checkpoint_every=3,
            progress=False,
        )
        fit(task, cfg)
        text = (tmp_path / parallel / "metrics.jsonl").read_text()
        rows = [json.loads(line) for line in text.splitlines()]
        losses[parallel] = [r["loss"] for r in rows if "loss" in r]
    assert len(placed) == 2
    assert all(len(sharding.device_set) == 8 for sharding in placed)
    assert len(losses["jit"]) == 3
    np.testing.assert_allclose(losses["jit"], losses["pmap"], rtol=1e-4)


def _noting(batches, placed):
    """``batches`` whose iterators note each sharding they are placed on."""

    def wrapped(*args):
        it = batches(*args)
        place_on = it.place_on

        def note(sharding):
            placed.append(sharding)
            place_on(sharding)

        it.place_on = note
        return it

    return wrapped


@pytest.mark.parametrize(
    ("source", "out"), [((375, 500), (416, 416)), ((40, 30), (64, 96)), ((100, 80), (32, 32))]
)
def test_a_decoded_image_resized_on_the_device_is_the_host_resize(source, out):
    """In a larger zero canvas, upsampled, downsampled or both: `resize_decoded` gives
    `jaxheads.data.augment.resize` and ``jax.image.resize`` to float32 rounding of the
    sample positions; the canvas' padding does not bleed in."""
    from jaxheads.data.augment import resize
    from jaxheads.data.device_pipeline import resize_decoded

    h, w = source
    image = np.random.default_rng(h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    canvas = np.full((400, 520, 3), 255, np.uint8)  # padding unlike any edge
    canvas[:h, :w] = image
    got = jax.jit(resize_decoded, static_argnums=2)(canvas, np.array(source, np.int32), out)
    want = resize(image.astype(np.float32) / 255, out)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=5e-5)
    blank = resize_decoded(canvas, np.zeros(2, np.int32), out)
    assert not np.asarray(blank).any()


def test_image_files_are_decoded_on_the_host_and_resized_and_augmented_on_the_device(tmp_path):
    from jaxheads.data import VOCDataset
    from jaxheads.data.device_pipeline import DecodedImages

    root = tmp_path / "VOC2007"
    write_synthetic_voc(root, SyntheticVOC(images=12, image_size=(45, 60)))
    data = VOCDataset(root, "train", image_size=32)
    decoded = DecodedImages(data)
    assert decoded.canvas == (45, 60)
    example = decoded.example(1)
    assert example["image"].dtype == np.uint8 and example["image"].shape == (45, 60, 3)
    np.testing.assert_array_equal(example["source_size"], [45, 60])
    batches = DeviceAugmentedBatches(data, 4, seed=3, prefetch=0)
    augment = jax.jit(DeviceAugment())
    batch = jax.device_get(batches.load(1))
    assert "source_size" not in batch and batch["image"].shape == (4, 32, 32, 3)
    epoch = 1 // batches.steps_per_epoch
    for b, i in enumerate(batches.indices(1)):
        if i < 0:
            continue
        key = augment_key(3, epoch, int(i))
        want = augment({k: data.example(int(i))[k] for k in KEYS}, key)
        for k in KEYS:
            np.testing.assert_allclose(batch[k][b], want[k], atol=1e-4, err_msg=f"{k} {i}")
    # an image past its canvas is refused by name
    with pytest.raises(ValueError, match=r"expected the image .*000.* to fit a 50x40 canvas"):
        data.example(0, canvas=(40, 50))
