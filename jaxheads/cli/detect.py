"""``jaxheads detect``: darknet's ``detector test`` on image files (`jaxheads.predict`).

::

    jaxheads detect yolov2-tiny-voc.cfg yolov2-tiny-voc.weights data/dog.jpg
    jaxheads detect --workdir runs/shapes images/ --save out/ --json out/boxes.json

For each image it prints ``FILE: WIDTHxHEIGHT, N detections`` and darknet's lines
(``dog: 82%``). An image that cannot be read is reported by name and skipped; the
command then exits with status 1 and the count of skipped images.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from jaxheads.cli.help import (
    HelpFormatter,
    add_command,
    add_compilation_cache_arguments,
    keyword_default,
)
from jaxheads.predict.detector import Detector

_SAVE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def add_detect_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``jaxheads detect``; the defaults are `Detector`'s."""
    p.formatter_class = HelpFormatter
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="ARG",
        help="CFG WEIGHTS IMAGE... for a darknet model (CFG a file or a packaged "
        "name such as yolov2-tiny-voc; WEIGHTS a .weights file or 'random'), "
        "or IMAGE... with --workdir; IMAGE: files, folders or globs",
    )
    p.add_argument(
        "--workdir", default=None, help="a 'jaxheads train' work directory instead of CFG WEIGHTS"
    )
    p.add_argument(
        "--thresh",
        type=float,
        default=keyword_default(Detector.iter_detect, "thresh"),
        help="report a class of a box when objectness x probability exceeds this",
    )
    p.add_argument(
        "--hier-thresh",
        type=float,
        default=keyword_default(Detector.iter_detect, "hier_thresh"),
        help="darknet's threshold in softmax trees (no effect on these models)",
    )
    p.add_argument(
        "--nms",
        type=float,
        default=keyword_default(Detector.iter_detect, "nms"),
        help="IoU above which a box suppresses a lower one of its class; 0: no NMS",
    )
    p.add_argument(
        "--names",
        default=None,
        help="a darknet .names file (default: VOC for 20 classes, COCO for 80, "
        "the data set's for --workdir)",
    )
    p.add_argument(
        "--json",
        metavar="OUT",
        default=None,
        help="write every image's detections (boxes in pixels) to this JSON file",
    )
    p.add_argument(
        "--save",
        metavar="DIR",
        default=None,
        help="write each image with its boxes and labels drawn into DIR",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="darknet models: run at this square input size instead of the cfg's",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=keyword_default(Detector.from_darknet, "batch_size"),
        help="images per network call",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=keyword_default(Detector.iter_detect, "max_pixels"),
        help="refuse images with more pixels than this",
    )
    p.add_argument(
        "--max-model-bytes",
        type=int,
        default=keyword_default(Detector.from_darknet, "max_bytes"),
        help="darknet models: refuse a cfg whose parameters, or activations for one image, "
        "take more bytes than this (counted from the cfg before anything is allocated)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the summary line (and errors)")


def _fail(message: str) -> int:
    print(f"jaxheads detect: {message}", file=sys.stderr)
    return 2


def _check(args: argparse.Namespace) -> str | None:
    """A message for options that cannot run, before any model is built or file written."""
    for name in ("thresh", "hier_thresh", "nms"):
        value = getattr(args, name)
        if not 0 <= value <= 1:
            return f"expected --{name.replace('_', '-')} in [0, 1], got {value}"
    if args.batch_size < 1:
        return f"expected a positive --batch-size, got {args.batch_size}"
    if args.max_pixels < 1:
        return f"expected a positive --max-pixels, got {args.max_pixels}"
    if args.max_model_bytes < 1:
        return f"expected a positive --max-model-bytes, got {args.max_model_bytes}"
    if args.image_size is not None and (args.workdir or args.image_size < 1):
        return (
            "expected --image-size (a positive int) only for a darknet model, got "
            f"{args.image_size}" + (" with --workdir" if args.workdir else "")
        )
    if args.workdir is None and len(args.inputs) < 3:
        return (
            "expected CFG WEIGHTS IMAGE... (or --workdir DIR IMAGE...), got "
            f"{len(args.inputs)} argument(s): {' '.join(args.inputs)}; e.g. "
            "jaxheads detect yolov2-tiny-voc.cfg yolov2-tiny-voc.weights dog.jpg"
        )
    if args.save and os.path.exists(args.save) and not os.path.isdir(args.save):
        return f"expected --save to name a directory, got the file {args.save}"
    if args.json and os.path.isdir(args.json):
        return f"expected --json to name a file, got the directory {args.json}"
    for flag, path in (
        ("--json", args.json and os.path.dirname(os.path.abspath(args.json))),
        ("--save", args.save and os.path.abspath(args.save)),
    ):
        problem = path and _uncreatable(path)
        if problem:
            return f"expected {flag} in a directory that exists or can be made, got {problem}"
    if args.json and os.path.exists(args.json) and not os.access(args.json, os.W_OK):
        return f"expected a writable --json file, got {args.json} (permission denied)"
    return None


