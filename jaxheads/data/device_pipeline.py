"""Procedural detection data drawn on the accelerator: the stream, the batch, the data set.

The embedded data sets of `jaxheads.data.shapes` and `jaxheads.data.digits` are drawn
with numpy on the host, a few dozen images a second a core. Their device counterparts
(`jaxheads.data.device_shapes.ShapesSpec`, `jaxheads.data.device_digits.DigitsSpec`)
rasterise the same kind of scene with `jax.numpy` over a coordinate grid, so a batch
is one jitted program and the host builds nothing but ``B`` indices a step.

The random stream is a pure function of its coordinates:

* example ``i`` of a data set with seed ``s`` and split ``p`` (0 train, 1 val) is
  drawn from ``fold_in(fold_in(key(s), p), i)`` (`example_key`);
* its augmentation in epoch ``e`` of a run with seed ``r`` uses
  ``fold_in(fold_in(fold_in(key(r), AUGMENT_STREAM), e), i)`` (`augment_key`).

So any example is reproducible from its indices alone, whatever batch or batch
position it is drawn in, and `DeviceBatches` (the order of `jaxheads.data.Batches`:
a permutation per epoch, a pure function of ``(seed, epoch)``) resumed at step
``k`` draws exactly the batches an uninterrupted run draws.

A spec is a frozen, hashable record of a data set's settings with one method,
``draw(key) -> DeviceScene``, for one example; `draw_example` and `draw_batch`
are the jitted functions of it, and `DeviceDataset` wraps a spec as a
`jaxheads.data.DetectionDataset`, so evaluation, studies and ``jaxheads train``
use it by name (``shapes-device``, ``digits-device``).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads._checks import check_positive_int, fail
from jaxheads.data.device_augment import DeviceAugment
from jaxheads.data.pipeline import Batches, DetectionDataset, shard_batch

__all__ = [
    "AUGMENT_STREAM",
    "DeviceAugmentedBatches",
    "DeviceBatches",
    "DeviceDataset",
    "DeviceScene",
    "DecodedImages",
    "augment_batch",
    "augment_key",
    "draw_batch",
    "draw_example",
    "example_key",
    "host_share",
    "resize_decoded",
    "tight_boxes",
]

SPLITS = {"train": 0, "val": 1}
#: The stream the augmentation keys are folded from, apart from the examples' streams.
AUGMENT_STREAM = 2


class DeviceScene(NamedTuple):
    """One procedurally drawn example, padded to ``M = max_boxes`` rows.

    Attributes:
      image: [H, W, 3] float32 in [0, 1].
      boxes: [M, 4] float32 normalised xyxy, the tight boxes of the objects'
        visible pixels (pixel (r, c) covers [c, c + 1) x [r, r + 1)); rows past
        ``count`` are zero.
      labels: [M] int32 classes; rows past ``count`` are zero.
      count: [] int32, how many rows hold an object.
      instances: [H, W] int32, the row of ``boxes`` each pixel shows; -1 elsewhere.
      background: [H, W, 3] float32, the image the same key draws without objects.
    """

    image: jax.Array
    boxes: jax.Array
    labels: jax.Array
    count: jax.Array
    instances: jax.Array
    background: jax.Array


class Spec(Protocol):
    """What `DeviceDataset` needs of a spec (a frozen, hashable dataclass)."""

    image_size: tuple[int, int]
    max_boxes: int
    split: str

    @property
    def class_names(self) -> tuple[str, ...]: ...

    def draw(self, key: jax.Array) -> DeviceScene: ...


def check_scene_settings(op: str, spec) -> None:
    """The settings every scene spec shares: ``image_size`` (H, W), integers >= 8;
    ``1 <= max_objects <= max_boxes``; ``placement_tries >= 1``."""
    h, w = spec.image_size
    if not (isinstance(h, int) and isinstance(w, int) and h >= 8 and w >= 8):
        fail(op, "image_size (H, W), integers >= 8", spec.image_size)
    if not 1 <= spec.max_objects <= spec.max_boxes:
        fail(op, f"1 <= max_objects <= max_boxes={spec.max_boxes}", spec.max_objects)
    if spec.placement_tries < 1:
        fail(op, "placement_tries >= 1", spec.placement_tries)


def example_key(seed, split: str, index) -> jax.Array:
    """The key of example ``index`` of split ``split`` of the data set with ``seed``."""
    key = jax.random.fold_in(jax.random.key(seed), SPLITS[split])
    return jax.random.fold_in(key, index)


def augment_key(seed, epoch, index) -> jax.Array:
    """The key that augments example ``index`` in ``epoch`` of a run with ``seed``."""
    key = jax.random.fold_in(jax.random.key(seed), AUGMENT_STREAM)
    return jax.random.fold_in(jax.random.fold_in(key, epoch), index)


def tight_boxes(instances: jax.Array, present: jax.Array) -> jax.Array:
    """[K, 4] normalised xyxy boxes of the pixels of each instance ``0..K-1``.

    Args:
      instances: [H, W] int, the instance of each pixel, -1 for none.
      present: [K] bool; absent rows (and rows without a pixel) are zero.
    """
    h, w = instances.shape
    k = present.shape[0]
    mine = instances[None] == jnp.arange(k, dtype=instances.dtype)[:, None, None]  # [K, H, W]
    rows, cols = jnp.any(mine, axis=2), jnp.any(mine, axis=1)
    r0 = jnp.argmax(rows, axis=1)
    r1 = h - jnp.argmax(rows[:, ::-1], axis=1)
    c0 = jnp.argmax(cols, axis=1)
    c1 = w - jnp.argmax(cols[:, ::-1], axis=1)
    scale = jnp.array([[w, h, w, h]], jnp.float32)
    boxes = jnp.stack([c0, r0, c1, r1], axis=1).astype(jnp.float32) / scale
    keep = present & jnp.any(rows, axis=1)
    return jnp.where(keep[:, None], boxes, 0.0)


def pick_colour(candidates: jax.Array, base: jax.Array, distance: float) -> jax.Array:
    """The first of ``candidates`` [K, 3] at least ``distance`` from ``base`` in a channel."""
    ok = jnp.any(jnp.abs(candidates - base[None, :]) >= distance, axis=1)
    fallback = jnp.where(base > 0.5, 0.0, 1.0)
    return jnp.where(jnp.any(ok), candidates[jnp.argmax(ok)], fallback)


def add_noise(key: jax.Array, image: jax.Array, noise: float) -> jax.Array:
    """``image`` plus uniform per-pixel noise of a random amplitude up to ``noise``."""
    k_amp, k_noise = jax.random.split(key)
    amplitude = 2 * noise * jax.random.uniform(k_amp, (), jnp.float32)
    h, w = image.shape[:2]
    return image + (jax.random.uniform(k_noise, (h, w, 1), jnp.float32) - 0.5) * amplitude


def finish_scene(key, spec, background_image, painted, instances, present, labels) -> DeviceScene:
    """Noise, clipping, boxes, and the placed objects packed into the first rows."""
    k = present.shape[0]
    # Objects that found no place leave gaps: number the placed ones 0, 1, ...
    rank = jnp.cumsum(present) - 1
    instances = jnp.where(instances >= 0, rank[jnp.maximum(instances, 0)], -1)
    count = jnp.sum(present).astype(jnp.int32)
    order = jnp.argsort(~present, stable=True)
    packed = jnp.arange(k) < count
    boxes = tight_boxes(instances, packed)
    labels = jnp.where(packed, labels[order], 0).astype(jnp.int32)
    pad = spec.max_boxes - k
    noise_key = key
    image = jnp.clip(add_noise(noise_key, painted, spec.noise), 0.0, 1.0)
    clean = jnp.clip(add_noise(noise_key, background_image, spec.noise), 0.0, 1.0)
    return DeviceScene(
        image=image,
        boxes=jnp.pad(boxes, ((0, pad), (0, 0))),
        labels=jnp.pad(labels, (0, pad)),
        count=count,
        instances=instances,
        background=clean,
    )


def _check_index(op: str, name: str, x, rank: int) -> None:
    if jnp.ndim(x) != rank or not jnp.issubdtype(jnp.result_type(x), jnp.integer):
        fail(
            op,
            f"{name} an integer array of rank {rank}",
            f"dtype {jnp.result_type(x)}, shape {jnp.shape(x)}",
        )


def _check_scene(op: str, spec: Spec, scene: DeviceScene) -> None:
    h, w = spec.image_size
    m = spec.max_boxes
    want = {
        "image": ((h, w, 3), jnp.float32),
        "boxes": ((m, 4), jnp.float32),
        "labels": ((m,), jnp.int32),
        "count": ((), jnp.int32),
    }
    for name, (shape, dtype) in want.items():
        got = getattr(scene, name)
        if got.shape != shape or got.dtype != dtype:
            fail(
                op,
                f"{type(spec).__name__}.draw to give {name} {shape} {jnp.dtype(dtype).name}",
                f"{got.shape} {got.dtype}",
            )


def _draw(spec: Spec, seed, index) -> DeviceScene:
    scene = spec.draw(example_key(seed, spec.split, index))
    _check_scene("draw_example", spec, scene)
    return scene


@functools.partial(jax.jit, static_argnames=("spec",))
def draw_example(spec: Spec, seed, index) -> DeviceScene:
    """Example ``index`` of the data set ``(spec, seed)``: a pure, jitted function.

    Args:
      spec: the data set's settings (static: a new spec compiles anew).
      seed: [] integer, the data set's seed.
      index: [] integer, the example.

    Returns:
      The `DeviceScene`, on the default device.
    """
    _check_index("draw_example", "seed", seed, 0)
    _check_index("draw_example", "index", index, 0)
    return _draw(spec, seed, index)


def _batch(spec, seed, indices, epochs, augment_seed, augment):
    _check_index("draw_batch", "indices", indices, 1)
    _check_index("draw_batch", "epochs", epochs, 1)
    if epochs.shape != indices.shape:
        fail("draw_batch", f"epochs of the indices' shape {indices.shape}", epochs.shape)

    def one(index, epoch):
        scene = _draw(spec, seed, jnp.maximum(index, 0))
        example = {
            "image": scene.image,
            "boxes": scene.boxes,
            "labels": scene.labels,
            "mask": jnp.arange(spec.max_boxes) < scene.count,
        }
        if augment is not None:
            example = augment(example, augment_key(augment_seed, epoch, index))
        # -1 pads the last batch of an epoch: a blank example, as `Batches` makes.
        valid = index >= 0
        example = jax.tree.map(lambda a: jnp.where(valid, a, jnp.zeros_like(a)), example)
        return example | {"valid": valid}

    return jax.vmap(one)(indices, epochs)


@functools.partial(jax.jit, static_argnames=("spec", "augment"))
def draw_batch(
    spec: Spec, seed, indices, epochs, augment_seed=0, augment: DeviceAugment | None = None
) -> dict[str, jax.Array]:
    """A batch of examples drawn (and augmented) on the device: a pure, jitted function.

    Args:
      spec: the data set's settings (static).
      seed: [] integer, the data set's seed.
      indices: [B] integer examples; -1 gives a blank example (``valid`` False).
      epochs: [B] integer epochs (the augmentation's stream).
      augment_seed: [] integer, the run's seed (the augmentation's stream).
      augment: a `DeviceAugment` (static), or None for none.

    Returns:
      ``image`` [B, H, W, 3] float32, ``boxes`` [B, M, 4] float32, ``labels`` [B, M]
      int32, ``mask`` [B, M] bool, ``valid`` [B] bool: the batch format of
      `jaxheads.data.pipeline`.
    """
    return _batch(spec, seed, indices, epochs, augment_seed, augment)


def _check_seed(op: str, name: str, seed) -> None:
    # A seed becomes a uint32 array, the argument of the jitted draw.
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        fail(op, f"{name} an integer in [0, 2**32)", repr(seed))


class DeviceDataset(DetectionDataset):
    """A procedural data set drawn on the device, with the interface of the host ones.

    Args:
      spec: the settings (`jaxheads.data.device_shapes.ShapesSpec`,
        `jaxheads.data.device_digits.DigitsSpec`), its ``split`` included.
      num_examples: the data set's length (the epoch of `DeviceBatches`).
      seed: picks the data set; ``(seed, spec.split, i)`` fixes example ``i``.

    ``example(i)`` draws one example on the device and returns it as numpy (the
    format of `jaxheads.data.pipeline`), so `jaxheads.data.Batches` and the
    evaluation read it as any data set; `training_batches` draws whole batches
    on the device instead (`DeviceBatches`).
    """

    def __init__(self, spec: Spec, num_examples: int, seed: int = 0):
        op = "DeviceDataset"
        check_positive_int(op, "num_examples", num_examples)
        _check_seed(op, "seed", seed)
        if spec.split not in SPLITS:
            fail(op, f"split in {tuple(SPLITS)}", repr(spec.split))
        self.spec = spec
        self.num_examples = int(num_examples)
        self.seed = int(seed)
        self.class_names = spec.class_names
        self.image_size = spec.image_size
        self.max_boxes = spec.max_boxes

    def __len__(self) -> int:
        return self.num_examples

    def scene(self, i: int) -> DeviceScene:
        """Example ``i`` as the device draws it, with its instance map and background."""
        return draw_example(self.spec, np.uint32(self.seed), np.int32(self._index(i)))

    def example(self, i: int) -> dict[str, np.ndarray]:
        scene = jax.device_get(self.scene(i))
        return {
            "boxes": scene.boxes,
            "labels": scene.labels,
            "mask": np.arange(self.max_boxes) < scene.count,
            "image": scene.image,
        }

    def draw(self, indices, epochs, *, seed: int = 0, augment: DeviceAugment | None = None):
        """`draw_batch` of this data set: ``indices`` [B], ``epochs`` [B], the run's ``seed``."""
        _check_seed("DeviceDataset.draw", "seed", seed)
        return draw_batch(
            self.spec,
            np.uint32(self.seed),
            jnp.asarray(indices, jnp.int32),  # a placed array stays where it is
            jnp.asarray(epochs, jnp.int32),
            np.uint32(seed),
            augment,
        )

    def training_batches(self, batch_size: int, *, seed: int, augment: bool, **kwargs: Any):
        """`DeviceBatches` with the default `DeviceAugment` when ``augment``."""
        return DeviceBatches(
            self, batch_size, seed=seed, augment=DeviceAugment() if augment else None, **kwargs
        )


