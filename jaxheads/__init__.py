"""jaxheads: detection heads and the layers under them as pure JAX functions.

* `jaxheads.ops` — pure array functions (NHWC, HWIO, Keras weight layouts).
* `jaxheads.layers` — init/apply pairs with shape inference, `serial` and `graph`.
* `jaxheads.nnx` — Flax NNX modules over the layers.
* `jaxheads.summary` — Keras-style parameter tables.
* `jaxheads.Detector` — image files in, boxes out, as darknet's ``detector test``
  (`jaxheads.predict`).
"""

from jaxheads import boxes, layers, ops
from jaxheads.predict import Detector
from jaxheads.summary import summary

__version__ = "0.1.0"

__all__ = ["Detector", "boxes", "layers", "ops", "summary"]
