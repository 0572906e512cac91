"""JAX's persistent compilation cache, on by default for every command.

A short run spends most of its time compiling: a 2-step ``jaxheads train`` on a
CPU compiles for most of its ~30 s. With the cache on, the programs a run
compiles are written to disk and a later run of the same shapes — a repeat, a
resume, another seed of a study — loads them instead (``docs/benchmarks.md``).

Where the cache lives, first match wins:

1. the command's flag (``--compilation-cache DIR``, ``--no-compilation-cache``),
   passed here as ``setting``;
2. the environment variable ``JAXHEADS_COMPILATION_CACHE``: ``off`` (or ``0``,
   ``false``, ``no``) turns it off, anything else is a directory;
3. a cache directory the user gave JAX (``JAX_COMPILATION_CACHE_DIR`` or
   ``jax.config.update("jax_compilation_cache_dir", ...)``): used as JAX was told,
   with JAX's own thresholds;
4. ``$XDG_CACHE_HOME/jaxheads/jax-compilation-cache`` (``~/.cache/...`` when
   ``XDG_CACHE_HOME`` is unset).

In jaxheads' own directory every program is cached, however small or quick to
compile: JAX's default keeps only those that take a second or more, which on a
CPU leaves out most of a small model's programs. JAX creates the directory at
the first compilation, so a command refused before it compiles writes nothing.
The cache is trusted code (JAX's warning): keep it where only its user writes.
Deleting it is always safe.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

#: The environment variable that moves the cache or turns it off.
ENV_VAR = "JAXHEADS_COMPILATION_CACHE"

#: The values (of the flag or `ENV_VAR`, any case) that turn the cache off.
OFF = ("off", "0", "false", "no")


@dataclasses.dataclass(frozen=True)
class CacheChoice:
    """Where a process's compiled programs are kept.

    Attributes:
      directory: the cache directory, or ``None`` when the cache is off.
      source: what chose it: ``"flag"``, ``"environment"`` (`ENV_VAR`), ``"jax"``
        (the user's own JAX setting) or ``"default"``.
    """

    directory: str | None
    source: str


def default_directory(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CACHE_HOME/jaxheads/jax-compilation-cache``, ``~/.cache`` without it.

    >>> default_directory({"XDG_CACHE_HOME": "/tmp/c"})
    '/tmp/c/jaxheads/jax-compilation-cache'
    """
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxheads", "jax-compilation-cache")


def choose(
    setting: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    jax_directory: str | None = None,
) -> CacheChoice:
    """The cache a process uses (the order is the module's docstring's).

    Args:
      setting: the command's flag: ``None`` (not given), an `OFF` value or a directory.
      environ: the environment (default ``os.environ``).
      jax_directory: the directory the user gave JAX itself, if any.

    >>> choose("off", environ={})
    CacheChoice(directory=None, source='flag')
    >>> choose(None, environ={ENV_VAR: "/tmp/x"}, jax_directory="/tmp/mine")
    CacheChoice(directory='/tmp/x', source='environment')
    >>> choose(None, environ={}, jax_directory="/tmp/mine")
    CacheChoice(directory='/tmp/mine', source='jax')
    """
    environ = os.environ if environ is None else environ
    for value, source in ((setting, "flag"), (environ.get(ENV_VAR), "environment")):
        if value is None or value == "":
            continue
        if value.strip().lower() in OFF:
            return CacheChoice(None, source)
        return CacheChoice(os.path.abspath(os.path.expanduser(value)), source)
    if jax_directory:
        return CacheChoice(jax_directory, "jax")
    return CacheChoice(default_directory(environ), "default")


def use_compilation_cache(setting: str | None = None) -> CacheChoice:
    """Points JAX's persistent compilation cache where `choose` says; what it chose.

    Call it before the process compiles (a command does, first): JAX opens the
    cache at its first compilation. Called again later in the same process, it
    starts JAX's cache afresh at the new place.

    Args:
      setting: the command's ``--compilation-cache`` value, ``"off"`` for
        ``--no-compilation-cache``, or ``None``.
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    choice = choose(setting, jax_directory=jax.config.jax_compilation_cache_dir)
    if choice.directory is None:
        jax.config.update("jax_enable_compilation_cache", False)
    elif choice.source != "jax":
        jax.config.update("jax_enable_compilation_cache", True)
        jax.config.update("jax_compilation_cache_dir", choice.directory)
        # Every program, however small or quickly compiled: JAX's default (1 s) leaves out
        # most of a small model's programs on a CPU, and a cached one loads in milliseconds.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    compilation_cache.reset_cache()
    return choice


__all__ = ["ENV_VAR", "OFF", "CacheChoice", "choose", "default_directory", "use_compilation_cache"]
