"""``jaxheads pretrain``: a backbone's classification pre-training (`jaxheads.train.pretrain`).

The flags are parsed into `PretrainExperiment` and `RunConfig`, whose fields give the
flags their defaults.
"""

from __future__ import annotations

import argparse

from jaxheads import zoo
from jaxheads.cli.help import add_command, add_compilation_cache_arguments, field_default
from jaxheads.cli.train import (
    add_optimizer_arguments,
    add_tensorboard_argument,
    announce_init,
    run_fit,
    with_init_record,
)
from jaxheads.train.loop import RunConfig
from jaxheads.train.pretrain import PretrainExperiment


def add_pretrain_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``jaxheads pretrain``; each default is the library's (`RunConfig`,
    `PretrainExperiment`)."""
    p.add_argument("--workdir", required=True, help="checkpoints, metrics and config go here")
    p.add_argument(
        "--backbone",
        default=field_default(PretrainExperiment, "backbone"),
        help="the backbone to pre-train: "
        + " | ".join(zoo.pretrainable())
        + " (the small-* detectors use 'small')",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=field_default(PretrainExperiment, "image_size"),
        help="square image side",
    )
    p.add_argument(
        "--steps", type=int, default=field_default(RunConfig, "steps"), help="training steps"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=field_default(PretrainExperiment, "batch_size"),
        help="the global batch size",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=field_default(RunConfig, "seed"),
        help="data order, augmentation and init",
    )
    add_optimizer_arguments(
        p,
        optimizer="the optimiser",
        policy="learning-rate decay after the warm-up",
        burn_in="warm-up steps",
        weight_decay="sgd/adamw weight decay",
    )
    p.add_argument(
        "--train-examples",
        type=int,
        default=field_default(PretrainExperiment, "train_examples"),
        help="distinct training images",
    )
    p.add_argument(
        "--val-examples",
        type=int,
        default=field_default(PretrainExperiment, "val_examples"),
        help="held-out images",
    )
    p.add_argument("--no-augment", action="store_true", help="no scale/shift/colour jitter")
    p.add_argument("--bf16", action="store_true", help="bfloat16 compute, float32 params")
    p.add_argument(
        "--init",
        default=None,
        metavar="WORKDIR",
        help="start from a pre-training work directory (same backbone); default: random weights",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=field_default(RunConfig, "checkpoint_every"),
        help="steps between saves",
    )
    p.add_argument(
        "--log-every",
        type=int,
        default=field_default(RunConfig, "log_every"),
        help="steps between metric rows",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_tensorboard_argument(p)


def pretrain_command(args: argparse.Namespace) -> int:
    from jaxheads.train.pretrain import build_task
    from jaxheads.train.warm_start import with_init

    def make():
        experiment = PretrainExperiment(
            backbone=args.backbone,
            image_size=args.image_size,
            batch_size=args.batch_size,
            train_examples=args.train_examples,
            val_examples=args.val_examples,
            no_augment=args.no_augment,
            bf16=args.bf16,
        )
        _, task = build_task(experiment, args.seed)
        task, record = with_init(task, args.init)
        announce_init(record)
        run = RunConfig(
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
            tensorboard=args.tensorboard,
            extra=experiment.extra(),
        )
        return task, with_init_record(run, record)

    def report(e):
        print(f"held-out ({e['images']} images): top-1 {e['top1']:.4f}, top-5 {e['top5']:.4f}")

    return run_fit("pretrain", "pre-trained", make, args.workdir, report)


def add_commands(sub) -> None:
    """``jaxheads pretrain``."""
    p = add_command(
        sub,
        "pretrain",
        "pre-train a backbone on the embedded classification task",
        "Train a backbone with darknet19's classification head (1x1 conv, global "
        "average pool, softmax) on shapes and handwritten digits, report top-1/top-5 "
        "on held-out images, and write a work directory that --init accepts.",
    )
    add_pretrain_arguments(p)
    add_compilation_cache_arguments(p)
    p.set_defaults(run=pretrain_command)
