"""The seed questions: per-cell Dense vs Flatten + Dense vs GlobalAveragePooling2D + Dense.

On the YOLOv1 paper's 7×7×1024 map, what does each way of putting Dense layers on
a feature map cost, what shape comes out, and what does it keep of the spatial
layout? No training: parameter counts and shapes come from `jaxheads.summary`
(abstract, nothing allocated), and the spatial behaviour is measured on a small
7×7×16 map with narrow layers of the same structure:

* *input cells seen by one output*: how many of the 49 input cells the first
  output value depends on (non-zero gradient);
* *under a shuffle of the cells*: whether the output is shuffled alike
  (equivariant: per-cell, no context), unchanged (invariant: the layout is
  averaged away), or different (position-aware: it knows where each cell is).

Command (a measurement, not a training study: it has no ``get_config`` and takes
no training options)::

    jaxheads compare --config seeds --workdir runs/seeds
    python experiments/seeds.py runs/seeds                  # the same, as a script

Run time: about 10 s on a 2-core CPU (``--quick`` is the same).

Expected result (exact, checked by tests/test_experiments.py)::

    Dense(4096) per cell                  4,198,400    (None, 7, 7, 4096)  1 cell   equivariant
    Flatten + Dense(4096)               205,524,992    (None, 4096)       49 cells  position-aware
    GlobalAveragePooling2D + Dense(4096)  4,198,400    (None, 4096)       49 cells  invariant
    yolov1-percell-head                   4,321,310    (None, 7, 7, 30)    1 cell   equivariant
    yolov1-fc-head                      211,547,582    (None, 7, 7, 30)   49 cells  position-aware
    yolov1-local-head                   134,059,198    (None, 7, 7, 30)   49 cells  position-aware
    gap-head                              1,506,750    (None, 7, 7, 30)   49 cells  invariant

The per-cell Dense and GAP + Dense have the same 4,198,400 parameters and see
opposite things: one cell with its position kept, or all cells with positions
lost. Only Flatten + Dense (and the local head's final Dense) sees every cell
*and* where it is, for 49 times the parameters.
"""

from __future__ import annotations

import json
import os
import re
import sys

import jax
import numpy as np

from jaxheads import heads, layers, summary, zoo
from jaxheads.layers import abstract_init, count

PAPER_MAP = (None, 7, 7, 1024)
PROBE_MAP = (None, 7, 7, 16)
PROBE_WIDTH = 64


def _layer_rows():
    """(label, layer on the paper map, the same structure narrow, for the probe)."""

    def dense(w):
        return layers.Dense(w)

    def flatten_dense(w):
        return layers.serial(layers.Flatten(), layers.Dense(w), name="flatten_dense")

    def gap_dense(w):
        return layers.serial(layers.GlobalAveragePooling2D(), layers.Dense(w), name="gap_dense")

    return [
        ("Dense(4096) per cell", dense),
        ("Flatten + Dense(4096)", flatten_dense),
        ("GlobalAveragePooling2D + Dense(4096)", gap_dense),
    ]


# zoo name -> the narrow head of the same structure used for the probe.
HEAD_PROBES = {
    "yolov1-percell-head": lambda: heads.yolov1_percell(side=7, hidden=PROBE_WIDTH).layer,
    "yolov1-fc-head": lambda: heads.yolov1_fc(side=7, hidden=PROBE_WIDTH).layer,
    "yolov1-local-head": lambda: heads.yolov1_local(side=7, filters=8).layer,
    "gap-head": lambda: heads.gap(side=7).layer,
}


def total_params(layer, input_shape) -> int:
    """``Total params`` as `jaxheads.summary` prints it."""
    text = summary(layer, input_shape)
    return int(re.search(r"Total params: ([\d,]+)", text).group(1).replace(",", ""))


