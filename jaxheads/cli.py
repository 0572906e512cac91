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

            model = from_cfg(args.model, image_size=args.image_size,
                             num_classes=args.num_classes)
            layer, shape = model.layer, model.input_shape
        else:
            layer, shape = zoo.build(args.model, image_size=args.image_size,
                                     num_classes=args.num_classes)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxheads", description="Detection heads and layers as pure JAX functions.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="print a Keras-style summary of a built-in model")
    p.add_argument("model", nargs="?", help="a built-in model name (see --list)")
    p.add_argument("--list", action="store_true", help="list the built-in models")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--expand-nested", action="store_true")
    p.set_defaults(run=_summary)

    from jaxheads.train.commands import add_train_arguments, evaluate_command, train_command

    p = sub.add_parser("train", help="train a detector (resumes from --workdir)")
    add_train_arguments(p)
    p.set_defaults(run=train_command)
    p = sub.add_parser("evaluate", help="VOC and COCO mAP of a trained run")
    p.add_argument("--workdir", required=True)
    p.add_argument("--val-examples", type=int, default=None)
    p.set_defaults(run=evaluate_command)

    from jaxheads.train.pretrain import add_pretrain_arguments, pretrain_command

    p = sub.add_parser("pretrain", help="pre-train a backbone on the embedded classification task",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_pretrain_arguments(p)
    p.set_defaults(run=pretrain_command)

    from jaxheads.compare import add_compare_arguments, compare_command

    p = sub.add_parser("compare", help="train and compare several heads (experiments/*.py)")
    add_compare_arguments(p)
    p.set_defaults(run=compare_command)

    p = sub.add_parser("bench", help="throughput against Keras 3, Flax NNX and the hardware")
    p.add_argument("--quick", action="store_true", help="reduced sizes: minutes on a CPU")
    p.add_argument("--json", metavar="PATH", help="write every figure to PATH")
    p.add_argument(
        "--only",
        metavar="SECTIONS",
        help="comma-separated subset of train,e2e,infer,evaluate,scaling",
    )
    p.set_defaults(run=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
