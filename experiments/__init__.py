"""Comparison studies: one ``get_config(profile)`` per file, run with ``jaxheads compare``."""