def spatial_behaviour(layer, input_shape=PROBE_MAP, seed: int = 0) -> dict:
    """How ``layer`` treats the cells of a ``[1, 7, 7, C]`` map (random weights and input).

    Returns:
      ``{"cells_seen": n, "under_shuffle": "equivariant" | "invariant" | "position-aware"}``.
    """
    _, h, w, c = input_shape
    rng = np.random.default_rng(seed)
    # Random weights without compiling the initialisers: shapes from the abstract init.
    _, shapes, state_shapes = abstract_init(layer, input_shape)
    params = jax.tree.map(lambda s: rng.normal(0, 0.1, s.shape).astype(s.dtype), shapes)
    state = jax.tree.map(lambda s: np.ones(s.shape, s.dtype), state_shapes)
    x = rng.normal(size=(1, h, w, c)).astype(np.float32)
    perm = rng.permutation(h * w)

    def shuffle(a):
        return a.reshape(1, h * w, -1)[:, perm].reshape(a.shape)

    @jax.jit
    def probe(params, state, x):
        def f(x):
            return layer.apply(params, state, x)[0]

        grad = jax.grad(lambda x: f(x).reshape(-1)[0])(x)
        y = f(x)
        spatial = y.ndim == 4 and y.shape[1:3] == (h, w)
        return grad, y, f(shuffle(x)), shuffle(y) if spatial else None

    grad, y, y_of_shuffled, shuffled_y = probe(params, state, x)
    cells_seen = int(np.sum(np.any(np.asarray(grad[0]) != 0, axis=-1)))
    if shuffled_y is not None and np.allclose(y_of_shuffled, shuffled_y, rtol=1e-5, atol=1e-5):
        behaviour = "equivariant"
    elif np.allclose(y_of_shuffled, y, rtol=1e-5, atol=1e-5):
        behaviour = "invariant"
    else:
        behaviour = "position-aware"
    return {"cells_seen": cells_seen, "under_shuffle": behaviour}


KEEPS = {
    "equivariant": "each output cell sees its own cell only: position kept, no context",
    "invariant": "the layout is averaged away: no position survives",
    "position-aware": "every cell, at its position: layout and context both kept",
}


def table() -> list[dict]:
    """One row per layer or head: parameters and output shape on 7×7×1024, spatial behaviour."""
    rows = []
    for label, make in _layer_rows():
        layer = make(4096)
        out, params, state = abstract_init(layer, PAPER_MAP)
        rows.append(
            {
                "name": label,
                "params": total_params(layer, PAPER_MAP),
                "abstract_params": count(params) + count(state),
                "output_shape": out,
                **spatial_behaviour(make(PROBE_WIDTH)),
            }
        )
    for name, probe in HEAD_PROBES.items():
        layer, shape = zoo.build(name)
        out, params, state = abstract_init(layer, shape)
        rows.append(
            {
                "name": name,
                "params": total_params(layer, shape),
                "abstract_params": count(params) + count(state),
                "output_shape": out,
                **spatial_behaviour(probe()),
            }
        )
    for row in rows:
        if row["params"] != row["abstract_params"]:
            raise AssertionError(f"{row['name']}: summary and count disagree: {row}")
        row["keeps"] = KEEPS[row["under_shuffle"]]
        row["output_shape"] = (
            "(" + ", ".join("None" if d is None else str(d) for d in row["output_shape"]) + ")"
        )
    return rows


def _markdown(rows) -> str:
    lines = [
        "# Study: seeds",
        "",
        "Dense layers on the YOLOv1 paper's 7×7×1024 map, three ways, and the heads built "
        "from them. Params and output shapes from `jaxheads.summary` on 7×7×1024; the spatial "
        "columns are measured on a 7×7×16 map with narrow layers of the same structure "
        "(random weights): how many input cells the first output depends on, and what a "
        "shuffle of the cells does to the output.",
        "",
        "| layer / head | params | output shape | input cells seen by one output | "
        "under a shuffle of the cells | what it keeps of the layout |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['params']:,} | {r['output_shape']} | "
            f"{r['cells_seen']} | {r['under_shuffle']} | {r['keeps']} |"
        )
    lines += ["", "![params](params.png)", ""]
    return "\n".join(lines)


def _plot(rows, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"equivariant": "tab:blue", "invariant": "tab:red", "position-aware": "tab:green"}
    fig, ax = plt.subplots(figsize=(9, 4))
    y = np.arange(len(rows))
    ax.barh(y, [r["params"] for r in rows], color=[colours[r["under_shuffle"]] for r in rows])
    for i, r in enumerate(rows):
        ax.text(
            r["params"] * 1.1, i, f"{r['params']:,}  {r['output_shape']}", va="center", fontsize=8
        )
    ax.set_yticks(y, [r["name"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set(
        xscale="log",
        xlim=(1e5, 3e9),
        xlabel="parameters on 7×7×1024 (log scale)",
        title="Dense on a feature map: blue per cell, green position-aware, red invariant",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(workdir: str, *, progress: bool = True) -> list[dict]:
    """Writes ``results.json``, ``results.md`` and ``params.png`` in ``workdir``; returns rows."""
    rows = table()
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump({"study": "seeds", "rows": rows}, f, indent=1)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(_markdown(rows))
    _plot(rows, os.path.join(workdir, "params.png"))
    if progress:
        print(f"seeds: {len(rows)} rows written to {workdir}")
    return rows


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} WORKDIR")
    run(sys.argv[1])
