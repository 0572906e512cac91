"""Weights from and to other frameworks, as `jaxheads.layers` ``(layer, params, state)`` triples.

* `from_keras` — a Keras 3 model (object or ``.keras`` file), Sequential or
  functional, to a `jaxheads.layers` graph with its weights.
* `to_keras` — back: a graph of those layers, with its weights, as a Keras 3
  functional model.
* `from_yad2k` — YAD2K's converted YOLOv2 (``yolo.h5``, Keras 2 HDF5) to the
  darknet YOLOv2 graph with TensorFlow's ``space_to_depth`` passthrough.

Keras and h5py are optional (``pip install jaxheads[interop]``): they are
imported only when one of these functions is called.
"""

from jaxheads.interop.keras import from_keras
from jaxheads.interop.keras_export import to_keras
from jaxheads.interop.yad2k import from_yad2k

__all__ = ["from_keras", "from_yad2k", "to_keras"]
