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

from jaxheads.bench import timing
from jaxheads.bench.figures import Figure, Figures


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
    # the resize timed on its own (decoded pixels in), not as a difference of two noisy times
    decoded = [read_image(p) for p in paths]
    resize = timing.wall(lambda: [detector.prepare(a) for a in decoded]) / len(paths)
    return {
        "decode_s_per_image": decode,
        "resize_s_per_image": resize,
        "host_s_per_image": decode + resize,
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
        "s_per_image": total / (len(paths) + 1),
        "network_s_per_image": float(np.median(predicted[1:])),
    }


def measure(
    *,
    count: int = 32,
    image_size: int = 416,
    batch_sizes=(1, 16),
    repeats: int = 3,
    darknet: str | None = None,
    log=print,
) -> list[Figure]:
    """Images/s from JPEG files to boxes, and where the time goes (``detect`` figures).

    Returns:
      For jaxheads at each batch size: ``images_per_s``, ``s_per_image`` and
      ``host_fraction`` (host work over the end-to-end time per image: the share a
      single-threaded pipeline would spend off the network); ``decode_s_per_image``,
      ``resize_s_per_image`` and ``host_s_per_image``; with ``darknet``, darknet's
      ``s_per_image``, ``network_s_per_image`` and ``images_per_s``, and the
      ``speedup`` against it at each batch size.
    """
    from jaxheads import Detector
    from jaxheads import darknet as dn

    figures = Figures()

    def add(metric, value, **fields):
        figures.add("detect", metric, value, model="yolov2-tiny-voc", **fields)

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
            {b: (lambda det=det: det.detect(paths)) for b, det in detectors.items()},
            repeats=repeats,
        )
        per_image = {b: timing.median(times[b]) / count for b in batch_sizes}
        host = _host_times(detectors[batch_sizes[0]], paths)
        for b in batch_sizes:
            add("images_per_s", 1.0 / per_image[b], framework="jaxheads", batch=b)
            add("s_per_image", per_image[b], framework="jaxheads", batch=b)
            add(
                "host_fraction",
                host["host_s_per_image"] / per_image[b],
                framework="jaxheads",
                batch=b,
            )
        for metric, value in host.items():
            add(metric, value, framework="jaxheads")
        if darknet:
            from jaxheads.darknet import cfg_path

            found = _darknet(darknet, cfg_path("yolov2-tiny-voc"), weights, paths)
            for metric, value in found.items():
                add(metric, value, framework="darknet")
            darknet_ips = 1.0 / found["s_per_image"]
            add("images_per_s", darknet_ips, framework="darknet")
            for b in batch_sizes:
                add("speedup", 1.0 / per_image[b] / darknet_ips, framework="darknet", batch=b)
    for figure in figures:
        log(f"{figure.label:56s} {figure.value:.4g}")
    return list(figures)


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
    count = 8 if args.quick else 32
    figures = measure(
        count=count,
        repeats=2 if args.quick else 3,
        image_size=args.image_size,
        darknet=args.darknet,
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "images": count,
                    "image_size": args.image_size,
                    "figures": Figures(figures).to_json(),
                    "load_average_end": timing.load_average()[0],
                },
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
