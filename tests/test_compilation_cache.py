"""JAX's persistent compilation cache: where it lives, that a repeat run loads from it,
and that the flag and the environment variable move it or turn it off.

Each run is a process of its own (JAX opens the cache once per process), in an
environment whose home and cache directories are the test's: nothing is written
to the user's.
"""

import json
import os
import subprocess
import sys

import pytest

from jaxheads.cli.main import build_parser
from jaxheads.train.compilation_cache import ENV_VAR, CacheChoice, choose, default_directory

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# A 2-step run of the toy task, as a command runs it: the cache chosen first (argv[2]:
# the command's flag value, "-" for none), then the training run in a fresh argv[1].
TOY_RUN = """
import sys
from jaxheads.train.compilation_cache import use_compilation_cache
choice = use_compilation_cache(None if sys.argv[2] == "-" else sys.argv[2])
from train_toy import toy_task
from jaxheads.train.loop import RunConfig, fit
fit(toy_task(), RunConfig(workdir=sys.argv[1], steps=2, burn_in=0, progress=False))
print(choice.directory)
"""


def _environment(tmp_path, **changes) -> dict:
    """This process's environment with the test's own home, no cache setting and ``changes``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (ENV_VAR, "JAX_COMPILATION_CACHE_DIR", "XDG_CACHE_HOME")
    }
    env["HOME"] = str(tmp_path / "home")
    env["PYTHONPATH"] = os.pathsep.join([HERE, ROOT, os.environ.get("PYTHONPATH", "")])
    env.update(changes)
    return env


def _toy_run(tmp_path, workdir: str, setting: str | None = None, **env) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", TOY_RUN, str(tmp_path / workdir), setting or "-"],
        env=_environment(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def _entries(directory) -> set[str]:
    return set(os.listdir(directory)) if os.path.isdir(directory) else set()


def test_choose_takes_the_flag_then_the_environment_then_jax_then_the_default():
    env = {ENV_VAR: "/env/cache", "XDG_CACHE_HOME": "/xdg"}
    assert choose("/flag", environ=env, jax_directory="/jax") == CacheChoice("/flag", "flag")
    assert choose("off", environ=env) == CacheChoice(None, "flag")
    from_env = CacheChoice("/env/cache", "environment")
    assert choose(None, environ=env, jax_directory="/jax") == from_env
    for off in ("off", "OFF", "0", "false", "no"):
        assert choose(None, environ={ENV_VAR: off}, jax_directory="/jax").directory is None
    assert choose(None, environ={"XDG_CACHE_HOME": "/xdg"}, jax_directory="/jax") == CacheChoice(
        "/jax", "jax"
    )
    assert choose(None, environ={"XDG_CACHE_HOME": "/xdg"}) == CacheChoice(
        "/xdg/jaxheads/jax-compilation-cache", "default"
    )
    # an empty variable is unset; a relative directory is made absolute
    assert choose(None, environ={ENV_VAR: ""}).source == "default"
    assert choose("rel", environ={}).directory == os.path.abspath("rel")


def test_the_default_directory_is_under_the_home_cache_without_xdg_cache_home():
    expected = os.path.join(os.path.expanduser("~"), ".cache", "jaxheads", "jax-compilation-cache")
    assert default_directory({}) == expected
    assert default_directory({"XDG_CACHE_HOME": ""}) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--workdir", "w"],
        ["evaluate", "--workdir", "w"],
        ["pretrain", "--workdir", "w"],
        ["compare"],
        ["detect", "--workdir", "w", "image.jpg"],
        ["export", "w", "out.weights"],
        ["bench"],
    ],
    ids=lambda argv: argv[0],
)
def test_every_compiling_command_takes_the_cache_flags(argv):
    parser = build_parser()
    # bench times compilation: off unless asked for; the others: the environment's or default
    assert parser.parse_args(argv).compilation_cache == ("off" if argv == ["bench"] else None)
    assert parser.parse_args([*argv, "--no-compilation-cache"]).compilation_cache == "off"
    assert parser.parse_args([*argv, "--compilation-cache", "d"]).compilation_cache == "d"
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--compilation-cache", "d", "--no-compilation-cache"])


def test_a_second_run_in_a_fresh_workdir_loads_every_program_from_the_cache(tmp_path):
    xdg = tmp_path / "xdg"
    cache = xdg / "jaxheads" / "jax-compilation-cache"
    assert _toy_run(tmp_path, "first", XDG_CACHE_HOME=str(xdg)) == str(cache)
    first = _entries(cache)
    assert first  # every program, however small, is kept
    _toy_run(tmp_path, "second", XDG_CACHE_HOME=str(xdg))
    assert _entries(cache) == first  # nothing compiled anew
    with open(tmp_path / "second" / "metrics.jsonl") as f:
        (row,) = [r for r in map(json.loads, f) if "compile_s" in r]
    assert row["step"] == 2 and row["compile_s"] >= 0 and row["device"] == "cpu"
    assert not (tmp_path / "home").exists()


def test_the_flag_and_the_environment_move_the_cache_or_turn_it_off(tmp_path):
    xdg = tmp_path / "xdg"
    moved, elsewhere = tmp_path / "flag-cache", tmp_path / "env-cache"
    assert _toy_run(tmp_path, "a", "off", XDG_CACHE_HOME=str(xdg), **{ENV_VAR: str(moved)}) == (
        "None"
    )
    _toy_run(tmp_path, "b", XDG_CACHE_HOME=str(xdg), **{ENV_VAR: "off"})
    assert not xdg.exists() and not moved.exists()
    _toy_run(tmp_path, "c", str(moved), XDG_CACHE_HOME=str(xdg), **{ENV_VAR: str(elsewhere)})
    _toy_run(tmp_path, "d", XDG_CACHE_HOME=str(xdg), **{ENV_VAR: str(elsewhere)})
    assert _entries(moved) and _entries(elsewhere) and not xdg.exists()


def test_a_directory_the_user_gave_jax_is_kept(tmp_path):
    theirs = tmp_path / "theirs"
    used = _toy_run(
        tmp_path, "run", XDG_CACHE_HOME=str(tmp_path / "xdg"), JAX_COMPILATION_CACHE_DIR=str(theirs)
    )
    assert used == str(theirs) and not (tmp_path / "xdg").exists()


@pytest.mark.slow
def test_jaxheads_train_twice_compiles_once(tmp_path):
    """The command itself: a second identical run in a fresh work directory adds no
    entry, and each run's first metrics row keeps its compile time and device."""
    cache = tmp_path / "cache"

    def train(workdir):
        argv = ["train", "--model", "small-yolov2", "--image-size", "32", "--steps", "2"]
        argv += ["--batch-size", "8", "--train-examples", "16", "--val-examples", "8"]
        argv += ["--no-progress", "--workdir", str(tmp_path / workdir)]
        proc = subprocess.run(
            [sys.executable, "-m", "jaxheads.cli", *argv, "--compilation-cache", str(cache)],
            env=_environment(tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg")),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        with open(tmp_path / workdir / "metrics.jsonl") as f:
            (row,) = [r for r in map(json.loads, f) if "compile_s" in r]
        assert row["compile_s"] >= 0 and row["device"] == "cpu"

    train("first")
    first = _entries(cache)
    assert first
    train("second")
    assert _entries(cache) == first
    assert not (tmp_path / "xdg").exists()
