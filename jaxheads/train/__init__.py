"""Training: one pure optax step, three parallel runners, a resumable loop, and the
persistent compilation cache every command turns on (`use_compilation_cache`)."""

from jaxheads.train.compilation_cache import use_compilation_cache
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
    "use_compilation_cache",
]
