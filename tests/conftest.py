"""Test configuration: strict numerics, Keras on the JAX backend.

Every test runs with rank promotion and implicit dtype promotion turned into
errors, so a library function that silently broadcasts or upcasts fails here
before it surprises a user.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
# Commands keep compiled programs in the user's cache directory by default; the tests (and
# the commands they start in subprocesses) keep nothing there. Tests of the cache give it
# a directory of their own.
os.environ["JAXHEADS_COMPILATION_CACHE"] = "off"

import jax  # noqa: E402
import pytest  # noqa: E402

# Eight CPU devices, so multi-device code runs in every test session (set before jax starts).
jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


# Scripts the tests start in subprocesses; importing them would start a distributed run.
collect_ignore = ["train_multiprocess.py"]


@pytest.fixture(params=[False, True], ids=["nojit", "jit"])
def maybe_jit(request):
    """Runs a function as-is and under `jax.jit`: both must agree."""
    return jax.jit if request.param else (lambda f, **_: f)
