"""The two NNX bases: `LayerModule` wraps any pure `Layer`; `LeafModule` is a named layer's base.

Both keep Flax's conventions: training mode until ``.eval()`` (batch norm
normalises with the batch statistics and updates its running ones, dropout is
active), ``use_running_average`` / ``deterministic`` attributes that
``nnx.view``, ``.train()`` and ``.eval()`` set, params as `nnx.Param` and running
statistics as `nnx.BatchStat`. The math is the pure layer's ``apply``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import jax
from flax import nnx

from jaxheads._checks import fail
from jaxheads.layers.base import Layer, from_attributes

RngsLike = nnx.Rngs | nnx.RngStream | jax.Array | None


def _is_variable(v) -> bool:
    return isinstance(v, nnx.Variable)


def _values(tree):
    return jax.tree.map(lambda v: v[...], tree, is_leaf=_is_variable)


def _first(*values):
    return next((v for v in values if v is not None), None)


def contains(layer: Layer, kind: str) -> bool:
    """True when ``layer`` or any layer nested in it is of ``kind``."""
    return layer.kind == kind or any(contains(node.layer, kind) for node in layer.nodes)


def dropout_stream(rngs: nnx.Rngs | nnx.RngStream | None, collection: str):
    """The stream dropout draws from: ``rngs[collection]``, else Flax's ``default`` fallback.

    An `nnx.Rngs` with neither (``nnx.Rngs(params=0)``) gives ``None``: the
    module is still built, and asks for a key only if it drops units.
    """
    if isinstance(rngs, nnx.RngStream):
        return rngs.fork()
    if isinstance(rngs, nnx.Rngs):
        try:
            return rngs[collection].fork()
        except KeyError:
            return None
    if rngs is None:
        return None
    fail("Dropout", "rngs as an nnx.Rngs, an nnx.RngStream or None", type(rngs).__name__)


def dropout_key(owner: str, call_rngs: RngsLike, stream, collection: str) -> jax.Array:
    """The key for one dropout draw: the call's ``rngs`` first, then the module's stream."""
    rngs = _first(call_rngs, stream)
    if isinstance(rngs, nnx.Rngs):
        try:
            return rngs[collection]()
        except KeyError:
            rngs = None
    if isinstance(rngs, nnx.RngStream):
        return rngs()
    if isinstance(rngs, jax.Array):
        return rngs
    if rngs is None:
        fail(
            owner,
            f"a {collection!r} key for dropout in training mode: build it with "
            f"rngs=nnx.Rngs({collection}=...) or nnx.Rngs(seed) (whose default stream "
            "dropout falls back to), pass rngs= to the call, or call .eval()",
            "no such stream",
        )
    fail(owner, "call rngs as an nnx.Rngs, an nnx.RngStream or a key", type(rngs).__name__)


class LayerModule(nnx.Module):
    """An NNX module holding the params and running statistics of any pure `Layer`.

    For whole models and heads (``LayerModule(heads.yolov2(...).layer, ...)``);
    the named modules (`Dense`, `Conv2D`, ...) are the per-layer classes.

    Args:
      layer: the layer (or model) to wrap.
      input_shape: its input shape, batch first (``None`` allowed there).
      rngs: ``params`` (or the default stream) initialises the weights;
        ``dropout`` (or the default stream) feeds dropout in training mode.
      use_running_average: start with batch norm on its running statistics
        (evaluation mode); ``.eval()`` sets it, ``.train()`` clears it.
      deterministic: start with dropout off; ``.eval()`` / ``.train()`` as above.
      axis_name: a mapped device axis for cross-replica batch statistics.

    Attributes:
      params: the layer's params as a dict tree of `nnx.Param`.
      state: its running statistics as a dict tree of `nnx.BatchStat`.
      output_shape: the inferred output shape.

    >>> from flax import nnx
    >>> from jaxheads import layers
    >>> m = LayerModule(layers.Dense(4096), (None, 7, 7, 1024), rngs=nnx.Rngs(0))
    >>> m.output_shape
    (None, 7, 7, 4096)
    """

    def __init__(
        self,
        layer: Layer,
        input_shape: Sequence[int | None],
        *,
        rngs: nnx.Rngs,
        use_running_average: bool = False,
        deterministic: bool = False,
        axis_name: Any = None,
        rng_collection: str = "dropout",
    ):
        if not isinstance(layer, Layer):
            fail("LayerModule", "a jaxheads Layer", type(layer).__name__)
        self.layer = nnx.static(layer)
        self.input_shape = tuple(input_shape)
        output_shape, params, state = layer.init(rngs.params(), self.input_shape)
        self.output_shape = output_shape
        self.params = nnx.data(jax.tree.map(nnx.Param, params))
        self.state = nnx.data(jax.tree.map(nnx.BatchStat, state))
        self.use_running_average = use_running_average
        self.deterministic = deterministic
        self.axis_name = axis_name
        self.rng_collection = rng_collection
        self.has_batch_norm = contains(layer, "BatchNormalization")
        self.has_dropout = contains(layer, "Dropout")
        self.rngs = nnx.data(dropout_stream(rngs, rng_collection) if self.has_dropout else None)

    def _training(self, use_running_average, deterministic) -> bool:
        running = _first(use_running_average, self.use_running_average)
        off = _first(deterministic, self.deterministic)
        if self.has_batch_norm and self.has_dropout and running != off:
            fail(
                "LayerModule",
                "use_running_average == deterministic: a wrapped layer has one "
                "training flag for batch norm and dropout together (use the named modules "
                "to set them apart)",
                f"use_running_average={running}, deterministic={off}",
            )
        if self.has_batch_norm:
            return not running
        return self.has_dropout and not off

    def __call__(
        self,
        x,
        *,
        use_running_average: bool | None = None,
        deterministic: bool | None = None,
        rngs: RngsLike = None,
    ):
        """Applies the layer; in training mode updates the running statistics in place.

        Args:
          x: the layer's input (NHWC maps, batch first).
          use_running_average, deterministic: override the module's mode for this call.
          rngs: a key, stream or `nnx.Rngs` for dropout, instead of the module's stream.
        """
        train = self._training(use_running_average, deterministic)
        key = (
            dropout_key("LayerModule", rngs, self.rngs, self.rng_collection)
            if train and self.has_dropout
            else None
        )
        y, new_state = self.layer.apply(
            _values(self.params),
            _values(self.state),
            x,
            train=train,
            key=key,
            axis_name=self.axis_name,
        )
        if train:
            jax.tree.map(
                lambda var, value: var.set_value(value), self.state, new_state, is_leaf=_is_variable
            )
        return y

    def set_view(self, use_running_average: bool | None = None, deterministic: bool | None = None):
        """Used by ``nnx.view``: sets the batch-norm and dropout modes."""
        if use_running_average is not None:
            self.use_running_average = use_running_average
        if deterministic is not None:
            self.deterministic = deterministic

    def pure(self):
        """Returns ``(layer, params, state)`` as plain arrays, for the functional API."""
        return self.layer, _values(self.params), _values(self.state)


class LeafModule(nnx.Module):
    """Base of the named modules: hyperparameters as attributes, variables by leaf name.

    A subclass names the pure layer's constructor in ``_pure_layer``, stores its
    hyperparameters as attributes named as that constructor's parameters
    (``_layer_renames`` maps the ones named otherwise), and calls
    `_init_variables` when it has params. The variables are attributes named as
    the pure layer's leaves (``kernel``, ``bias``, ``scale``, ``mean``,
    ``var``), ``None`` where a flag turns one off.
    """

    # Private: `nnx.tabulate` wraps every public function on the class as a method.
    _pure_layer: ClassVar[Callable[..., Layer]]
    _layer_renames: ClassVar[dict[str, str]] = {}
    param_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()

    def _make_layer(self) -> Layer:
        # Read from the class: a plain function stored on it would bind as a method.
        return from_attributes(type(self)._pure_layer, self, type(self)._layer_renames)

    @property
    def layer(self) -> Layer:
        """The pure layer these hyperparameters describe."""
        return self._make_layer()

    def _init_variables(self, rngs: nnx.Rngs, probe_shape: tuple, optional=()) -> None:
        """Creates the variables with the pure layer's ``init`` on the smallest input it takes."""
        if not isinstance(rngs, nnx.Rngs):
            fail(
                type(self).__name__,
                "rngs=nnx.Rngs(...) to initialise the params",
                type(rngs).__name__,
            )
        _, params, state = self._make_layer().init(rngs.params(), probe_shape)
        for name in optional:
            if name not in params:
                setattr(self, name, nnx.data(None))
        for name, value in params.items():
            setattr(self, name, nnx.Param(value))
        for name, value in state.items():
            setattr(self, name, nnx.BatchStat(value))
        self.param_names = tuple(params)
        self.state_names = tuple(state)

    def _params(self) -> dict:
        return {name: getattr(self, name)[...] for name in self.param_names}

    def _state(self) -> dict:
        return {name: getattr(self, name)[...] for name in self.state_names}

    def __call__(self, x):
        return self._make_layer().apply(self._params(), self._state(), x)[0]

    def pure(self):
        """Returns ``(layer, params, state)`` as plain arrays, for the functional API."""
        return self._make_layer(), self._params(), self._state()
