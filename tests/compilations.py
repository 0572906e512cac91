"""Counting XLA compilations, as ``jax.log_compiles`` reports them.

A jitted function's ``_cache_size()`` counts entries of jaxlib's C++ dispatch cache,
which a long test session can leave empty without any recompilation; the compile
log counts what the tests mean: how often XLA compiled the function.
"""

from __future__ import annotations

import contextlib
import logging

import jax

_LOGGER = "jax._src.dispatch"
_PREFIX = "Finished XLA compilation of "


@contextlib.contextmanager
def compilations(name: str):
    """Yields a list that collects one entry per compilation of ``jit(name)`` in the block."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if message.startswith(_PREFIX) and f"jit({name})" in message:
                seen.append(message)

    handler = Collect(logging.DEBUG)
    logger = logging.getLogger(_LOGGER)
    logger.addHandler(handler)
    try:
        with jax.log_compiles():
            yield seen
    finally:
        logger.removeHandler(handler)
