"""Training: one pure optax step, three parallel runners, a resumable loop."""

from jaxheads.train.loop import MetricsLog, RunConfig, Task, TrainingDiverged, fit
from jaxheads.train.optim import make_optimizer, schedule
from jaxheads.train.step import (
    JitRunner,
    PmapRunner,
    ShardMapRunner,
    TrainState,
    data_mesh,
    init_train_state,
    make_runner,
    make_step,
)

__all__ = [
    "JitRunner",
    "MetricsLog",
    "PmapRunner",
    "RunConfig",
    "ShardMapRunner",
    "Task",
    "TrainState",
    "TrainingDiverged",
    "data_mesh",
    "fit",
    "init_train_state",
    "make_optimizer",
    "make_runner",
    "make_step",
    "schedule",
]
