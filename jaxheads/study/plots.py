"""A study's plots (matplotlib, Agg), from its `RunRecord`s and aggregated rows.

``learning_curves.png`` (training loss against step, per row), ``pr_curves.png``
(precision-recall at IoU 0.5, a panel per row), ``detections.png`` (predictions
and ground truth on validation images) and ``overview.png`` (mAP50 per row, and
mAP50 against parameters); for a budget sweep (`jaxheads.study.sweep`) also
``budget_sweep.png`` (mAP50 against images seen, a line per series).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from jaxheads.study.config import StudyConfig, variant_of
from jaxheads.study.records import DRAW_SCORE, RunRecord
from jaxheads.train.loop import MetricsLog
from jaxheads.train.metric_table import METRIC


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int, cols: int = 3) -> tuple[int, int]:
    cols = min(cols, n)
    return math.ceil(n / cols), cols


def _save(plt, fig, workdir: str, name: str, *, layout: bool = True) -> str:
    if layout:
        fig.tight_layout(rect=(0, 0, 1, 0.97) if fig.get_suptitle() else None)
    fig.savefig(os.path.join(workdir, name), dpi=110)
    plt.close(fig)
    return name


def plot_all(
    config: StudyConfig,
    records: Sequence[RunRecord],
    heads: Sequence[Mapping],
    workdir: str,
    budget_sweep: Mapping | None = None,
) -> list[str]:
    """Writes the four plots (five with ``budget_sweep``, `jaxheads.study.sweep.sweep`'s
    result) into ``workdir``; returns their file names."""
    plt = _pyplot()
    by_head: dict[str, list[RunRecord]] = {}
    for r in records:
        by_head.setdefault(r.row["head"], []).append(r)
    labels = [h["head"] for h in heads]
    names = [
        learning_curves(plt, config.name, by_head, labels, workdir),
        pr_curves(plt, config.name, by_head, labels, workdir),
        detections(plt, config, by_head, labels, workdir),
        overview(plt, heads, workdir),
    ]
    if budget_sweep is not None:
        names.append(budget_curves(plt, config.name, budget_sweep, workdir))
    return names


def row_styles(labels: Sequence[str]) -> dict[str, tuple[int, str]]:
    """``{label: (colour index, line style)}``: a row and its pre-trained variants share a
    colour, the variants dashed, so that twelve rows read as six pairs.

    >>> row_styles(["a", "a@pre", "b"])
    {'a': (0, '-'), 'a@pre': (0, '--'), 'b': (1, '-')}
    """
    bases = list(dict.fromkeys(variant_of(label)[0] for label in labels))
    return {
        label: (bases.index(variant_of(label)[0]) % 10, "--" if variant_of(label)[1] else "-")
        for label in labels
    }


def learning_curves(plt, name: str, by_head, labels, workdir: str) -> str:
    """Training loss against step: every seed thin, the mean over seeds thick."""
    colours = plt.get_cmap("tab10")
    styles = row_styles(labels)
    fig, ax = plt.subplots(figsize=(8, 5))
    for label in labels:
        i, dash = styles[label]
        curves = []
        for r in by_head[label]:
            logged = MetricsLog(os.path.join(workdir, r.train_dir, "metrics.jsonl")).read()
            pts = [(m["step"], m["loss"]) for m in logged if "loss" in m]
            if pts:
                curves.append(np.asarray(pts, np.float64))
                ax.plot(*curves[-1].T, color=colours(i), alpha=0.3, linewidth=0.8, ls=dash)
        if curves:
            n = min(len(c) for c in curves)
            mean = np.mean([c[:n, 1] for c in curves], axis=0)
            ax.plot(curves[0][:n, 0], mean, color=colours(i), linewidth=2, label=label, ls=dash)
    ax.set(
        xlabel="step",
        ylabel="training loss (the head's own loss)",
        yscale="log",
        title=f"{name}: learning curves (thin: seeds, thick: mean)",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(plt, fig, workdir, "learning_curves.png")


def pr_curves(plt, name: str, by_head, labels, workdir: str) -> str:
    """Precision-recall at IoU 0.5, first seed of each row, one line per class."""
    colours = plt.get_cmap("tab10")
    rows_, cols_ = _grid(len(labels))
    fig, axes = plt.subplots(rows_, cols_, figsize=(4 * cols_, 3.5 * rows_), squeeze=False)
    fmt = METRIC["mAP50"].format_one
    for ax, label in zip(axes.flat, labels, strict=False):
        r = by_head[label][0]
        for k, (recall, precision) in sorted(r.pr_curves.items(), key=lambda kv: int(kv[0])):
            ap = r.row["per_class_ap50"].get(k, r.row["per_class_ap50"].get(int(k)))
            ax.plot(
                recall,
                precision,
                color=colours(int(k) % 10),
                label=f"{r.class_names[int(k)]} (AP {'n/a' if ap is None else f'{ap:.2f}'})",
            )
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1.02),
            xlabel="recall",
            ylabel="precision",
            title=f"{label} (seed {r.row['seed']}): mAP50 {fmt(r.row['mAP50'])}",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    for ax in list(axes.flat)[len(labels) :]:
        ax.axis("off")
    fig.suptitle(f"{name}: precision-recall at IoU 0.5 (VOC2010)")
    return _save(plt, fig, workdir, "pr_curves.png")


def _val_images(record: RunRecord, count: int, cache: dict) -> list:
    """The first ``count`` images of the validation set ``record`` was evaluated on."""
    from jaxheads.train.detection import make_dataset

    val, size = record.val, record.row["eval_image_size"]
    key = (val["dataset"], size, val["num_examples"], val["seed"])
    if key not in cache:
        data = make_dataset(
            val["dataset"],
            "val",
            image_size=size,
            num_examples=val["num_examples"],
            seed=val["seed"],
        )
        cache[key] = [data.example(i)["image"] for i in range(count)]
    return cache[key]


def _draw_example(plt, ax, example: Mapping, names: Sequence[str]) -> None:
    """Ground truth dashed green; detections solid (dotted: below `DRAW_SCORE`) with labels."""
    colours = plt.get_cmap("tab10")
    for x0, y0, x1, y1 in example["truth_boxes"]:
        ax.add_patch(
            plt.Rectangle(
                (x0, y0),
                x1 - x0,
                y1 - y0,
                fill=False,
                edgecolor="lime",
                linestyle="--",
                linewidth=1.2,
            )
        )
    dotted = not example.get("confident", True)
    boxes = zip(example["boxes"], example["scores"], example["labels"], strict=True)
    for (x0, y0, x1, y1), s, c in boxes:
        colour = colours((c + 3) % 10)
        ax.add_patch(
            plt.Rectangle(
                (x0, y0),
                x1 - x0,
                y1 - y0,
                fill=False,
                edgecolor=colour,
                linewidth=1.5,
                linestyle=":" if dotted else "-",
            )
        )
        ax.text(
            x0,
            y0,
            f"{names[c]} {s:.2f}",
            color="white",
            fontsize=6,
            va="bottom",
            clip_on=True,
            bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "linewidth": 0},
        )
    if dotted:
        ax.set_title(f"none ≥ {DRAW_SCORE}: best one, dotted", fontsize=7)


def detections(plt, config: StudyConfig, by_head, labels, workdir: str) -> str:
    """Each row's first-seed detections on the first validation images."""
    first = {label: by_head[label][0] for label in labels}
    count = min(config.budget.example_images, min(len(r.examples) for r in first.values()))
    count = max(count, 1)
    fig, axes = plt.subplots(
        len(labels), count, figsize=(2.6 * count, 2.7 * len(labels)), squeeze=False
    )
    cache: dict[tuple, list] = {}
    for row, label in enumerate(labels):
        r = first[label]
        size = r.row["eval_image_size"]
        images = _val_images(r, count, cache)
        for col in range(count):
            ax = axes[row, col]
            # Pixel (r, c) covers [c, c + 1) × [r, r + 1), as the boxes do.
            ax.imshow(images[col], interpolation="nearest", extent=(0, size, size, 0))
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
            if col >= len(r.examples):
                continue
            _draw_example(plt, ax, r.examples[col], r.class_names)
            ax.set_xlim(0, size)
            ax.set_ylim(size, 0)
    fig.suptitle(
        f"{config.name}: detections with score ≥ {DRAW_SCORE} (solid, class and score; dotted: "
        "the best one where none reaches it), ground truth dashed green; first seed",
        fontsize=9,
    )
    return _save(plt, fig, workdir, "detections.png")


