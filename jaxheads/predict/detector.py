"""`Detector`: image files, PIL images or arrays in, boxes in original pixels out.

For a darknet model (`Detector.from_darknet`) every step is darknet's
``detector test``: the image read as RGB in ``[0, 1]``; letterboxed with darknet's
resize (`jaxheads.predict.letterbox`); the network; every cell and anchor's box
(`jaxheads.predict.region`) mapped back with ``correct_region_boxes``; a class kept
where ``objectness·probability`` exceeds ``thresh``; ``do_nms_sort`` per class at
``nms`` (`jaxheads.predict.nms_sort`). One detection is reported for each class of
a box above ``thresh``, as darknet prints them.

YOLOv1 ``[detection]`` models are letterboxed too, and their boxes are mapped back
with the same ``correct_region_boxes``. Darknet's ``detector test`` does not map them
back (``get_detection_detections`` ignores the letterbox, so off-square images get
shifted boxes); on square images both agree.

For a model trained by ``jaxheads train`` (`Detector.from_workdir`) the image is
resized as its training data were (a plain resize to the square input,
`jaxheads.data.augment.resize`) and its class names are the data set's.

The network part is one jitted call on a batch of ``batch_size`` images of the
network's size (a short last batch is padded), compiled once; the images of the
next batch are read and resized in threads while the current batch runs.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jaxheads._checks import fail
from jaxheads.darknet.build import MAX_MODEL_BYTES
from jaxheads.predict.detections import ImageDetections, unreadable
from jaxheads.predict.images import DEFAULT_MAX_PIXELS, ImageError, read_image
from jaxheads.predict.letterbox import correct_region_boxes, letterbox_image
from jaxheads.predict.names import names_for, read_names
from jaxheads.predict.nms_sort import do_nms_sort, surviving_detections
from jaxheads.predict.region import class_probabilities, detection_outputs, region_outputs

__all__ = ["Detector"]

# How a model's raw scores are thresholded and which objectness darknet's NMS sees.
_KINDS = ("region", "detection", "scores")


@dataclasses.dataclass
class _Prepared:
    source: str | None
    width: int
    height: int
    pixels: np.ndarray  # [net_h, net_w, 3] float32


def _as_list(images) -> list:
    """One image (path, PIL image, [H, W(, C)] array) or an iterable of them, as a list."""
    if isinstance(images, (str, os.PathLike)) or hasattr(images, "getbands"):
        return [images]
    if images is None or isinstance(images, (int, float, complex, np.generic)):
        fail(
            "Detector.detect",
            "an image (a path, a PIL image, an [H, W(, C)] array) or a list of them",
            f"{type(images).__name__} {images!r}",
        )
    if isinstance(images, np.ndarray) or isinstance(images, jax.Array):
        return [images] if images.ndim in (2, 3) else list(images)
    return list(images)


def _check_input_size(op: str, cfg, image_size) -> None:
    """A grid model's input must be a multiple of its stride (7 gives a 32-stride net 0x0)."""
    from jaxheads import darknet
    from jaxheads.layers import abstract_init

    model = darknet.from_cfg(cfg)
    out = abstract_init(model.layer, model.input_shape)[0]
    sides = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(out) != 4 or len(sides) != 2:
        return  # a flat ([detection]) head: its weights fix the size; the loader checks it
    stride = model.input_shape[1] // out[1]
    if any(not isinstance(v, int) or v < stride or v % stride for v in sides):
        fail(
            op,
            f"image_size a multiple of {stride}, the model's stride (e.g. "
            f"{model.input_shape[1]}, the cfg's own size)",
            image_size,
        )


