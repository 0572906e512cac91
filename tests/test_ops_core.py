"""The numbers users quote, from the ops' parameter shapes, cross-checked with Keras.

Shapes come from `jax.eval_shape` on `jax.ShapeDtypeStruct`s, so the 800 MB
kernel of a YOLOv1-style ``Flatten → Dense(4096)`` is never allocated; Keras'
``count_params()`` is read from layers built with deferred variables.
"""

import contextlib

import jax
import jax.numpy as jnp
import keras
import numpy as np

# Private, but the only way to discard variables that a StatelessScope deferred:
# otherwise the next scope to close anywhere in the session would initialise them.
from keras.src.backend.common import global_state

from jaxheads.ops import conv2d, dense, flatten, global_avg_pool2d, global_max_pool2d

B = 8  # any batch: nothing is allocated


@contextlib.contextmanager
def keras_numerics():
    """Keras' layers rely on implicit rank promotion; tests/conftest.py forbids it."""
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        yield


def sds(*shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def n_params(*structs) -> int:
    return sum(int(np.prod(s.shape)) for s in structs)


def keras_param_count(layer, input_shape) -> int:
    """Keras' ``count_params()`` after ``build``, without initialising any variable."""
    with keras.StatelessScope(initialize_variables=False), keras_numerics():
        layer.build(input_shape)
    count = layer.count_params()
    ours = {id(v) for v in layer.weights}
    pending = global_state.get_global_attribute("uninitialized_variables", [])
    global_state.set_global_attribute(
        "uninitialized_variables", [v for v in pending if id(v) not in ours]
    )
    return count


def test_percell_dense_4096():
    """Dense(4096) on a [None, 7, 7, 1024] map is per cell: 1024·4096 + 4096."""
    kernel, bias = sds(1024, 4096), sds(4096)
    assert jax.eval_shape(dense, sds(B, 7, 7, 1024), kernel, bias).shape == (B, 7, 7, 4096)
    assert n_params(kernel, bias) == 4_198_400
    layer = keras.layers.Dense(4096)
    assert layer.compute_output_shape((None, 7, 7, 1024)) == (None, 7, 7, 4096)
    assert keras_param_count(layer, (None, 7, 7, 1024)) == 4_198_400


def test_flatten_then_dense_4096():
    """YOLOv1's fully connected head: 7·7·1024 = 50176 inputs to each of 4096 units."""
    flat = jax.eval_shape(flatten, sds(B, 7, 7, 1024))
    assert flat.shape == (B, 50176)
    assert keras.layers.Flatten().compute_output_shape((None, 7, 7, 1024)) == (None, 50176)
    kernel, bias = sds(50176, 4096), sds(4096)
    assert jax.eval_shape(dense, flat, kernel, bias).shape == (B, 4096)
    assert n_params(kernel, bias) == 205_524_992
    assert keras_param_count(keras.layers.Dense(4096), (None, 50176)) == 205_524_992


def test_percell_head_dense_4096_then_dense_30():
    k1, b1, k2, b2 = sds(1024, 4096), sds(4096), sds(4096, 30), sds(30)
    hidden = jax.eval_shape(dense, sds(B, 7, 7, 1024), k1, b1)
    assert jax.eval_shape(dense, hidden, k2, b2).shape == (B, 7, 7, 30)
    assert n_params(k2, b2) == 122_910
    assert n_params(k1, b1, k2, b2) == 4_321_310
    layer = keras.layers.Dense(30)
    assert layer.compute_output_shape((None, 7, 7, 4096)) == (None, 7, 7, 30)
    assert keras_param_count(layer, (None, 7, 7, 4096)) == 122_910


def test_flatten_100_28_28_3():
    assert jax.eval_shape(flatten, sds(100, 28, 28, 3)).shape == (100, 2352)
    assert keras.layers.Flatten().compute_output_shape((100, 28, 28, 3)) == (100, 2352)


def test_global_pools_16_16_16_64():
    for op, layer in (
        (global_avg_pool2d, keras.layers.GlobalAveragePooling2D),
        (global_max_pool2d, keras.layers.GlobalMaxPooling2D),
    ):
        assert jax.eval_shape(op, sds(16, 16, 16, 64)).shape == (16, 64)
        assert layer().compute_output_shape((16, 16, 16, 64)) == (16, 64)
        assert layer(keepdims=True).compute_output_shape((16, 16, 16, 64)) == (16, 1, 1, 64)
        keep = jax.eval_shape(lambda x, op=op: op(x, keepdims=True), sds(16, 16, 16, 64))
        assert keep.shape == (16, 1, 1, 64)
        assert keras_param_count(layer(), (16, 16, 16, 64)) == 0


def test_conv3x3_1024_to_1024_with_bias():
    kernel, bias = sds(3, 3, 1024, 1024), sds(1024)
    same = jax.eval_shape(
        lambda x, k, b: conv2d(x, k, b, padding="same"), sds(B, 13, 13, 1024), kernel, bias
    )
    assert same.shape == (B, 13, 13, 1024)
    assert n_params(kernel, bias) == 9_438_208
    layer = keras.layers.Conv2D(1024, 3, padding="same")
    assert layer.compute_output_shape((None, 13, 13, 1024)) == (None, 13, 13, 1024)
    assert keras_param_count(layer, (None, 13, 13, 1024)) == 9_438_208
