"""python train_multiprocess.py PORT NUM_PROCESSES PROCESS_ID WORKDIR STEPS PARALLEL \
[SLOW [DIE [PLACED]]]

One process of a multi-process run on localhost (CPU collectives), for tests. ``SLOW``
seconds of sleep before each batch give a test time to kill a process mid-run. ``DIE``
(a step) makes process 1 exit at once at the first barrier of its save of that step,
so that the other waits for it there. ``PLACED`` (1) makes the batches where the step
reads them (`train_toy.placed`), as the data sets drawn on the device do.
"""

import os
import sys

import jax

port, num, pid, workdir, steps, parallel = sys.argv[1:7]
slow = float(sys.argv[7]) if len(sys.argv) > 7 else 0.0
die = int(sys.argv[8]) if len(sys.argv) > 8 else 0
place = len(sys.argv) > 9 and sys.argv[9] == "1"
jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"localhost:{port}", num_processes=int(num), process_id=int(pid))

from train_toy import placed, slowed, toy_task  # noqa: E402

from jaxheads.train.loop import PeerLost, RunConfig, fit  # noqa: E402

if die and pid == "1":
    from jaxheads.train import checkpoints

    saving = {}
    save, barrier = checkpoints.CheckpointStore.save, checkpoints.collective_barrier

    def save_noting_step(self, step, tree):
        saving["step"] = step
        save(self, step, tree)

    def barrier_or_exit(*, key, timeout_ms):
        if saving.get("step") == die:
            print("DYING at", key, flush=True)
            os._exit(9)
        barrier(key=key, timeout_ms=timeout_ms)

    checkpoints.CheckpointStore.save = save_noting_step
    checkpoints.collective_barrier = barrier_or_exit

task = slowed(toy_task(), slow) if slow else toy_task()
task = placed(task) if place else task
try:
    result = fit(
        task,
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
except PeerLost as err:
    print("PEER_LOST", err, flush=True)
    os._exit(5)  # as the commands do: JAX's shutdown would wait for the lost process

print("STATUS", jax.process_index(), result["status"], result["step"], flush=True)
sums = " ".join(f"{float(x.sum()):.9g}" for x in jax.tree.leaves(result["params"]))
print("RESULT", jax.process_index(), result["step"], sums, flush=True)
jax.distributed.shutdown()
