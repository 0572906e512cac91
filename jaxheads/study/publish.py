"""Results as files to commit: a study's or a training run's record, under ``docs/results/``.

`publish_study` copies what a study wrote into its work directory (``results.json``,
``results.md``, the plots) into a folder of its own and adds what a reader needs to
check it: the command as typed, the package versions, the processor and the JAX device
kind, the run time, and every run's learning curve as CSV. `publish_run` does the same
for one ``jaxheads train`` work directory: its config, its final evaluation, its curve.
`jaxheads.study.tables` generates the tables of the README and ``docs/`` from these files.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import os
import platform
import shutil
from collections.abc import Mapping, Sequence
from importlib import metadata

from jaxheads.study.records import write_json
from jaxheads.study.tables import regenerate, run_table

# The packages whose versions a published result names.
PACKAGES = ("jaxheads", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")
# A training run's learning curve: the columns of ``learning_curve.csv``.
CURVE_COLUMNS = ("step", "loss", "lr", "images_per_s")


def processor_name() -> str:
    """The processor's model name, family and model numbers and AVX-512 (``/proc/cpuinfo``),
    else `platform.processor`'s answer.

    A virtual machine may name its processor only ``AMD EPYC``; two such machines of other
    generations compile other code (AVX-512 or not) and sum in another order, so a record
    names the generation too.
    """
    try:
        with open("/proc/cpuinfo") as f:
            found = describe_cpuinfo(f.read())
    except OSError:
        found = None
    return found or platform.processor() or platform.machine()


def describe_cpuinfo(text: str) -> str | None:
    r"""The first processor of a ``/proc/cpuinfo`` text, e.g. ``AMD EPYC (family 25, model 17,
    AVX-512)``; None without a model name.

    >>> describe_cpuinfo("model name\t: AMD EPYC\ncpu family\t: 25\nmodel\t\t: 17\n"
    ...                  "flags\t\t: fpu avx2 avx512f\n\nmodel name\t: other\n")
    'AMD EPYC (family 25, model 17, AVX-512)'
    """
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name")
    if not name:
        return None
    shown = {"cpu family": "family", "model": "model"}
    details = [f"{label} {fields[key]}" for key, label in shown.items() if fields.get(key)]
    if "avx512f" in fields.get("flags", "").split():
        details.append("AVX-512")
    return f"{name} ({', '.join(details)})" if details else name


def environment() -> dict:
    """Where a result was measured: processor, JAX devices, versions, date."""
    import jax

    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    devices = jax.devices()
    return {
        "processor": processor_name(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "jax_backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        # 1, 5 and 15 minutes: how busy the machine was when the result was written
        "load_average": [round(x, 2) for x in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
        "versions": versions,
        "date": datetime.date.today().isoformat(),
    }


def read_jsonl(path: str) -> list[dict]:
    """The JSON objects of a ``metrics.jsonl``, one a line (a torn last line is skipped)."""
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def training_seconds(logged: Sequence[Mapping], log_every: int) -> float | None:
    """The training time the logged step rates add up to (compilation and evaluation aside).

    Each logged row covers the ``log_every`` steps before it at its ``steps_per_s``.
    """
    rates = [r["steps_per_s"] for r in logged if r.get("steps_per_s")]
    return float(sum(log_every / r for r in rates)) if rates else None


def _write_curve(path: str, rows: Sequence[Mapping], keys: Sequence[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(keys)
        for r in rows:
            writer.writerow(["" if r.get(k) is None else r[k] for k in keys])


def _provenance(command: str | None, seconds: float | None, note: str | None = None) -> dict:
    return {
        "command": command,
        "run_time_s": None if seconds is None else round(float(seconds), 1),
        "note": note,
        "environment": environment(),
    }


def _footer(data: Mapping) -> list[str]:
    env = data["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    minutes = data.get("run_time_s")
    took = "" if minutes is None else f", {minutes / 60:.1f} minutes"
    return [
        "",
        f"Measured on {env['processor']} ({env['cpu_count']} CPUs; JAX devices: "
        f"{env['device_count']} × {env['device_kind']}){took}, {env['date']}; {versions}.",
        "",
    ]


def publish_study(
    workdir: str, dest: str, *, command: str | None = None, seconds: float | None = None
) -> str:
    """Copies a finished study's report from ``workdir`` into ``dest``; returns ``dest``.

    Writes ``dest/results.json`` (the study's own, with ``command``, ``run_time_s``,
    ``environment`` and each run's ``train_seconds``), ``results.md`` (its tables, and
    where they were measured), the plots, and ``learning_curves.csv`` (``head, seed,
    step, loss, lr``: every logged step of every run).
    """
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    os.makedirs(dest, exist_ok=True)
    log_every = results["config"]["budget"]["run"]["log_every"]
    curves = []
    for run in results["runs"]:
        rundir = os.path.join(workdir, run["head"], f"seed{run['seed']}")
        with open(os.path.join(rundir, "result.json")) as f:
            train_dir = json.load(f)["train_dir"]
        logged = read_jsonl(os.path.join(workdir, train_dir, "metrics.jsonl"))
        run["train_seconds"] = training_seconds(logged, log_every)
        curves += [{"head": run["head"], "seed": run["seed"], **r} for r in logged if "loss" in r]
    results.update(_provenance(command or results["config"].get("command"), seconds))
    _write_curve(
        os.path.join(dest, "learning_curves.csv"), curves, ("head", "seed", "step", "loss", "lr")
    )
    for name in results["plots"]:
        shutil.copyfile(os.path.join(workdir, name), os.path.join(dest, name))
    with open(os.path.join(workdir, "results.md")) as f:
        text = f.read().rstrip("\n")
    with open(os.path.join(dest, "results.md"), "w") as f:
        f.write("\n".join([text, *_footer(results)]))
    write_json(os.path.join(dest, "results.json"), results)
    return dest


def publish_run(
    workdir: str,
    dest: str,
    *,
    command: str | None = None,
    seconds: float | None = None,
    note: str | None = None,
) -> str:
    """Publishes a finished ``jaxheads train`` run's final evaluation into ``dest``.

    Writes ``dest/results.json`` (``kind: "train"``, the run's ``config.json``, the last
    evaluation, the final loss, ``train_seconds`` from the logged step rates, ``note``
    (a remark, e.g. what else ran on the machine), and the provenance of
    `publish_study`), ``results.md`` and ``learning_curve.csv``.

    Raises:
      ValueError: the work directory holds no evaluation (the run has not finished).
    """
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    logged = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    evals = [r for r in logged if "eval" in r]
    if not evals:
        raise ValueError(
            f"expected a finished run's evaluation in {workdir}/metrics.jsonl, found none "
            "(run the training command to its end first)"
        )
    final = evals[-1]
    losses = [r for r in logged if "loss" in r]
    results = {
        "kind": "train",
        "config": config,
        "step": final["step"],
        "final_loss": losses[-1]["loss"] if losses else None,
        "eval": {k: v for k, v in final["eval"].items() if isinstance(v, (int, float, type(None)))},
        "train_seconds": training_seconds(logged, config["log_every"]),
        **_provenance(command, seconds, note),
    }
    os.makedirs(dest, exist_ok=True)
    _write_curve(os.path.join(dest, "learning_curve.csv"), losses, CURVE_COLUMNS)
    write_json(os.path.join(dest, "results.json"), results)
    lines = ["# A training run", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    lines += run_table(results).splitlines()
    with open(os.path.join(dest, "results.md"), "w") as f:
        f.write("\n".join([*lines, *_footer(results)]))
    return dest


def publish_analysis(
    data: Mapping, dest: str, *, command: str | None = None, seconds: float | None = None
) -> str:
    """Writes an analysis's record (`jaxheads.study.analysis`) to ``dest/<kind>.json``.

    The record gets the provenance of `publish_study`; ``jaxheads report`` renders it
    between ``results:<study>/<kind>`` markers. Returns the file's path.
    """
    os.makedirs(dest, exist_ok=True)
    path = os.path.join(dest, f"{data['kind']}.json")
    write_json(path, {**data, **_provenance(command, seconds)})
    return path


def command_line(argv: Sequence[str] | None) -> str | None:
    """``argv`` as typed after ``jaxheads`` (None when unknown)."""
    import shlex

    return None if argv is None else shlex.join(["jaxheads", *argv])


def published_dir(name: str, profile: str | None = None) -> str:
    """Where a study's results go by default: ``docs/results/<study>[-<profile>]``."""
    return os.path.join("docs", "results", name + (f"-{profile}" if profile else ""))


