"""``jaxheads pretrain``: a backbone's classification pre-training, as both YOLO papers did.

Trains `jaxheads.models.classifier` on the embedded `ObjectsDataset` (shapes and
handwritten digits, one object an image, 15 classes) and reports top-1/top-5
accuracy on its held-out split. The work directory it writes is a run like any
other (resumable, checkpointed) and ``--init`` of ``jaxheads train`` and of a
second ``jaxheads pretrain`` accepts it:

    jaxheads pretrain --workdir runs/pre64 --image-size 64
    jaxheads pretrain --workdir runs/pre96 --image-size 96 --steps 300 --init runs/pre64
    jaxheads train --workdir runs/det --init runs/pre96

The second line is YOLOv2's "high resolution classifier": the same weights
fine-tuned briefly at the detector's resolution (the head pools globally, so
every weight fits any image size).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class PretrainExperiment:
    """What a pre-training run trains and on what data (``config.json``'s ``extra``).

    Attributes:
      backbone: the backbone to pre-train: a backbone of `jaxheads.zoo` with a
        pre-training recipe (`jaxheads.zoo.pretrainable`; the small-* detectors use
        ``"small"``).
      image_size: the square image side.
      batch_size: the global batch size.
      train_examples: distinct training images.
      val_examples: held-out images.
      no_augment: no scale/shift/colour jitter.
      bf16: bfloat16 compute, float32 params.
    """

    backbone: str = "small"
    image_size: int = 64
    batch_size: int = 64
    train_examples: int = 20_000
    val_examples: int = 1000
    no_augment: bool = False
    bf16: bool = False

    def __post_init__(self):
        # Checked when the record is made: before a work directory is touched.
        from jaxheads import zoo
        from jaxheads._checks import fail

        zoo.pretrain_entry(self.backbone, op="pretrain")
        for name in ("image_size", "batch_size", "train_examples", "val_examples"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail("pretrain", f"{name} a positive integer", repr(value))

    def extra(self) -> dict:
        """The record a work directory keeps (``config.json``'s ``extra``)."""
        return {"kind": "pretrain", **dataclasses.asdict(self)}

    @classmethod
    def from_extra(cls, extra: dict) -> PretrainExperiment:
        """The experiment a work directory's ``extra`` records (its other keys ignored)."""
        return cls(**{f.name: extra[f.name] for f in dataclasses.fields(cls) if f.name in extra})


def build_task(experiment: PretrainExperiment, seed: int):
    """``(classifier, task)`` of a pre-training run."""
    import jax
    import jax.numpy as jnp

    from jaxheads import zoo
    from jaxheads.data.objects import ObjectsDataset, classification_augment
    from jaxheads.models.classifier import classifier
    from jaxheads.train.classification import classification_task

    e, size = experiment, experiment.image_size
    train = ObjectsDataset(e.train_examples, image_size=size, seed=seed, split="train")
    val = ObjectsDataset(e.val_examples, image_size=size, seed=seed, split="val")
    backbone = zoo.pretrain_entry(e.backbone, op="pretrain").pretrain()
    model = classifier(backbone, train.num_classes, image_size=size)

    def init(key):
        _, params, state = model.layer.init(key, model.input_shape)
        return params, state

    init = jax.jit(init)
    task = classification_task(
        model,
        init,
        train,
        batch_size=e.batch_size,
        seed=seed,
        augment=None if e.no_augment else classification_augment,
        val_data=val,
        compute_dtype=jnp.bfloat16 if e.bf16 else jnp.float32,
    )
    return model, task
