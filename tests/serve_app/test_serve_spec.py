"""`serve_app.spec`: parsing the `models` stack config, its rules, presets and the ModelSpec value type.

Each bad-input rule is one row of `BAD_INPUTS`: the stack config, and the start of the problem line it
must produce (key path + what is wrong). Every problem line must also have the documented shape
``<key>[<i>].<field>: <what>; found <value>; allowed <...>``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from serve_app.errors import ModelConfigError
from serve_app.spec import KEYS, OWNED_ENGINE_ARGS, ModelSpec, keys_markdown, parse_models, validate_models, with_preset

R1 = "deepseek-ai/DeepSeek-R1"
PROBLEM_SHAPE = re.compile(r"^models(\[\d+\])?(\.[^:]+)?: .+; found .+; allowed .+$")


def m(**overrides: Any) -> dict[str, Any]:
    """A valid model object with keys replaced (a value of DROP removes the key)."""
    base: dict[str, Any] = {"id": "small", "source": "Qwen/Qwen2.5-0.5B-Instruct", "acceleratorType": "L4"}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not DROP}


DROP = object()


def r1(**overrides: Any) -> dict[str, Any]:
    """The project's DeepSeek-R1 model object (TP8 x PP2 on H100) with keys replaced."""
    base = {
        "id": "deepseek-r1",
        "source": R1,
        "acceleratorType": "H100",
        "tensorParallelSize": 8,
        "pipelineParallelSize": 2,
    }
    return m(**{**base, **overrides})


def problems_of(raw: Any) -> tuple[str, ...]:
    with pytest.raises(ModelConfigError) as caught:
        parse_models(raw)
    return caught.value.problems