@dataclasses.dataclass(frozen=True)
class ReportRequest:
    """What ``jaxheads report`` does: publish a work directory, then regenerate the tables.

    Attributes:
      run: a finished ``jaxheads train`` or ``jaxheads compare`` work directory to
        publish (None: publish nothing).
      publish: the folder to publish ``run`` into (e.g. ``docs/results/main``).
      command: the command that made ``run``, as typed (a study's own is read from
        its ``results.json`` when left out).
      seconds: the wall time that command took, when measured outside.
      note: a remark kept with a training run's record and quoted under its table.
      check: write nothing; list the documents whose tables differ from their files.
      root: the project's root (README.md, docs/).
    """

    run: str | None = None
    publish: str | None = None
    command: str | None = None
    seconds: float | None = None
    note: str | None = None
    check: bool = False
    root: str = "."


def make_report(request: ReportRequest) -> list[str]:
    """Publishes ``request.run`` if given, then regenerates (or checks) every marked table.

    Returns:
      The documents whose tables changed (``check``: would change).

    Raises:
      ValueError: ``run`` without ``publish`` (or the reverse), or a work directory that
        holds neither a study's ``results.json`` nor a training run's ``config.json``.
    """
    if (request.run is None) != (request.publish is None):
        raise ValueError("expected --run and --publish together, got one of them")
    if request.run is not None:
        timing = {"command": request.command, "seconds": request.seconds}
        if os.path.exists(os.path.join(request.run, "results.json")):
            if request.note:
                raise ValueError("expected no --note for a study (its results.md says it all)")
            publish_study(request.run, request.publish, **timing)
        elif os.path.exists(os.path.join(request.run, "config.json")):
            publish_run(request.run, request.publish, note=request.note, **timing)
        else:
            raise ValueError(
                f"expected a study's results.json or a training run's config.json in "
                f"{request.run}, found neither"
            )
    return regenerate(request.root, write=not request.check)
