"""Faults injected into training runs: each ends in the uninterrupted run's exact result,
or in a clear error with every good checkpoint kept.

In-process runs use the toy task of ``train_toy.py`` (killed processes:
``test_faults_killed.py``). Runs are tiny (6x6 inputs, a few steps) so that the module
stays quick.
"""

import contextlib
import errno
import json
import os
import random
import re
import resource
import shutil
import signal
import stat
import warnings

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from train_toy import assert_same_tree, logged_losses, toy_task

from jaxheads.train.checkpoints import CheckpointStore
from jaxheads.train.loop import RunConfig, TrainingDiverged, fit
from jaxheads.train.workdir import WorkdirLock

# Fault injection and property tests are bounded: a hang is a failure, not a stuck CI.
pytestmark = pytest.mark.timeout(300)

STEPS = 6
SETTINGS = {
    "steps": STEPS,
    "optimizer": "sgd",
    "learning_rate": 0.01,
    "progress": False,
    "checkpoint_every": 2,
    "log_every": 1,
    "num_devices": 1,
    "policy": "constant",
}


def _evaluate(params, state):
    return {"param_sum": float(sum(np.sum(x) for x in jax.tree.leaves(params)))}


def _run(workdir, task=None, **kw):
    return fit(
        task or toy_task(evaluate=_evaluate),
        RunConfig(workdir=str(workdir), **{**SETTINGS, "eval_every": STEPS, **kw}),
    )


def _steps(workdir):
    return sorted(int(n) for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit())


def _set_aside(workdir):
    root = os.path.join(workdir, "unreadable-checkpoints")
    return sorted(int(n.split("-")[0]) for n in os.listdir(root)) if os.path.isdir(root) else []


def _run_warned(workdir, **kw):
    """``_run`` and the messages of the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _run(workdir, **kw)
    return result, [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: its result, its losses, and its folder (copied by tests)."""
    workdir = tmp_path_factory.mktemp("reference") / "run"
    result = _run(workdir)
    assert result["status"] == "completed" and result["step"] == STEPS
    return {"result": result, "losses": logged_losses(workdir), "workdir": workdir}


def _copy(reference, dst):
    shutil.copytree(reference["workdir"], dst)
    return dst


def _assert_reference(result, workdir, reference):
    assert result["status"] == "completed" and result["step"] == STEPS
    assert_same_tree(result["params"], reference["result"]["params"])
    assert_same_tree(result["state"], reference["result"]["state"])
    assert result["loss"] == reference["result"]["loss"]
    assert result["eval"] == reference["result"]["eval"]
    assert logged_losses(workdir) == reference["losses"]


# 1. stray and partial step folders


def test_stray_and_partial_step_folders_set_aside_only_themselves(tmp_path, reference):
    workdir = _copy(reference, tmp_path / "run")
    os.makedirs(workdir / "checkpoints" / "12")  # stray: an empty step folder
    partial = workdir / "checkpoints" / "8"  # partial: a step without its item folder
    shutil.copytree(workdir / "checkpoints" / "6", partial)
    shutil.rmtree(partial / "default")
    result, messages = _run_warned(workdir)
    assert sum("is unreadable" in m for m in messages) == 2, messages
    _assert_reference(result, workdir, reference)
    assert _steps(workdir) == [2, 4, 6]
    assert _set_aside(workdir) == [8, 12]


def test_stray_folder_above_an_unfinished_run_resumes_it(tmp_path, reference):
    workdir = _copy(reference, tmp_path / "run")
    shutil.rmtree(workdir / "checkpoints" / "6")
    os.makedirs(workdir / "checkpoints" / "12" / "default")
    result, messages = _run_warned(workdir)
    assert any(re.match("checkpoint 12 .* is unreadable", m) for m in messages), messages
    _assert_reference(result, workdir, reference)
    assert _steps(workdir) == [2, 4, 6] and _set_aside(workdir) == [12]


# 2. the NaN guard looks at the updated state


