"""``jaxheads train`` and ``jaxheads evaluate``: detection training from the command line."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``jaxheads train`` (also used by ``jaxheads compare``)."""
    p.add_argument(
        "--model",
        default="small-yolov2",
        help="a trainable model: small-<head> (e.g. small-yolov2) or a darknet model "
        "(e.g. yolov2-tiny); an unknown name lists them all",
    )
    p.add_argument("--dataset", default="shapes", help="shapes | digits | voc | coco")
    p.add_argument("--workdir", required=True, help="checkpoints, metrics and config go here")
    p.add_argument(
        "--data-dir", default=None, help="VOC root, or COCO image directory (--dataset voc or coco)"
    )
    p.add_argument("--annotations", default=None, help="COCO annotation json (--dataset coco)")
    p.add_argument(
        "--steps",
        type=int,
        default=1000,
        help="the run's length; a larger value extends a finished run whose --policy "
        "is constant or steps (a cosine schedule's length is fixed)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="the global batch size")
    p.add_argument("--image-size", type=int, default=96, help="square input side in pixels")
    p.add_argument(
        "--seed", type=int, default=0, help="random seed (initialisation, data order, augmentation)"
    )
    p.add_argument(
        "--devices",
        type=int,
        default=None,
        help="use N devices (on CPU, N host devices are forced); default: every device jax sees",
    )
    p.add_argument(
        "--parallel",
        choices=("jit", "pmap", "shard_map"),
        default="jit",
        help="how the batch is split over the devices",
    )
    p.add_argument(
        "--no-sync-bn",
        action="store_true",
        help="per-device batch-norm statistics (pmap/shard_map)",
    )
    p.add_argument(
        "--optimizer", choices=("sgd", "adam", "adamw"), default="adam", help="the optax optimiser"
    )
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument(
        "--policy",
        choices=("constant", "steps", "cosine"),
        default="cosine",
        help="learning-rate schedule after the burn-in",
    )
    p.add_argument(
        "--burn-in",
        type=int,
        default=100,
        help="steps of darknet-style warm-up (lr scaled by (step / burn_in)^4)",
    )
    p.add_argument("--weight-decay", type=float, default=5e-4, help="L2 weight decay")
    p.add_argument(
        "--clip-norm", type=float, default=10.0, help="clip gradients to this global norm"
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
        "--val-examples", type=int, default=256, help="validation examples for the evaluation"
    )
    p.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints")
    p.add_argument("--log-every", type=int, default=10, help="steps between metrics lines")
    p.add_argument("--eval-every", type=int, default=0, help="0: evaluate at the end only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
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
        default=0,
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


# (flag, smallest value): integers a command line must give within range.
_INT_ARGS = (
    ("steps", 1),
    ("batch_size", 1),
    ("image_size", 1),
    ("devices", 1),
    ("train_examples", 1),
    ("val_examples", 1),
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


def start_jax(args: argparse.Namespace) -> None:
    """Device forcing and multi-process start-up: must run before jax picks its devices."""
    init_devices(
        devices=args.devices,
        coordinator_address=args.coordinator_address,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )


def init_devices(
    *,
    devices: int | None = None,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Forces ``devices`` CPU devices and starts multi-process JAX; before jax picks devices."""
    import jax

    if devices:
        # Only affects the CPU backend; accelerators are selected from what exists.
        jax.config.update("jax_num_cpu_devices", devices)
    address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if address or num_processes:
        # Collectives between CPU processes (only the CPU backend reads this). Nothing may
        # touch the backends before initialize(): not even jax.default_backend().
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(address, num_processes=num_processes, process_id=process_id)


def _experiment(args: argparse.Namespace):
    """Builds model, datasets and task; raises ValueError before anything is written."""
    import jax.numpy as jnp

    from jaxheads.train.detection import build_detector, detection_task, make_dataset

    common = {
        "image_size": args.image_size,
        "seed": args.seed,
        "data_dir": args.data_dir,
        "annotations": args.annotations,
    }
    train = make_dataset(args.dataset, "train", num_examples=args.train_examples, **common)
    val = make_dataset(args.dataset, "val", num_examples=args.val_examples, **common)
    detector, init = build_detector(
        args.model, image_size=args.image_size, num_classes=train.num_classes
    )
    task = detection_task(
        detector,
        init,
        train,
        batch_size=args.batch_size,
        seed=args.seed,
        augment=not args.no_augment,
        val_data=val,
        compute_dtype=jnp.bfloat16 if args.bf16 else jnp.float32,
    )
    return detector, task, val


def _run_config(args: argparse.Namespace, init: dict | None = None):
    from jaxheads.train.loop import RunConfig

    experiment = {
        k: getattr(args, k)
        for k in (
            "model",
            "dataset",
            "data_dir",
            "annotations",
            "batch_size",
            "image_size",
            "bf16",
            "no_augment",
            "train_examples",
            "val_examples",
        )
    }
    if init:
        experiment["init"] = {k: init[k] for k in ("path", "sha256")}
    return RunConfig(
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
        freeze=getattr(args, "freeze", 0) or 0,
        freeze_bn_stats=not getattr(args, "train_frozen_bn", False),
        extra=experiment,
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
    full disk: the earlier checkpoints are kept and the same command resumes), 130
    when interrupted. The line starts ``jaxheads <command>:`` (once).

    >>> exit_status("train", lambda: int("seven"))
    2
    """
    from jaxheads.train.checkpoints import CheckpointWriteError
    from jaxheads.train.loop import TrainingDiverged

    try:
        return work()
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
    start_jax(args)
    from jaxheads.train.warm_start import with_init

    def make():
        _run_config(args)  # the settings' own checks, before the weights are read
        detector, task, _ = _experiment(args)
        task, init = with_init(
            task,
            args.init,
            model=args.model,
            image_size=args.image_size,
            num_classes=detector.head.num_classes,
        )
        announce_init(init)
        return task, _run_config(args, init)

    return run_fit("train", "trained", make, args.workdir, print_eval)


def evaluate_command(args: argparse.Namespace) -> int:
    path = os.path.join(args.workdir, "config.json")
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        print(f"jaxheads evaluate: expected a run's config at {path}, got {err}", file=sys.stderr)
        return 2
    ns = argparse.Namespace(
        **saved["extra"],
        seed=saved["seed"],
        devices=None,
        coordinator_address=None,
        num_processes=None,
        process_id=None,
        workdir=args.workdir,
    )
    if args.val_examples:
        ns.val_examples = args.val_examples
    start_jax(ns)
    from jaxheads.train.detection import evaluate
    from jaxheads.train.loop import RunConfig, restore_params

    try:
        detector, task, val = _experiment(ns)
        cfg = RunConfig(
            **{k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items()}
            | {"workdir": args.workdir}
        )
        params, state, step = restore_params(args.workdir, task, cfg)
        result = evaluate(detector, params, state, val)
    except (ValueError, FileNotFoundError) as err:
        print(f"jaxheads evaluate: {err}", file=sys.stderr)
        return 2
    print(
        f"{saved['extra']['model']} on {saved['extra']['dataset']} (val, "
        f"{result['images']} images), checkpoint step {step}"
    )
    print_eval(result)
    return 0
