"""Classification pre-training: a backbone's classifier, its loss and its accuracy.

`classification_task` turns a `jaxheads.models.Classifier` and a data set whose
examples carry ``label`` (`jaxheads.data.ObjectsDataset`) into a
`jaxheads.train.Task` that `jaxheads.train.fit` trains like any detector, with
the same checkpoints, resumption and runners.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxheads._checks import fail
from jaxheads.models.classifier import Classifier
from jaxheads.train.loop import Task


def classification_loss(model: Classifier, *, compute_dtype=jnp.float32) -> Callable:
    """``loss_fn(params, state, batch, key, axis_name, step)``: mean softmax cross-entropy."""

    def loss_fn(params, state, batch, key, axis_name, step):
        del step
        images = batch["image"].astype(compute_dtype)
        logits, new_state = model.layer.apply(
            params, state, images, train=True, key=key, axis_name=axis_name
        )
        logits = logits.astype(jnp.float32)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        top1 = jnp.mean((jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32))
        return jnp.mean(loss), (new_state, {"top1": top1})

    return loss_fn


def make_classify(model: Classifier) -> Callable:
    """Jitted ``(params, state, images) -> logits [B, C]`` (inference mode)."""

    @jax.jit
    def classify(params, state, images):
        logits, _ = model.layer.apply(params, state, images)
        return logits.astype(jnp.float32)

    return classify


def evaluate_classifier(
    model: Classifier,
    params,
    state,
    dataset,
    *,
    batch_size: int = 64,
    classify: Callable | None = None,
) -> dict:
    """Top-1 and top-5 accuracy and the mean cross-entropy on ``dataset``.

    Returns:
      ``{"top1", "top5", "loss", "images"}``; top-5 is top-``min(5, C)``.
    """
    from jaxheads.data import Batches

    classify = classify or make_classify(model)
    k = min(5, model.num_classes)
    hits1 = hits5 = 0
    total_loss, count = 0.0, 0
    with Batches(
        dataset, batch_size, seed=0, shuffle=False, drop_remainder=False, num_epochs=1
    ) as batches:
        for batch in batches:
            logits = np.asarray(classify(params, state, batch["image"]))
            valid = np.asarray(batch["valid"])
            labels = np.asarray(batch["label"])[valid]
            logits = logits[valid]
            top = np.argsort(-logits, axis=-1)[:, :k]
            hits1 += int(np.sum(top[:, 0] == labels))
            hits5 += int(np.sum(np.any(top == labels[:, None], axis=-1)))
            shifted = logits - logits.max(-1, keepdims=True)
            log_z = np.log(np.exp(shifted).sum(-1))
            total_loss += float(np.sum(log_z - shifted[np.arange(len(labels)), labels]))
            count += len(labels)
    if count == 0:
        fail("evaluate_classifier", "a data set with at least one example", len(dataset))
    return {
        "top1": hits1 / count,
        "top5": hits5 / count,
        "loss": total_loss / count,
        "images": count,
    }


def classification_task(
    model: Classifier,
    init: Callable,
    train_data,
    *,
    batch_size: int,
    seed: int,
    augment: Callable | None = None,
    val_data=None,
    eval_batch_size: int = 64,
    compute_dtype=jnp.float32,
) -> Task:
    """A `Task`: the classifier's cross-entropy on ``train_data``, evaluated on ``val_data``."""
    from jaxheads.data import Batches

    if model.num_classes != train_data.num_classes:
        fail(
            "classification_task",
            f"a model with {train_data.num_classes} classes (the data set's)",
            model.num_classes,
        )

    def batches(start, process_index, process_count):
        return Batches(
            train_data,
            batch_size,
            seed=seed,
            augment=augment,
            start_step=start,
            process_index=process_index,
            process_count=process_count,
        )

    classify = make_classify(model)
    evaluate_fn = None
    if val_data is not None:

        def evaluate_fn(params, state):
            return evaluate_classifier(
                model, params, state, val_data, batch_size=eval_batch_size, classify=classify
            )

    return Task(
        init=init,
        loss_fn=classification_loss(model, compute_dtype=compute_dtype),
        batches=batches,
        examples_per_batch=batch_size,
        evaluate=evaluate_fn,
    )
