"""Benchmarks of jaxheads against Keras 3 and hand-written Flax NNX, and against the hardware.

Run with ``python -m benchmarks.bench [--quick] [--json PATH]`` from a source checkout;
`benchmarks.bench` documents what is measured, `docs/benchmarks.md` the results. The
parts a user measures their own chip with (``jaxheads bench``) are `jaxheads.bench`.
"""
