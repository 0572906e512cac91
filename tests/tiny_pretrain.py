"""The smallest `jaxheads pretrain` the tests run: two steps on a few images."""

ARGS = [
    "--steps",
    "2",
    "--batch-size",
    "8",
    "--train-examples",
    "16",
    "--val-examples",
    "8",
    "--no-progress",
    "--burn-in",
    "0",
]
