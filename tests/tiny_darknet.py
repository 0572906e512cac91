"""Two tiny darknet cfgs (a [region] and a [detection] model) and weights files for them."""

import jax
import numpy as np

from jaxheads import darknet

REGION_CFG = """
[net]
width=48
height=40
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=16
size=1
stride=1
pad=1
activation=linear

[region]
anchors = 1.0,1.5, 2.5,2.0
classes=3
num=2
softmax=1
coords=4
"""

DETECTION_CFG = """
[net]
width=32
height=32
channels=3

[convolutional]
filters=4
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[connected]
output=108
activation=linear

[detection]
classes=2
coords=4
side=3
num=2
softmax=1
sqrt=1
"""


def tiny_darknet(tmp_path, text, name, *, objectness_bias=None, class_bias=None, kernel_scale=1.0):
    """A cfg file and a .weights file for it: random weights; for the region cfg the last
    kernel optionally scaled (more varied outputs) and biases raised (more detections)."""
    cfg = tmp_path / f"{name}.cfg"
    cfg.write_text(text)
    net = darknet.load(cfg, seed=5)
    if objectness_bias is not None:
        last = [k for k in net.params if k.endswith("_convolutional")][-1]
        bias = np.array(net.params[last]["bias"])
        bias[4::8] += objectness_bias  # to of each anchor (5 + 3 classes per anchor)
        bias[5::8] += class_bias
        params = dict(net.params)
        params[last] = {
            "kernel": net.params[last]["kernel"] * kernel_scale,
            "bias": jax.numpy.asarray(bias),
        }
        net = darknet.DarknetNet(net.model, params, net.state)
    weights = tmp_path / f"{name}.weights"
    net.save_weights(weights)
    return str(cfg), str(weights), net
