"""The hardware's limit: a matmul's measured rate and the vendors' datasheet peaks."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

# Dense (no sparsity) bf16 peaks from the vendors' datasheets, FLOP/s, matched as
# substrings of `device_kind` (longest first). H100/H200 SXM: 989.4 TFLOP/s
# (1,979 is the 2:4-sparse figure); H100 PCIe 756; A100 312; TPU v5e 197; TPU v6e
# (Trillium) 918; TPU v5p 459; TPU v4 275.
DATASHEET_BF16_PEAK = {
    "H100 PCIe": 756e12,
    "H100": 989.4e12,
    "H200": 989.4e12,
    "A100": 312e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
    "TPU v5p": 459e12,
    "TPU v5": 459e12,
    "TPU v4": 275e12,
}


def datasheet_peak(device_kind: str) -> float | None:
    """The datasheet bf16 peak of a device kind, or None (CPUs and unknown devices)."""
    for name in sorted(DATASHEET_BF16_PEAK, key=len, reverse=True):
        if name.lower() in device_kind.lower():
            return DATASHEET_BF16_PEAK[name]
    return None


def matmul(n: int, dtype=jnp.float32) -> tuple[Callable[[], object], float]:
    """A jitted ``[n, n] @ [n, n]`` (compiled and run once) and its FLOPs ``2·n³``.

    Returns ``(run, flops)``; ``run()`` performs one product and waits for it.
    """
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((n, n), dtype=np.float32), dtype)
    b = jnp.asarray(rng.standard_normal((n, n), dtype=np.float32), dtype)
    dot = jax.jit(jnp.dot).lower(a, b).compile()
    dot(a, b).block_until_ready()
    return (lambda: dot(a, b).block_until_ready()), 2.0 * n**3