# (case id, stack config value, expected start of one problem line)
BAD_INPUTS: list[tuple[str, Any, str]] = [
    # shape of the whole value
    ("root not a list", {"id": "x"}, "models: must be a list of model objects"),
    ("root a string", "deepseek", "models: must be a list of model objects"),
    ("empty list", [], "models: must list at least one model"),
    ("item not an object", ["deepseek-r1"], "models[0]: must be an object"),
    # keys
    (
        "unknown key, typo",
        [m(tensorParalelSize=2)],
        "models[0].tensorParalelSize: unknown key (did you mean 'tensorParallelSize'?)",
    ),
    (
        "unknown key, snake_case",
        [m(max_replicas=2)],
        "models[0].max_replicas: unknown key (did you mean 'maxReplicas'?)",
    ),
    (
        "unknown key that is a vLLM option",
        [m(enforceEager=True)],
        "models[0].enforceEager: unknown key; 'enforce_eager' is a vLLM option: put it under engineKwargs",
    ),
    ("missing id", [m(id=DROP)], "models[0].id: required key is missing"),
    ("missing source", [m(source=DROP)], "models[0].source: required key is missing"),
    ("missing acceleratorType", [m(acceleratorType=DROP)], "models[0].acceleratorType: required key is missing"),
    # types
    (
        "integer as string",
        [m(tensorParallelSize="8")],
        "models[0].tensorParallelSize: must be an integer; found '8' (str)",
    ),
    ("boolean as integer", [m(minReplicas=True)], "models[0].minReplicas: must be an integer; found True (bool)"),
    ("float as integer", [m(maxModelLen=4096.0)], "models[0].maxModelLen: must be an integer"),
    ("string as boolean", [m(enablePrefixCaching="yes")], "models[0].enablePrefixCaching: must be a boolean"),
    ("list as map", [m(engineKwargs=["enforce_eager"])], "models[0].engineKwargs: must be a map"),
    # ranges
    ("tp < 1", [m(tensorParallelSize=0)], "models[0].tensorParallelSize: out of range; found 0; allowed integers >= 1"),
    (
        "pp < 1",
        [m(pipelineParallelSize=-1)],
        "models[0].pipelineParallelSize: out of range; found -1; allowed integers 1 to 256",
    ),
    ("min replicas < 0", [m(minReplicas=-1)], "models[0].minReplicas: out of range; found -1; allowed integers >= 0"),
    ("max replicas 0", [m(maxReplicas=0)], "models[0].maxReplicas: out of range; found 0; allowed integers >= 1"),
    (
        "gpu memory > 1",
        [m(gpuMemoryUtilization=1.5)],
        "models[0].gpuMemoryUtilization: out of range; found 1.5; allowed numbers > 0 and <= 1",
    ),
    (
        "target 0",
        [m(targetOngoingRequests=0)],
        "models[0].targetOngoingRequests: out of range; found 0; allowed numbers > 0",
    ),
    # enums and formats
    (
        "accelerator GKE-style name",
        [m(acceleratorType="nvidia-h100-80gb")],
        "models[0].acceleratorType: not a Ray accelerator name (did you mean 'H100'?)",
    ),
    (
        "accelerator with memory suffix",
        [m(acceleratorType="H100-80GB")],
        "models[0].acceleratorType: not a Ray accelerator name (did you mean 'H100'?)",
    ),
    (
        "accelerator unknown",
        [m(acceleratorType="Hopper")],
        "models[0].acceleratorType: not a Ray accelerator name; found",
    ),
    ("accelerator A10", [m(acceleratorType="A10")], "models[0].acceleratorType: Ray calls this GPU A10G"),
    ("accelerator TPU", [m(acceleratorType="TPU-V5P")], "models[0].acceleratorType: TPUs are not supported"),
    ("preset unknown", [m(preset="deepseek")], "models[0].preset: unknown value"),
    ("id with colon", [m(id="r1:latest")], "models[0].id: not a valid model id"),
    ("id with space", [m(id="deep seek")], "models[0].id: not a valid model id"),
    (
        "source http",
        [m(source="https://huggingface.co/deepseek-ai/DeepSeek-R1")],
        "models[0].source: unsupported URI scheme",
    ),
    ("source bucketless", [m(source="gs://")], "models[0].source: gs:// URI without a bucket"),
    (
        "source garbage",
        [m(source="deepseek r1")],
        "models[0].source: not a Hugging Face id, absolute path or supported URI",
    ),
    (
        "reasoning parser unknown",
        [m(reasoningParser="deepseek-r1")],
        "models[0].reasoningParser: not a reasoning parser of vLLM 0.29.0 (did you mean 'deepseek_r1'?)",
    ),
    # engine options
    (
        "removed enable_reasoning",
        [m(engineKwargs={"enable_reasoning": True})],
        "models[0].engineKwargs.enable_reasoning: unknown engine option for vLLM 0.29.0: removed from vLLM",
    ),
    (
        "removed device",
        [m(engineKwargs={"device": "cuda"})],
        "models[0].engineKwargs.device: unknown engine option for vLLM 0.29.0: removed from vLLM",
    ),
    (
        "engine option typo",
        [m(engineKwargs={"max_num_seq": 32})],
        "models[0].engineKwargs.max_num_seq: unknown engine option for vLLM 0.29.0 (did you mean 'max_num_seqs'?)",
    ),
    (
        "engine option camelCase",
        [m(engineKwargs={"enforceEager": True})],
        "models[0].engineKwargs.enforceEager: unknown engine option for vLLM 0.29.0 (did you mean 'enforce_eager'?)",
    ),
    (
        "engine option made up",
        [m(engineKwargs={"turbo_mode": True})],
        "models[0].engineKwargs.turbo_mode: unknown engine option for vLLM 0.29.0; found",
    ),
    (
        "engine model",
        [m(engineKwargs={"model": "x/y"})],
        "models[0].engineKwargs.model: Ray Serve LLM sets it from `source`",
    ),
    (
        "engine served_model_name",
        [m(engineKwargs={"served_model_name": "x"})],
        "models[0].engineKwargs.served_model_name: Ray Serve LLM sets it from `id`",
    ),
    (
        "engine executor backend",
        [m(engineKwargs={"distributed_executor_backend": "mp"})],
        "models[0].engineKwargs.distributed_executor_backend: Ray Serve LLM sets it",
    ),
    (
        "engine api_key",
        [m(engineKwargs={"api_key": ["sk-secret-value"]})],
        "models[0].engineKwargs.api_key: a secret would sit in plain text",
    ),
    (
        "engine data parallel",
        [m(engineKwargs={"data_parallel_size": 2})],
        "models[0].engineKwargs.data_parallel_size: data parallelism needs Ray's build_dp_openai_app",
    ),
    (
        "engine disable_log_stats",
        [m(engineKwargs={"disable_log_stats": True})],
        "models[0].engineKwargs.disable_log_stats: conflicts with log_engine_metrics",
    ),
    # environment variables
    (
        "env VLLM_USE_V1",
        [m(envVars={"VLLM_USE_V1": "1"})],
        "models[0].envVars.VLLM_USE_V1: removed: vLLM 0.29.0 no longer reads it",
    ),
    ("env HF_TOKEN", [m(envVars={"HF_TOKEN": "hf_secret_value"})], "models[0].envVars.HF_TOKEN: a secret"),
    (
        "env secret-looking",
        [m(envVars={"WANDB_API_KEY": "secret_value"})],
        "models[0].envVars.WANDB_API_KEY: looks like a secret",
    ),
    ("env bad name", [m(envVars={"1BAD": "x"})], "models[0].envVars.1BAD: not an environment variable name"),
    (
        "env boolean value",
        [m(envVars={"FLAG": True})],
        "models[0].envVars.FLAG: environment variable values must be strings",
    ),
    # cross-field rules
    ("duplicate ids", [m(id="a"), m(id="a")], "models[1].id: duplicate model id (also models[0].id)"),
    (
        "ids that collide as deployment names",
        [m(id="qwen2.5"), m(id="qwen2_5")],
        "models[1].id: maps to the same Serve deployment name as models[0].id",
    ),
    (
        "min > max",
        [m(minReplicas=3, maxReplicas=2, targetOngoingRequests=8)],
        "models[0].minReplicas: must not exceed maxReplicas; found minReplicas=3, maxReplicas=2; allowed 0..2",
    ),
    (
        "initial outside bounds",
        [m(minReplicas=1, maxReplicas=2, initialReplicas=3, targetOngoingRequests=8)],
        "models[0].initialReplicas: must lie between minReplicas and maxReplicas",
    ),
    (
        "autoscaling without target",
        [m(minReplicas=1, maxReplicas=4)],
        "models[0].targetOngoingRequests: required when the model can scale above one replica",
    ),
    (
        "prefix routing true with max 1",
        [m(prefixCacheRouting=True)],
        "models[0].prefixCacheRouting: prefix-cache routing chooses between replicas and needs maxReplicas >= 2",
    ),
    (
        "prefix routing on without prefix caching",
        [m(maxReplicas=2, targetOngoingRequests=8, enablePrefixCaching=False)],
        "models[0].enablePrefixCaching: prefix-cache routing is on",
    ),
    (
        "batched tokens < model len without chunked prefill",
        [m(maxModelLen=8192, maxNumBatchedTokens=4096, enableChunkedPrefill=False)],
        "models[0].maxNumBatchedTokens: without chunked prefill it must be at least maxModelLen",
    ),
    (
        "R1 preset, chunked prefill off",
        [r1(enableChunkedPrefill=False)],
        "models[0].maxNumBatchedTokens: without chunked prefill it must be at least maxModelLen, "
        "or vLLM refuses to start (unset keys take preset deepseek-r1's defaults); "
        "found maxNumBatchedTokens=8192, maxModelLen=32768",
    ),
    (
        "batched tokens < max seqs",
        [m(maxNumSeqs=256, maxNumBatchedTokens=128)],
        "models[0].maxNumBatchedTokens: must be at least maxNumSeqs",
    ),
    (
        "R1 on one GPU",
        [m(source=R1, acceleratorType="H100")],
        "models[0].tensorParallelSize: preset deepseek-r1 needs at least 8 GPUs per replica",
    ),
]


