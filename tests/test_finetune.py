"""Fine-tuning from a pre-trained classifier: ``jaxheads train --init --freeze``, resumed.

Its own file so that pytest-xdist (``--dist loadfile``) runs it beside the other
pre-training tests, not after them.
"""

import os

import jax
import numpy as np
import pytest
import tiny_pretrain

from jaxheads.train import warm_start


@pytest.mark.slow
def test_train_init_freeze_and_resume(tmp_path, capsys):
    """``jaxheads train --init --freeze``: frozen layers bitwise the source's, resumable."""
    from jaxheads.cli import main
    from jaxheads.train.freeze import layer_paths
    from jaxheads.train.restore import build_run, restore_checkpoint, restore_run

    pre = str(tmp_path / "pre")
    assert (
        main(
            [
                "pretrain",
                "--workdir",
                pre,
                "--image-size",
                "32",
                *tiny_pretrain.ARGS,
            ]
        )
        == 0
    )
    _, _, src_params, src_state, _ = restore_checkpoint(pre)
    src, src_bn = warm_start.flatten(src_params), warm_start.flatten(src_state)

    def train(workdir, steps, *extra):
        return main(
            [
                "train",
                "--workdir",
                workdir,
                "--image-size",
                "32",
                "--steps",
                str(steps),
                "--batch-size",
                "8",
                "--train-examples",
                "16",
                "--val-examples",
                "4",
                "--no-progress",
                "--burn-in",
                "0",
                "--policy",
                "constant",
                "--checkpoint-every",
                "2",
                "--init",
                pre,
                "--freeze",
                "6",
                *extra,
            ]
        )

    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    assert train(whole, 4) == 0
    assert "--init: " in capsys.readouterr().out
    assert train(parts, 2) == 0 and train(parts, 4) == 0  # stopped at 2, extended to 4
    results = {}
    for w in (whole, parts):
        restored, _, params, state, step = restore_checkpoint(w)
        assert restored.run.freeze == 6 and len(restored.run.extra["init"]["sha256"]) == 64
        assert step == 4
        results[w] = (warm_start.flatten(params), warm_start.flatten(state))
    params, state = results[whole]
    frozen = layer_paths(build_run(restore_run(whole))[1].init(jax.random.key(0))[0])[:6]
    assert all(p.startswith("backbone/") for p in frozen)
    for path, value in params.items():
        if path.rsplit("/", 1)[0] in frozen:
            assert np.array_equal(value, src[path]), path
    for path, value in state.items():
        if path.rsplit("/", 1)[0] in frozen:
            assert np.array_equal(value, src_bn[path]), path
    trained = [p for p in params if p.startswith("backbone/") and p.rsplit("/", 1)[0] not in frozen]
    assert trained and any(not np.array_equal(params[p], src[p]) for p in trained)
    # Resumed (2 + 2 steps) equals uninterrupted (4), bitwise.
    other, other_state = results[parts]
    assert all(np.array_equal(params[p], other[p]) for p in params)
    assert all(np.array_equal(state[p], other_state[p]) for p in state)
    # A wrong --freeze or --init fails before anything is written.
    bad = str(tmp_path / "bad")
    assert train(bad, 2, "--freeze", "1000") == 2
    assert "--freeze" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(bad, "config.json"))
