"""The roofline of a training step as a table, from its record (``benchmarks/roofline.py``).

The record is the JSON ``python -m benchmarks.roofline`` writes to
``docs/results/bench/roofline.json``: per layer its FLOPs, bytes (unfused, as XLA:CPU
fuses, and the least a full fusion moves) and, per device, the bound and the time.
`jaxheads.study.tables` quotes this table in ``docs/benchmarks.md``.
"""

from __future__ import annotations

from collections.abc import Mapping


def bandwidth_bound_layers(result: Mapping, device: str) -> list[str]:
    """The layer numbers bound by bandwidth on ``device`` at the least bytes."""
    return [
        r["layer"].split("_")[0]
        for r in result["rows"]
        if r["devices"][device]["bound_min"] == "bandwidth"
    ]


def roofline_table(result: Mapping) -> str:
    """The per-layer table and the totals of a roofline record, as ``docs/benchmarks.md``
    quotes them (``result``: ``benchmarks/roofline.py``'s JSON; nothing is changed)."""
    h100, h200 = result["devices"]["H100"], result["devices"]["H200"]
    lines = [
        f"{result['model']}, {result['image_size']}², batch {result['batch']}, "
        f"{result['dtype']}; forward + backward of each layer. GB: unfused (every HLO op) / "
        "fused (XLA:CPU's fusions) / least (full fusion, modelled). Bound and µs: by the "
        f"least bytes. Ridge points: H100 {h100['ridge_flops_per_byte']:.0f}, H200 "
        f"{h200['ridge_flops_per_byte']:.0f} FLOP/byte.",
        "",
        "| layer | output | GFLOP | GB unfused / fused / least | unfused GB in BN / act. / casts"
        " | FLOP/byte (least) | H100 | H200 | µs H100 / H200 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def gb(*values):
        return " / ".join(f"{v / 1e9:.2f}" for v in values)

    for r in result["rows"]:
        p, d = r["parts"], r["devices"]
        out = "×".join(str(n) for n in r["output"][1:])
        split = gb(
            p.get("batch_norm", {}).get("bytes", 0.0),
            p.get("activation", {}).get("bytes", 0.0),
            p.get("conv", {}).get("casts_bytes", 0.0),
        )
        lines.append(
            f"| {r['layer']} | {out} | {r['flops'] / 1e9:.1f} "
            f"| {gb(r['bytes_unfused'], r['bytes_fused'], r['bytes_min'])} | {split} "
            f"| {r['flops'] / r['bytes_min']:.0f} | {d['H100']['bound_min']} "
            f"| {d['H200']['bound_min']} "
            f"| {d['H100']['time_min_s'] * 1e6:.0f} / {d['H200']['time_min_s'] * 1e6:.0f} |"
        )
    t = result["totals"]
    lines += [
        f"| **all layers** | | **{t['flops_layers'] / 1e9:.0f}** | **"
        f"{gb(t['bytes_layers_unfused'], t['bytes_layers_fused'], t['bytes_layers_min'])}** "
        f"| {gb(t['bytes_unfused_batch_norm'], t['bytes_unfused_activation'])} / "
        f"{t['bytes_unfused_casts'] / 1e9:.2f} | | | | |",
        "",
        "| whole step | H100 | H200 |",
        "|---|---|---|",
        f"| TFLOP; GB (unfused) | {t['flops_step'] / 1e12:.2f}; "
        f"{t['bytes_step_unfused'] / 1e9:.0f} | same |",
    ]
    for kind, label in (
        ("min", "least bytes"),
        ("fused", "XLA:CPU fusions"),
        ("unfused", "unfused"),
    ):
        lines.append(
            f"| roofline step time, {label} (ms); MFU ceiling "
            f"| {h100[f'predicted_step_s_{kind}'] * 1e3:.1f}; {h100[f'mfu_ceiling_{kind}']:.1%} "
            f"| {h200[f'predicted_step_s_{kind}'] * 1e3:.1f}; {h200[f'mfu_ceiling_{kind}']:.1%} |"
        )
    lines.append(
        f"| time at peak compute alone (ms) | {h100['compute_time_s'] * 1e3:.2f} "
        f"| {h200['compute_time_s'] * 1e3:.2f} |"
    )
    shares = [
        ("batch norm", t["bytes_unfused_batch_norm"]),
        ("leaky activations", t["bytes_unfused_activation"]),
        ("parameter casts", t["bytes_unfused_casts"]),
        ("convolutions", t["bytes_unfused_conv"]),
        ("pools, reorg, route", t["bytes_unfused_other"]),
        ("loss and optimizer", t["rest_of_step"]["bytes"]),
    ]
    lines.append(
        "| share of the unfused bytes | "
        + "; ".join(f"{k} {v / t['bytes_step_unfused']:.1%}" for k, v in shares)
        + " | same |"
    )
    lines.append(
        "| bandwidth-bound layers (least bytes) | "
        f"{', '.join(bandwidth_bound_layers(result, 'H100'))}"
        f" | {', '.join(bandwidth_bound_layers(result, 'H200'))} |"
    )
    return "\n".join(lines)