@pytest.mark.parametrize(
    ("raw", "expected"), [(raw, expected) for _, raw, expected in BAD_INPUTS], ids=[case for case, _, _ in BAD_INPUTS]
)
def test_bad_input_is_reported_by_its_message(raw: Any, expected: str) -> None:
    problems = problems_of(raw)
    assert any(problem.startswith(expected) for problem in problems), (
        f"expected a problem starting with {expected!r}; got:\n" + "\n".join(problems)
    )
    for problem in problems:
        assert PROBLEM_SHAPE.match(problem), f"problem line does not have the documented shape: {problem!r}"


@pytest.mark.parametrize(("engine_option", "config_key"), sorted(OWNED_ENGINE_ARGS.items()))
def test_engine_option_owned_by_the_spec_names_the_key_to_use(engine_option: str, config_key: str) -> None:
    problems = problems_of([m(engineKwargs={engine_option: 1})])
    expected = (
        f"models[0].engineKwargs.{engine_option}: is set by the model spec, not engineKwargs (use the key {config_key})"
    )
    assert any(problem.startswith(expected) for problem in problems), f"{engine_option}: {problems}"


@pytest.mark.parametrize("secret_case", ["engine api_key", "env HF_TOKEN", "env secret-looking"])
def test_secret_values_are_not_echoed_in_messages(secret_case: str) -> None:
    raw = next(raw for case, raw, _ in BAD_INPUTS if case == secret_case)
    message = "\n".join(problems_of(raw))
    assert "secret" in message and "<redacted>" in message, f"{secret_case}: {message}"
    assert "secret_value" not in message and "sk-secret-value" not in message, (
        f"{secret_case} leaks the value: {message}"
    )