def spread_labels(
    boxes: Sequence[tuple[float, float, float]],
    height: float,
    bounds: tuple[float, float] | None = None,
) -> list[float]:
    """New heights for text labels so that none overlaps another: ``boxes`` are each
    label's ``(left, right, y)`` in points; labels whose spans overlap (directly or through
    others) are moved as little as they can be (least squares) to be at least ``height``
    apart, a cluster staying centred on its labels' mean height, and kept within ``bounds``
    (``(low, high)`` for the labels' heights, e.g. inside the axes); a label that
    shares its span with no other keeps its ``y`` (brought within ``bounds``).

    >>> spread_labels([(0, 50, 10), (20, 70, 12), (100, 150, 11)], height=10)
    [6.0, 16.0, 11.0]
    >>> spread_labels([(0, 50, 10), (20, 70, 12)], height=10, bounds=(8, 100))
    [8.0, 18.0]
    """
    low, high = bounds if bounds is not None else (-math.inf, math.inf)
    ys = [min(max(float(y), low), high) for _, _, y in boxes]
    # Labels whose spans overlap, directly or through others, form a group; groups are
    # side by side, so each is placed on its own.
    group = list(range(len(boxes)))

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for i, j in itertools.combinations(range(len(boxes)), 2):
        if boxes[i][1] > boxes[j][0] and boxes[j][1] > boxes[i][0]:
            group[root(i)] = root(j)
    members: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        members.setdefault(root(i), []).append(i)
    for labels in members.values():
        if len(labels) == 1:
            continue
        # Bottom to top (a tie: the later label above), the heights p_k closest to the
        # labels' own y_k (least squares) with p_k+1 - p_k >= height: with q_k = p_k - k·height
        # that is a non-decreasing fit of y_k - k·height, pooling adjacent violators (each
        # pool keeps its mean, so a cluster stays centred), clipped to what the bounds allow.
        order = sorted(labels, key=lambda i: (ys[i], i))
        pools: list[list[float]] = []  # [sum, count] of each pool, bottom to top
        for k, i in enumerate(order):
            pools.append([ys[i] - k * height, 1.0])
            while len(pools) > 1 and pools[-2][0] / pools[-2][1] > pools[-1][0] / pools[-1][1]:
                total, count = pools.pop()
                pools[-1][0] += total
                pools[-1][1] += count
        top = high - (len(order) - 1) * height
        k = 0
        for total, count in pools:
            q = float(max(min(total / count, top), low))
            for _ in range(int(count)):
                ys[order[k]] = q + k * height
                k += 1
    return ys