def test_finite_loss_with_nan_update_is_never_saved(tmp_path):
    workdir = tmp_path / "run"
    with pytest.raises(
        TrainingDiverged,
        match=r"updated parameters .* not finite.* at step 3; "
        r".* last good checkpoint .* is step 2",
    ):
        _run(workdir, toy_task(nan_update_at_step=3), checkpoint_every=1)
    assert _steps(workdir) == [1, 2]
    store = CheckpointStore(str(workdir))
    restored, step = store.restore_latest(jax.device_get(_run_state_template()))
    store.close()
    assert step == 2
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(restored))


def _run_state_template():
    from jaxheads.train.loop import _initial_state

    return _initial_state(toy_task(), RunConfig(workdir="unused", **SETTINGS))[2]


def test_nan_update_on_the_first_step_names_no_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match="last good checkpoint .* is none"):
        _run(tmp_path / "run", toy_task(nan_update_at_step=1), steps=1)
    assert _steps(tmp_path / "run") == []


def test_a_diverged_run_exits_3_with_one_line_and_keeps_the_good_checkpoint(tmp_path, capsys):
    """The command line's side of the guard: exit status 3, one line naming the step."""
    from jaxheads.cli.train import run_fit

    workdir = tmp_path / "run"

    def make():
        config = {**SETTINGS, "checkpoint_every": 1}
        return toy_task(nan_update_at_step=3), RunConfig(workdir=str(workdir), **config)

    status = run_fit("train", "trained", make, str(workdir), lambda result: None)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 3
    assert len(err) == 1 and err[0].startswith("jaxheads train: ") and "step 3" in err[0], err
    assert _steps(workdir) == [1, 2]


@pytest.mark.parametrize(
    "field,value",
    [
        ("learning_rate", float("nan")),
        ("learning_rate", float("inf")),
        ("momentum", float("nan")),
        ("weight_decay", -1.0),
        ("clip_norm", float("nan")),
        ("lr_scales", (float("inf"),)),
        ("steps", -5),
        ("steps", 0),
        ("checkpoint_every", 0),
        ("log_every", 0),
        ("num_devices", 0),
        ("max_to_keep", 0),
        ("eval_every", -1),
        ("steps", 2.5),
        ("seed", -1),
        ("seed", 2**31),
        ("seed", 99999999999999999999),
    ],
)
def test_bad_settings_refused_before_anything_is_written(tmp_path, field, value):
    kw = {**SETTINGS, field: value}
    if field == "lr_scales":
        kw.update(policy="steps", lr_steps=(2,))
    with pytest.raises(ValueError, match=f"train: expected {field} to be"):
        RunConfig(workdir=str(tmp_path / "run"), **kw)
    assert not (tmp_path / "run").exists()


def test_batch_not_divisible_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="divisible by the 8 devices, got 12"):
        _run(tmp_path / "run", toy_task(batch_size=12), num_devices=8)
    assert not (tmp_path / "run").exists()


# 3. work directories: identity, extension, a finished run, the lock


def test_any_spelling_or_place_of_the_folder_resumes(tmp_path, reference, monkeypatch):
    workdir = _copy(reference, tmp_path / "W")
    monkeypatch.chdir(tmp_path)
    for spelling in ("./W", "W/", str(workdir), "W/../W"):
        result = _run(spelling)
        _assert_reference(result, workdir, reference)  # a finished run: its loss and eval
    os.rename(workdir, tmp_path / "moved")
    shutil.copytree(tmp_path / "moved", tmp_path / "copied")
    for name in ("moved", "copied"):
        _assert_reference(_run(tmp_path / name), tmp_path / name, reference)


def test_more_steps_extend_a_constant_schedule_exactly(tmp_path, reference):
    short = tmp_path / "short"
    _run(short, steps=4)
    result = _run(short, steps=STEPS)
    assert result["status"] == "completed" and result["step"] == STEPS
    assert_same_tree(result["params"], reference["result"]["params"])
    with open(short / "config.json") as f:
        assert json.load(f)["steps"] == STEPS
    assert logged_losses(short) == reference["losses"]


