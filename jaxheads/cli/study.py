"""``jaxheads compare``: run a study (`jaxheads.study`) and print its table; ``jaxheads analyse``:
question its trained runs (`jaxheads.study.analysis`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import time

from jaxheads import zoo
from jaxheads.cli.help import add_command, add_compilation_cache_arguments
from jaxheads.cli.train import add_devices_argument, add_tensorboard_argument, exit_status
from jaxheads.study.config import ANALYSES, StudyConfig, override
from jaxheads.study.studies import DEFAULT_STUDY


def _add_publish_argument(p: argparse.ArgumentParser, help: str) -> None:
    """``--publish [DIR]``: None when not given, "" when given without its folder."""
    p.add_argument("--publish", nargs="?", const="", default=None, metavar="DIR", help=help)


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``jaxheads compare``; each overrides the study config when given."""
    p.add_argument(
        "--config",
        default=None,
        help=f"a packaged study by name, or a study file by path (default: {DEFAULT_STUDY})",
    )
    p.add_argument(
        "--quick", action="store_true", help="the study's quick profile (a few minutes on a CPU)"
    )
    p.add_argument(
        "--profile",
        default=None,
        help="one of the study's profiles by name (its docstring lists them, e.g. the budget "
        "study's quick, cpu, accelerator); default: full, or quick with --quick",
    )
    p.add_argument("--workdir", default=None, help="default: runs/compare-<study>[-<profile>]")
    p.add_argument("--seed", type=int, default=None, help="the first seed; default: the study's")
    p.add_argument("--seeds", type=int, default=None, help="how many seeds; default: the study's")
    p.add_argument(
        "--heads",
        default=None,
        help="comma-separated row labels to keep (with the pre-training stages they start "
        "from); default: every row",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="override the study's dataset: " + " | ".join(zoo.dataset_names(embedded=True)),
    )
    p.add_argument("--steps", type=int, default=None, help="override the study's training steps")
    p.add_argument(
        "--batch-size", type=int, default=None, help="override the study's global batch size"
    )
    p.add_argument(
        "--image-size", type=int, default=None, help="override the study's image side in pixels"
    )
    add_devices_argument(p)
    p.add_argument(
        "--parallel",
        choices=("jit", "pmap", "shard_map"),
        default=None,
        help="override how each run splits its batch over the devices",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_tensorboard_argument(p)
    _add_publish_argument(
        p,
        "also write the results to commit (results.json with the command, versions, "
        "processor and run time; results.md; the plots; the learning curves as CSV) into "
        "DIR; DIR left out: docs/results/<study>[-quick]",
    )


def _profile(args: argparse.Namespace) -> str:
    """The profile ``--profile`` or ``--quick`` names; ``"full"`` when neither does."""
    if args.quick and args.profile not in (None, "quick"):
        raise ValueError(
            f"jaxheads compare: expected --quick or --profile {args.profile}, got both"
        )
    return args.profile or ("quick" if args.quick else "full")


def _config(module, args: argparse.Namespace) -> StudyConfig:
    config = module.get_config(_profile(args))
    if getattr(args, "argv", None) is not None:
        # results.md quotes the command that made it, with every option it was given
        config = dataclasses.replace(config, command=shlex.join(["jaxheads", *args.argv]))
    heads = [h.strip() for h in (args.heads or "").split(",") if h.strip()]
    return override(
        config,
        seed=args.seed,
        seeds=args.seeds,
        heads=heads,
        dataset=args.dataset,
        steps=args.steps,
        batch_size=args.batch_size,
        image_size=args.image_size,
        num_devices=args.devices,
        parallel=args.parallel,
        tensorboard=args.tensorboard,
    )


def _no_training_options(args: argparse.Namespace, study: str) -> None:
    given = [
        f"--{k.replace('_', '-')}"
        for k in (
            "profile",
            "seed",
            "seeds",
            "heads",
            "dataset",
            "steps",
            "batch_size",
            "image_size",
            "parallel",
        )
        if getattr(args, k) is not None
    ]
    if given:
        raise ValueError(
            f"jaxheads compare: expected no training options for {study} (it trains "
            f"nothing), got {given}"
        )


def compare_command(args: argparse.Namespace) -> int:
    """``jaxheads compare``: runs a study and prints its ``results.md``.

    Failures exit with `jaxheads.cli.train.exit_status`'s codes.
    """
    from jaxheads.train.devices import init_devices

    init_devices(devices=args.devices)
    from jaxheads.study.publish import publish_study, published_dir
    from jaxheads.study.run import run_study
    from jaxheads.study.studies import load_study

    def work() -> int:
        module = load_study(args.config)
        if getattr(module, "get_config", None) is None:
            # A study that trains nothing: it takes no training options.
            name = os.path.splitext(os.path.basename(module.__file__))[0]
            _no_training_options(args, name)
            if args.publish is not None:
                raise ValueError(f"jaxheads compare: {name} writes no results to --publish")
            workdir = args.workdir or os.path.join("runs", f"compare-{name}")
            module.run(workdir, progress=not args.no_progress)
        else:
            config = _config(module, args)
            profile = _profile(args)
            workdir = args.workdir or os.path.join(
                "runs", f"compare-{config.name}" + ("" if profile == "full" else f"-{profile}")
            )
            start = time.perf_counter()
            run_study(config, workdir, progress=not args.no_progress)
            if args.publish is not None:
                dest = args.publish or published_dir(
                    config.name, None if profile == "full" else profile
                )
                publish_study(
                    workdir, dest, command=config.command, seconds=time.perf_counter() - start
                )
                print(f"published: {dest}")
                for name in config.analyses:
                    _, path = _analyse(name, workdir, config, dest=dest, command=config.command)
                    print(f"published: {path}")
        with open(os.path.join(workdir, "results.md")) as f:
            print(f.read())
        print(f"results: {os.path.join(workdir, 'results.md')}")
        return 0

    return exit_status("compare", work)


def _analyse(name: str, workdir: str, study, *, seed: int = 0, dest=None, command=None):
    """``(record, path)``: the analysis ``name`` of a study's runs, and the file it was
    published to in ``dest`` (None: not published)."""
    from jaxheads.study import analysis
    from jaxheads.study.publish import publish_analysis

    start = time.perf_counter()
    record = analysis.measure(name, workdir, study, seed=seed)
    if dest is None:
        return record, None
    seconds = time.perf_counter() - start
    return record, publish_analysis(record, dest, command=command, seconds=seconds)


def analyse_command(args: argparse.Namespace) -> int:
    """Print the Markdown table of one analysis of a study's work directory (and publish it)."""

    def work() -> int:
        from jaxheads.study import analysis
        from jaxheads.study.publish import command_line, published_dir

        dest = None if args.publish is None else args.publish or published_dir(args.study)
        command = command_line(getattr(args, "argv", None))
        record, path = _analyse(
            args.analysis, args.workdir, args.study, seed=args.seed, dest=dest, command=command
        )
        print(analysis.table(record))
        if path is not None:
            print(f"published: {path}")
        return 0

    return exit_status("analyse", work)


def add_commands(sub) -> None:
    """``jaxheads compare`` and ``jaxheads analyse``."""
    p = add_command(
        sub,
        "compare",
        "train and compare several heads (a packaged study)",
        "Train every run of a study (several heads on the same backbone and data) "
        "and write results.json, results.md and plots comparing them.",
    )
    add_compare_arguments(p)
    add_compilation_cache_arguments(p)
    p.set_defaults(run=compare_command)

    p = add_command(
        sub,
        "analyse",
        "question a study's trained heads (gradient terms; do the boxes see the image)",
        "gradients: the global norm of each YOLOv1 loss term's gradient with respect to the "
        "head's parameters at initialisation, for the FC and per-cell heads, from scratch and "
        "from the study's pre-trained backbone (seeds 0-2). dependence: for each trained row, "
        "where its best box lands image by image, and how well its objectness tells the cells "
        "holding an object from the empty ones. Run the study first.",
    )
    p.add_argument(
        "analysis",
        choices=ANALYSES,
        help="which analysis (see above); its Markdown table goes to stdout",
    )
    p.add_argument("--workdir", default="runs/fc_head", help="the study's work directory")
    p.add_argument(
        "--study",
        default="fc_head",
        help="the packaged study whose runs are in --workdir (dependence: any; gradients: "
        "one with a single pre-training stage)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="dependence: the seed whose weights are read"
    )
    _add_publish_argument(
        p,
        "also write the analysis's record (its figures, the command, versions, processor "
        "and run time) to DIR/<analysis>.json, for `jaxheads report` to quote; DIR left out: "
        "docs/results/<study>",
    )
    p.set_defaults(run=analyse_command)
