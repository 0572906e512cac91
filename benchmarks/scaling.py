"""Data-parallel scaling over 1, 2, 4, 8 devices with jaxheads' jit + NamedSharding runner.

Each device count runs in a fresh process (the number of CPU devices is fixed
when JAX starts: ``jax_num_cpu_devices``). The workers start and compile
together, then each times its steps alone, in turn, when the parent tells it
to (a line on its stdin), so their timings do not overlap.

On CPU the forced devices share the same cores: the figures show the cost of
partitioning (per-device batches, collectives) rather than a speedup. On a host
with N accelerators they are the strong-scaling curve (fixed global batch).

Run as a worker: ``python -m benchmarks.scaling --devices N --network NAME
--image-size S --batch B --steps K --repeats R``; it prints ``ready`` once
compiled, waits for a line, then prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from jaxheads.bench.figures import Figure, Figures


def _worker(args: argparse.Namespace) -> int:
    import jax

    # Before any backend starts; it only shapes the CPU backend (accelerators are real).
    jax.config.update("jax_num_cpu_devices", args.devices)
    if len(jax.devices()) < args.devices:
        print(json.dumps({"error": f"{len(jax.devices())} devices available"}), flush=True)
        return 0

    from benchmarks import networks as nw
    from benchmarks.training import JaxheadsTrainer
    from jaxheads.bench import timing

    network = nw.NETWORKS[args.network](args.image_size)
    params, state = nw.numpy_init(network)
    trainer = JaxheadsTrainer(network, params, state, devices=jax.devices()[: args.devices])
    batch = trainer.place(nw.example_batch(network, args.batch))
    trainer.compile(batch)
    jax.block_until_ready(trainer(batch))
    print("ready", flush=True)
    sys.stdin.readline()

    def run():
        for _ in range(args.steps):
            loss = trainer(batch)
        jax.block_until_ready(loss)

    times = [timing.wall(run) for _ in range(args.repeats)]
    step_s = timing.median(times) / args.steps
    print(
        json.dumps(
            {
                "devices": args.devices,
                "step_s": step_s,
                "images_per_s": args.batch / step_s,
                "compile_s": trainer.compile_s,
                "platform": jax.default_backend(),
            }
        ),
        flush=True,
    )
    return 0


def measure(
    network: str,
    image_size: int,
    *,
    devices: tuple[int, ...],
    batch: int,
    steps: int,
    repeats: int,
    timeout: float = 600.0,
) -> list[Figure]:
    """Images/s, compile seconds, speedup and efficiency per device count (``scaling``)."""
    root = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    workers = {}
    for n in devices:
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.scaling",
            "--devices",
            str(n),
            "--network",
            network,
            "--image-size",
            str(image_size),
            "--batch",
            str(batch),
            "--steps",
            str(steps),
            "--repeats",
            str(repeats),
        ]
        workers[n] = subprocess.Popen(
            cmd, cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
    results = {}
    try:
        for n, proc in workers.items():  # all compiled before anyone times
            line = "?"
            while line and line not in ("ready", "ready\n") and not line.startswith("{"):
                line = proc.stdout.readline()
            if not line.startswith("ready"):
                results[n] = (
                    json.loads(line)
                    if line.startswith("{")
                    else {"error": f"worker for {n} devices ended (exit code {proc.wait()})"}
                )
        for n, proc in workers.items():
            if n in results:
                continue
            out, _ = proc.communicate("go\n", timeout=timeout)
            lines = [x for x in out.splitlines() if x.startswith("{")]
            results[n] = (
                json.loads(lines[-1])
                if lines
                else {"error": f"worker for {n} devices ended (exit code {proc.returncode})"}
            )
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    figures = Figures()
    base = results.get(devices[0], {}).get("images_per_s")
    for n, r in results.items():
        if "images_per_s" not in r:
            continue
        on = dict(model=network, batch=batch, devices=n)
        figures.add("scaling", "images_per_s", r["images_per_s"], **on)
        figures.add("scaling", "compile_s", r["compile_s"], **on)
        if base:
            figures.add("scaling", "speedup", r["images_per_s"] / base, **on)
            figures.add("scaling", "efficiency", r["images_per_s"] / (base * n / devices[0]), **on)
    return list(figures)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--network", required=True)
    parser.add_argument("--image-size", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    return _worker(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
