"""One NNX class per leaf layer, with the pure layer's hyperparameters in its signature.

Layers with params are built eagerly as Flax's are: they take their input
features first (``in_features``, as `flax.nnx.Linear` / `flax.nnx.Conv`; batch
norm's ``num_features``) and ``rngs``. Layers without params (pools,
activations, flatten, reorganisations) take no shape and no ``rngs``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
from flax import nnx

from jaxheads import layers
from jaxheads._checks import check_positive_int, pair
from jaxheads.layers.core import glorot_uniform
from jaxheads.nnx._module import LeafModule as _Leaf
from jaxheads.nnx._module import RngsLike, _first, dropout_key, dropout_stream
from jaxheads.ops._padding import Padding

Size = int | Sequence[int]


def _window(op: str, kernel_size: Size, dilation_rate: Size) -> tuple[int, int]:
    """The dilated kernel's extent: the smallest map a ``"valid"`` convolution takes."""
    (kh, kw), (dh, dw) = (
        pair(op, "kernel_size", kernel_size),
        pair(op, "dilation_rate", dilation_rate),
    )
    return (kh - 1) * dh + 1, (kw - 1) * dw + 1


class Dense(_Leaf):
    """`jaxheads.layers.Dense` (Keras ``Dense``): contracts the last axis of ``[..., in]``.

    Args:
      in_features: the input's last axis.
      features: the output's last axis.
      use_bias: add ``bias [features]``.
      kernel_init: initialiser of ``kernel [in_features, features]``.
      rngs: ``params`` (or the default stream) initialises the kernel.

    >>> from flax import nnx
    >>> m = Dense(1024, 4096, rngs=nnx.Rngs(0))
    >>> m.kernel.shape, m.bias.shape
    ((1024, 4096), (4096,))
    """

    _pure_layer = layers.Dense

    def __init__(
        self,
        in_features: int,
        features: int,
        *,
        use_bias: bool = True,
        kernel_init: Callable = glorot_uniform,
        rngs: nnx.Rngs,
    ):
        check_positive_int("Dense", "in_features", in_features)
        self.in_features, self.features = in_features, features
        self.use_bias, self.kernel_init = use_bias, kernel_init
        self._init_variables(rngs, (None, in_features), optional=("bias",))


class Conv2D(_Leaf):
    """`jaxheads.layers.Conv2D` (Keras ``Conv2D``) on ``[B, H, W, in_features]``.

    Args:
      in_features: input channels.
      filters: output channels.
      kernel_size: int or ``(kh, kw)``.
      strides: int or ``(sh, sw)``.
      padding: ``"valid"`` (Keras' default), ``"same"``, an int (darknet's
        symmetric pad) or ``((top, bottom), (left, right))``.
      dilation_rate: int or ``(dh, dw)``.
      groups: feature groups.
      use_bias: add ``bias [filters]``.
      kernel_init: initialiser of ``kernel [kh, kw, in_features / groups, filters]``.
      rngs: ``params`` (or the default stream) initialises the kernel.

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> conv = Conv2D(3, 8, 3, strides=2, padding="same", rngs=nnx.Rngs(0))
    >>> conv(jnp.ones((1, 32, 32, 3))).shape
    (1, 16, 16, 8)
    """

    _pure_layer = layers.Conv2D

    def __init__(
        self,
        in_features: int,
        filters: int,
        kernel_size: Size,
        *,
        strides: Size = 1,
        padding: Padding = "valid",
        dilation_rate: Size = 1,
        groups: int = 1,
        use_bias: bool = True,
        kernel_init: Callable = glorot_uniform,
        rngs: nnx.Rngs,
    ):
        check_positive_int("Conv2D", "in_features", in_features)
        self.in_features, self.filters = in_features, filters
        self.kernel_size = pair("Conv2D", "kernel_size", kernel_size)
        self.strides, self.padding = strides, padding
        self.dilation_rate, self.groups = dilation_rate, groups
        self.use_bias, self.kernel_init = use_bias, kernel_init
        window = _window("Conv2D", kernel_size, dilation_rate)
        self._init_variables(rngs, (None, *window, in_features), optional=("bias",))


class LocallyConnected2D(_Leaf):
    """`jaxheads.layers.LocallyConnected2D` (darknet ``[local]``): unshared weights per cell.

    Its kernel has one slice per output cell, so the input's spatial size is
    part of the construction, as ``input_size``.

    Args:
      in_features: input channels.
      filters: output channels.
      kernel_size: int or ``(kh, kw)``.
      input_size: the input's ``(H, W)``.
      strides, padding: as `Conv2D`.
      use_bias: add ``bias [out_h, out_w, filters]``.
      kernel_init: initialiser of ``kernel [out_h, out_w, in_features·kh·kw, filters]``.
      rngs: ``params`` (or the default stream) initialises the kernel.
    """

    _pure_layer = layers.LocallyConnected2D

    def __init__(
        self,
        in_features: int,
        filters: int,
        kernel_size: Size,
        *,
        input_size: Sequence[int],
        strides: Size = 1,
        padding: Padding = "valid",
        use_bias: bool = True,
        kernel_init: Callable = glorot_uniform,
        rngs: nnx.Rngs,
    ):
        check_positive_int("LocallyConnected2D", "in_features", in_features)
        self.in_features, self.filters = in_features, filters
        self.kernel_size = pair("LocallyConnected2D", "kernel_size", kernel_size)
        self.input_size = pair("LocallyConnected2D", "input_size", input_size)
        self.strides, self.padding = strides, padding
        self.use_bias, self.kernel_init = use_bias, kernel_init
        self._init_variables(rngs, (None, *self.input_size, in_features), optional=("bias",))


