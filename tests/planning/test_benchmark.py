"""The benchmark's arithmetic (infra/planning/benchmark.py), with numbers checked by hand in each docstring."""

from __future__ import annotations

import pytest

from infra.planning import benchmark as bm

# A vLLM 0.29 result file's fields (vllm/benchmarks/serve.py: benchmark() and process_one_metric, run with
# --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,99), trimmed to what the report reads.
RESULT = {
    "completed": 16,
    "failed": 0,
    "duration": 8.0,
    "total_output_tokens": 16000,
    "output_throughput": 2000.0,
    "median_ttft_ms": 150.0,
    "p99_ttft_ms": 400.0,
    "median_tpot_ms": 20.0,
    "p50_tpot_ms": 20.0,
    "p99_tpot_ms": 35.0,
}


def test_shapes_count_k_as_1024_and_keep_their_names():
    shapes = bm.parse_shapes("1k/1k,8k/1k,1k/8k,64/16")
    assert [(s.input_tokens, s.output_tokens) for s in shapes] == [(1024, 1024), (8192, 1024), (1024, 8192), (64, 16)]
    assert [s.name for s in shapes] == ["1k/1k", "8k/1k", "1k/8k", "64/16"]
    assert bm.parse_shapes(bm.DEFAULT_SHAPES) == shapes[:3]


@pytest.mark.parametrize("bad", ["1k", "1k/x", "0/16", "1k/1k/1k", "-1/4"])
def test_a_bad_shape_names_the_option_and_the_value(bad):
    with pytest.raises(bm.SweepError, match=rf"--shapes: '{bad}' is not INPUT/OUTPUT tokens"):
        bm.parse_shapes(bad)


@pytest.mark.parametrize("bad", ["4,1", "0,4", "a", "", "4,4"])
def test_concurrencies_must_rise(bad):
    with pytest.raises(bm.SweepError, match="--concurrency"):
        bm.parse_concurrencies(bad)


def test_each_point_is_bounded_in_requests():
    """4 requests per slot, at least 8, at most --max-prompts (256 by default)."""
    assert [bm.prompts_for(c) for c in (1, 2, 4, 16, 64, 128)] == [8, 8, 16, 64, 256, 256]
    assert bm.prompts_for(4, max_prompts=8) == 8
    points = bm.sweep(bm.parse_shapes("1k/1k,1k/8k"), (1, 16))
    assert [(p.name, p.num_prompts) for p in points] == [
        ("1k-1k-c1", 8),
        ("1k-1k-c16", 64),
        ("1k-8k-c1", 8),
        ("1k-8k-c16", 64),
    ]


def test_a_point_reads_vllms_result_fields():
    point = bm.sweep(bm.parse_shapes("1k/1k"), (4,))[0]
    measured = bm.measured_from_result(point, RESULT)
    assert (measured.completed, measured.failed, measured.output_tok_s) == (16, 0, 2000.0)
    assert (measured.ttft_p50_ms, measured.ttft_p99_ms, measured.tpot_p50_ms, measured.tpot_p99_ms) == (
        150.0,
        400.0,
        20.0,
        35.0,
    )
    with pytest.raises(KeyError, match="p99_ttft_ms"):
        bm.measured_from_result(point, {key: value for key, value in RESULT.items() if key != "p99_ttft_ms"})


def test_per_gpu_per_replica_and_price_per_million_output_tokens():
    """2000 tok/s on one replica of 16 GPUs: 125 tok/s per GPU; 2000 x 3600 = 7.2 M tokens an hour, so at
    $185.13/h a million output tokens cost 185.13 / 7.2 = $25.7125. Two replicas of 2 GPUs at 100 tok/s in all:
    50 per replica, 25 per GPU, and at $4.37/h: 4.37 / 0.36 = $12.1389 per million."""
    prod = bm.Pricing(replicas=1, gpus_per_replica=16, hourly_usd=185.13, price_basis="")
    assert prod.per_gpu(2000.0) == 125.0
    assert prod.per_replica(2000.0) == 2000.0
    assert prod.usd_per_million_output_tokens(2000.0) == pytest.approx(25.7125)
    dev = bm.Pricing(replicas=2, gpus_per_replica=2, hourly_usd=4.37, price_basis="")
    assert (dev.per_replica(100.0), dev.per_gpu(100.0)) == (50.0, 25.0)
    assert dev.usd_per_million_output_tokens(100.0) == pytest.approx(12.138889, rel=1e-6)
    unknown = bm.Pricing(replicas=1, gpus_per_replica=None, hourly_usd=None, price_basis="")
    assert unknown.per_gpu(100.0) is None and unknown.usd_per_million_output_tokens(100.0) is None
    assert prod.usd_per_million_output_tokens(0.0) is None  # nothing came out: no price per token


def _cost(mode: str, hourly: dict) -> dict:
    return {
        "capacity_mode": mode,
        "hourly_usd": hourly,
        "gpu_nodes": {"idle": 0, "max": 2},
        "gpu_machine": "a3-megagpu-8g",
        "prices": {"as_of": "2026-11-28"},
    }


