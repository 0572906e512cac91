"""``jaxheads pretrain``: a backbone's classification pre-training, as both YOLO papers did.

Trains `jaxheads.models.classifier` on the embedded `ObjectsDataset` (shapes and
handwritten digits, one object an image, 15 classes) and reports top-1/top-5
accuracy on its held-out split. The work directory it writes is a run like any
other (resumable, checkpointed) and ``--init`` of ``jaxheads train`` and of a
second ``jaxheads pretrain`` accepts it:

    jaxheads pretrain --workdir runs/pre64 --image-size 64
    jaxheads pretrain --workdir runs/pre96 --image-size 96 --steps 300 --init runs/pre64
    jaxheads train --workdir runs/det --init runs/pre96

The second line is YOLOv2's "high resolution classifier": the same weights
fine-tuned briefly at the detector's resolution (the head pools globally, so
every weight fits any image size).
"""

from __future__ import annotations

import argparse

# name -> (small_detector's ``backbone``, ``batch_norm``): the small detectors' backbones.
BACKBONES = {
    "small": ("darknet", True),
    "small-nobn": ("darknet", False),
    "small-extraction": ("extraction", True),
    "small-extraction-nobn": ("extraction", False),
}


def backbone(name: str):
    """A backbone by name: ``small`` (the small detectors', Darknet-19-like),
    ``small-extraction`` (YOLOv1-like), each with ``-nobn`` for no batch norm."""
    from jaxheads._checks import fail
    from jaxheads.models.small import BACKBONES as BUILDERS

    if name not in BACKBONES:
        fail("pretrain", f"a backbone in {list(BACKBONES)}", repr(name))
    kind, batch_norm = BACKBONES[name]
    return BUILDERS[kind](batch_norm=batch_norm)


def add_pretrain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", required=True, help="checkpoints, metrics and config go here")
    p.add_argument(
        "--backbone",
        default="small",
        choices=list(BACKBONES),
        help="the backbone to pre-train (the small-* detectors use 'small')",
    )
    p.add_argument("--image-size", type=int, default=64, help="square image side")
    p.add_argument("--steps", type=int, default=1000, help="training steps")
    p.add_argument("--batch-size", type=int, default=64, help="the global batch size")
    p.add_argument("--seed", type=int, default=0, help="data order, augmentation and init")
    p.add_argument(
        "--optimizer", choices=("sgd", "adam", "adamw"), default="adam", help="the optimiser"
    )
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument(
        "--policy",
        choices=("constant", "steps", "cosine"),
        default="cosine",
        help="learning-rate decay after the warm-up",
    )
    p.add_argument("--burn-in", type=int, default=100, help="warm-up steps")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="sgd/adamw weight decay")
    p.add_argument("--train-examples", type=int, default=20_000, help="distinct training images")
    p.add_argument("--val-examples", type=int, default=1000, help="held-out images")
    p.add_argument("--no-augment", action="store_true", help="no scale/shift/colour jitter")
    p.add_argument("--bf16", action="store_true", help="bfloat16 compute, float32 params")
    p.add_argument(
        "--init",
        default=None,
        metavar="WORKDIR",
        help="start from a pre-training work directory (same backbone); default: random weights",
    )
    p.add_argument("--checkpoint-every", type=int, default=250, help="steps between saves")
    p.add_argument("--log-every", type=int, default=10, help="steps between metric rows")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_task(extra: dict, seed: int):
    """The classifier and its `Task` for a run's settings (``config.json``'s ``extra``)."""
    import jax
    import jax.numpy as jnp

    from jaxheads.data.objects import ObjectsDataset, classification_augment
    from jaxheads.models.classifier import classifier
    from jaxheads.train.classification import classification_task

    size = extra["image_size"]
    train = ObjectsDataset(extra["train_examples"], image_size=size, seed=seed, split="train")
    val = ObjectsDataset(extra["val_examples"], image_size=size, seed=seed, split="val")
    model = classifier(backbone(extra["backbone"]), train.num_classes, image_size=size)

    def init(key):
        _, params, state = model.layer.init(key, model.input_shape)
        return params, state

    init = jax.jit(init)
    task = classification_task(
        model,
        init,
        train,
        batch_size=extra["batch_size"],
        seed=seed,
        augment=None if extra["no_augment"] else classification_augment,
        val_data=val,
        compute_dtype=jnp.bfloat16 if extra["bf16"] else jnp.float32,
    )
    return model, task


def _run_config(args: argparse.Namespace, extra: dict):
    from jaxheads.train.loop import RunConfig

    return RunConfig(
        workdir=args.workdir,
        steps=args.steps,
        seed=args.seed,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        policy=args.policy,
        burn_in=args.burn_in,
        weight_decay=args.weight_decay,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        eval_every=args.steps,
        progress=not args.no_progress,
        extra=extra,
    )


def pretrain_command(args: argparse.Namespace) -> int:
    extra = {
        "kind": "pretrain",
        "backbone": args.backbone,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "train_examples": args.train_examples,
        "val_examples": args.val_examples,
        "no_augment": args.no_augment,
        "bf16": args.bf16,
    }
    from jaxheads.train.commands import announce_init, run_fit
    from jaxheads.train.warm_start import with_init

    def make():
        _, task = build_task(extra, args.seed)
        task, record = with_init(task, args.init)
        announce_init(record)
        if record:
            extra["init"] = {k: record[k] for k in ("path", "sha256")}
        return task, _run_config(args, extra)

    def report(e):
        print(f"held-out ({e['images']} images): top-1 {e['top1']:.4f}, top-5 {e['top5']:.4f}")

    return run_fit("pretrain", "pre-trained", make, args.workdir, report)