class ConvLSTM2D(_Leaf):
    """`jaxheads.layers.ConvLSTM2D` (Keras ``ConvLSTM2D``) on ``[B, T, H, W, in_features]``.

    Args:
      in_features: input channels.
      filters: channels of the hidden state.
      kernel_size, strides, padding, dilation_rate: of the input convolution.
      return_sequences: return every step ``[B, T, H', W', filters]``, else the last.
      go_backwards: read the sequence in reverse.
      use_bias: add ``bias [4·filters]``.
      unit_forget_bias: start the forget gate's bias at one.
      rngs: ``params`` (or the default stream) initialises the kernels.
    """

    _pure_layer = layers.ConvLSTM2D

    def __init__(
        self,
        in_features: int,
        filters: int,
        kernel_size: Size,
        *,
        strides: Size = 1,
        padding: Padding = "valid",
        dilation_rate: Size = 1,
        return_sequences: bool = False,
        go_backwards: bool = False,
        use_bias: bool = True,
        unit_forget_bias: bool = True,
        rngs: nnx.Rngs,
    ):
        check_positive_int("ConvLSTM2D", "in_features", in_features)
        self.in_features, self.filters = in_features, filters
        self.kernel_size = pair("ConvLSTM2D", "kernel_size", kernel_size)
        self.strides, self.padding, self.dilation_rate = strides, padding, dilation_rate
        self.return_sequences, self.go_backwards = return_sequences, go_backwards
        self.use_bias, self.unit_forget_bias = use_bias, unit_forget_bias
        window = _window("ConvLSTM2D", kernel_size, dilation_rate)
        self._init_variables(rngs, (None, 1, *window, in_features), optional=("bias",))


class BatchNormalization(_Leaf):
    """`jaxheads.layers.BatchNormalization` (Keras' momentum and epsilon) over the last axis.

    In training mode (the default, as `flax.nnx.BatchNorm`) it normalises with
    the batch statistics and updates ``mean`` and ``var`` in place; after
    ``.eval()`` (or with ``use_running_average=True``) it uses them.

    Args:
      num_features: the last axis.
      momentum, epsilon, center, scale: as Keras.
      use_running_average: start in evaluation mode.
      axis_name: a mapped device axis for cross-replica batch statistics.
      rngs: accepted for symmetry with Flax; batch norm draws nothing.

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> bn = BatchNormalization(2)
    >>> _ = bn(jnp.array([[0.0, 1.0], [2.0, 3.0]]))
    >>> bn.mean[...]
    Array([0.01, 0.02], dtype=float32)
    """

    _pure_layer = layers.BatchNormalization
    # The flags keep `flax.nnx.BatchNorm`'s names; ``scale`` and ``bias`` are the params.
    _layer_renames = {"center": "use_bias", "scale": "use_scale"}

    def __init__(
        self,
        num_features: int,
        *,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        use_running_average: bool = False,
        axis_name=None,
        rngs: nnx.Rngs | None = None,
    ):
        check_positive_int("BatchNormalization", "num_features", num_features)
        self.num_features, self.momentum, self.epsilon = num_features, momentum, epsilon
        self.use_bias, self.use_scale = center, scale
        self.use_running_average, self.axis_name = use_running_average, axis_name
        self._init_variables(
            nnx.Rngs(0) if rngs is None else rngs, (None, num_features), optional=("scale", "bias")
        )

    def __call__(self, x, use_running_average: bool | None = None):
        """Normalises ``x [..., num_features]``; in training mode updates ``mean`` and ``var``."""
        train = not _first(use_running_average, self.use_running_average)
        y, state = self._make_layer().apply(
            self._params(), self._state(), x, train=train, axis_name=self.axis_name
        )
        if train:
            self.mean[...], self.var[...] = state["mean"], state["var"]
        return y

    def set_view(self, use_running_average: bool | None = None):
        """Used by ``nnx.view``: ``True`` normalises with the running statistics."""
        if use_running_average is not None:
            self.use_running_average = use_running_average


