"""A smoke run of ``python -m benchmarks.bench``: every code path on tiny shapes, one repeat.

Nothing here asserts a speed: the figures must exist, be finite and positive, and
the checks the benchmark makes itself (the same function in the three frameworks,
`evaluate_detections` equal to pycocotools) must pass.
"""

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench  # noqa: E402
from jaxheads.bench import FIELDS  # noqa: E402

NET = "yolov1_fc"
FRAMEWORKS = ("jaxheads", "keras_train_on_batch", "keras_stateless", "flax_nnx")
# Each figure the smoke run must write, by its record's fields.
EXPECTED = [
    dict(section="detect", metric="images_per_s", framework="jaxheads", batch=1),
    dict(section="detect", metric="decode_s_per_image"),
    *(dict(section="train", metric="images_per_s", model=NET, framework=fw) for fw in FRAMEWORKS),
    *(dict(section="train", metric="first_step_s", model=NET, framework=fw) for fw in FRAMEWORKS),
    dict(section="train", metric="speedup", model=NET, framework="keras"),
    dict(section="train", metric="speedup", model=NET, framework="flax_nnx"),
    dict(section="train", metric="speedup_paired_median", model=NET, framework="flax_nnx"),
    dict(section="train", metric="compile_s", model=NET, framework="jaxheads"),
    dict(section="train", metric="lower_s", model=NET, framework="jaxheads"),
    dict(section="train", metric="compile_s", model=NET, framework="keras_stateless"),
    dict(section="train", metric="xla_flops_per_step", model=NET, framework="jaxheads"),
    dict(section="train", metric="model_flops_per_step", model=NET),
    dict(section="train", metric="achieved_flops_per_s", model=NET),
    dict(section="train", metric="matmul_peak_flops_per_s", model=NET),
    dict(section="train", metric="mfu", model=NET),
    dict(section="e2e", metric="images_per_s", model=NET, framework="jaxheads"),
    dict(section="e2e", metric="images_per_s", model=NET, framework="keras_fit"),
    dict(section="e2e", metric="images_per_s", model=NET, framework="jaxheads_predrawn"),
    dict(section="e2e", metric="speedup", model=NET, framework="keras_fit"),
    dict(section="e2e", metric="fraction_of_step", model=NET, framework="jaxheads"),
    dict(section="e2e", metric="fraction_of_step", model=NET, framework="jaxheads_predrawn"),
    dict(section="e2e", metric="data_wait_fraction", model=NET, framework="jaxheads"),
    dict(section="e2e", metric="data_wait_fraction", model=NET, framework="jaxheads_predrawn"),
    *(
        dict(section="infer", metric=metric, model=NET, batch=b)
        for metric in ("latency_ms", "images_per_s")
        for b in (1, 2)
    ),
    dict(section="evaluate", metric="seconds", framework="jaxheads"),
    dict(section="evaluate", metric="seconds", framework="pycocotools"),
    dict(section="evaluate", metric="speedup", framework="pycocotools"),
    dict(section="scaling", metric="images_per_s", model=NET, devices=1),
    dict(section="scaling", metric="images_per_s", model=NET, devices=2),
    dict(section="scaling", metric="speedup", model=NET, devices=2),
]
# Agreement checks and time waiting for data: zero is their best value.
DIFFERENCES = (
    "same_function_max_abs_diff",
    "first_loss_rel_diff",
    "stats_max_abs_diff",
    "data_wait_fraction",
)


def _select(records, **fields):
    return [r for r in records if all(r[k] == v for k, v in fields.items())]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    result = bench.run(
        bench.SMOKE,
        json_path=str(path),
        markdown_path=str(path.with_suffix(".md")),
        command="python -m benchmarks.bench --smoke",
        log=lambda msg: None,
    )
    written = json.loads(path.read_text())
    return result, written, path.with_suffix(".md").read_text()


def test_the_tables_are_written_beside_the_json_with_the_command(smoke):
    result, written, markdown = smoke
    assert written["command"] == "python -m benchmarks.bench --smoke"
    assert markdown.startswith("Made by `python -m benchmarks.bench --smoke`")
    assert bench.report(result) in markdown


def test_json_has_every_figure_finite_and_positive(smoke):
    result, written, _ = smoke
    records = written["figures"]
    missing = [fields for fields in EXPECTED if len(_select(records, **fields)) != 1]
    assert not missing
    for record in records:
        assert set(record) == {*FIELDS, "value"}, record
        assert math.isfinite(record["value"]), record
        if record["metric"] in DIFFERENCES:
            assert record["value"] >= 0, record
        else:
            assert record["value"] > 0, record
    # One record per figure: no two share every field but the value.
    keys = [tuple(r[k] for k in FIELDS) for r in records]
    assert len(set(keys)) == len(keys)
    assert records == result["figures"].to_json()


