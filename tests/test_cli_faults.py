"""A fault the commands recover from is one line on stderr, never a traceback.

After the newest checkpoint's largest file was truncated, ``jaxheads evaluate`` fell back
to the older checkpoint correctly but printed a dozen ``RuntimeError: Event loop is
closed`` tracebacks (tensorstore reads of the failed restore finishing after orbax closed
its event loop) and a warning of several kilobytes (tensorstore's spec).
"""

import os
import subprocess
import sys

import pytest

from jaxheads.cli import main

pytestmark = pytest.mark.slow


def test_evaluate_after_a_truncated_checkpoint_prints_one_line(tmp_path):
    workdir = tmp_path / "run"
    argv = ["train", "--workdir", str(workdir), "--steps", "4", "--checkpoint-every", "2"]
    argv += ["--batch-size", "8", "--image-size", "32", "--val-examples", "8", "--no-progress"]
    assert main(argv) == 0
    files = [
        os.path.join(root, name)
        for root, _, names in os.walk(workdir / "checkpoints" / "4")
        for name in names
    ]
    largest = max(files, key=os.path.getsize)
    with open(largest, "r+b") as f:
        f.truncate(os.path.getsize(largest) // 2)
    done = subprocess.run(
        [sys.executable, "-m", "jaxheads.cli", "evaluate", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "checkpoint step 2" in done.stdout
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(lines) == 1, lines
    assert lines[0].startswith("jaxheads evaluate: warning: checkpoint 4 in ")
    assert "trying an older one" in lines[0] and len(lines[0]) < 800, lines[0]