class Dropout(_Leaf):
    """`jaxheads.layers.Dropout` (Keras ``Dropout``; ``rate`` is the DROP probability).

    Active until ``.eval()`` (or with ``deterministic=True``), as `flax.nnx.Dropout`.
    Keys come from the call's ``rngs``, else from the stream forked at
    construction: ``rngs[rng_collection]``, which an `nnx.Rngs` without that
    stream serves from its ``default`` one. Built with ``nnx.Rngs(params=0)``,
    it needs ``rngs=`` on each training call.

    Args:
      rate: the probability of dropping a unit.
      deterministic: start with dropout off.
      rng_collection: the stream's name.
      rngs: an `nnx.Rngs` or `nnx.RngStream`, or ``None``.
    """

    _pure_layer = layers.Dropout

    def __init__(
        self,
        rate: float,
        *,
        deterministic: bool = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs | nnx.RngStream | None = None,
    ):
        layers.Dropout(rate)  # checks the rate
        self.rate, self.deterministic, self.rng_collection = rate, deterministic, rng_collection
        self.rngs = nnx.data(dropout_stream(rngs, rng_collection))

    def __call__(self, x, *, deterministic: bool | None = None, rngs: RngsLike = None):
        """Drops units of ``x`` (any shape) unless deterministic; ``rngs`` overrides the stream."""
        train = not _first(deterministic, self.deterministic) and self.rate > 0
        key = dropout_key("Dropout", rngs, self.rngs, self.rng_collection) if train else None
        return self._make_layer().apply({}, {}, x, train=train, key=key)[0]

    def set_view(self, deterministic: bool | None = None):
        """Used by ``nnx.view``: ``True`` turns dropout off."""
        if deterministic is not None:
            self.deterministic = deterministic


class LeakyReLU(_Leaf):
    """`jaxheads.layers.LeakyReLU`; 0.3 is Keras' default (darknet's ``leaky`` is 0.1)."""

    _pure_layer = layers.LeakyReLU

    def __init__(self, negative_slope: float = 0.3):
        self.negative_slope = negative_slope


class Activation(_Leaf):
    """`jaxheads.layers.Activation`: applies ``fn`` elementwise (e.g. ``jax.nn.relu``)."""

    _pure_layer = layers.Activation

    def __init__(self, fn: Callable[[jax.Array], jax.Array]):
        self.fn = fn


class Flatten(_Leaf):
    """`jaxheads.layers.Flatten`: ``[B, ...] -> [B, prod(...)]`` in H, W, C order."""

    _pure_layer = layers.Flatten

    def __init__(self):
        pass


class Reshape(_Leaf):
    """`jaxheads.layers.Reshape`: ``[B, ...] -> [B, *target_shape]``."""

    _pure_layer = layers.Reshape

    def __init__(self, target_shape: Sequence[int]):
        self.target_shape = tuple(target_shape)


class GlobalAveragePooling2D(_Leaf):
    """`jaxheads.layers.GlobalAveragePooling2D`: ``[B, H, W, C] -> [B, C]``."""

    _pure_layer = layers.GlobalAveragePooling2D

    def __init__(self, *, keepdims: bool = False):
        self.keepdims = keepdims


class GlobalMaxPooling2D(_Leaf):
    """`jaxheads.layers.GlobalMaxPooling2D`: ``[B, H, W, C] -> [B, C]``."""

    _pure_layer = layers.GlobalMaxPooling2D

    def __init__(self, *, keepdims: bool = False):
        self.keepdims = keepdims


class MaxPooling2D(_Leaf):
    """`jaxheads.layers.MaxPooling2D` (Keras' defaults: 2×2, strides = pool_size, valid).

    >>> import jax.numpy as jnp
    >>> MaxPooling2D(2, 1, "same")(jnp.ones((1, 13, 13, 8))).shape
    (1, 13, 13, 8)
    """

    _pure_layer = layers.MaxPooling2D

    def __init__(
        self, pool_size: Size = 2, strides: Size | None = None, padding: Padding = "valid"
    ):
        self.pool_size, self.strides, self.padding = pool_size, strides, padding


class AveragePooling2D(_Leaf):
    """`jaxheads.layers.AveragePooling2D` (Keras' defaults: strides = pool_size, valid)."""

    _pure_layer = layers.AveragePooling2D

    def __init__(self, pool_size: Size, strides: Size | None = None, padding: Padding = "valid"):
        self.pool_size, self.strides, self.padding = pool_size, strides, padding


class SpaceToDepth(_Leaf):
    """`jaxheads.layers.SpaceToDepth` (TensorFlow's order).

    ``[B, H, W, C] -> [B, H/b, W/b, b²C]``.
    """

    _pure_layer = layers.SpaceToDepth

    def __init__(self, block_size: int = 2):
        self.block_size = block_size


class DarknetReorg(_Leaf):
    """`jaxheads.layers.DarknetReorg` (darknet's ``[reorg]`` order)."""

    _pure_layer = layers.DarknetReorg

    def __init__(self, stride: int = 2):
        self.stride = stride


class Concatenate(_Leaf):
    """`jaxheads.layers.Concatenate`: joins a list of arrays along ``axis``."""

    _pure_layer = layers.Concatenate

    def __init__(self, axis: int = -1):
        self.axis = axis
