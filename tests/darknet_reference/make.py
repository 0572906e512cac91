"""Writes this folder: two tiny darknet models, three PNGs and darknet's own detections.

``darknet.json`` is what darknet itself (pjreddie/darknet, built with
``make OPTS="-O2 -fcommon"``) gives for each model and image: ``boxes.c`` (beside
this file) runs the steps of darknet's ``test_detector`` (``load_image_color``,
``letterbox_image``, ``network_predict``, ``get_network_boxes(..., relative=1)``,
``do_nms_sort``) and prints every box and class above the threshold at full
precision instead of drawing it. tests/test_predict.py
compares `jaxheads.Detector` with it.

    gcc -O2 -I$DARKNET/include boxes.c -L$DARKNET -ldarknet -lm -pthread -o /tmp/boxes
    python tests/darknet_reference/make.py /tmp/boxes  # from the repository root

The weights are random (``tiny_darknet``; the region model's last kernel ×4, so that its
boxes are large and overlap: NMS removes 63 of darknet's 230 boxes above the
threshold); they are stored, so the test does not depend on how a jax version draws
random numbers.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from tiny_darknet import DETECTION_CFG, REGION_CFG, tiny_darknet  # noqa: E402

# (name, cfg, threshold, images): darknet's [detection] boxes stay on the letterboxed
# input, so only the square image is compared for it (there both agree); its
# get_detection_detections multiplies them by the (w, h) it is given (the image's size
# in detector test, 1 in darknet's own YOLOv1 `yolo test`), so they are in pixels here.
MODELS = [
    ("region", REGION_CFG, 0.5, ["landscape.png", "portrait.png", "square.png"]),
    ("detection", DETECTION_CFG, 0.1, ["square.png"]),
]
IMAGES = {"landscape.png": (53, 31, 1), "portrait.png": (29, 61, 2), "square.png": (40, 40, 3)}
HIER, NMS = 0.5, 0.45


def main(harness: str) -> None:
    for name, (w, h, seed) in IMAGES.items():
        rng = np.random.default_rng(seed)
        # smooth colour fields plus noise: varied outputs, still compressible
        yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
        base = np.stack([np.sin(6 * xx + rng.random() * 6), np.cos(5 * yy), xx * yy], -1)
        image = np.clip(0.5 + 0.4 * base + rng.normal(0, 0.1, base.shape), 0, 1)
        Image.fromarray((image * 255).round().astype(np.uint8)).save(HERE / name)
    out = {}
    for name, text, thresh, images in MODELS:
        kw = {"objectness_bias": 0.0, "class_bias": 0.0, "kernel_scale": 4.0}
        cfg, weights, _ = tiny_darknet(HERE, text, name, **(kw if name == "region" else {}))
        run = subprocess.run(
            [harness, cfg, weights, str(thresh), str(HIER), str(NMS), *images],
            cwd=HERE,
            check=True,
            capture_output=True,
            text=True,
        )
        out[name] = {
            "thresh": thresh,
            "hier_thresh": HIER,
            "nms": NMS,
            "images": json.loads(run.stdout),
        }
    text = json.dumps(out, indent=1)
    # one detection per line
    text = re.sub(r"\{\n\s+\"class_id\"[^}]*\}", lambda m: " ".join(m.group().split()), text)
    (HERE / "darknet.json").write_text(text + "\n")
    print({m: sum(len(i["detections"]) for i in v["images"]) for m, v in out.items()})


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]))