def test_all_problems_are_collected_into_one_error() -> None:
    raw = [m(id="a", tensorParallelSize=0, engineKwargs={"device": "cuda"}), m(id="a"), m(id="b", minReplicas=2)]
    problems = problems_of(raw)
    expected = [
        "models[0].tensorParallelSize: out of range",
        "models[0].engineKwargs.device: unknown engine option",
        "models[2].minReplicas: must not exceed maxReplicas",
    ]
    for start in expected:
        assert any(problem.startswith(start) for problem in problems), f"missing {start!r} in {problems}"
    assert len(problems) == 3, f"expected exactly 3 problems (model 1 is fine once model 0 fails stage 1): {problems}"
    with pytest.raises(ModelConfigError, match=r"invalid model configuration \(3 problems\)"):
        parse_models(raw)


def test_model_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_models([])


def test_custom_key_prefix_is_used_in_paths() -> None:
    with pytest.raises(ModelConfigError) as caught:
        parse_models([m(tensorParallelSize=0)], key="llmserve:models")
    assert caught.value.problems[0].startswith("llmserve:models[0].tensorParallelSize:"), caught.value.problems


# ------------------------------------------------------------------------------------------- valid input


def test_minimal_model_takes_documented_defaults() -> None:
    (spec,) = parse_models([m()])
    assert (spec.tensor_parallel_size, spec.pipeline_parallel_size, spec.min_replicas, spec.max_replicas) == (
        1,
        1,
        1,
        1,
    )
    assert spec.preset is None, f"no preset for {spec.model_source}: {spec.preset}"
    assert spec.max_model_len is None and spec.reasoning_parser is None and not spec.env_vars and not spec.engine_kwargs


def test_null_optional_keys_mean_unset() -> None:
    (spec,) = parse_models([m(maxModelLen=None, prefixCacheRouting=None, engineKwargs=None)])
    assert spec.max_model_len is None and spec.prefix_cache_routing is None and dict(spec.engine_kwargs) == {}


