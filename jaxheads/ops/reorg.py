"""Space-to-depth rearrangements: TensorFlow's order and darknet's ``[reorg]`` order.

YOLOv2's passthrough layer stacks each 2×2 neighbourhood of the 26×26 map into
channels, giving 13×13 with 4× the channels. Two orders exist in the wild:

* `space_to_depth` — TensorFlow's ``tf.nn.space_to_depth`` (used by YAD2K,
  darkflow and most Keras ports): output channel ``(dy·b + dx)·C + c`` of cell
  ``(i, j)`` holds input ``(i·b + dy, j·b + dx, c)``.
* `darknet_reorg` — what pjreddie darknet computes. Its ``forward_reorg_layer``
  calls ``reorg_cpu(..., forward=0)`` with the *input's* w, h, c on NCHW memory,
  so the input buffer is read as if it were a ``[C/b², H·b, W·b]`` image and the
  result is written with the input's ``[C, H, W]`` strides, then reinterpreted
  as the ``[C·b², H/b, W/b]`` output. Rows of different channels end up mixed;
  it is neither `space_to_depth` nor a channel permutation of it, so weights
  trained in darknet only work behind `darknet_reorg`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxheads._checks import check_floating, check_nhwc, check_positive_int, fail


def _check(op: str, x, block: int, name: str) -> None:
    check_nhwc(op, "x", x)
    # Only a float feature map is meaningful here, and the library's ops all
    # reject anything else, so a stray integer label array fails loudly.
    check_floating(op, "x", x)
    check_positive_int(op, name, block)
    _, h, w, _ = x.shape
    if h % block or w % block:
        fail(op, f"H and W divisible by {name}={block}", f"x of shape {x.shape}")


def space_to_depth(x: jax.Array, block_size: int = 2) -> jax.Array:
    """TensorFlow ``space_to_depth``: ``[B, H, W, C] -> [B, H/b, W/b, b·b·C]``.

    >>> import jax.numpy as jnp
    >>> space_to_depth(jnp.zeros((1, 26, 26, 64))).shape
    (1, 13, 13, 256)
    """
    _check("space_to_depth", x, block_size, "block_size")
    b = block_size
    n, h, w, c = x.shape
    y = x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(n, h // b, w // b, b * b * c)


def darknet_reorg(x: jax.Array, stride: int = 2) -> jax.Array:
    """Darknet's ``[reorg]`` layer: ``[B, H, W, C] -> [B, H/s, W/s, s·s·C]``.

    Requires ``C`` divisible by ``s·s`` (darknet reads the input as
    ``C/s²`` channels of an ``H·s × W·s`` image). See the module docstring for
    why this differs from `space_to_depth`.

    >>> import jax.numpy as jnp
    >>> darknet_reorg(jnp.zeros((1, 26, 26, 64))).shape
    (1, 13, 13, 256)
    """
    _check("darknet_reorg", x, stride, "stride")
    s = stride
    n, h, w, c = x.shape
    if c % (s * s):
        fail("darknet_reorg", f"C divisible by stride**2={s * s}", f"x of shape {x.shape}")
    oc = c // (s * s)
    # The input's NCHW memory, read as [oc, H·s, W·s] and split into (c2, j, dy, i, dx).
    mem = jnp.transpose(x, (0, 3, 1, 2)).reshape(n, oc, h, s, w, s)
    # Written at channel (dy·s + dx)·oc + c2, row j, column i of the input's [C, H, W] layout.
    mem = mem.transpose(0, 3, 5, 1, 2, 4).reshape(n, c * s * s, h // s, w // s)
    return jnp.transpose(mem, (0, 2, 3, 1))
