"""``jaxheads train`` and ``jaxheads evaluate``: detection training from the command line.

The flags are parsed into the library's records, `DetectionExperiment` and `RunConfig`,
whose fields give the flags their defaults; the exit statuses are those every training
command shares (`exit_status`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable

from jaxheads import zoo
from jaxheads.cli.help import add_command, add_compilation_cache_arguments, field_default
from jaxheads.train.detection import DetectionExperiment
from jaxheads.train.loop import RunConfig
from jaxheads.train.workdir import atomic_write


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``jaxheads train``; each default is the library's (`RunConfig`,
    `DetectionExperiment`)."""
    p.add_argument(
        "--model",
        default=field_default(DetectionExperiment, "model"),
        help="a trainable model: small-<head> (e.g. small-yolov2) or a darknet model "
        "(e.g. yolov2-tiny); an unknown name lists them all",
    )
    p.add_argument(
        "--dataset",
        default=field_default(DetectionExperiment, "dataset"),
        help=" | ".join(zoo.dataset_names()) + "; an unknown name lists them all",
    )
    p.add_argument("--workdir", required=True, help="checkpoints, metrics and config go here")
    p.add_argument(
        "--data-dir", default=None, help="VOC root, or COCO image directory (--dataset voc or coco)"
    )
    p.add_argument("--annotations", default=None, help="COCO annotation json (--dataset coco)")
    p.add_argument(
        "--steps",
        type=int,
        default=field_default(RunConfig, "steps"),
        help="the run's length; a larger value extends a finished run whose --policy "
        "is constant or steps (a cosine schedule's length is fixed)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=field_default(DetectionExperiment, "batch_size"),
        help="the global batch size",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=field_default(DetectionExperiment, "image_size"),
        help="square input side in pixels",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=field_default(RunConfig, "seed"),
        help="random seed (initialisation, data order, augmentation)",
    )
    add_devices_argument(p)
    p.add_argument(
        "--parallel",
        choices=("jit", "pmap", "shard_map"),
        default=field_default(RunConfig, "parallel"),
        help="how the batch is split over the devices",
    )
    p.add_argument(
        "--no-sync-bn",
        action="store_true",
        help="per-device batch-norm statistics (pmap/shard_map)",
    )
    add_optimizer_arguments(
        p,
        optimizer="the optax optimiser",
        policy="learning-rate schedule after the burn-in",
        burn_in="steps of darknet-style warm-up (lr scaled by (step / burn_in)^4)",
        weight_decay="L2 weight decay",
    )
    p.add_argument(
        "--clip-norm",
        type=float,
        default=field_default(RunConfig, "clip_norm"),
        help="clip gradients to this global norm",
    )
    p.add_argument("--bf16", action="store_true", help="bfloat16 compute, float32 params")
    p.add_argument(
        "--no-augment", action="store_true", help="turn off the training-data augmentation"
    )
    p.add_argument(
        "--train-examples",
        type=int,
        default=None,
        help="training examples; default: the data set's own (20,000 for shapes and digits)",
    )
    p.add_argument(
        "--val-examples",
        type=int,
        default=field_default(DetectionExperiment, "val_examples"),
        help="validation examples for the evaluation",
    )
    p.add_argument(
        "--loader-processes",
        type=int,
        default=field_default(DetectionExperiment, "loader_processes"),
        help="worker processes that decode and augment the training images (0: threads of "
        "this process); the same batches whatever the number, so a run may resume with "
        "another; pays for image files on a machine with spare cores",
    )
    p.add_argument(
        "--augment-on-device",
        action="store_true",
        help="resize and augment the training images on the accelerator, not the host "
        "(which then only decodes them): other pixels than the host augmentation's, the "
        "same kinds of draws; for image files feeding a GPU or TPU",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=field_default(RunConfig, "checkpoint_every"),
        help="steps between checkpoints",
    )
    p.add_argument(
        "--log-every",
        type=int,
        default=field_default(RunConfig, "log_every"),
        help="steps between metrics lines",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=field_default(RunConfig, "eval_every"),
        help="0: evaluate at the end only",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_tensorboard_argument(p)
    p.add_argument(
        "--init",
        default=None,
        metavar="PATH",
        help="start from these weights, matched by layer name with shapes checked: "
        "a jaxheads work directory (e.g. of 'jaxheads pretrain'), a darknet "
        ".weights file (full or partial; darknet models) or a Keras file; default: random "
        "weights",
    )
    p.add_argument(
        "--freeze",
        type=int,
        default=field_default(RunConfig, "freeze"),
        metavar="N",
        help="keep the first N layers fixed (their batch-norm statistics too)",
    )
    p.add_argument(
        "--train-frozen-bn",
        action="store_true",
        help="with --freeze: let the frozen layers' batch-norm statistics update",
    )
    p.add_argument(
        "--coordinator-address",
        default=None,
        help="multi-process: host:port of process 0 (or JAX_COORDINATOR_ADDRESS); "
        "default: one process",
    )
    p.add_argument(
        "--num-processes",
        type=int,
        default=None,
        help="multi-process: the number of processes; default: as jax.distributed finds it",
    )
    p.add_argument(
        "--process-id",
        type=int,
        default=None,
        help="multi-process: this process's index; default: as jax.distributed finds it",
    )


def add_devices_argument(p: argparse.ArgumentParser) -> None:
    """``--devices N`` (also of ``jaxheads compare``)."""
    p.add_argument(
        "--devices",
        type=int,
        default=None,
        help="use N devices (on CPU, N host devices are forced); default: every device jax sees",
    )


def add_tensorboard_argument(p: argparse.ArgumentParser) -> None:
    """``--tensorboard`` / ``--no-tensorboard`` (also of ``jaxheads pretrain`` and ``compare``)."""
    p.add_argument(
        "--tensorboard",
        action=argparse.BooleanOptionalAction,
        default=field_default(RunConfig, "tensorboard"),
        help="write metrics.jsonl's rows as TensorBoard event files in WORKDIR/tensorboard/ "
        "(needs tensorboardX: pip install 'jaxheads[tensorboard]'); default: when "
        "tensorboardX is installed",
    )


def add_optimizer_arguments(
    p: argparse.ArgumentParser, *, optimizer: str, policy: str, burn_in: str, weight_decay: str
) -> None:
    """The optimiser's flags (also of ``jaxheads pretrain``), with each command's help."""
    p.add_argument(
        "--optimizer",
        choices=("sgd", "adam", "adamw"),
        default=field_default(RunConfig, "optimizer"),
        help=optimizer,
    )
    p.add_argument(
        "--lr",
        type=float,
        default=field_default(RunConfig, "learning_rate"),
        help="peak learning rate",
    )
    p.add_argument(
        "--policy",
        choices=("constant", "steps", "cosine"),
        default=field_default(RunConfig, "policy"),
        help=policy,
    )
    p.add_argument("--burn-in", type=int, default=field_default(RunConfig, "burn_in"), help=burn_in)
    p.add_argument(
        "--weight-decay",
        type=float,
        default=field_default(RunConfig, "weight_decay"),
        help=weight_decay,
    )


# (flag, smallest value): integers a command line must give within range.
_INT_ARGS = (
    ("steps", 1),
    ("batch_size", 1),
    ("image_size", 1),
    ("devices", 1),
    ("train_examples", 1),
    ("val_examples", 1),
    ("loader_processes", 0),
    ("checkpoint_every", 1),
    ("log_every", 1),
    ("eval_every", 0),
    ("burn_in", 0),
    ("num_processes", 1),
    ("freeze", 0),
    ("process_id", 0),
)
_FLOAT_ARGS = (("lr", 0.0, False), ("weight_decay", 0.0, False), ("clip_norm", 0.0, True))


def check_train_arguments(args: argparse.Namespace) -> None:
    """Refuses out-of-range or non-finite options with a ValueError naming the flag.

    Runs before jax starts and before anything is written, so the corrected command
    is accepted as a new run. ``None`` means "not given" (a default is used).
    """
    for name, lo in _INT_ARGS:
        value = getattr(args, name, None)
        if value is not None and value < lo:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag}: expected an integer >= {lo}, got {value}")
    for name, lo, strict in _FLOAT_ARGS:
        value = getattr(args, name, None)
        if value is not None and (
            not math.isfinite(value) or value < lo or (strict and value == lo)
        ):
            flag = "--" + name.replace("_", "-")
            raise ValueError(
                f"{flag}: expected a finite number {'>' if strict else '>='} {lo}, got {value}"
            )
    if args.devices and args.batch_size % args.devices:
        raise ValueError(
            f"--batch-size: expected a global batch size divisible by the "
            f"{args.devices} devices (--devices), got {args.batch_size}"
        )