def _label_points(fig, ax, points, labels, fontsize: float = 8) -> None:
    """Each point's label beside it (to its left where the axes end), moved up or down,
    with a thin leader, where it would overlap another label; all inside the axes."""
    scale = 72 / fig.dpi  # display pixels to points
    probes = [ax.text(0, 0, label, fontsize=fontsize) for label in labels]
    fig.canvas.draw()  # the axes' final limits and scale, and each label's rendered width
    widths = [t.get_window_extent().width * scale for t in probes]
    for t in probes:
        t.remove()
    xy = ax.transData.transform(np.asarray(points, float)) * scale
    x0, y0, x1, y1 = (v * scale for v in ax.bbox.extents)
    height = 1.2 * fontsize
    boxes, sides = [], []
    for (x, y), width in zip(xy, widths, strict=True):
        right = x + 4 + width <= x1
        sides.append(1 if right else -1)
        boxes.append((x + 4, x + 4 + width, y + 4) if right else (x - 4 - width, x - 4, y + 4))
    ys = spread_labels(boxes, height, bounds=(y0 + height / 2, y1 - height / 2))
    for point, (_, _, start), y, side, label in zip(points, boxes, ys, sides, labels, strict=True):
        text = ax.annotate(
            label,
            point,
            fontsize=fontsize,
            xytext=(4 * side, y - (start - 4)),
            textcoords="offset points",
            ha="left" if side > 0 else "right",
            va="center",
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"}
            if abs(y - start) > 0.5
            else None,
        )
        text.set_in_layout(False)  # placed for these axes: the layout must not move them


