"""The performance keys of a model (profile, kvCacheDtype, mtpSpeculativeTokens, expertParallel,
decodeContextParallelSize): parsing, profiles, what they render into engine_kwargs, and the vLLM 0.29 rules that need
only the model's keys (serve_app/spec/perf_rules.py)."""

from __future__ import annotations

from typing import Any

import pytest

from serve_app.builder import llm_config
from serve_app.errors import ModelConfigError
from serve_app.spec import ModelSpec, parse_models, validate_models

R1: dict[str, Any] = {
    "id": "deepseek-r1",
    "source": "deepseek-ai/DeepSeek-R1",
    "acceleratorType": "H100",
    "tensorParallelSize": 8,
    "pipelineParallelSize": 2,
}


def engine_kwargs(**keys: Any) -> dict[str, Any]:
    return llm_config(parse_models([{**R1, **keys}])[0])["engine_kwargs"]


def problems(**keys: Any) -> str:
    with pytest.raises(ModelConfigError) as raised:
        parse_models([{**R1, **keys}])
    return str(raised.value)


def test_by_default_no_performance_option_is_rendered():
    kwargs = engine_kwargs()
    for name in ("kv_cache_dtype", "speculative_config", "enable_expert_parallel", "decode_context_parallel_size"):
        assert name not in kwargs, f"{name} must stay vLLM's default unless asked for: {kwargs}"
    assert parse_models([R1])[0].profile is None


@pytest.mark.parametrize(
    "profile, expected",
    [
        ("fp8-kv", {"kv_cache_dtype": "fp8"}),
        ("mtp", {"speculative_config": {"method": "mtp", "num_speculative_tokens": 1}}),
        ("fp8-kv-mtp", {"kv_cache_dtype": "fp8", "speculative_config": {"method": "mtp", "num_speculative_tokens": 1}}),
    ],
)
def test_a_profile_renders_its_engine_options(profile, expected):
    kwargs = engine_kwargs(profile=profile)
    assert {name: kwargs.get(name) for name in expected} == expected
    assert parse_models([{**R1, "profile": profile}])[0].profile == profile


def test_keys_written_next_to_a_profile_win():
    kwargs = engine_kwargs(profile="fp8-kv-mtp", kvCacheDtype="auto", mtpSpeculativeTokens=2)
    assert kwargs["kv_cache_dtype"] == "auto"
    assert kwargs["speculative_config"] == {"method": "mtp", "num_speculative_tokens": 2}


def test_each_key_renders_the_vllm_option_it_names():
    kwargs = engine_kwargs(kvCacheDtype="fp8_e4m3", expertParallel=True, decodeContextParallelSize=4)
    assert (kwargs["kv_cache_dtype"], kwargs["enable_expert_parallel"], kwargs["decode_context_parallel_size"]) == (
        "fp8_e4m3",
        True,
        4,
    )


def test_an_unknown_profile_lists_the_profiles():
    assert "models[0].profile: unknown value; found 'fp8'; allowed one of none, fp8-kv, mtp, fp8-kv-mtp" in problems(
        profile="fp8"
    )


def test_the_options_the_keys_own_are_refused_in_engine_kwargs():
    text = problems(engineKwargs={"kv_cache_dtype": "fp8", "decode_context_parallel_size": 2})
    assert "models[0].engineKwargs.kv_cache_dtype: is set by the model spec, not engineKwargs (use the key " in text
    assert "kvCacheDtype)" in text
    assert "models[0].engineKwargs.decode_context_parallel_size: is set by the model spec" in text


def test_mtp_and_a_speculative_config_of_its_own_are_refused_together():
    text = problems(
        profile="mtp", engineKwargs={"speculative_config": {"method": "ngram", "num_speculative_tokens": 3}}
    )
    assert "models[0].mtpSpeculativeTokens: sets engineKwargs.speculative_config too" in text
    assert "(from profile mtp)" in text


# --- what vLLM 0.29 refuses at TP 8 x PP 2, citing the rule -------------------------------------------------------


@pytest.mark.parametrize("dcp", [3, 16])
def test_a_decode_context_parallel_size_that_does_not_divide_tp_is_refused(dcp):
    text = problems(decodeContextParallelSize=dcp)
    assert (
        f"models[0].decodeContextParallelSize: vLLM 0.29.0 refuses to start (decode context parallelism reuses the "
        f"tensor-parallel ranks, 'tp_size must be divisible by dcp_size', vllm/config/parallel.py lines 547-553); "
        f"found decodeContextParallelSize={dcp}, tensorParallelSize=8; allowed a divisor of tensorParallelSize: "
        "1, 2, 4, 8"
    ) in text


@pytest.mark.parametrize("dcp", [1, 2, 4, 8])
def test_a_decode_context_parallel_size_that_divides_tp_is_accepted(dcp):
    assert engine_kwargs(decodeContextParallelSize=dcp)["decode_context_parallel_size"] == dcp


@pytest.mark.parametrize("method", ["dflash", "dspark", "extract_hidden_states"])
def test_speculative_methods_that_refuse_pipeline_parallelism_are_refused_at_pp_2(method):
    text = problems(engineKwargs={"speculative_config": {"method": method, "num_speculative_tokens": 2}})
    assert (
        f"models[0].engineKwargs.speculative_config: vLLM 0.29.0 refuses to start ('{method} with pipeline parallel "
        "is not supported.', vllm/v1/worker/gpu/model_runner.py lines 263-275); found method "
        f"'{method}' with pipelineParallelSize=2"
    ) in text
    # The same method on one pipeline stage is not this rule's business.
    parse_models([{**R1, "pipelineParallelSize": 1, "engineKwargs": {"speculative_config": {"method": method}}}])


def test_mtp_is_accepted_at_pp_2():
    """vLLM 0.29 runs the MTP drafter on the last pipeline stage (v1/worker/gpu/model_runner.py lines 259-261)."""
    assert engine_kwargs(mtpSpeculativeTokens=1)["pipeline_parallel_size"] == 2


def test_elastic_ep_and_returned_routed_experts_are_refused_at_pp_2():
    text = problems(engineKwargs={"enable_elastic_ep": True, "enable_return_routed_experts": True})
    assert (
        "models[0].engineKwargs.enable_elastic_ep: vLLM 0.29.0 refuses to start ('Elastic EP is not supported with "
        "pipeline parallelism', vllm/config/parallel.py lines 876-882); found true with pipelineParallelSize=2"
    ) in text
    assert (
        "models[0].engineKwargs.enable_return_routed_experts: vLLM 0.29.0 refuses to start "
        "('--enable-return-routed-experts is incompatible with pipeline parallelism', vllm/config/vllm.py lines "
        "1098-1106)"
    ) in text


def test_eplb_needs_expert_parallel():
    text = problems(engineKwargs={"enable_eplb": True})
    assert "models[0].engineKwargs.enable_eplb: vLLM 0.29.0 refuses to start ('enable_expert_parallel must be" in text
    parse_models([{**R1, "expertParallel": True, "engineKwargs": {"enable_eplb": True}}])


def test_specs_built_in_code_get_the_same_rules():
    spec = ModelSpec("r1", "deepseek-ai/DeepSeek-R1", "H100", tensor_parallel_size=8, decode_context_parallel_size=3)
    with pytest.raises(ModelConfigError, match=r"models\[0\]\.decodeContextParallelSize: vLLM 0\.29\.0 refuses"):
        validate_models([spec])
