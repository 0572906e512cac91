"""Host-loaded batches augmented on the device (``--augment-on-device``)."""

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
    # a run recorded before the setting existed had the host augmentation: it extends
    # as such, and refuses to go on augmenting on the device
    config = tmp_path / "host" / "config.json"
    saved = json.loads(config.read_text())
    del saved["extra"]["augment_on_device"]
    config.write_text(json.dumps(saved))
    train("host", 6)
    assert len(_losses(tmp_path / "host")) == 6
    with pytest.raises(AssertionError):
        train("host", 8, "--augment-on-device")