def test_cosine_schedule_cannot_be_extended_nor_any_run_shortened(tmp_path):
    workdir = tmp_path / "run"
    _run(workdir, steps=2, policy="cosine")
    with pytest.raises(
        ValueError,
        match=r"cosine schedule decays to zero at step 2.*"
        r"--workdir NEW --steps 4.*got 4",
    ):
        _run(workdir, steps=4, policy="cosine")
    with pytest.raises(ValueError, match="steps >= 2, the length of the run .* got 1"):
        _run(workdir, steps=1, policy="cosine")
    assert _steps(workdir) == [2]


def test_second_run_on_a_locked_workdir_is_refused(tmp_path, reference):
    workdir = _copy(reference, tmp_path / "run")
    with (
        WorkdirLock(str(workdir)),
        pytest.raises(
            ValueError,
            match=(
                f"expected no other run training in {workdir}.*got one running as pid {os.getpid()}"
            ),
        ),
    ):
        _run(workdir)
    _assert_reference(_run(workdir), workdir, reference)  # released on exit


# 4. checksums


def _rewrite_with_flipped_bits(workdir, step):
    """Replaces checkpoint ``step`` by a valid orbax checkpoint of slightly different arrays,
    as bit flips that the storage layer does not notice would leave it."""
    directory = os.path.abspath(workdir / "checkpoints")
    manager = ocp.CheckpointManager(directory)
    tree = manager.restore(step, args=ocp.args.StandardRestore(_run_state_template()))
    manager.close()
    leaves, treedef = jax.tree.flatten(tree)
    i = max(range(len(leaves)), key=lambda j: np.size(leaves[j]))
    bits = np.array(leaves[i], np.float32).reshape(-1).view(np.uint32)
    for k in (0, 3, 7):
        bits[k] ^= np.uint32(1 << (k + 2))
    leaves[i] = bits.view(np.float32).reshape(np.shape(leaves[i]))
    shutil.rmtree(os.path.join(directory, str(step)))
    manager = ocp.CheckpointManager(directory)
    manager.save(step, args=ocp.args.StandardSave(jax.tree.unflatten(treedef, leaves)))
    manager.wait_until_finished()
    manager.close()


def test_checksum_mismatch_sets_the_checkpoint_aside(tmp_path, reference):
    workdir = _copy(reference, tmp_path / "run")
    _rewrite_with_flipped_bits(workdir, STEPS)
    result, messages = _run_warned(workdir)
    assert any(
        re.match(r"checkpoint 6 .*unreadable \(ChecksumMismatch: its arrays hash", m)
        for m in messages
    ), messages
    _assert_reference(result, workdir, reference)
    assert _steps(workdir) == [2, 4, 6] and _set_aside(workdir) == [6]
    aside = os.listdir(workdir / "unreadable-checkpoints")[0]
    assert os.path.exists(workdir / "unreadable-checkpoints" / aside / "checksum.json")


def test_a_checkpoint_under_another_steps_name_is_set_aside(tmp_path, reference):
    """A copy of checkpoint 2 placed as ``checkpoints/8`` is not trusted by its name."""
    workdir = _copy(reference, tmp_path / "run")
    shutil.copytree(workdir / "checkpoints" / "2", workdir / "checkpoints" / "8")
    shutil.copy(workdir / "checksums" / "2.json", workdir / "checksums" / "8.json")
    result, messages = _run_warned(workdir)
    assert any(
        re.match(r"checkpoint 8 .*\(StepMismatch: its folder says step 8, the state inside is 2", m)
        for m in messages
    ), messages
    _assert_reference(result, workdir, reference)
    assert _steps(workdir) == [2, 4, 6] and _set_aside(workdir) == [8]


def test_a_checksum_file_of_another_step_sets_the_checkpoint_aside(tmp_path, reference):
    workdir = _copy(reference, tmp_path / "run")
    shutil.copy(workdir / "checksums" / "4.json", workdir / "checksums" / "6.json")
    result, messages = _run_warned(workdir)
    assert any(
        re.match(r"checkpoint 6 .*\(StepMismatch: .* its checksum file .*6\.json says 4", m)
        for m in messages
    ), messages
    _assert_reference(result, workdir, reference)
    assert _steps(workdir) == [2, 4, 6] and _set_aside(workdir) == [6]