def test_deepseek_r1_gets_the_reference_defaults() -> None:
    (spec,) = parse_models([r1()])
    expected = {
        "max_model_len": 32768,
        "max_num_seqs": 64,
        "max_num_batched_tokens": 8192,
        "gpu_memory_utilization": 0.92,
        "enable_chunked_prefill": True,
        "enable_prefix_caching": True,
        "reasoning_parser": "deepseek_r1",
        "health_check_period_s": 30,
        "health_check_timeout_s": 60,
        "preset": "deepseek-r1",
    }
    for name, value in expected.items():
        assert getattr(spec, name) == value, f"deepseek-r1.{name}: expected {value!r}, got {getattr(spec, name)!r}"
    assert dict(spec.env_vars) == {
        "RAYLLM_ENGINE_START_TIMEOUT_S": "7200",
        "VLLM_ENGINE_READY_TIMEOUT_S": "5400",
        "HF_XET_HIGH_PERFORMANCE": "1",
    }, f"deepseek-r1 env vars: {dict(spec.env_vars)}"
    assert spec.gpus_per_replica == 16, f"deepseek-r1 TP8 x PP2: {spec.gpus_per_replica}"


def test_explicit_keys_beat_the_preset() -> None:
    (spec,) = parse_models(
        [
            r1(
                maxModelLen=65536,
                maxNumSeqs=32,
                reasoningParser="deepseek_v3",
                envVars={"RAYLLM_ENGINE_START_TIMEOUT_S": 9000, "EXTRA": "x"},
            )
        ]
    )
    assert (spec.max_model_len, spec.max_num_seqs, spec.reasoning_parser) == (65536, 32, "deepseek_v3"), spec
    assert spec.max_num_batched_tokens == 8192, "unset keys still take the preset"
    assert spec.env_vars["RAYLLM_ENGINE_START_TIMEOUT_S"] == "9000", (
        "the model's env var (a number, made a string) wins"
    )
    assert spec.env_vars["VLLM_ENGINE_READY_TIMEOUT_S"] == "5400" and spec.env_vars["EXTRA"] == "x", dict(spec.env_vars)


@pytest.mark.parametrize(
    ("source", "preset_key", "expected_preset", "expected_parser"),
    [
        (R1, DROP, "deepseek-r1", "deepseek_r1"),
        ("deepseek-ai/deepseek-r1", DROP, "deepseek-r1", "deepseek_r1"),
        ("deepseek-ai/DeepSeek-R1-0528", DROP, "deepseek-r1", "deepseek_r1"),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", DROP, "deepseek-r1-distill", "deepseek_r1"),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "auto", "deepseek-r1-distill", "deepseek_r1"),
        ("gs://weights/deepseek-r1", DROP, None, None),  # a bucket says nothing reliable about its contents
        ("gs://weights/deepseek-r1", "deepseek-r1", "deepseek-r1", "deepseek_r1"),
        (R1, "none", None, None),
        ("Qwen/Qwen3-8B", DROP, None, None),
    ],
)
def test_preset_selection(
    source: str, preset_key: Any, expected_preset: str | None, expected_parser: str | None
) -> None:
    (spec,) = parse_models([r1(source=source, preset=preset_key)])
    assert spec.preset == expected_preset, f"{source} preset={preset_key}: got preset {spec.preset!r}"
    assert spec.reasoning_parser == expected_parser, f"{source}: reasoning parser {spec.reasoning_parser!r}"


def test_distill_preset_sets_only_the_reasoning_parser() -> None:
    (spec,) = parse_models([m(source="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B")])
    assert spec.reasoning_parser == "deepseek_r1", spec
    assert spec.max_model_len is None and spec.max_num_seqs is None and not spec.env_vars, spec


