"""``jaxheads export``: a trained run as darknet's own ``.cfg`` and ``.weights`` files.

``jaxheads export WORKDIR OUT.weights`` rebuilds the run that ``jaxheads train``
wrote in ``WORKDIR`` (from its ``config.json``, as ``--init WORKDIR`` does),
restores its newest checkpoint and writes

* ``OUT.weights``: darknet's header (version 0.2.0 and ``seen``, as darknet's
  ``save_weights`` writes it) and every weighted layer's floats in darknet's
  order and layouts (`jaxheads.darknet.save_weights`), which darknet's
  ``load_weights`` and `jaxheads.darknet.load` read back exactly;
* ``OUT.cfg``: the cfg text the model was built from, with the options the run
  changed (the ``[net]`` width and height, the head's ``classes`` and the
  ``filters``/``output`` of the layer feeding it) rewritten
  (`jaxheads.darknet.with_options`).

``seen`` is the number of images the run trained on (steps × batch size), which
darknet reads to continue its schedule. Only a model built from a darknet cfg
(`jaxheads.zoo.darknet_names`) has a darknet file; another is refused before
anything is written. Both files are written to temporary names beside ``OUT``
and renamed into place, so a reader never sees half a file.

Exporting a run needs what rebuilding it needs: the data set of a VOC or COCO
run must be where its ``config.json`` says.
"""

from __future__ import annotations

import os
import tempfile
from typing import NamedTuple

from jaxheads._checks import fail

OP = "export"


class Exported(NamedTuple):
    """What `export_workdir` wrote."""

    weights: str
    cfg: str
    model: str
    step: int
    seen: int
    floats: int


def cfg_path_for(out: str | os.PathLike) -> str:
    """``OUT.cfg`` beside ``OUT.weights`` (``OUT`` + ``.cfg`` for another suffix)."""
    return os.fspath(out).removesuffix(".weights") + ".cfg"


def exportable_model(experiment, *, where: str = "the work directory") -> str:
    """The darknet model a run trained (its `jaxheads.train.restore.restore_run`
    experiment); a ValueError for any other."""
    from jaxheads import zoo
    from jaxheads.train.pretrain import PretrainExperiment

    darknet = zoo.darknet_names()
    pretrain = isinstance(experiment, PretrainExperiment)
    name = experiment.backbone if pretrain else experiment.model
    if name not in darknet:
        fail(
            OP,
            f"a run of a model built from a darknet cfg (one of {darknet}) in {where}",
            f"model {name!r}, which has no darknet cfg and cannot be written as darknet files",
        )
    return name


def _check_free(paths: list[str], force: bool) -> None:
    for path in paths:
        if os.path.isdir(path):
            fail(OP, f"{path} to be a file name", "a directory")
        if os.path.lexists(path) and not force:
            fail(OP, f"{path} not to exist (--force replaces it)", "an existing file")


def export_workdir(
    workdir: str | os.PathLike, out: str | os.PathLike, *, force: bool = False
) -> Exported:
    """Writes the newest checkpoint of a ``jaxheads train`` run as darknet files.

    Args:
      workdir: the run's work directory (``config.json`` and ``checkpoints/``).
      out: the ``.weights`` file to write; the cfg goes to `cfg_path_for` ``(out)``.
      force: replace ``out`` and its cfg when they exist.

    Returns:
      `Exported`: the two paths, the model, the checkpoint's step, ``seen`` and
      the number of floats after the header.

    Raises:
      ValueError: before anything is written: a directory without a run, a model
        not built from a darknet cfg (the ones that are listed), an existing
        ``out`` or cfg without ``force``, no readable checkpoint, or a checkpoint
        whose arrays do not fit the cfg.
    """
    import jax

    from jaxheads import zoo
    from jaxheads.darknet import weights as weights_io
    from jaxheads.darknet.build import from_cfg
    from jaxheads.darknet.cfg import read_cfg_text, with_options
    from jaxheads.darknet.detector import model_params, resolve_cfg
    from jaxheads.layers.base import abstract_init
    from jaxheads.train.loop import restore_params
    from jaxheads.train.restore import build_run, restore_run

    workdir, out = os.fspath(workdir), os.fspath(out)
    cfg_out = cfg_path_for(out)
    _check_free([out, cfg_out], force)  # before the run is read: nothing else to learn first
    restored = restore_run(workdir, op=OP)
    experiment = restored.experiment
    name = exportable_model(experiment, where=workdir)
    source = resolve_cfg(zoo.entry(name).cfg)
    detector, task = build_run(restored)
    model = from_cfg(
        source, image_size=experiment.image_size, num_classes=detector.head.num_classes
    )
    params, state, step = restore_params(workdir, task, restored.run, op=OP)
    params, state = jax.device_get(model_params(model, params, state))
    _check_fits(model, params, state, abstract_init(model.layer, model.input_shape)[1:])
    text = with_options(read_cfg_text(source), model.sections)
    seen = step * int(experiment.batch_size)
    _write_pair(cfg_out, text, out, model.layers, params, state, seen)
    floats = weights_io.float_count(model.layers, params, state)
    return Exported(out, cfg_out, name, step, seen, floats)


def _check_fits(model, params, state, template) -> None:
    """The checkpoint's arrays have the cfg's structure and shapes (the cfg may have changed)."""
    import jax

    for got, want in zip((params, state), template, strict=True):
        shapes = jax.tree.map(lambda a: tuple(a.shape), got)
        expected = jax.tree.map(lambda a: tuple(a.shape), want)
        if shapes != expected:
            fail(
                OP,
                f"a checkpoint whose arrays fit the cfg of {model.layer.name}: {expected}",
                shapes,
            )


def _write_pair(cfg_out: str, text: str, out: str, layers, params, state, seen: int) -> None:
    """Both files to temporary names in their folders, then renamed into place."""
    from jaxheads.darknet.weights import save_weights

    temps = []
    try:
        for path in (cfg_out, out):
            fd, tmp = tempfile.mkstemp(
                prefix=".", suffix=".tmp", dir=os.path.dirname(os.path.abspath(path))
            )
            os.close(fd)
            temps.append(tmp)
        with open(temps[0], "w", newline="") as f:
            f.write(text)
        os.chmod(temps[0], 0o644)
        save_weights(temps[1], layers, params, state, seen=seen)
        os.replace(temps[0], cfg_out)
        os.replace(temps[1], out)
    finally:
        for tmp in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)
