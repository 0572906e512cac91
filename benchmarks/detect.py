"""``jaxheads detect`` throughput: JPEG files on disk to boxes, against darknet.

`measure` times `jaxheads.Detector.detect` on JPEG files of VOC's sizes (500×375
landscape and 375×500 portrait) for yolov2-tiny-voc (random weights, thresh .5), at
batch 1 and batch 16, interleaved (`benchmarks.timing`), and the host work apart:
decoding (Pillow), and darknet's conversion, resize and letterbox (`Detector.prepare`
minus the decoding), each timed alone on one thread. With ``darknet`` (a built
``darknet`` binary, e.g. ``make OPENMP=1`` in a darknet checkout) it also times
darknet's own ``detector test`` on the same files: one process reading the paths from
stdin (its interactive loop), so its network is loaded once; darknet also draws and
writes ``predictions.jpg`` for each image, part of its pipeline.

Commands and run times (2-core CPU): ``python -m benchmarks.detect --quick`` (8 images
at 416, about 2 minutes); ``python -m benchmarks.detect --darknet /path/to/darknet``
(32 images, adds darknet's run). Results: ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np

from benchmarks import timing


def write_jpegs(folder: str, count: int, *, seed: int = 0) -> list[str]:
    """``count`` JPEGs (quality 90) alternating 500×375 and 375×500, with smooth content."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for k in range(count):
        w, h = (500, 375) if k % 2 == 0 else (375, 500)
        yy, xx = np.mgrid[0:h, 0:w] / 500.0
        phase = rng.random(3) * 6
        image = (
            np.stack(
                [
                    np.sin(7 * xx + phase[0]),
                    np.cos(5 * yy + phase[1]),
                    np.sin(4 * (xx + yy) + phase[2]),
                ],
                -1,
            )
            * 0.4
            + 0.5
        )
        image += rng.normal(0, 0.05, image.shape)
        path = os.path.join(folder, f"image_{k:03d}.jpg")
        Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def _host_times(detector, paths: list[str]) -> dict[str, float]:
    """Seconds per image of decoding alone and of reading + letterboxing (one thread)."""
    from jaxheads.predict import read_image

    decode = timing.wall(lambda: [read_image(p) for p in paths]) / len(paths)
    prepare = timing.wall(lambda: [detector.prepare(p) for p in paths]) / len(paths)
    return {
        "decode_s_per_image": decode,
        "resize_s_per_image": max(0.0, prepare - decode),
        "host_s_per_image": prepare,
    }


def _darknet(binary: str, cfg: str, weights: str, paths: list[str]) -> dict[str, float]:
    """darknet's ``detector test`` on ``paths`` in one process: wall seconds per image."""
    from jaxheads.predict import VOC_NAMES

    root = os.path.dirname(os.path.abspath(binary))  # its data/labels/ draw the labels
    with tempfile.TemporaryDirectory() as tmp:
        names = os.path.join(tmp, "voc.names")
        with open(names, "w") as f:
            f.write("\n".join(VOC_NAMES) + "\n")
        data = os.path.join(tmp, "voc.data")
        with open(data, "w") as f:
            f.write(f"classes={len(VOC_NAMES)}\nnames={names}\n")
        stdin = "\n".join(paths[:1] + paths) + "\n"  # the first image warms up
        start = time.perf_counter()
        out = subprocess.run(
            [os.path.abspath(binary), "detector", "test", data, cfg, weights],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=root,
            check=True,
        )
        total = time.perf_counter() - start
    predicted = [
        float(line.rsplit(" in ", 1)[1].split()[0])
        for line in out.stdout.splitlines()
        if "Predicted in" in line
    ]
    if len(predicted) != len(paths) + 1:
        raise RuntimeError(
            f"darknet printed {len(predicted)} 'Predicted in' lines for "
            f"{len(paths) + 1} images:\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
        )
    return {
        "darknet_s_per_image": total / (len(paths) + 1),
        "darknet_network_s_per_image": float(np.median(predicted[1:])),
    }


def measure(
    *,
    count: int = 32,
    image_size: int = 416,
    batch_sizes=(1, 16),
    repeats: int = 3,
    darknet: str | None = None,
    log=print,
) -> dict[str, float]:
    """Images/s from JPEG files to boxes, and where the time goes.

    Returns:
      ``images_per_s_b{B}`` for each batch size, ``decode_s_per_image``,
      ``resize_s_per_image``, ``host_s_per_image``, ``host_fraction_b{B}`` (host work
      over the end-to-end time per image: the share a single-threaded pipeline would
      spend off the network), and with ``darknet``: ``darknet_images_per_s``,
      ``darknet_network_s_per_image`` and ``speedup_vs_darknet_b{B}``.
    """
    from jaxheads import Detector
    from jaxheads import darknet as dn

    figures: dict[str, float] = {"images": count, "image_size": image_size}
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_jpegs(tmp, count)
        net = dn.load("yolov2-tiny-voc", image_size=image_size, seed=0)
        weights = os.path.join(tmp, "random.weights")
        net.save_weights(weights)
        detectors = {
            b: Detector.from_darknet(
                "yolov2-tiny-voc", weights, image_size=image_size, batch_size=b
            )
            for b in batch_sizes
        }
        for b, det in detectors.items():  # compile, outside the timing
            det.detect(paths[: min(b, count)])
        times = timing.interleaved(
            {f"b{b}": (lambda det=det: det.detect(paths)) for b, det in detectors.items()},
            repeats=repeats,
        )
        for b in batch_sizes:
            per_image = timing.median(times[f"b{b}"]) / count
            figures[f"images_per_s_b{b}"] = 1.0 / per_image
            figures[f"s_per_image_b{b}"] = per_image
        figures.update(_host_times(detectors[batch_sizes[0]], paths))
        for b in batch_sizes:
            figures[f"host_fraction_b{b}"] = (
                figures["host_s_per_image"] / figures[f"s_per_image_b{b}"]
            )
        if darknet:
            from jaxheads.darknet import cfg_path

            figures.update(_darknet(darknet, cfg_path("yolov2-tiny-voc"), weights, paths))
            figures["darknet_images_per_s"] = 1.0 / figures["darknet_s_per_image"]
            for b in batch_sizes:
                figures[f"speedup_vs_darknet_b{b}"] = (
                    figures[f"images_per_s_b{b}"] / figures["darknet_images_per_s"]
                )
    figures["load_average_end"] = timing.load_average()[0]
    for key, value in figures.items():
        log(f"{key:32s} {value:.4g}" if isinstance(value, float) else f"{key:32s} {value}")
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.detect",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="8 images, 2 repeats")
    parser.add_argument("--darknet", default=None, help="a darknet binary to time alongside")
    parser.add_argument("--image-size", type=int, default=416)
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    figures = measure(
        count=8 if args.quick else 32,
        repeats=2 if args.quick else 3,
        image_size=args.image_size,
        darknet=args.darknet,
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