def test_reasoning_parser_from_a_plugin_is_accepted() -> None:
    (spec,) = parse_models([m(reasoningParser="my_parser", engineKwargs={"reasoning_parser_plugin": "/opt/p.py"})])
    assert spec.reasoning_parser == "my_parser"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, False),
        ({"maxReplicas": 2, "targetOngoingRequests": 8}, True),
        ({"minReplicas": 0, "maxReplicas": 1}, False),
        ({"maxReplicas": 3, "targetOngoingRequests": 8, "prefixCacheRouting": False}, False),
        ({"maxReplicas": 3, "targetOngoingRequests": 8, "prefixCacheRouting": True}, True),
    ],
)
def test_prefix_cache_routing_resolution(overrides: dict, expected: bool) -> None:
    (spec,) = parse_models([m(**overrides)])
    assert spec.prefix_cache_routing_enabled is expected, f"{overrides}: routing {spec.prefix_cache_routing_enabled}"


def test_scale_to_zero_is_valid() -> None:
    (spec,) = parse_models([m(minReplicas=0, maxReplicas=1)])
    assert (spec.min_replicas, spec.max_replicas) == (0, 1)


@pytest.mark.parametrize(
    "source", ["gs://bucket/models/r1", "s3://bucket/r1", "/mnt/models/r1", "Qwen/Qwen3-8B", "gpt2"]
)
def test_supported_sources(source: str) -> None:
    (spec,) = parse_models([m(source=source)])
    assert spec.model_source == source


def test_model_spec_is_frozen_and_its_maps_are_read_only() -> None:
    (spec,) = parse_models([m(engineKwargs={"enforce_eager": True, "hf_overrides": {"a": [1, 2]}}, envVars={"A": "1"})])
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.max_replicas = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.engine_kwargs["enforce_eager"] = False  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.engine_kwargs["hf_overrides"]["a"] = 3  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.env_vars["A"] = "2"  # type: ignore[index]


# --------------------------------------------------------------------------------- specs built in code


def test_validate_models_checks_specs_built_in_code_with_the_same_messages() -> None:
    specs = [
        ModelSpec(model_id="a", model_source="x/y", accelerator_type="H100-80GB", tensor_parallel_size=0),
        ModelSpec(model_id="b", model_source="x/y", accelerator_type="L4", engine_kwargs={"device": "cuda"}),
        ModelSpec(model_id="b", model_source="x/y", accelerator_type="L4", min_replicas=2),
    ]
    with pytest.raises(ModelConfigError) as caught:
        validate_models(specs)
    problems = caught.value.problems
    for start in [
        "models[0].acceleratorType: not a Ray accelerator name (did you mean 'H100'?)",
        "models[0].tensorParallelSize: out of range",
        "models[1].engineKwargs.device: unknown engine option",
        "models[2].minReplicas: must not exceed maxReplicas",
    ]:
        assert any(problem.startswith(start) for problem in problems), f"missing {start!r} in {problems}"


def test_with_preset_in_code_matches_parsing() -> None:
    spec = ModelSpec(
        model_id="deepseek-r1",
        model_source=R1,
        accelerator_type="H100",
        tensor_parallel_size=8,
        pipeline_parallel_size=2,
    )
    (parsed,) = parse_models([r1()])
    assert with_preset(spec) == parsed
    assert with_preset(spec, "none") == spec


def test_reference_key_table_is_current() -> None:
    reference = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert keys_markdown() in reference, "docs/configuration.md is stale: run `python -m infra.config.reference`"


def test_key_table_documents_every_field_once() -> None:
    fields = {f.name for f in dataclasses.fields(ModelSpec)}
    documented = [key.field for key in KEYS]
    assert sorted(documented) == sorted(fields), f"KEYS vs ModelSpec fields: {set(documented) ^ fields}"
    assert all(key.name[0].islower() and "_" not in key.name for key in KEYS), "keys must be camelCase"
    table = keys_markdown()
    for key in KEYS:
        assert f"| `{key.name}` |" in table, f"{key.name} missing from keys_markdown()"