class Detector:
    """A detection model with the pre- and post-processing of its origin.

    Build one with `from_darknet` or `from_workdir`; `detect` returns one
    `ImageDetections` per image.

    Args:
      predict: ``(params, state, images [B, H, W, 3]) -> (boxes [B, N, 4] (cx, cy, w, h)
        relative to the network input, objectness [B, N] or None, classes [B, N, C])``.
      params, state: its parameters.
      input_size: the network's ``(height, width)``.
      class_names: ``C`` names.
      kind: ``"region"`` (darknet ``[region]``: objectness gate, letterbox),
        ``"detection"`` (darknet ``[detection]``: no gate) or ``"scores"`` (``classes``
        are final scores).
      resize: ``"letterbox"`` (darknet's) or ``"stretch"`` (a plain resize to the input
        size, `jaxheads.data.augment.resize`).
      batch_size: images per network call.
      description: one line saying what the model is.
    """

    def __init__(
        self,
        predict: Callable,
        params,
        state,
        *,
        input_size: tuple[int, int],
        class_names: tuple[str, ...],
        kind: str,
        resize: str = "letterbox",
        batch_size: int = 1,
        description: str = "",
    ):
        if kind not in _KINDS:
            fail("Detector", f"kind in {_KINDS}", repr(kind))
        if resize not in ("letterbox", "stretch"):
            fail("Detector", "resize 'letterbox' or 'stretch'", repr(resize))
        if not isinstance(batch_size, int) or batch_size < 1:
            fail("Detector", "a positive integer batch_size", repr(batch_size))
        self.params, self.state = params, state
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.class_names = tuple(class_names)
        self.kind, self.resize, self.batch_size = kind, resize, batch_size
        self.description = description
        self._predict = jax.jit(predict)

    def __repr__(self) -> str:
        h, w = self.input_size
        return (
            f"Detector({self.description or self.kind}, input {w}x{h}, "
            f"{len(self.class_names)} classes, {self.resize})"
        )

    # ------------------------------------------------------------------ builders

    @classmethod
    def from_darknet(
        cls,
        cfg: str | os.PathLike,
        weights: str | os.PathLike | None = None,
        *,
        names: tuple[str, ...] | str | os.PathLike | None = None,
        image_size: int | tuple[int, int] | None = None,
        batch_size: int = 1,
        seed: int = 0,
        max_bytes: int = MAX_MODEL_BYTES,
    ) -> Detector:
        """A darknet model run as darknet's ``detector test`` runs it.

        Args:
          cfg: a ``.cfg`` file or a packaged cfg's name (``"yolov2-tiny-voc"``).
          weights: a darknet ``.weights`` file; None for darknet-style random weights.
          names: class names, or a ``.names`` file; default VOC's for 20 classes,
            COCO's for 80, else ``class_<k>``.
          image_size: the network input (an int or ``(height, width)``) instead of the
            cfg's ``[net]`` size.
          batch_size: images per network call.
          seed: the random init's seed when ``weights`` is None.
          max_bytes: the largest model built (see `jaxheads.darknet.build_model`).

        Raises:
          ValueError: for a cfg without ``[region]``/``[detection]``, with options this
            pipeline does not run (``tree=``, ``background=1``, ``coords`` other than 4),
            or a non-RGB input; for names that do not match the classes.
        """
        from jaxheads import darknet

        op = "Detector.from_darknet"
        if image_size is not None:
            _check_input_size(op, cfg, image_size)
        net = darknet.load(cfg, weights, image_size=image_size, seed=seed, max_bytes=max_bytes)
        head = net.head
        if head is None:
            fail(op, "a cfg ending in [region] or [detection]", f"{cfg} with neither")
        section = head.family.darknet_section
        if head.coords != 4:
            fail(op, f"coords=4 in [{section}]", head.coords)
        if net.input_shape[3] != 3:
            fail(op, "a cfg with channels=3 (RGB images)", f"channels={net.input_shape[3]}")
        if section == "region":
            for option in ("tree", "map"):
                if option in head.options:
                    fail(
                        op,
                        f"a [region] without {option}= (softmax trees are not supported)",
                        f"{option}={head.options[option]}",
                    )
            if int(head.options.get("background", "0")):
                fail(op, "a [region] without background=1", "background=1")
        layer = net.layer
        if section == "region":
            anchors = np.asarray(head.anchors, np.float32)

            def predict(params, state, images):
                raw = layer.apply(params, state, images)[0]
                return region_outputs(
                    raw, anchors, num_classes=head.num_classes, softmax=head.softmax
                )
        else:

            def predict(params, state, images):
                raw = layer.apply(params, state, images)[0]
                return detection_outputs(
                    raw,
                    side=head.side,
                    num=head.num_boxes,
                    num_classes=head.num_classes,
                    sqrt=head.sqrt,
                    softmax=head.softmax,
                )

        if names is not None and not isinstance(names, tuple):
            names = read_names(names)
        h, w = net.input_shape[1:3]
        name = os.path.basename(os.fspath(cfg)).removesuffix(".cfg")
        return cls(
            predict,
            net.params,
            net.state,
            input_size=(h, w),
            class_names=names_for(head.num_classes, names),
            kind=section,
            resize="letterbox",
            batch_size=batch_size,
            description=f"{name} [{section}]"
            + ("" if weights is not None else " (random weights)"),
        )

    @classmethod
    def from_workdir(
        cls,
        workdir: str | os.PathLike,
        *,
        names: tuple[str, ...] | str | os.PathLike | None = None,
        batch_size: int = 1,
    ) -> Detector:
        """The newest checkpoint of a ``jaxheads train`` run.

        The model is rebuilt from ``WORKDIR/config.json`` as ``jaxheads evaluate`` does;
        images are resized to its square input as its data were; the class names are
        its data set's (``shapes``, ``digits``, VOC's; COCO's categories from the
        run's annotation file when it is readable, else ``names``).

        Raises:
          ValueError: when the directory holds no run or no readable checkpoint.
        """
        from jaxheads.train.detection import build_detector
        from jaxheads.train.loop import RunConfig, Task, restore_params

        op = "Detector.from_workdir"
        workdir = os.fspath(workdir)
        path = os.path.join(workdir, "config.json")
        try:
            with open(path) as f:
                saved = json.load(f)
            extra = saved["extra"]
            model, dataset, size = extra["model"], extra["dataset"], int(extra["image_size"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            fail(op, f"a jaxheads train run's config at {path}", f"{type(err).__name__}: {err}")
        if names is not None and not isinstance(names, tuple):
            names = read_names(names)
        class_names = names or _dataset_names(dataset, extra, size)
        detector, init = build_detector(model, image_size=size, num_classes=len(class_names))
        cfg = RunConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items()})
        task = Task(init=init, loss_fn=None, batches=None, examples_per_batch=batch_size)
        params, state, step = restore_params(workdir, task, cfg)
        layer, decode = detector.layer, detector.head.decode

        def predict(params, state, images):
            raw = layer.apply(params, state, images)[0]
            xyxy, scores = decode(raw.astype(jnp.float32))
            centre, extent = (xyxy[..., :2] + xyxy[..., 2:]) / 2, xyxy[..., 2:] - xyxy[..., :2]
            return jnp.concatenate([centre, extent], axis=-1), None, scores

        return cls(
            predict,
            params,
            state,
            input_size=(size, size),
            class_names=names_for(len(class_names), tuple(class_names)),
            kind="scores",
            resize="stretch",
            batch_size=batch_size,
            description=f"{model} on {dataset}, step {step} of {workdir}",
        )

    # ------------------------------------------------------------------ running

    def prepare(self, image, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """One image as the network's input: ``[H, W, 3]`` float32 (read, then resized)."""
        return self._prepare(image, max_pixels).pixels

    def _prepare(self, image, max_pixels: int) -> _Prepared:
        pixels = read_image(image, max_pixels=max_pixels)
        h, w = pixels.shape[:2]
        net_h, net_w = self.input_size
        if self.resize == "letterbox":
            sized = letterbox_image(pixels, net_w, net_h)
        else:
            from jaxheads.data.augment import resize

            sized = resize(pixels, (net_h, net_w))
        source = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        return _Prepared(source, w, h, sized)

    def detect(
        self,
        images,
        *,
        thresh: float = 0.5,
        hier_thresh: float = 0.5,
        nms: float = 0.45,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> list[ImageDetections]:
        """Detections of one image or a list of images of any sizes.

        Args:
          images: a path, a PIL image, an ``[H, W(, C)]`` array (see
            `jaxheads.predict.images.to_rgb_float`), or a list of them mixed;
            an ``[B, H, W, C]`` array is B images.
          thresh: darknet's ``thresh`` (.5 in ``detector test``; use .005 for mAP).
          hier_thresh: darknet's ``hier_thresh``; it only acts on softmax trees
            (``tree=``), which are not supported, so as in darknet it changes nothing.
          nms: the IoU above which ``do_nms_sort`` suppresses a box; 0 skips NMS.
          max_pixels: larger images are refused.

        Returns:
          One `ImageDetections` per image, in order.

        Raises:
          ImageError: naming the first image that cannot be read.
        """
        return list(
            self.iter_detect(
                images, thresh=thresh, hier_thresh=hier_thresh, nms=nms, max_pixels=max_pixels
            )
        )

    def iter_detect(
        self,
        images,
        *,
        thresh: float = 0.5,
        hier_thresh: float = 0.5,
        nms: float = 0.45,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        skip_errors: bool = False,
        workers: int = 2,
    ) -> Iterator[ImageDetections]:
        """`detect` as a generator; with ``skip_errors`` an unreadable image yields a
        record whose ``error`` says why, and the others go on."""
        del hier_thresh  # see detect()
        for name, value in (("thresh", thresh), ("nms", nms)):
            if not 0 <= value <= 1:
                fail("Detector.detect", f"{name} in [0, 1]", value)
        items = _as_list(images)
        if not items:
            return
        size = min(self.batch_size, len(items))
        with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
            prepared = self._prepared(pool, items, max_pixels, window=2 * size + workers)
            running = None
            for chunk in _chunks(prepared, size):
                if running is not None:
                    yield from self._finish(
                        *running, thresh=thresh, nms=nms, skip_errors=skip_errors
                    )
                running = (chunk, self._run(chunk, size))
            if running is not None:
                yield from self._finish(*running, thresh=thresh, nms=nms, skip_errors=skip_errors)

    def _prepared(self, pool, items, max_pixels, window) -> Iterator[_Prepared | ImageDetections]:
        futures: collections.deque = collections.deque()
        it = iter(items)
        for item in it:
            futures.append((item, pool.submit(self._prepare, item, max_pixels)))
            if len(futures) >= window:
                break
        while futures:
            item, future = futures.popleft()
            nxt = next(it, None)
            if nxt is not None:
                futures.append((nxt, pool.submit(self._prepare, nxt, max_pixels)))
            try:
                yield future.result()
            except ImageError as err:
                source = os.fspath(item) if isinstance(item, (str, os.PathLike)) else None
                yield unreadable(source, str(err))

    def _run(self, chunk, size: int):
        ready = [p.pixels for p in chunk if isinstance(p, _Prepared)]
        if not ready:
            return None
        net_h, net_w = self.input_size
        batch = np.zeros((size, net_h, net_w, 3), np.float32)
        batch[: len(ready)] = ready
        return self._predict(self.params, self.state, batch)  # dispatched, not awaited

    def _finish(self, chunk, outputs, *, thresh, nms, skip_errors):
        if outputs is not None:
            boxes, objectness, classes = jax.device_get(outputs)
        k = 0
        for item in chunk:
            if isinstance(item, ImageDetections):
                if not skip_errors:
                    raise ImageError(item.error)
                yield item
                continue
            obj = None if objectness is None else objectness[k]
            yield self._select(item, boxes[k], obj, classes[k], thresh, nms)
            k += 1

    def _select(self, item: _Prepared, boxes, objectness, classes, thresh, nms):
        """One image's darknet post-processing, boxes to original pixels."""
        w, h = item.width, item.height
        if self.resize == "letterbox":
            net_h, net_w = self.input_size
            boxes = correct_region_boxes(boxes, w, h, net_w, net_h)
        probs = class_probabilities(objectness, classes, thresh, gate=self.kind == "region")
        if nms > 0:
            nms_objectness = objectness
            if self.kind == "region":
                nms_objectness = np.where(objectness > np.float32(thresh), objectness, 0)
            probs = do_nms_sort(boxes, probs, nms, objectness=nms_objectness)
        det, cls, score = surviving_detections(probs)
        b = boxes[det].astype(np.float64)
        xyxy = np.stack(
            [
                (b[:, 0] - b[:, 2] / 2) * w,
                (b[:, 1] - b[:, 3] / 2) * h,
                (b[:, 0] + b[:, 2] / 2) * w,
                (b[:, 1] + b[:, 3] / 2) * h,
            ],
            axis=1,
        )
        xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
        labels = tuple(self.class_names[c] for c in cls)
        return ImageDetections(item.source, w, h, xyxy.reshape(-1, 4), score, cls, labels)


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    """Lists holding ``size`` prepared images each (failed ones ride along)."""
    chunk, ready = [], 0
    for item in items:
        chunk.append(item)
        ready += isinstance(item, _Prepared)
        if ready == size:
            yield chunk
            chunk, ready = [], 0
    if chunk:
        yield chunk


def _dataset_names(dataset: str, extra: dict, image_size: int) -> tuple[str, ...]:
    """The class names a ``jaxheads train`` data set trained on."""
    from jaxheads.predict.names import COCO_NAMES, VOC_NAMES
    from jaxheads.train.detection import EMBEDDED, make_dataset

    if dataset in EMBEDDED:
        return tuple(
            make_dataset(dataset, "val", image_size=image_size, num_examples=1).class_names
        )
    if dataset == "voc":
        return VOC_NAMES
    if dataset == "coco":
        path = extra.get("annotations")
        try:
            with open(path) as f:
                categories = json.load(f)["categories"]
            by_id = {int(c["id"]): str(c["name"]) for c in categories}
            return tuple(by_id[k] for k in sorted(by_id))
        except (OSError, TypeError, KeyError, ValueError, json.JSONDecodeError):
            return COCO_NAMES
    fail("Detector.from_workdir", f"a run on one of {EMBEDDED + ('voc', 'coco')}", repr(dataset))
