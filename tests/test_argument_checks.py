"""Layer constructors and ops refuse bad sizes, strides, rates and epsilons when called,
with the library's ValueError, instead of crashing later inside numpy or XLA."""

import jax.numpy as jnp
import pytest

from jaxheads import layers as L
from jaxheads import ops
from jaxheads.nms import nms

BAD_SIZES = [0, -1, 2.0, 1.5, None, "3", True]


@pytest.mark.parametrize("value", BAD_SIZES)
@pytest.mark.parametrize(
    "make,name",
    [
        (lambda v: L.Dense(v), "Dense: expected features"),
        (lambda v: L.Conv2D(v, 3), "Conv2D: expected filters"),
        (lambda v: L.Conv2D(4, v), "Conv2D: expected kernel_size"),
        (lambda v: L.Conv2D(4, 3, strides=v), "Conv2D: expected strides"),
        (lambda v: L.Conv2D(4, 3, dilation_rate=v), "Conv2D: expected dilation_rate"),
        (lambda v: L.Conv2D(4, 3, groups=v), "Conv2D: expected groups"),
        (lambda v: L.MaxPooling2D(v), "MaxPooling2D: expected pool_size"),
        (
            lambda v: L.MaxPooling2D(2, strides=v) if v is not None else L.MaxPooling2D(v),
            "MaxPooling2D: expected (strides|pool_size)",
        ),
        (lambda v: L.AveragePooling2D(v), "AveragePooling2D: expected pool_size"),
        (lambda v: L.SpaceToDepth(v), "SpaceToDepth: expected block_size"),
        (lambda v: L.DarknetReorg(v), "DarknetReorg: expected stride"),
        (lambda v: L.LocallyConnected2D(v, 3), "LocallyConnected2D: expected filters"),
        (lambda v: L.LocallyConnected2D(4, v), "LocallyConnected2D: expected kernel_size"),
        (lambda v: L.ConvLSTM2D(v, 3), "ConvLSTM2D: expected filters"),
        (lambda v: L.ConvLSTM2D(4, 3, strides=v), "ConvLSTM2D: expected strides"),
        (lambda v: L.Reshape((v, 2)), "Reshape: expected target_shape"),
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_layer_constructors_refuse_bad_sizes(make, name, value):
    with pytest.raises(ValueError, match=name):
        make(value)


def test_conv2d_filters_must_divide_into_groups():
    with pytest.raises(ValueError, match="Conv2D: expected filters divisible by groups=2, got 3"):
        L.Conv2D(3, 1, groups=2)


@pytest.mark.parametrize("epsilon", [0, -1, -1e-3, float("nan"), float("inf"), "1e-3", None])
def test_batch_normalization_epsilon_must_be_positive_and_finite(epsilon):
    with pytest.raises(
        ValueError,
        match="BatchNormalization: expected epsilon to be a finite "
        r"number in \(0, inf\]",
    ):
        L.BatchNormalization(epsilon=epsilon)
    if epsilon == 0:
        return  # the ops allow 0 (closed forms with a known positive variance)
    x = jnp.ones((2, 3))
    c = jnp.ones((3,))
    with pytest.raises(ValueError, match="batch_norm: expected epsilon"):
        ops.batch_norm(x, c, c, c, c, epsilon=epsilon)
    with pytest.raises(ValueError, match="batch_norm_train: expected epsilon"):
        ops.batch_norm_train(x, c, c, epsilon=epsilon)


@pytest.mark.parametrize("momentum", [-0.1, 1.5, float("nan"), "0.9"])
def test_batch_normalization_momentum_in_unit_interval(momentum):
    with pytest.raises(ValueError, match="BatchNormalization: expected momentum"):
        L.BatchNormalization(momentum=momentum)


@pytest.mark.parametrize("slope", [float("nan"), float("inf"), "0.1", None])
def test_leaky_relu_slope_is_a_finite_number(slope):
    with pytest.raises(ValueError, match="LeakyReLU: expected negative_slope"):
        L.LeakyReLU(slope)
    with pytest.raises(ValueError, match="leaky_relu: expected negative_slope"):
        ops.leaky_relu(jnp.ones(3), slope)


@pytest.mark.parametrize("rate", [float("nan"), -0.5, 1.5, True, "0.5"])
def test_dropout_rate(rate):
    with pytest.raises(ValueError, match="Dropout: expected rate"):
        L.Dropout(rate)


@pytest.mark.parametrize("value", [2.0, 1.5, (2.0, 2), "2", None])
def test_ops_refuse_float_strides_and_pool_sizes(value):
    x = jnp.ones((1, 8, 8, 4))
    with pytest.raises(ValueError, match="max_pool2d: expected pool_size"):
        ops.max_pool2d(x, value)
    with pytest.raises(ValueError, match="avg_pool2d: expected pool_size"):
        ops.avg_pool2d(x, value)
    with pytest.raises(ValueError, match="max_pool2d: expected strides"):
        ops.max_pool2d(x, 2, value) if value is not None else ops.max_pool2d(x, 2, 0)
    with pytest.raises(ValueError, match="conv2d: expected strides"):
        ops.conv2d(x, jnp.ones((3, 3, 4, 2)), strides=value)
    with pytest.raises(ValueError, match="conv2d: expected dilation"):
        ops.conv2d(x, jnp.ones((3, 3, 4, 2)), dilation=value)
    with pytest.raises(ValueError, match="locally_connected2d: expected strides"):
        ops.locally_connected2d(x, jnp.ones((6, 6, 36, 2)), None, kernel_size=3, strides=value)


@pytest.mark.parametrize("threshold", ["0.5", None, float("nan"), -0.1, 1.5, [0.5]])
def test_nms_thresholds(threshold):
    boxes, scores = jnp.zeros((2, 4)), jnp.ones((2,))
    with pytest.raises(ValueError, match="nms: expected iou_threshold"):
        nms(boxes, scores, iou_threshold=threshold)