def _uncreatable(folder: str) -> str | None:
    """Why ``folder`` can neither be used nor made (its nearest existing ancestor is a
    file, or not writable), or None."""
    ancestor = folder
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        return f"{folder} ({ancestor} is a file)"
    if not os.access(ancestor, os.W_OK):
        return f"{folder} ({ancestor} is not writable)"
    return None


def _save_path(directory: str, source: str | None, index: int, used: set[str]) -> str:
    stem, ext = os.path.splitext(os.path.basename(source or f"image_{index}.png"))
    ext = ext if ext.lower() in _SAVE_EXTENSIONS else ".png"
    name, n = stem + ext, 1
    while name in used:  # two inputs with one name, from different folders
        name, n = f"{stem}_{n}{ext}", n + 1
    used.add(name)
    return os.path.join(directory, name)


def detect_command(args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem:
        return _fail(problem)
    from jaxheads.predict.draw import draw_detections
    from jaxheads.predict.images import ImageError, expand_image_paths, read_image

    try:
        if args.workdir:
            detector = Detector.from_workdir(
                args.workdir, names=args.names, batch_size=args.batch_size
            )
            patterns = args.inputs
        else:
            cfg, weights, *patterns = args.inputs
            detector = Detector.from_darknet(
                cfg,
                None if weights == "random" else weights,
                names=args.names,
                image_size=args.image_size,
                max_bytes=args.max_model_bytes,
                batch_size=args.batch_size,
            )
    except (OSError, ValueError) as err:
        return _fail(str(err))
    paths = expand_image_paths(patterns)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    if args.save:
        try:
            os.makedirs(args.save, exist_ok=True)
        except OSError as err:
            return _fail(f"expected a writable --save directory, got {err}")
    if not args.quiet:
        print(f"{detector!r}: {len(paths)} image(s)")
    records, failed, unsaved, used = [], 0, 0, set()
    start = time.perf_counter()
    for index, record in enumerate(
        detector.iter_detect(
            paths,
            thresh=args.thresh,
            hier_thresh=args.hier_thresh,
            nms=args.nms,
            max_pixels=args.max_pixels,
            skip_errors=True,
        )
    ):
        records.append(record.to_json())
        if record.error is not None:
            failed += 1
            print(f"jaxheads detect: skipping {record.error}", file=sys.stderr)
            continue
        if not args.quiet:
            print(f"{record.source}: {record.width}x{record.height}, {len(record)} detections")
            for line in record.lines():
                print(line)
        if args.save:
            try:
                _, image = read_image(record.source, max_pixels=args.max_pixels, keep_pil=True)
                drawn = draw_detections(
                    image, record.boxes, record.class_ids, record.scores, detector.class_names
                )
                drawn.save(_save_path(args.save, record.source, index, used))
            except (ImageError, OSError, ValueError) as err:
                unsaved += 1
                print(f"jaxheads detect: could not save {record.source}: {err}", file=sys.stderr)
    elapsed = time.perf_counter() - start
    if args.json:
        try:
            with open(args.json, "w") as f:
                json.dump(records, f, indent=1)
        except OSError as err:
            return _fail(f"expected a writable --json file, got {err}")
    summary = f"{len(records) - failed} image(s) in {elapsed:.2f} s"
    if failed:
        summary += f"; {failed} of {len(records)} could not be read (skipped)"
    if unsaved:
        summary += f"; {unsaved} could not be saved"
    print(summary, file=sys.stderr if failed or unsaved else sys.stdout)
    return 1 if failed or unsaved else 0


def add_commands(sub) -> None:
    """``jaxheads detect``."""
    p = add_command(
        sub,
        "detect",
        "boxes on image files, as darknet's 'detector test'",
        "Detect objects in image files, folders or globs with a darknet cfg and "
        "weights or a jaxheads work directory; print darknet's lines, write JSON and "
        "drawn images.",
    )
    add_detect_arguments(p)
    add_compilation_cache_arguments(p)
    p.set_defaults(run=detect_command)
