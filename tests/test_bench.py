"""A smoke run of ``jaxheads bench``: every code path on tiny shapes, one repeat.

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
from jaxheads.cli import build_parser  # noqa: E402

NET = "yolov1_fc"
FRAMEWORKS = ("jaxheads", "keras_train_on_batch", "keras_stateless", "flax_nnx")
EXPECTED = [
    "detect_images_per_s_b1",
    "detect_decode_s_per_image",
    *(f"train_images_per_s_{fw}_{NET}" for fw in FRAMEWORKS),
    *(f"first_step_s_{fw}_{NET}" for fw in FRAMEWORKS),
    f"speedup_vs_keras_{NET}",
    f"speedup_vs_flax_{NET}",
    f"speedup_vs_flax_paired_median_{NET}",
    f"compile_s_jaxheads_{NET}",
    f"lower_s_jaxheads_{NET}",
    f"compile_s_keras_stateless_{NET}",
    f"xla_flops_per_step_jaxheads_{NET}",
    f"model_flops_per_step_{NET}",
    f"achieved_flops_per_s_{NET}",
    f"matmul_peak_flops_per_s_{NET}",
    f"mfu_{NET}",
    f"e2e_images_per_s_jaxheads_{NET}",
    f"e2e_images_per_s_keras_fit_{NET}",
    f"e2e_speedup_vs_keras_fit_{NET}",
    f"e2e_fraction_of_step_{NET}",
    f"e2e_fraction_of_step_predrawn_{NET}",
    f"e2e_images_per_s_jaxheads_predrawn_{NET}",
    f"e2e_data_wait_fraction_jaxheads_{NET}",
    f"e2e_data_wait_fraction_jaxheads_predrawn_{NET}",
    f"infer_latency_ms_b1_{NET}",
    f"infer_images_per_s_b1_{NET}",
    f"infer_latency_ms_b2_{NET}",
    f"infer_images_per_s_b2_{NET}",
    "evaluate_s_jaxheads",
    "evaluate_s_pycocotools",
    "evaluate_speedup_vs_pycocotools",
    f"scaling_images_per_s_{NET}_1dev",
    f"scaling_images_per_s_{NET}_2dev",
    f"scaling_speedup_{NET}_2dev",
]
# Agreement checks and time waiting for data: zero is their best value.
DIFFERENCES = ("same_function_max_abs_diff_", "evaluate_stats_max_abs_diff", "e2e_data_wait_")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    result = bench.run(bench.SMOKE, json_path=str(path), log=lambda msg: None)
    return result, json.loads(path.read_text())


def test_json_has_every_figure_finite_and_positive(smoke):
    result, written = smoke
    figures = written["figures"]
    missing = [k for k in EXPECTED if k not in figures]
    assert not missing
    for key, value in figures.items():
        assert math.isfinite(value), key
        if key.startswith(DIFFERENCES):
            assert value >= 0, key
        else:
            assert value > 0, key
    assert written["figures"] == pytest.approx(result["figures"])


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
    figures = smoke[1]["figures"]
    assert figures["evaluate_stats_max_abs_diff"] <= 1e-6
    for fw in ("keras", "flax_nnx"):
        assert figures[f"same_function_max_abs_diff_{fw}_{NET}"] <= 1e-3


def test_targets_are_reported(smoke):
    targets = smoke[1]["targets"]
    assert f"speedup_vs_keras_{NET}" in targets
    assert "evaluate_speedup_vs_pycocotools" in targets
    for t in targets.values():
        assert t["status"] in ("met", "noise", "missed")


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


def test_cli_parses_bench():
    args = build_parser().parse_args(
        ["bench", "--quick", "--json", "out.json", "--only", "evaluate"]
    )
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