def _train_records(args: argparse.Namespace) -> tuple[DetectionExperiment, RunConfig]:
    """The experiment and the run ``jaxheads train``'s flags describe (the run's checks)."""
    experiment = DetectionExperiment(
        model=args.model,
        dataset=args.dataset,
        data_dir=args.data_dir,
        annotations=args.annotations,
        batch_size=args.batch_size,
        image_size=args.image_size,
        bf16=args.bf16,
        no_augment=args.no_augment,
        train_examples=args.train_examples,
        val_examples=args.val_examples,
        loader_processes=args.loader_processes,
        augment_on_device=args.augment_on_device,
    )
    run = RunConfig(
        workdir=args.workdir,
        steps=args.steps,
        seed=args.seed,
        parallel=args.parallel,
        num_devices=args.devices,
        sync_batch_norm=not args.no_sync_bn,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        policy=args.policy,
        burn_in=args.burn_in,
        weight_decay=args.weight_decay,
        clip_norm=args.clip_norm,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        eval_every=args.eval_every or args.steps,
        progress=not args.no_progress,
        tensorboard=args.tensorboard,
        freeze=args.freeze,
        freeze_bn_stats=not args.train_frozen_bn,
        extra=dataclasses.asdict(experiment),
    )
    return experiment, run


def with_init_record(run: RunConfig, record: dict | None) -> RunConfig:
    """``run`` whose ``extra`` names the weights ``--init`` copied (path and checksum)."""
    if not record:
        return run
    return dataclasses.replace(
        run, extra={**run.extra, "init": {k: record[k] for k in ("path", "sha256")}}
    )


