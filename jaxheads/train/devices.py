"""Which devices a run uses: forced CPU devices and multi-process start-up.

Both must happen before jax picks its devices, so a command calls `init_devices`
first, before anything touches a backend.
"""

from __future__ import annotations

import os


def init_devices(
    *,
    devices: int | None = None,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Forces ``devices`` CPU devices and starts multi-process JAX; before jax picks devices."""
    import jax

    if devices:
        # Only affects the CPU backend; accelerators are selected from what exists.
        jax.config.update("jax_num_cpu_devices", devices)
    address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if address or num_processes:
        # Collectives between CPU processes (only the CPU backend reads this). Nothing may
        # touch the backends before initialize(): not even jax.default_backend().
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(address, num_processes=num_processes, process_id=process_id)