@pytest.mark.parametrize(
    "mode, expected", [("on-demand", 4.37), ("flex-start", 4.37), ("spot", 2.41), ("reservation", 185.13)]
)
def test_the_price_is_the_one_the_capacity_mode_pays_with_every_gpu_node_up(mode, expected):
    hourly = {
        "on_demand": {"idle": 0.37, "max": 4.37},
        "spot": {"idle": 0.37, "max": 2.41},
        "reservation": {"idle": 185.13, "max": 185.13},
    }
    usd, basis = bm.stack_hourly_usd(_cost(mode, hourly))
    assert usd == expected
    assert f"{mode} list price with all 2 GPU node(s) of a3-megagpu-8g up" in basis


def _points(ttfts: list[float], concurrencies=(1, 4, 16, 64)) -> list[bm.Measured]:
    shape = bm.Shape(1024, 1024)
    return [
        bm.measured_from_result(bm.SweepPoint(shape, c, 8), {**RESULT, "median_ttft_ms": ttft})
        for c, ttft in zip(concurrencies, ttfts, strict=True)
    ]


def test_the_knee_is_the_last_concurrency_before_the_median_ttft_doubles():
    """TTFT p50 100, 150, 210, 900 ms: 210 > 2 x 100 at concurrency 16, so the knee is at 4."""
    found = bm.knee(list(reversed(_points([100, 150, 210, 900]))))
    assert found is not None and found.climbed
    assert (found.point.point.concurrency, found.first_over.point.concurrency) == (4, 16)


def test_no_knee_inside_the_sweep_when_latency_never_doubles():
    found = bm.knee(_points([100, 150, 200, 199]))  # exactly 2x is not past it
    assert found is not None and not found.climbed and found.point.point.concurrency == 64
    assert bm.knee([]) is None


def test_the_engine_log_line_of_vllm_0_29():
    """The format of vllm/v1/core/kv_cache_utils.py update_kv_cache_capacity, filled as vLLM fills it."""
    # vLLM's own %-format string, as logger.info_once fills it.
    line = "GPU KV cache size: %s tokens, Maximum concurrency for %s tokens per request: %.2fx" % (  # noqa: UP031
        f"{854400:,}",
        f"{32768:,}",
        26.07,
    )
    engine = bm.engine_from_log("INFO 12-03 [kv_cache_utils.py:2033] " + line)
    assert (engine.kv_tokens, engine.max_model_len, engine.max_concurrency) == (854400, 32768, 26.07)
    assert bm.engine_from_log("no such line") is None


def test_measured_against_planned_in_percent():
    """12,000 measured tokens against 10,000 planned: +20%; 3 sequences against 4: -25%."""
    engine = bm.EngineCapacity(12000, 3.0, 4000, 750, 16, "test")
    rows = bm.versus_planned(engine, {"kv_tokens": 10000, "concurrency_at_full_context": 4.0, "kv_cache_blocks": 625})
    assert [(r.what, r.measured, r.planned, r.percent) for r in rows] == [
        ("KV cache tokens", 12000, 10000, 20.0),
        ("sequences at full context", 3.0, 4.0, -25.0),
        ("KV cache blocks", 750, 625, 20.0),
    ]
    assert bm.versus_planned(engine, None)[0].percent is None


# Two engines' lines as the local server's Ray worker logs hold them (vLLM 0.29 on the CPU; trimmed config lines).
ENGINE_LOG = """\
(EngineCore pid=7581) INFO 12-03 15:26:46 [core.py:123] Initializing a V1 LLM engine (v0.29.0) with config: \
model='/root/.cache/llmserve/tiny-models/qwen2-v1', served_model_name=deepseek-r1-distill-qwen-1.5b, \
enable_prefix_caching=True
(EngineCore pid=7581) INFO 12-03 15:26:54 [kv_cache_utils.py:2032] GPU KV cache size: 2,097,152 tokens, \
Maximum concurrency for 512 tokens per request: 4096.00x
"""


def test_the_engine_of_the_benchmarked_model_is_picked_from_several_logs():
    other = ENGINE_LOG.replace("qwen-1.5b", "qwen-7b").replace("2,097,152", "1,048,576").replace("4096.00", "2048.00")
    engines = bm.engines_of_model([other, ENGINE_LOG, ENGINE_LOG], "deepseek-r1-distill-qwen-1.5b")
    assert [(e.kv_tokens, e.max_model_len, e.max_concurrency) for e in engines] == [(2097152, 512, 4096.0)]
    assert bm.engines_of_model([other], "deepseek-r1-distill-qwen-1.5b") == []
    unnamed = ENGINE_LOG.splitlines()[1]  # a log without the config line: the figures of an unnamed engine
    assert [e.kv_tokens for e in bm.engines_of_model([unnamed], "deepseek-r1")] == [2097152]