class _Placed:
    """Batches made on the device, in the layout the training step reads (`place_on`)."""

    sharding: jax.sharding.Sharding | None = None

    def place_on(self, sharding: jax.sharding.Sharding) -> None:
        """Makes every later batch in ``sharding``'s layout (split along the batch axis,
        e.g. the training step's): the host's inputs are placed first, so that each
        device draws or augments its own rows, and the batch needs no move after.
        Without it the default device makes the whole batch (this process's part)."""
        self.sharding = sharding

    def _inputs(self, step: int, batch: dict | None = None) -> dict:
        """Step ``step``'s ``indices`` and ``epochs`` [B] int32 (and ``batch``'s arrays),
        placed by ``sharding`` when one was given."""
        idx = self.indices(step).astype(np.int32)
        inputs = {
            "indices": idx,
            "epochs": np.full(idx.shape, step // self.steps_per_epoch, np.int32),
        }
        inputs |= batch or {}
        return inputs if self.sharding is None else shard_batch(inputs, self.sharding)


class DeviceBatches(_Placed, Batches):
    """`jaxheads.data.Batches` whose batches a `DeviceDataset` draws on the device.

    The order, the process slices, ``start_step`` and ``num_epochs`` are those of
    `Batches`; ``augment`` is a `DeviceAugment` (or None), applied with the keys of
    `augment_key`. A batch is a dict of `jax.Array` s on the default device (or laid
    out across the devices by `place_on`, as the training loop asks), dispatched
    asynchronously, so the host only computes the indices; ``prefetch``
    defaults to 0 (a thread would add nothing but its own cost).
    """

    def __init__(self, dataset: DeviceDataset, batch_size: int, *, seed: int, **kwargs: Any):
        if not isinstance(dataset, DeviceDataset):
            fail("DeviceBatches", "a DeviceDataset", type(dataset).__name__)
        augment = kwargs.get("augment")
        if augment is not None and not isinstance(augment, DeviceAugment):
            fail("DeviceBatches", "augment to be a DeviceAugment or None", repr(augment))
        kwargs.setdefault("prefetch", 0)
        kwargs.setdefault("num_workers", 1)
        super().__init__(dataset, batch_size, seed=seed, **kwargs)

    def load(self, step: int) -> dict[str, jax.Array]:
        """This process's part of global step ``step``, drawn on the device (or the
        global batch, in the layout of `place_on`)."""
        inputs = self._inputs(step)
        return self.dataset.draw(
            inputs["indices"], inputs["epochs"], seed=self.seed, augment=self.augment
        )


def _resize_weights(out_size: int, canvas_size: int, size: jax.Array) -> jax.Array:
    """[out_size, canvas_size] weights resizing the first ``size`` source pixels of an axis.

    Output pixel ``i`` samples the source at ``x = (i + 0.5) * size / out_size`` with a
    triangle kernel of radius ``r = max(1, size / out_size)`` (antialiased when shrinking):
    source pixel ``j < size`` weighs ``max(0, 1 - |x - j - 0.5| / r)``, renormalised over
    those pixels; pixels past ``size`` (the canvas' padding) weigh 0. These are the
    weights of ``jax.image.resize(..., "linear", antialias=True)`` and of
    `jaxheads.data.augment.resize`, for a size known only at run time.
    """
    n = size.astype(jnp.float32)
    per_output = n / out_size  # source pixels per output pixel
    centres = (jnp.arange(out_size, dtype=jnp.float32) + 0.5) * per_output
    radius = jnp.maximum(1.0, per_output)
    source = jnp.arange(canvas_size, dtype=jnp.float32) + 0.5
    w = jnp.maximum(0.0, 1.0 - jnp.abs(centres[:, None] - source[None, :]) / radius)
    w = jnp.where(source[None, :] < n, w, 0.0)
    total = jnp.sum(w, axis=1, keepdims=True)
    return jnp.where(total > 0, w / jnp.where(total > 0, total, 1.0), 0.0)


def resize_decoded(canvas: jax.Array, size: jax.Array, out: tuple[int, int]) -> jax.Array:
    """A decoded image resized on the device, as the host resizes it (float32 rounding).

    Args:
      canvas: [H, W, 3] uint8, the image in its top left ``size`` corner (zeros after).
      size: [2] int32, the image's (height, width); (0, 0) gives a blank image.
      out: (height, width) of the result (static).

    Returns:
      [out_h, out_w, 3] float32 in [0, 1]: ``jaxheads.data.augment.resize`` of the image
      divided by 255, to float32 rounding of the sample positions (within 4e-5 at 416²;
      both axes at ``HIGHEST`` matmul precision, so an
      accelerator's reduced-precision matmuls do not round the pixels).
    """
    if canvas.ndim != 3 or canvas.shape[2] != 3 or canvas.dtype != jnp.uint8:
        fail("resize_decoded", "a canvas [H, W, 3] uint8", f"{canvas.shape} {canvas.dtype}")
    if size.shape != (2,):
        fail("resize_decoded", "size [2] (height, width)", size.shape)
    wy = _resize_weights(out[0], canvas.shape[0], size[0])
    wx = _resize_weights(out[1], canvas.shape[1], size[1])
    image = canvas.astype(jnp.float32) / jnp.float32(255)
    highest = jax.lax.Precision.HIGHEST
    rows = jnp.einsum("yh,hwc->ywc", wy, image, precision=highest)
    return jnp.einsum("xw,ywc->yxc", wx, rows, precision=highest)


class DecodedImages(DetectionDataset):
    """A data set of image files whose examples keep their images decoded, not resized.

    ``example(i)`` is the data set's ``example(i, canvas=...)``: the uint8 image in a
    ``canvas`` [H, W, 3] (the largest annotated image's size) and ``source_size``, for
    `resize_decoded` to resize on the device. The host's share of an image is then its
    decoding alone, and it sends a quarter of the bytes (uint8, not float32).
    """

    def __init__(self, dataset: DetectionDataset):
        self.dataset = dataset
        self.canvas = tuple(dataset.largest_image())
        self.class_names = dataset.class_names
        self.image_size = dataset.image_size
        self.max_boxes = dataset.max_boxes

    def __len__(self) -> int:
        return len(self.dataset)

    def example(self, i: int) -> dict[str, np.ndarray]:
        return self.dataset.example(i, canvas=self.canvas)


def host_share(dataset: DetectionDataset) -> DetectionDataset:
    """What the host loads of ``dataset`` for `DeviceAugmentedBatches`: image files (a
    data set with ``largest_image``: VOC, COCO) decoded only (`DecodedImages`), other data
    sets their examples as they are."""
    return DecodedImages(dataset) if hasattr(dataset, "largest_image") else dataset


@functools.partial(jax.jit, static_argnames=("augment", "image_size"))
def augment_batch(
    batch, indices, epochs, seed, augment: DeviceAugment, image_size: tuple[int, int] | None = None
) -> dict[str, jax.Array]:
    """A host batch augmented on the device: a pure, jitted function.

    Example ``indices[b]`` in epoch ``epochs[b]`` of a run with ``seed`` gets the key of
    `augment_key`, as a `DeviceDataset`'s examples do; rows whose index is -1 (the
    padding of an epoch's last batch) stay blank.

    Args:
      batch: ``image`` [B, H, W, 3] float32, ``boxes`` [B, M, 4], ``labels`` [B, M],
        ``mask`` [B, M] (`jaxheads.data.pipeline`'s batch format; other keys are kept);
        or, with ``source_size`` [B, 2], ``image`` [B, H, W, 3] uint8 canvases of decoded
        images (`DecodedImages`), resized to ``image_size`` first (`resize_decoded`).
      indices, epochs: [B] integers.
      seed: [] integer, the run's seed.
      augment: a `DeviceAugment` (static).
      image_size: (height, width) the decoded images are resized to (static).
    """
    _check_index("augment_batch", "indices", indices, 1)
    _check_index("augment_batch", "epochs", epochs, 1)
    if "source_size" in batch:
        if image_size is None:
            fail("augment_batch", "image_size with decoded images (source_size)", None)
        batch = dict(batch)
        resize = functools.partial(resize_decoded, out=tuple(image_size))
        batch["image"] = jax.vmap(resize)(batch["image"], batch.pop("source_size"))
    keys = ("image", "boxes", "labels", "mask")

    def one(example, index, epoch):
        out = augment(example, augment_key(seed, epoch, index))
        return jax.tree.map(lambda a, b: jnp.where(index >= 0, a, b), out, example)

    examples = {k: batch[k] for k in keys}
    return {**batch, **jax.vmap(one)(examples, indices, epochs)}


class DeviceAugmentedBatches(_Placed, Batches):
    """`jaxheads.data.Batches` of a host data set, augmented on the device.

    The host loads each example as the data set gives it, with no augmentation (in
    threads or worker processes: ``processes``); image files (a data set with
    ``largest_image``: VOC, COCO) it only decodes (`DecodedImages`), and the device
    resizes them (`resize_decoded`). `augment_batch` then applies ``augment`` (a
    `DeviceAugment`) to the batch on the default device (or on every device, each its
    rows, after `place_on`), with the keys of `augment_key`. The host's share of an
    image is then its decoding (and, for other data sets, its drawing), and the batches
    are a pure function of ``(seed, step)`` as `Batches`' are: a run resumed at step
    ``k`` gets the batches of an uninterrupted one. ``augment`` None is the default
    `DeviceAugment`. The pixels are not the host augmentation's
    (`jaxheads.data.augment.augment`: the same draws' distributions, other random
    numbers, and ``fill`` shown in whole pixels, see `jaxheads.data.device_augment`).
    A batch is a dict of `jax.Array` s.
    """

    def __init__(
        self,
        dataset: DetectionDataset,
        batch_size: int,
        *,
        seed: int,
        augment: DeviceAugment | None = None,
        **kwargs: Any,
    ) -> None:
        augment = DeviceAugment() if augment is None else augment
        if not isinstance(augment, DeviceAugment):
            fail("DeviceAugmentedBatches", "augment to be a DeviceAugment", repr(augment))
        if isinstance(dataset, DeviceDataset):
            fail(
                "DeviceAugmentedBatches",
                "a data set loaded on the host (a DeviceDataset augments as it draws: "
                "DeviceBatches)",
                type(dataset).__name__,
            )
        _check_seed("DeviceAugmentedBatches", "seed", seed)
        self.image_size = tuple(dataset.image_size)
        super().__init__(host_share(dataset), batch_size, seed=seed, augment=None, **kwargs)
        self.device_augment = augment

    def load(self, step: int) -> dict[str, jax.Array]:
        """This process's part of global step ``step``: loaded here, augmented there (or
        the global batch, in the layout of `place_on`)."""
        inputs = self._inputs(step, super().load(step))
        indices, epochs = inputs.pop("indices"), inputs.pop("epochs")
        return augment_batch(
            inputs, indices, epochs, np.uint32(self.seed), self.device_augment, self.image_size
        )
