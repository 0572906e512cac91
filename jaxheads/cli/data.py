"""``jaxheads data``: data sets written to disk (`jaxheads.data.voc_synthetic`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from jaxheads.cli.help import add_command, field_default
from jaxheads.data.voc_synthetic import SyntheticVOC, write_synthetic_voc


def voc_synthetic_command(args: argparse.Namespace) -> int:
    # Every field of the record is a flag of the same name.
    spec = SyntheticVOC(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SyntheticVOC)})
    try:
        ids = write_synthetic_voc(args.out, spec)
    except (OSError, ValueError, ImportError) as err:
        print(f"jaxheads data voc-synthetic: {err}", file=sys.stderr)
        return 2
    sizes = ", ".join(f"{split} {len(names)}" for split, names in ids.items())
    print(
        f"{args.out}: {spec.images} images of {spec.image_size}² ({sizes}); train on it with "
        f"jaxheads train --dataset voc --data-dir {args.out}"
    )
    return 0


def add_commands(sub) -> None:
    """``jaxheads data voc-synthetic``."""
    p = add_command(
        sub,
        "data",
        "write a data set to disk",
        "Write a data set to disk in a format the loaders read.",
    )
    kinds = p.add_subparsers(
        dest="data_command", required=True, metavar="KIND", help="the data set to write"
    )
    v = add_command(
        kinds,
        "voc-synthetic",
        "write the procedural shapes as a small PASCAL VOC set",
        "Write procedural shapes as a VOC2007-layout directory OUT: JPEGImages/*.jpg, "
        "Annotations/*.xml and ImageSets/Main/{train,val,trainval,test}.txt (half train, a "
        "quarter each val and test). Shape k is named as VOC's k-th class (circle: aeroplane, "
        "square: bicycle, triangle: bird, ...). E.g. jaxheads data voc-synthetic "
        "VOCdevkit/VOC2007 --images 64, then jaxheads train --dataset voc --data-dir "
        "VOCdevkit/VOC2007 --model small-yolov2 --image-size 128",
    )
    v.add_argument("out", metavar="OUT", help="the VOC2007-like directory to write")

    def flag(name: str, help: str) -> None:
        default = field_default(SyntheticVOC, name)
        v.add_argument("--" + name.replace("_", "-"), type=int, default=default, help=help)

    flag("images", "images in all (at least 3)")
    flag("image_size", "side of the square images in pixels")
    flag("seed", "picks the scenes")
    flag("num_classes", "shapes drawn, 1..5")
    flag("max_objects", "at most this many shapes per image")
    flag("quality", "JPEG quality, 1..95")
    v.set_defaults(run=voc_synthetic_command)
