"""jaxheads: detection heads and the layers under them as pure JAX functions."""

__version__ = "0.1.0"
