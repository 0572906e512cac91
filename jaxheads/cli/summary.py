"""``jaxheads summary``: Keras' summary table of a built-in model or a darknet cfg."""

from __future__ import annotations

import argparse
import sys

from jaxheads.cli.help import add_command


def summary_command(args: argparse.Namespace) -> int:
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


def add_commands(sub) -> None:
    """``jaxheads summary``."""
    p = add_command(
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
    p.set_defaults(run=summary_command)
