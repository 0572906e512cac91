"""The ``jaxheads`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _summary(args: argparse.Namespace) -> int:
    import os

    from jaxheads import zoo
    from jaxheads.summary import summary

    if args.list:
        for name, desc in zoo.names().items():
            print(f"{name:20s} {desc}")
        return 0
    if args.model is None:
        print("jaxheads summary: expected a model name (see --list)", file=sys.stderr)
        return 2
    try:
        if args.model.endswith(".cfg") or os.path.isfile(args.model):
            from jaxheads.darknet import from_cfg

            model = from_cfg(args.model, image_size=args.image_size, num_classes=args.num_classes)
            layer, shape = model.layer, model.input_shape
        else:
            layer, shape = zoo.build(
                args.model, image_size=args.image_size, num_classes=args.num_classes
            )
    except (OSError, ValueError) as err:
        print(f"jaxheads summary: {err}", file=sys.stderr)
        return 2
    print(summary(layer, shape, expand_nested=args.expand_nested))
    return 0


def _bench(args: argparse.Namespace) -> int:
    # The benchmarks live beside the package in a source checkout (benchmarks/), not in it.
    from pathlib import Path

    import jaxheads

    root = Path(jaxheads.__file__).resolve().parents[1]
    if not (root / "benchmarks" / "bench.py").is_file():
        print(
            f"jaxheads bench: needs the benchmarks/ folder of a source checkout; "
            f"none beside the package in {root}",
            file=sys.stderr,
        )
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.bench import run_from_args

    return run_from_args(args)


#: The sections of ``jaxheads bench`` (``benchmarks/bench.py`` runs them, in this order).
BENCH_SECTIONS = ("train", "e2e", "infer", "evaluate", "scaling", "detect")


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``jaxheads bench``, which ``python -m benchmarks.bench`` takes too.

    They live here because the package cannot import ``benchmarks/`` (a source
    checkout's folder) to build its command line.
    """
    parser.add_argument(
        "--quick", action="store_true", help="reduced sizes: a few minutes on a 2-core CPU"
    )
    parser.add_argument("--json", metavar="PATH", help="write every figure to PATH")
    parser.add_argument(
        "--only",
        metavar="SECTIONS",
        help=f"comma-separated subset of {','.join(BENCH_SECTIONS)}; default: all of them",
    )


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, but not a required flag's or a ``None``: those flags' help
    says what leaving them out means (``(default: None)`` says nothing)."""

    def _get_help_string(self, action):
        if action.default is None or action.required:
            return action.help
        return super()._get_help_string(action)


def _command(sub, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` shows every flag's default."""
    return sub.add_parser(
        name,
        help=summary,
        description=description,
        formatter_class=HelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    from jaxheads import __version__

    parser = argparse.ArgumentParser(
        prog="jaxheads",
        description="Detection heads and layers as pure JAX functions.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"jaxheads {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = _command(
        sub,
        "summary",
        "print a Keras-style summary of a built-in model",
        "Print Keras' summary table (layers, output shapes, parameter counts) of a "
        "built-in model or a darknet .cfg file, computed from shapes alone.",
    )
    p.add_argument(
        "model", nargs="?", help="a built-in model name (see --list) or a darknet .cfg path"
    )
    p.add_argument("--list", action="store_true", help="list the built-in models")
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="square input side in pixels; default: the model's own",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="classes the head predicts; default: the model's own",
    )
    p.add_argument(
        "--expand-nested", action="store_true", help="list the layers inside nested models"
    )
    p.set_defaults(run=_summary)

    from jaxheads.train.commands import add_train_arguments, evaluate_command, train_command

    p = _command(
        sub,
        "train",
        "train a detector (resumes from --workdir)",
        "Train a detector on a dataset, with the batch split over every device; "
        "checkpoints, metrics and the config go to --workdir, and a rerun resumes.",
    )
    add_train_arguments(p)
    p.set_defaults(run=train_command)
    p = _command(
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
    p.set_defaults(run=evaluate_command)

    from jaxheads.train.export import add_export_arguments, export_command

    p = _command(
        sub,
        "export",
        "write a trained darknet model as darknet's .cfg and .weights",
        "Write the newest checkpoint of a 'jaxheads train' run of a darknet model "
        "(e.g. --model yolov2-tiny-voc) as files darknet loads: OUT (.weights: darknet's "
        "header 0.2.0 with seen = steps x batch size, then each layer's floats in "
        "darknet's order) and the cfg beside it (OUT.weights -> OUT.cfg: the model's cfg "
        "with the run's image size and classes). Only darknet models can be exported; "
        "another is refused, naming those that can. E.g. jaxheads export runs/tiny "
        "tiny.weights, then ./darknet detector test DATA tiny.cfg tiny.weights IMAGE",
    )
    add_export_arguments(p)
    p.set_defaults(run=export_command)

    from jaxheads.train.pretrain import add_pretrain_arguments, pretrain_command

    p = _command(
        sub,
        "pretrain",
        "pre-train a backbone on the embedded classification task",
        "Train a backbone with darknet19's classification head (1x1 conv, global "
        "average pool, softmax) on shapes and handwritten digits, report top-1/top-5 "
        "on held-out images, and write a work directory that --init accepts.",
    )
    add_pretrain_arguments(p)
    p.set_defaults(run=pretrain_command)

    from jaxheads.study.cli import add_compare_arguments, compare_command

    p = _command(
        sub,
        "compare",
        "train and compare several heads (a packaged study)",
        "Train every run of a study (several heads on the same backbone and data) "
        "and write results.json, results.md and plots comparing them.",
    )
    add_compare_arguments(p)
    p.set_defaults(run=compare_command)

    from jaxheads.darknet.commands import add_darknet_arguments

    p = _command(
        sub,
        "darknet",
        "darknet file commands (partial: the first N layers)",
        "Darknet .weights file tools: 'partial' writes the first N layers of a file "
        "exactly as darknet's own 'partial' does.",
    )
    add_darknet_arguments(p)

    from jaxheads.predict.command import add_detect_arguments, detect_command

    p = _command(
        sub,
        "detect",
        "boxes on image files, as darknet's 'detector test'",
        "Detect objects in image files, folders or globs with a darknet cfg and "
        "weights or a jaxheads work directory; print darknet's lines, write JSON and "
        "drawn images.",
    )
    add_detect_arguments(p)
    p.set_defaults(run=detect_command)

    p = _command(
        sub,
        "bench",
        "throughput against Keras 3, Flax NNX and the hardware",
        "Measure training and inference throughput against Keras 3 and Flax NNX "
        "(needs the benchmarks/ folder of a source checkout).",
    )
    add_bench_arguments(p)
    p.set_defaults(run=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command as typed, for the records a command writes
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
