"""jaxheads: detection heads and the layers under them as pure JAX functions.

* `jaxheads.ops` — pure array functions (NHWC, HWIO, Keras weight layouts).
* `jaxheads.layers` — init/apply pairs with shape inference, `serial` and `graph`.
* `jaxheads.nnx` — Flax NNX modules over the layers (Flax's manners: training until ``.eval()``).
* `jaxheads.linen` — Flax Linen modules over the layers (``params`` / ``batch_stats``).
* `jaxheads.summary` — Keras-style parameter tables, of layers and of any NNX module.
* `jaxheads.Detector` — image files in, boxes out, as darknet's ``detector test``
  (`jaxheads.predict`).
"""

from jaxheads import boxes, layers, ops
from jaxheads.predict import Detector
from jaxheads.summary import summary

__version__ = "0.1.0"

__all__ = ["Detector", "boxes", "layers", "ops", "summary"]
