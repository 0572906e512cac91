"""Benchmarks of jaxheads against Keras 3 and hand-written Flax NNX, and against the hardware.

Run with ``jaxheads bench [--quick] [--json PATH]`` (or ``python -m benchmarks.bench``);
`benchmarks.bench` documents what is measured, `docs/benchmarks.md` the results.
"""
