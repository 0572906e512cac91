"""python train_multiprocess.py PORT NUM_PROCESSES PROCESS_ID WORKDIR STEPS PARALLEL

One process of a multi-process run on localhost (CPU collectives), for tests.
"""

import sys

import jax

port, num, pid, workdir, steps, parallel = sys.argv[1:7]
jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"localhost:{port}", num_processes=int(num), process_id=int(pid))

from train_toy import toy_task  # noqa: E402

from jaxheads.train.loop import RunConfig, fit  # noqa: E402

result = fit(
    toy_task(),
    RunConfig(
        workdir=workdir,
        steps=int(steps),
        parallel=parallel,
        checkpoint_every=3,
        log_every=1,
        optimizer="sgd",
        learning_rate=0.01,
        progress=False,
    ),
)
sums = " ".join(f"{float(x.sum()):.9g}" for x in jax.tree.leaves(result["params"]))
print("RESULT", jax.process_index(), result["step"], sums, flush=True)
jax.distributed.shutdown()
