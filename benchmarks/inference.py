"""Inference throughput and latency: forward, decode and NMS in one jitted call.

`jaxheads.train.detection.make_predict` (what ``jaxheads evaluate`` runs), called on
host (numpy) images, so the transfer to the device is part of the latency, and
waited for until the padded `jaxheads.detect.Detections` are ready.
"""

from __future__ import annotations

import jax
import numpy as np

from benchmarks import networks as nw
from jaxheads.bench import timing
from jaxheads.bench.figures import Figure
from jaxheads.train.detection import make_predict


def measure(
    network: nw.Network, batch_sizes: tuple[int, ...], *, calls: int, repeats: int
) -> list[Figure]:
    """Latency (median milliseconds per call) and images/s at each batch size, interleaved.

    Args:
      network: the network (random weights: NMS then sees many low-score boxes,
        every candidate is kept to the score threshold .005 as darknet's validation).
      batch_sizes: e.g. ``(1, 64)``.
      calls: calls per timed run for batch 1 (larger batches use
        ``max(1, calls // batch)`` so that every run takes a similar time).
      repeats: timed runs per batch size.
    """
    params, state = nw.numpy_init(network)
    predict = make_predict(network.detector)
    rng = np.random.default_rng(0)
    side = network.image_size
    runs = {}
    for b in batch_sizes:
        images = rng.random((b, side, side, 3), dtype=np.float32)
        n = max(1, calls // b)
        compiled = predict.lower(params, state, images).compile()
        jax.block_until_ready(compiled(params, state, images))

        def run(compiled=compiled, images=images, n=n):
            for _ in range(n):
                out = compiled(params, state, images)
            jax.block_until_ready(out)

        runs[f"b{b}"] = (run, n, b)
    times = timing.interleaved({k: v[0] for k, v in runs.items()}, repeats=repeats)
    figures = []
    for key, (_, n, b) in runs.items():
        latency = timing.median(times[key]) / n
        on = dict(model=network.name, batch=b)
        figures.append(Figure("infer", "latency_ms", latency * 1e3, **on))
        figures.append(Figure("infer", "images_per_s", b / latency, **on))
    return figures