def overview(plt, heads: Sequence[Mapping], workdir: str) -> str:
    """Writes `overview_figure` as ``overview.png``; returns the name."""
    return _save(plt, overview_figure(plt, heads), workdir, "overview.png", layout=False)


def overview_figure(plt, heads: Sequence[Mapping]):
    """mAP50 ± std per row (a horizontal bar each, its name level beside it, so that no
    two names overlap however many rows), and mAP50 against parameters (each point
    named, names pushed apart where close values would overlap them); laid out."""
    colours = plt.get_cmap("tab10")
    labels = [h["head"] for h in heads]
    # a bar's pitch at least two lines of its 8-point name
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, max(4.5, 1.6 + 0.25 * len(heads))))
    y = np.arange(len(heads))
    means = [h["mAP50"] or 0 for h in heads]
    errs = [h["mAP50_std"] or 0 for h in heads]
    styles = row_styles(labels)
    ax1.barh(
        y,
        means,
        xerr=errs,
        color=[colours(styles[label][0]) for label in labels],
        capsize=4,
    )
    for bar, label in zip(ax1.patches, labels, strict=True):
        if styles[label][1] == "--":
            bar.set_hatch("//")
    ax1.set_yticks(y, labels, fontsize=8)
    ax1.invert_yaxis()  # the first row on top, as in the tables
    ax1.set(xlabel="mAP50 (VOC2010)", title="mAP50, mean ± std over seeds")
    ax1.grid(axis="x", alpha=0.3)
    for i, h in enumerate(heads):
        marker = "s" if styles[h["head"]][1] == "--" else "o"
        colour = colours(styles[h["head"]][0])
        ax2.errorbar(h["params"], means[i], yerr=errs[i], fmt=marker, color=colour, capsize=3)
    ax2.set(
        xscale="log",
        xlabel="parameters (whole detector)",
        ylabel="mAP50 (VOC2010)",
        title="accuracy against size",
    )
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    _label_points(fig, ax2, [(h["params"], m) for h, m in zip(heads, means, strict=True)], labels)
    return fig


def budget_curves(plt, name: str, budget_sweep: Mapping, workdir: str) -> str:
    """The sweep's metric against images seen (log x): a line per series through the
    means, a band of ± one seed std, each seed a dot; pre-trained series dashed."""
    colours = plt.get_cmap("tab10")
    key = budget_sweep["metric"]
    styles = row_styles([s["series"] for s in budget_sweep["series"]])
    fig, ax = plt.subplots(figsize=(8, 5))
    for s in budget_sweep["series"]:
        i, dash = styles[s["series"]]
        points = [p for p in s["points"] if p["images_seen"] and p.get(key) is not None]
        if not points:
            continue
        x = np.asarray([p["images_seen"] for p in points], np.float64)
        mean = np.asarray([p[key] for p in points], np.float64)
        std = np.asarray([p.get(f"{key}_std") or 0.0 for p in points], np.float64)
        colour = colours(i)
        ax.plot(x, mean, color=colour, ls=dash, marker="o", linewidth=2, label=s["series"])
        if std.any():
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
        for xi, p in zip(x, points, strict=True):
            seeds = [v for v in p["per_seed"].values() if v is not None]
            ax.scatter([xi] * len(seeds), seeds, color=colour, s=10, alpha=0.5, linewidths=0)
    seen = {
        p["steps"]: p["images_seen"]
        for s in budget_sweep["series"]
        for p in s["points"]
        if p["images_seen"]
    }
    ax.set(
        xscale="log",
        xlabel="training images seen (steps × batch), each budget a run of its own",
        ylabel=f"{METRIC[key].label}",
        title=f"{name}: {METRIC[key].label} against budget (mean, ± std band, dots: seeds)",
    )
    # Each budget labelled where it lies: its images and its steps.
    ax.set_xticks(
        [seen[n] for n in sorted(seen)], [f"{seen[n]:,}\n{n:,} steps" for n in sorted(seen)]
    )
    ax.minorticks_off()
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, handlelength=3.5)  # long enough to show the dashes
    return _save(plt, fig, workdir, "budget_sweep.png")