def test_a_checkpoint_past_the_runs_length_is_refused(tmp_path, reference):
    workdir = _copy(reference, tmp_path / "run")
    config = json.loads((workdir / "config.json").read_text())
    (workdir / "config.json").write_text(json.dumps({**config, "steps": 4}))
    with pytest.raises(ValueError, match="checkpoints of at most 4 steps.*got checkpoint 6"):
        _run(workdir, steps=4)
    assert _steps(workdir) == [2, 4, 6] and _set_aside(workdir) == []


@pytest.mark.parametrize("damage", ["truncate", "random", "flip"])
def test_damaged_checkpoint_files_fall_back_exactly(tmp_path, reference, damage):
    workdir = _copy(reference, tmp_path / "run")
    rng = random.Random(damage)
    files = sorted(
        os.path.join(root, n)
        for root, _, names in os.walk(workdir / "checkpoints" / str(STEPS))
        for n in names
    )
    for path in files:
        with open(path, "rb") as f:
            data = bytearray(f.read())
        if damage == "truncate":
            data = data[: len(data) // 2]
        elif damage == "random":
            data = bytearray(rng.randbytes(len(data)))
        else:
            for _ in range(3):
                if data:
                    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        with open(path, "wb") as f:
            f.write(data)
    result, messages = _run_warned(workdir)
    assert any(re.match("checkpoint 6 .* is unreadable", m) for m in messages), messages
    _assert_reference(result, workdir, reference)
    assert _steps(workdir) == [2, 4, 6]


def test_read_only_workdir_is_a_clear_error_and_keeps_everything(tmp_path, reference, monkeypatch):
    workdir = _copy(reference, tmp_path / "run")
    os.chmod(workdir, stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:  # root writes into read-only folders: fail as a read-only mount would

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr("jaxheads.train.workdir.tempfile.NamedTemporaryFile", read_only)
    try:
        with pytest.raises(ValueError, match="expected a writable workdir"):
            _run(workdir)
    finally:
        os.chmod(workdir, stat.S_IRWXU)
    assert _steps(workdir) == [2, 4, 6] and logged_losses(workdir) == reference["losses"]


# 5. a full disk during a save


@contextlib.contextmanager
def _file_size_limit(limit):
    """Writes past ``limit`` bytes per file fail (EFBIG) through the real write path, as a
    full disk fails them (ENOSPC): orbax's and tensorstore's writes, the checksum's."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, old_handler)


# After a failed write orbax's pending coroutines are collected with their event loop
# closed ("Event loop is closed"): orbax's noise at garbage collection, not this test's.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    "limit,what", [(20, "the checksum's write"), (600, "the arrays' write (tensorstore)")]
)
def test_full_disk_during_a_save_removes_the_partial_keeps_the_rest_and_resumes(
    tmp_path, reference, monkeypatch, capsys, limit, what
):
    from jaxheads.cli.train import run_fit
    from jaxheads.train import checkpoints

    save = checkpoints.CheckpointStore.save

    def failing_at_4(self, step, tree):
        if step != 4:
            return save(self, step, tree)
        with _file_size_limit(limit):
            return save(self, step, tree)

    monkeypatch.setattr(checkpoints.CheckpointStore, "save", failing_at_4)
    workdir = tmp_path / "run"
    status = run_fit(
        "train",
        "trained",
        lambda: (toy_task(evaluate=_evaluate), RunConfig(workdir=str(workdir), **SETTINGS)),
        str(workdir),
        lambda result: None,
    )
    # orbax may log its own error first (absl); the command's is one line
    (err,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("jaxheads")]
    assert status == 4, what
    assert re.fullmatch(
        r"jaxheads train: could not write checkpoint 4 to \S+/checkpoints \(File too large\); "
        r"its partial files were removed and checkpoints 2 are kept: make room and run the "
        r"same command to resume",
        err,
    ), err
    # nothing of checkpoint 4 is left to fill the disk further; checkpoint 2 untouched
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2"]
    assert os.listdir(workdir / "checksums") == ["2.json"]
    monkeypatch.setattr(checkpoints.CheckpointStore, "save", save)
    _assert_reference(_run(workdir), workdir, reference)
    assert _set_aside(workdir) == []


# Subprocess faults: kill -9 (also during a save), SIGTERM, a second run at once.