def test_json_describes_the_machine(smoke):
    machine = smoke[1]["machine"]
    for key in (
        "platform",
        "device_kind",
        "cpu_count",
        "jax",
        "keras",
        "flax",
        "load_average_start",
        "load_average_end",
        "date",
    ):
        assert key in machine
    assert machine["keras_backend"] == "jax"


def test_evaluate_equals_pycocotools(smoke):
    figures = smoke[0]["figures"]
    assert figures.value("evaluate", "stats_max_abs_diff") <= 1e-6
    for fw in ("keras", "flax_nnx"):
        assert figures.value("train", "same_function_max_abs_diff", model=NET, framework=fw) <= 1e-3


def test_targets_are_reported(smoke):
    targets = smoke[1]["targets"]
    assert _select(targets, section="train", metric="speedup", model=NET, framework="keras")
    assert _select(targets, section="evaluate", metric="speedup", framework="pycocotools")
    (host,) = _select(targets, section="detect", metric="host_fraction", framework="jaxheads")
    assert host["batch"] == 16 and host["target"] == 0.2
    for t in targets:
        assert t["status"] in ("met", "noise", "missed")


def test_an_at_most_target_is_met_below_and_missed_above():
    from jaxheads.bench import Figures

    for value, status in ((0.1, "met"), (0.2, "met"), (0.3, "missed")):
        figures = Figures()
        figures.add("detect", "host_fraction", value, framework="jaxheads", batch=16)
        figures.add("detect", "host_fraction", 0.9, framework="jaxheads", batch=1)  # not aimed at
        figures.add("detect", "speedup", 2.5, framework="darknet", batch=1)
        got = {(t["metric"], t["batch"]): t["status"] for t in bench.targets(figures)}
        assert got == {("host_fraction", 16): status, ("speedup", 1): "met"}


def test_report_has_a_table_per_section(smoke):
    text = bench.report(smoke[0])
    for heading in (
        "Training step",
        "Compilation and FLOPs",
        "End to end",
        "Inference",
        "COCO evaluation",
        "Scaling",
        "Targets",
    ):
        assert heading in text


def test_command_line_parses():
    args = bench.build_parser().parse_args(["--quick", "--json", "out.json", "--only", "evaluate"])
    assert args.quick and args.json == "out.json" and args.only == "evaluate"


def test_unknown_section_is_an_error():
    with pytest.raises(ValueError, match="sections"):
        bench.run(bench.SMOKE, sections=("train", "warp"), log=lambda msg: None)


@pytest.mark.parametrize("variant", ["untrimmed", "reduce_window", "tiled"])
def test_profile_pool_variants_compute_what_max_pool2d_computes(variant):
    # The op-by-op profile times the pools as they were; they must be the same function.
    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks import profile_step
    from jaxheads.ops import max_pool2d

    old = getattr(profile_step, f"{variant}_max_pool2d")
    x = jnp.asarray(np.random.default_rng(0).integers(0, 3, (2, 8, 8, 3)), jnp.float32)
    for pool, strides, padding in [(2, 2, ((0, 1), (0, 1))), (2, 1, "same"), (3, 2, 1)]:
        y, vjp = jax.vjp(lambda x, a=(pool, strides, padding): max_pool2d(x, *a), x)
        y_old, vjp_old = jax.vjp(lambda x, a=(pool, strides, padding): old(x, *a), x)
        np.testing.assert_array_equal(y, y_old)
        cot = jnp.asarray(np.arange(y.size).reshape(y.shape) % 5, jnp.float32)
        np.testing.assert_array_equal(vjp(cot)[0], vjp_old(cot)[0])


def test_profile_can_put_xla_convolutions_back():
    # The profile's "as it was" variants trace the network with XLA's convolution
    # everywhere; the patch must take effect while tracing and be undone afterwards.
    import jax
    import jax.numpy as jnp

    from benchmarks import profile_step
    from jaxheads.ops import conv2d

    x, k = jnp.ones((1, 4, 4, 64)), jnp.ones((3, 3, 64, 8))

    def convolutions():
        compiled = jax.jit(lambda x, k: conv2d(x, k, padding="same")).lower(x, k).compile()
        return compiled.as_text().count(" convolution(")

    with profile_step.patched(patches_min_channels=profile_step.XLA_CONVOLUTIONS_ONLY):
        assert convolutions() == 1
    assert convolutions() == 0
