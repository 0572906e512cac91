"""``jaxheads bench --json``'s record as the table ``docs/benchmarks.md`` quotes.

The record holds the machine, the `jaxheads.bench.ChipBench` config, the command and
every `jaxheads.bench.Figure`; the table lists `jaxheads.bench.chip.REPORTED`'s figures
with the conditions they were measured in. `jaxheads.study.tables` quotes it between
``<!-- results:KEY -->`` markers.
"""

from __future__ import annotations

from collections.abc import Mapping

from jaxheads.bench.chip import CHIP_BENCH_KIND, REPORTED
from jaxheads.bench.figures import Figure, Figures


def is_chip_bench(result: Mapping) -> bool:
    """Whether ``result`` is ``jaxheads bench --json``'s record."""
    return result.get("kind") == CHIP_BENCH_KIND


def chip_bench_table(result: Mapping, source: str | None = None) -> str:
    """The reported figures of one ``jaxheads bench`` run, then how and where it ran
    (``source``: the record's path, linked)."""
    figures = Figures(Figure(**r) for r in result["figures"])
    m, c = result["machine"], result["config"]
    lines = ["| figure | value |", "|---|---|"]
    for section, metric, label, fmt in REPORTED:
        found = figures.select(section=section, metric=metric)
        if found:
            lines.append(f"| {label} | {fmt.format(found[0].value)} |")
    start, end = m["load_average_start"], m.get("load_average_end", [float("nan")])
    dtype = "bfloat16" if c["bf16"] else "float32"
    date = m["date"][:16].replace("T", " ")
    where = f" from [`{source}`]({source})" if source else ""
    lines += [
        "",
        f"`{c['model']}` at {c['image_size']}², batch {c['batch_size']}, {dtype}: medians of "
        f"{c['repeats']} interleaved runs of {c['steps']} steps. Measured on {m['cpu']} "
        f"({m['cpu_count']} cores, {m['device_kind']}, JAX {m['jax']}), {date} UTC, "
        f"load average {start[0]:.2f} at the start and {end[0]:.2f} at the end, in "
        f"{result['wall_s']:.0f} s; made by `{result['command']}`{where}.",
    ]
    return "\n".join(lines)
