"""TensorBoard event files: ``metrics.jsonl``'s rows, read back as TensorBoard reads them.

The files are read here from their framing (TFRecord: an 8-byte length, its masked
CRC-32C, the payload, the payload's masked CRC-32C), each CRC checked with a CRC-32C
written here and checked against the standard's check value, and each payload parsed
with tensorboardX's bundled ``event_pb2.Event``.
"""

import json
import os
import shutil
import struct
import sys

import numpy as np
import pytest
from tiny_pretrain import ARGS as TINY_PRETRAIN
from train_toy import assert_same_tree, logged_losses, toy_task

from jaxheads.cli import main
from jaxheads.train.loop import RunConfig, fit
from jaxheads.train.tensorboard import MISSING, event_files, scalars

event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")

SETTINGS = {
    "steps": 6,
    "optimizer": "sgd",
    "learning_rate": 0.01,
    "policy": "constant",
    "progress": False,
    "checkpoint_every": 3,
    "log_every": 1,
    "eval_every": 3,
    "num_devices": 1,
}


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)  # Castagnoli, reflected
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord's mask of a CRC-32C (so that a CRC of data holding CRCs stays strong)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_crc32c_gives_the_standard_check_value():
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720, B.4


def read_events(path) -> list:
    """The events of one file, each record's two CRCs checked."""
    with open(path, "rb") as f:
        data = f.read()
    events, pos = [], 0
    while pos < len(data):
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        assert header_crc == masked_crc(header), f"{path}: bad length CRC at byte {pos}"
        payload = data[pos + 12 : pos + 12 + length]
        (payload_crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
        assert payload_crc == masked_crc(payload), f"{path}: bad payload CRC at byte {pos}"
        event = event_pb2.Event()
        event.ParseFromString(payload)
        events.append(event)
        pos += 16 + length
    assert pos == len(data), f"{path}: {len(data) - pos} bytes after the last record"
    return events


def tensorboard_scalars(workdir) -> tuple[dict, dict]:
    """``({(tag, step): value}, {(tag, step): times written})`` of a run's event files.

    The values are those TensorBoard shows: files read in name order, a restart marker
    (``SessionLog.START`` at step s) drops what came before at steps >= s, as TensorBoard's
    event accumulator and its data server do, and a later write of a step wins.
    """
    values, counts = {}, {}
    for path in event_files(str(workdir)):
        for event in read_events(path):
            if event.HasField("session_log") and event.session_log.status == 1:  # START
                values = {k: v for k, v in values.items() if k[1] < event.step}
            for value in event.summary.value:
                key = (value.tag, event.step)
                values[key] = value.simple_value
                counts[key] = counts.get(key, 0) + 1
    return values, counts


def metrics_scalars(workdir) -> dict:
    """``{(tag, step): value}`` of a run's ``metrics.jsonl``, rounded to float32."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {
        (tag, row["step"]): float(np.float32(value))
        for row in rows
        for tag, value in scalars(row).items()
    }


def _evaluate(params, state):
    return {"score": 0.25, "mAP": None, "per_class": {"0": 0.5}}


def _run(workdir, **kw):
    return fit(toy_task(evaluate=_evaluate), RunConfig(workdir=str(workdir), **{**SETTINGS, **kw}))


def test_a_runs_scalars_are_its_metrics_rows(tmp_path):
    _run(tmp_path / "run")
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    train = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    # The metrics record keeps the compile time and the device (the start's first timed
    # row) and the rate of every row after the compiled step.
    first = next(r for r in train if "compile_s" in r)
    assert first["compile_s"] >= 0 and first["device"] == "cpu"
    assert all(r["images_per_s"] == 16 * r["steps_per_s"] > 0 for r in train[1:])

    values, counts = tensorboard_scalars(tmp_path / "run")
    expected = metrics_scalars(tmp_path / "run")
    assert values == expected
    assert set(counts.values()) == {1}
    tags = {tag for tag, _ in values}
    assert {"train/loss", "train/lr", "train/steps_per_s", "train/images_per_s"} <= tags
    assert {"train/compile_s", "eval/score", "eval/per_class/0"} <= tags
    assert "eval/mAP" not in tags and "train/device" not in tags  # None and text: left out
    assert values[("eval/score", 6)] == 0.25 and ("eval/score", 3) in values


def test_a_resume_holds_each_step_once_with_the_resumed_value(tmp_path):
    """Started without event files, killed after step 6 was logged but before it was saved,
    resumed with them, then extended: every start rewrites one file from metrics.jsonl."""
    reference = tmp_path / "reference"
    _run(reference, steps=9)
    run = tmp_path / "run"
    _run(run, tensorboard=False)
    assert not (run / "tensorboard").exists()
    shutil.rmtree(run / "checkpoints" / "6")  # as a kill before the save leaves it
    os.unlink(run / "checksums" / "6.json")
    (run / "tensorboard").mkdir()
    stale = run / "tensorboard" / "events.out.tfevents.1.stale"
    shutil.copy(event_files(str(reference))[0], stale)  # steps 1..9, some to be dropped

    _run(run, tensorboard=True)
    assert not stale.exists() and len(event_files(str(run))) == 1
    values, counts = tensorboard_scalars(run)
    assert values == metrics_scalars(run) and set(counts.values()) == {1}
    assert max(step for _, step in values) == 6

    _run(run, steps=9)
    values, counts = tensorboard_scalars(run)
    assert values == metrics_scalars(run) and set(counts.values()) == {1}
    assert logged_losses(run) == logged_losses(reference)
    loss = {s: v for (tag, s), v in values.items() if tag == "train/loss"}
    assert sorted(loss) == list(range(1, 10))


def test_a_removed_file_is_dropped_by_the_restart_marker(tmp_path):
    """A TensorBoard that read the file of an earlier start keeps what it read; the new
    file's restart marker at step 0 makes it drop all of it, steps past the checkpoint
    the run resumed from (logged with other timings) included."""
    run = tmp_path / "run"
    _run(run)
    (first,) = event_files(str(run))
    seen = tmp_path / "seen" / "tensorboard"
    seen.mkdir(parents=True)
    shutil.copy(first, seen / "events.out.tfevents.0.first")
    shutil.rmtree(run / "checkpoints" / "6")  # as a kill before the save leaves it
    os.unlink(run / "checksums" / "6.json")
    _run(run)
    (second,) = event_files(str(run))
    shutil.copy(second, seen / os.path.basename(second))
    values, counts = tensorboard_scalars(tmp_path / "seen")
    assert values == metrics_scalars(run)
    stale = read_events(seen / "events.out.tfevents.0.first")
    assert any(v.tag == "train/steps_per_s" and e.step == 4 for e in stale for v in e.summary.value)
    assert ("train/steps_per_s", 4) not in values  # the resumed run's step 4 compiled
    assert max(counts.values()) == 2


def test_no_tensorboard_writes_no_event_file_and_the_same_record(tmp_path):
    on = _run(tmp_path / "on", tensorboard=True)
    off = _run(tmp_path / "off", tensorboard=False)
    assert event_files(str(tmp_path / "on")) and not (tmp_path / "off" / "tensorboard").exists()
    assert logged_losses(tmp_path / "on") == logged_losses(tmp_path / "off")
    assert_same_tree((on["params"], on["state"]), (off["params"], off["state"]))
    configs = [json.loads((tmp_path / name / "config.json").read_text()) for name in ("on", "off")]
    for config in configs:
        del config["workdir"], config["tensorboard"]
    assert configs[0] == configs[1]


def test_a_missing_tensorboardx_is_one_line_when_asked_and_silent_by_default(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails
    _run(tmp_path / "asked", tensorboard=True)
    err = capsys.readouterr().err
    assert err == MISSING + "\n" and "pip install 'jaxheads[tensorboard]'" in err
    _run(tmp_path / "default")
    assert capsys.readouterr().err == ""
    for name in ("asked", "default"):
        assert not (tmp_path / name / "tensorboard").exists()
        assert len(logged_losses(tmp_path / name)) == 6


def test_bad_tensorboard_setting_is_refused(tmp_path):
    with pytest.raises(ValueError, match="expected tensorboard to be True, False or None"):
        RunConfig(workdir=str(tmp_path / "run"), tensorboard="yes")


@pytest.mark.parametrize(
    "flag,setting", [([], None), (["--tensorboard"], True), (["--no-tensorboard"], False)]
)
def test_train_flags_set_the_run_config(flag, setting):
    from jaxheads.cli.main import build_parser
    from jaxheads.cli.train import _train_records

    args = build_parser().parse_args(["train", "--workdir", "w", *flag])
    assert _train_records(args)[1].tensorboard is setting


@pytest.mark.slow
def test_pretrain_command_writes_events_unless_told_not_to(tmp_path, capsys):
    """Trained with --no-tensorboard: no event file; the same command without it finds the
    run finished and writes its event file from metrics.jsonl."""
    workdir = str(tmp_path / "run")
    assert main(["pretrain", "--workdir", workdir, "--no-tensorboard", *TINY_PRETRAIN]) == 0
    assert not os.path.exists(os.path.join(workdir, "tensorboard"))
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["tensorboard"] is False
    assert main(["pretrain", "--workdir", workdir, *TINY_PRETRAIN]) == 0
    capsys.readouterr()
    values, counts = tensorboard_scalars(workdir)
    assert values == metrics_scalars(workdir) and set(counts.values()) == {1}
    assert ("eval/top1", 2) in values and ("train/loss", 2) in values
