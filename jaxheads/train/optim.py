"""Optimisers and learning-rate schedules, from optax.

Darknet trains YOLO with SGD + momentum + weight decay on the kernels, a
``burn_in`` warm-up ``lr·(step/burn_in)^4`` and then a ``steps`` policy
(multiply by ``scales`` at given steps); cosine decay and Adam/AdamW are there
for modern runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from jaxheads._checks import fail


def schedule(
    learning_rate: float,
    *,
    total_steps: int,
    policy: str = "cosine",
    burn_in: int = 0,
    burn_in_power: float = 4.0,
    steps: Sequence[int] = (),
    scales: Sequence[float] = (),
) -> optax.Schedule:
    """A warm-up followed by ``"constant"``, ``"steps"`` or ``"cosine"`` decay.

    Args:
      learning_rate: the peak rate.
      total_steps: the run's length (for cosine).
      policy: what follows the warm-up.
      burn_in: warm-up steps; the rate is ``lr·(step/burn_in)^burn_in_power``
        during them (darknet's ``burn_in`` with its default power 4).
      steps, scales: for ``"steps"``: at ``steps[i]`` the rate is multiplied by ``scales[i]``.
    """
    if policy == "constant":
        after = optax.constant_schedule(learning_rate)
    elif policy == "steps":
        if len(steps) != len(scales):
            fail("schedule", "as many scales as steps", f"steps={steps}, scales={scales}")
        after = optax.piecewise_constant_schedule(
            learning_rate, {int(s): float(c) for s, c in zip(steps, scales, strict=True)}
        )
    elif policy == "cosine":
        after = optax.cosine_decay_schedule(learning_rate, max(total_steps - burn_in, 1))
    else:
        fail("schedule", 'policy "constant", "steps" or "cosine"', repr(policy))
    if burn_in <= 0:
        return _float_step(after)

    def warm(step):
        return learning_rate * (step / burn_in) ** burn_in_power

    if policy == "steps":
        # darknet's steps count from the start of training, not from the end of burn-in.
        return _float_step(lambda step: jnp.where(step < burn_in, warm(step), after(step)))
    return _float_step(optax.join_schedules([warm, after], [burn_in]))


def _float_step(fn: optax.Schedule) -> optax.Schedule:
    """Optax counts steps in int32; the schedules compute in float32 (strict promotion)."""
    return lambda step: fn(jnp.asarray(step, jnp.float32))


def _kernels_only(params):
    """Weight decay on kernels only (not biases, batch-norm scales), as darknet does."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) in ("kernel", "recurrent_kernel"), params
    )


def make_optimizer(
    name: str = "sgd",
    learning_rate: float | optax.Schedule = 1e-3,
    *,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    clip_norm: float | None = 10.0,
) -> optax.GradientTransformation:
    """``"sgd"`` (momentum, decoupled-from-nothing L2 like darknet), ``"adam"`` or ``"adamw"``.

    Args:
      name: the optimiser.
      learning_rate: a float or an optax schedule (see `schedule`).
      momentum: SGD momentum.
      weight_decay: L2 (sgd, added to the grads of kernels) or decoupled (adamw)
        decay; ignored by adam.
      clip_norm: clip the global gradient norm to this (None: no clipping).
    """
    parts = [] if clip_norm is None else [optax.clip_by_global_norm(clip_norm)]
    if name == "sgd":
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay, mask=_kernels_only))
        parts.append(optax.sgd(learning_rate, momentum=momentum))
    elif name == "adam":
        parts.append(optax.adam(learning_rate))
    elif name == "adamw":
        parts.append(optax.adamw(learning_rate, weight_decay=weight_decay, mask=_kernels_only))
    else:
        fail("make_optimizer", 'name "sgd", "adam" or "adamw"', repr(name))
    return optax.chain(*parts)