def print_eval(result: dict, file=None) -> None:
    from jaxheads.train.metric_table import format_accuracy

    for line in format_accuracy(result):
        print(line, file=file or sys.stdout)


def announce_init(record: dict | None) -> None:
    """Says what ``--init`` copied (`jaxheads.train.warm_start.with_init`'s record)."""
    if record:
        print(
            f"--init: {record['layers_copied']} layers from {record['path']}; initialised: "
            f"{', '.join(record['layers_initialised']) or 'none'}"
        )


def exit_status(command: str, work: Callable[[], int]) -> int:
    """Runs a command's ``work``; its exit status, a known failure as one line on stderr.

    The statuses every training command shares (``train``, ``pretrain``, ``compare``):
    2 for bad input (a ``ValueError`` or a missing file), 3 for a run that diverged
    (its last good checkpoint kept), 4 for a checkpoint that could not be written (a
    full disk: the earlier checkpoints are kept and the same command resumes), 5 when
    another process of a multi-process run stopped (this one then exits at once: JAX's
    shutdown would wait for the lost process and abort), 130 when interrupted. The
    line starts ``jaxheads <command>:`` (once).

    >>> exit_status("train", lambda: int("seven"))
    2
    """
    from jaxheads.train.checkpoints import CheckpointWriteError
    from jaxheads.train.loop import PeerLost, TrainingDiverged

    try:
        return work()
    except PeerLost as err:
        print(f"jaxheads {command}: {err}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(5)
    except (ValueError, FileNotFoundError) as err:
        status, message = 2, str(err)
    except TrainingDiverged as err:
        status, message = 3, str(err)
    except CheckpointWriteError as err:
        status, message = 4, str(err)
    except KeyboardInterrupt as err:
        status, message = 130, str(err) or "interrupted"
    prefix = f"jaxheads {command}"
    print(message if message.startswith(prefix) else f"{prefix}: {message}", file=sys.stderr)
    return status


def run_fit(
    command: str, verb: str, make: Callable[[], tuple], workdir: str, report: Callable[[dict], None]
) -> int:
    """Builds ``(task, run_config)`` with ``make``, trains, reports; the exit status.

    Errors in building or training are one line on stderr, with `exit_status`'s codes.
    """
    from jaxheads.train.loop import fit

    def work() -> int:
        task, cfg = make()
        result = fit(task, cfg)
        if result["status"] == "interrupted":
            print(
                f"interrupted at step {result['step']}; checkpoint saved in {workdir} "
                "(run the same command to resume)"
            )
            return 0
        loss = result["loss"]
        print(
            f"{verb} {result['step']} steps; final loss "
            f"{'not logged' if math.isnan(loss) else f'{loss:.4f}'}"
        )
        if result["eval"]:
            report(result["eval"])
        return 0

    return exit_status(command, work)


def train_command(args: argparse.Namespace) -> int:
    try:
        check_train_arguments(args)
    except ValueError as err:
        print(f"jaxheads train: {err}", file=sys.stderr)
        return 2
    from jaxheads.train.devices import init_devices

    init_devices(
        devices=args.devices,
        coordinator_address=args.coordinator_address,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )
    from jaxheads.train.detection import build_experiment
    from jaxheads.train.warm_start import with_init

    def make():
        experiment, run = _train_records(args)
        detector, task, _ = build_experiment(experiment, run.seed)
        task, init = with_init(
            task,
            args.init,
            model=experiment.model,
            image_size=experiment.image_size,
            num_classes=detector.head.num_classes,
        )
        announce_init(init)
        return task, with_init_record(run, init)

    return run_fit("train", "trained", make, args.workdir, print_eval)


def evaluate_command(args: argparse.Namespace) -> int:
    from jaxheads.train.restore import evaluate_run

    if args.json is not None and (
        not args.json.endswith(".json")
        or os.path.isdir(args.json)
        or not os.path.isdir(os.path.dirname(os.path.abspath(args.json)))
    ):
        print(
            "jaxheads evaluate: expected --json to name a .json file in an existing folder, "
            f"got {args.json}",
            file=sys.stderr,
        )
        return 2

    try:
        experiment, step, result = evaluate_run(args.workdir, val_examples=args.val_examples)
    except (ValueError, FileNotFoundError) as err:
        print(f"jaxheads evaluate: {err}", file=sys.stderr)
        return 2
    print(
        f"{experiment.model} on {experiment.dataset} (val, "
        f"{result['images']} images), checkpoint step {step}"
    )
    print_eval(result)
    if args.json is not None:
        record = {"model": experiment.model, "dataset": experiment.dataset}
        record |= {"checkpoint_step": step, **result}
        try:
            atomic_write(os.path.abspath(args.json), json.dumps(record, indent=1, allow_nan=False))
        except OSError as err:
            print(f"jaxheads evaluate: could not write --json {args.json}: {err}", file=sys.stderr)
            return 2
    return 0


def add_commands(sub) -> None:
    """``jaxheads train`` and ``jaxheads evaluate``."""
    p = add_command(
        sub,
        "train",
        "train a detector (resumes from --workdir)",
        "Train a detector on a dataset, with the batch split over every device; "
        "checkpoints, metrics and the config go to --workdir, and a rerun resumes.",
    )
    add_train_arguments(p)
    add_compilation_cache_arguments(p)
    p.set_defaults(run=train_command)
    p = add_command(
        sub,
        "evaluate",
        "VOC and COCO mAP of a trained run",
        "Evaluate the latest checkpoint of a training run: VOC and COCO mean "
        "average precision on its dataset's validation split.",
    )
    p.add_argument("--workdir", required=True, help="the training run's --workdir")
    p.add_argument(
        "--val-examples", type=int, default=None, help="validation examples; default: the run's own"
    )
    p.add_argument(
        "--json",
        metavar="OUT",
        default=None,
        help="also write the metrics to this .json file (strict JSON: a metric with nothing "
        "to measure, such as a class absent from the split, is null)",
    )
    add_compilation_cache_arguments(p)
    p.set_defaults(run=evaluate_command)
