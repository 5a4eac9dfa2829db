"""`serve_app.builder`: the Ray Serve config, checked against Ray 2.60's own schema classes and code versions.

Golden file: ``golden/deepseek-r1.serve.yaml`` is the serveConfigV2 for the project's DeepSeek-R1 model.
After an intended change, regenerate it and review the diff::

    SERVE_APP_UPDATE_GOLDEN=1 PYTHONPATH=. .venv/bin/python -m pytest tests/serve_app -q

Validation without vLLM: `LLMConfig` (ray.llm._internal...llm_config) and `ServeDeploySchema` import
without vLLM, but the public router path ``ray.serve.llm.request_router:PrefixCacheAffinityRouter``
imports `ray.serve.llm`, which needs vLLM. So LLMConfigs with a router are validated on a copy whose
router class is the internal class the public one subclasses (checked from Ray's source below), and the
router block itself is tested separately.
"""

from __future__ import annotations

import copy
import inspect
import os
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

with warnings.catch_warnings():  # Ray's own pydantic deprecation warnings at import
    warnings.simplefilter("ignore", DeprecationWarning)
    import ray
    from ray.llm._internal.serve.core.configs.llm_config import LLMConfig
    from ray.llm._internal.serve.routing_policies.prefix_aware.prefix_aware_router import (
        PrefixCacheAffinityRouter as InternalPrefixCacheAffinityRouter,
    )
    from ray.serve._private.config import DeploymentConfig
    from ray.serve._private.deploy_utils import get_app_code_version
    from ray.serve.schema import DeploymentSchema, RayActorOptionsSchema, ServeApplicationSchema, ServeDeploySchema

from serve_app.builder import (
    PREFIX_CACHE_ROUTER,
    PREFIX_CACHE_ROUTER_KWARGS,
    AuthSettings,
    build_serve_config,
    model_llm_configs,
    serve_config_hash,
    serve_config_yaml,
    stamp_serve_config,
)
from serve_app.contract import INGRESS_DEPLOYMENT
from serve_app.errors import ModelConfigError
from serve_app.spec import ModelSpec, parse_models

GOLDEN = Path(__file__).parent / "golden" / "deepseek-r1.serve.yaml"
INTERNAL_ROUTER = "ray.llm._internal.serve.routing_policies.prefix_aware.prefix_aware_router:PrefixCacheAffinityRouter"
R1_MODEL = {
    "id": "deepseek-r1",
    "source": "deepseek-ai/DeepSeek-R1",
    "acceleratorType": "H100",
    "tensorParallelSize": 8,
    "pipelineParallelSize": 2,
    "minReplicas": 1,
    "maxReplicas": 1,
}


def small(**overrides: Any) -> dict[str, Any]:
    return {"id": "small", "source": "Qwen/Qwen2.5-0.5B-Instruct", "acceleratorType": "L4", **overrides}


def apps_by_name(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {application["name"]: application for application in config["applications"]}


def app_args(config: dict[str, Any]) -> dict[str, Any]:
    """The ingress application's args."""
    return apps_by_name(config)["llm"]["args"]


def ingress_deployment(config: dict[str, Any]) -> dict[str, Any]:
    (deployment,) = apps_by_name(config)["llm"]["deployments"]
    assert deployment["name"] == INGRESS_DEPLOYMENT == "OpenAiIngress"
    return deployment


def llm_configs_by_id(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["model_loading_config"]["model_id"]: c for c in model_llm_configs(config)}


def validate_with_ray(config: dict[str, Any]) -> None:
    """Validate the whole config, the ingress deployment's options and each LLMConfig with Ray 2.60's own
    classes (see module docstring)."""
    ServeDeploySchema.model_validate(config)
    DeploymentSchema.model_validate(ingress_deployment(config))
    for llm_config in model_llm_configs(config):
        candidate = copy.deepcopy(llm_config)
        router = candidate["deployment_config"].get("request_router_config")
        if router is not None:
            assert router["request_router_class"] == PREFIX_CACHE_ROUTER, router
            router["request_router_class"] = INTERNAL_ROUTER
        validated = LLMConfig.model_validate(candidate)
        model_id = llm_config["model_loading_config"]["model_id"]
        assert validated.model_id == model_id, f"{model_id}: LLMConfig read back model_id {validated.model_id}"
    RayActorOptionsSchema.model_validate(ingress_deployment(config)["ray_actor_options"])


CONFIGS: dict[str, list[dict[str, Any]]] = {
    "deepseek-r1": [R1_MODEL],
    "two models": [R1_MODEL, small(minReplicas=0, maxReplicas=4, targetOngoingRequests=16)],
    "scale to zero": [small(minReplicas=0, maxReplicas=1)],
    "routing on": [small(minReplicas=2, maxReplicas=4, initialReplicas=3, targetOngoingRequests=32)],
    "mirror with explicit preset": [dict(R1_MODEL, source="gs://weights/deepseek-r1", preset="deepseek-r1")],
    "extra engine options": [
        small(
            kvCacheDtype="fp8",
            engineKwargs={
                "enforce_eager": True,
                "speculative_config": {"method": "ngram", "num_speculative_tokens": 2},
            },
            envVars={"VLLM_PP_LAYER_PARTITION": "32,29"},
        )
    ],
    "r1 profile fp8-kv-mtp": [dict(R1_MODEL, profile="fp8-kv-mtp")],
    "r1 every performance key": [
        dict(
            R1_MODEL, kvCacheDtype="fp8_e4m3", mtpSpeculativeTokens=2, expertParallel=True, decodeContextParallelSize=8
        )
    ],
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_validates_with_rays_own_schemas(name: str) -> None:
    validate_with_ray(build_serve_config(parse_models(CONFIGS[name])))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_never_emits_removed_vllm_options(name: str) -> None:
    text = serve_config_yaml(parse_models(CONFIGS[name]))
    for removed in ("enable_reasoning", "device:", "VLLM_USE_V1"):
        assert removed not in text, f"{name}: serve config contains {removed!r}"


def test_deepseek_r1_golden_file() -> None:
    text = serve_config_yaml(parse_models([R1_MODEL]))
    if os.environ.get("SERVE_APP_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert GOLDEN.exists(), f"{GOLDEN} is missing; create it with SERVE_APP_UPDATE_GOLDEN=1"
    assert text == GOLDEN.read_text(), (
        f"deepseek-r1 serve config differs from {GOLDEN.name}; if intended, regenerate with SERVE_APP_UPDATE_GOLDEN=1 "
        "and review the diff"
    )


def test_application_shape() -> None:
    config = build_serve_config(parse_models(CONFIGS["two models"]), app_name="deepseek", http_port=8000)
    digest = serve_config_hash(config)
    shape = [(app["name"], app["import_path"], app["route_prefix"]) for app in config["applications"]]
    assert shape == [
        (f"config-{digest}", "serve_app.apps:build_config_marker", None),
        ("deepseek", "serve_app.apps:build_ingress_app", "/"),
        ("model-deepseek-r1", "serve_app.apps:build_model_app", None),
        ("model-small", "serve_app.apps:build_model_app", None),
    ], "the marker first, then the ingress (the only application that takes HTTP), then one per model by id"
    assert config["applications"][0]["args"] == {}
    assert config["http_options"] == {"host": "0.0.0.0", "port": 8000}
    assert set(apps_by_name(config)["deepseek"]["args"]) == {"ingress_cls", "ingress_kwargs"}


def test_each_model_application_is_its_llm_config() -> None:
    config = build_serve_config(parse_models(CONFIGS["two models"]))
    apps = apps_by_name(config)
    for model_id, llm in llm_configs_by_id(config).items():
        assert apps[f"model-{model_id}"]["args"] is llm and llm["model_loading_config"]["model_id"] == model_id


def test_the_ingress_is_told_each_models_application_and_deployment() -> None:
    config = build_serve_config(parse_models(CONFIGS["two models"]))
    assert ingress_deployment(config)["user_config"] == {
        "models": [
            {
                "app": "model-deepseek-r1",
                "deployment": "LLMServer:deepseek-r1",
                "id": "deepseek-r1",
                "max_model_len": 32768,
            },
            {"app": "model-small", "deployment": "LLMServer:small", "id": "small"},
        ],
        "recovery_s": {},
        "serve_config_hash": serve_config_hash(config),
        # No tenants; the overload bound: 2 x maxReplicas x maxNumSeqs (64 for R1's preset, 1 replica), and for a
        # model without maxNumSeqs vLLM 0.29's largest default, 1024 (x 4 replicas).
        "admission": {
            "in_flight_per_seq": 2.0,
            "tenants": {},
            "wait_s": 5.0,
            "capacity": {"deepseek-r1": 128, "small": 8192},
        },
    }


def test_ingress_deployment_options_are_rays_defaults_and_scale_to_zero_only_with_every_model() -> None:
    """Ray 2.60's OpenAiIngress.get_deployment_options: DEFAULT_INGRESS_OPTIONS, min_replicas 0 when every model
    has min_replicas 0 (ray/llm/_internal/serve/core/ingress/ingress.py; checked against the source below)."""
    from ray.llm._internal.serve.constants import DEFAULT_MAX_ONGOING_REQUESTS, DEFAULT_MAX_TARGET_ONGOING_REQUESTS

    source = (Path(ray.__file__).parent / "llm/_internal/serve/core/ingress/ingress.py").read_text()
    assert (
        'DEFAULT_INGRESS_OPTIONS = {\n    "max_ongoing_requests": DEFAULT_MAX_ONGOING_REQUESTS,\n'
        '    "autoscaling_config": {\n        "target_ongoing_requests": DEFAULT_MAX_TARGET_ONGOING_REQUESTS,\n'
        "    },\n}" in source
    ), "Ray's ingress defaults moved"
    assert 'options.setdefault("autoscaling_config", {})["min_replicas"] = 0' in source
    assert DEFAULT_MAX_ONGOING_REQUESTS == DEFAULT_MAX_TARGET_ONGOING_REQUESTS == 1_000_000_000
    both = ingress_deployment(build_serve_config(parse_models(CONFIGS["two models"])))
    assert both["max_ongoing_requests"] == 1_000_000_000
    assert both["autoscaling_config"] == {"target_ongoing_requests": 1_000_000_000}, "R1 keeps a replica"
    zero = ingress_deployment(build_serve_config(parse_models(CONFIGS["scale to zero"])))
    assert zero["autoscaling_config"] == {"target_ongoing_requests": 1_000_000_000, "min_replicas": 0}


def _code_versions(config: dict[str, Any]) -> dict[str, str]:
    """Ray's own code version of each application (what decides whether Serve restarts its deployments)."""
    return {
        app["name"]: get_app_code_version(ServeApplicationSchema.model_validate(app)) for app in config["applications"]
    }


@pytest.mark.parametrize(
    "change",
    [
        {"maxNumSeqs": 32},
        {"minReplicas": 2, "maxReplicas": 4, "targetOngoingRequests": 8},
        {"maxReplicas": 4, "targetOngoingRequests": 8, "prefixCacheRouting": False},
        {"maxModelLen": 8192},
        {"envVars": {"VLLM_LOGGING_LEVEL": "DEBUG"}},
    ],
    ids=["engine option", "autoscaling", "routing", "context length", "environment"],
)
def test_a_change_to_one_model_changes_only_that_models_code_version(change: dict) -> None:
    """Ray 2.60 restarts an application's deployments when its code version changes (application_state.py
    apply_app_config): a change to `small` must change `small`'s alone, never R1's or the ingress's."""
    before = build_serve_config(parse_models(CONFIGS["two models"]))
    after = build_serve_config(parse_models([R1_MODEL, {**CONFIGS["two models"][1], **change}]))
    old, new = _code_versions(before), _code_versions(after)
    assert old["model-small"] != new["model-small"], "the changed model restarts"
    assert old["model-deepseek-r1"] == new["model-deepseek-r1"], "the other model must not restart"
    assert old["llm"] == new["llm"], "the OpenAI ingress must not restart"
    assert serve_config_hash(before) != serve_config_hash(after), "a new config has a new name"


def test_stamping_is_idempotent_and_names_the_config_by_its_content() -> None:
    config = build_serve_config(parse_models(CONFIGS["two models"]))
    assert stamp_serve_config(config) == config
    digest = serve_config_hash(config)
    assert re.fullmatch(r"[0-9a-f]{16}", digest) and config["applications"][0]["name"] == f"config-{digest}"
    edited = copy.deepcopy(config)
    llm_configs_by_id(edited)["small"]["engine_kwargs"]["max_num_seqs"] = 8
    assert serve_config_hash(edited) == digest, "an edit keeps the old name until stamped"
    restamped = stamp_serve_config(edited)
    assert serve_config_hash(restamped) != digest and restamped["applications"][0]["name"] != f"config-{digest}"
    assert [app["name"] for app in restamped["applications"]].count(f"config-{digest}") == 0, "one marker only"
    assert stamp_serve_config(restamped) == restamped


def test_the_ingress_learns_a_changed_context_length() -> None:
    config = build_serve_config(parse_models(CONFIGS["two models"]))
    llm_configs_by_id(config)["deepseek-r1"]["engine_kwargs"]["max_model_len"] = 512
    (r1, _) = ingress_deployment(stamp_serve_config(config))["user_config"]["models"]
    assert r1["max_model_len"] == 512


def test_model_deployment_names_follow_rays_rule() -> None:
    """The ingress reaches each model by the deployment name Ray gives it: "LLMServer:" and the id with "/" as
    "--" and "." as "_" (ray/llm/_internal/serve/core/server/builder.py, read from the source)."""
    source = (Path(ray.__file__).parent / "llm/_internal/serve/core/server/builder.py").read_text()
    assert 'return llm_config.model_id.replace("/", "--").replace(".", "_")' in source
    assert 'name_prefix = name_prefix or f"{deployment_cls.__name__}:"' in source
    config = build_serve_config(parse_models([small(id="org/model-1.5b")]))
    (entry,) = ingress_deployment(config)["user_config"]["models"]
    assert entry == {"app": "model-org/model-1.5b", "deployment": "LLMServer:org--model-1_5b", "id": "org/model-1.5b"}


def test_deepseek_r1_llm_config_has_the_reference_settings() -> None:
    r1 = llm_configs_by_id(build_serve_config(parse_models([R1_MODEL])))["deepseek-r1"]
    assert r1["model_loading_config"] == {"model_id": "deepseek-r1", "model_source": "deepseek-ai/DeepSeek-R1"}
    assert r1["accelerator_type"] == "H100" and r1["log_engine_metrics"] is True, r1
    assert r1["engine_kwargs"] == {
        "tensor_parallel_size": 8,
        "pipeline_parallel_size": 2,
        "gpu_memory_utilization": 0.92,
        "max_model_len": 32768,
        "max_num_seqs": 64,
        "max_num_batched_tokens": 8192,
        "enable_chunked_prefill": True,
        "enable_prefix_caching": True,
        "reasoning_parser": "deepseek_r1",
    }, f"deepseek-r1 engine_kwargs: {r1['engine_kwargs']}"
    assert r1["deployment_config"] == {
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 1},
        "graceful_shutdown_timeout_s": 900,
        "health_check_period_s": 30,
        "health_check_timeout_s": 60,
    }, f"deepseek-r1 deployment_config: {r1['deployment_config']}"
    assert r1["runtime_env"] == {
        "env_vars": {
            "RAYLLM_ENGINE_START_TIMEOUT_S": "7200",
            "VLLM_ENGINE_READY_TIMEOUT_S": "5400",
            "HF_XET_HIGH_PERFORMANCE": "1",
        }
    }, f"deepseek-r1 runtime_env: {r1['runtime_env']}"


def test_two_models_in_one_config() -> None:
    config = build_serve_config(parse_models(CONFIGS["two models"]))
    configs = model_llm_configs(config)
    assert [c["model_loading_config"]["model_id"] for c in configs] == ["deepseek-r1", "small"], "sorted by id"
    by_id = llm_configs_by_id(config)
    assert by_id["small"]["engine_kwargs"] == {
        "enable_prefix_caching": True,
        "pipeline_parallel_size": 1,
        "tensor_parallel_size": 1,
    }, f"small: {by_id['small']['engine_kwargs']}"
    assert "runtime_env" not in by_id["small"], "small has no env vars and gets no runtime_env"
    assert by_id["deepseek-r1"]["engine_kwargs"]["tensor_parallel_size"] == 8, "models keep their own settings"


def test_scale_to_zero_model() -> None:
    small_config = llm_configs_by_id(build_serve_config(parse_models(CONFIGS["scale to zero"])))["small"]
    assert small_config["deployment_config"]["autoscaling_config"] == {"min_replicas": 0, "max_replicas": 1}, (
        small_config
    )
    assert "request_router_config" not in small_config["deployment_config"], "max 1: no routing between replicas"


@pytest.mark.parametrize(
    ("model", "routing"),
    [
        (small(), False),
        (small(minReplicas=0, maxReplicas=1), False),
        (small(maxReplicas=2, targetOngoingRequests=8), True),
        (small(minReplicas=2, maxReplicas=2), True),
        (small(maxReplicas=4, targetOngoingRequests=8, prefixCacheRouting=False), False),
    ],
)
def test_prefix_cache_routing_automatic_on_with_two_or_more_replicas(model: dict, routing: bool) -> None:
    config = llm_configs_by_id(build_serve_config(parse_models([model])))["small"]
    router = config["deployment_config"].get("request_router_config")
    if routing:
        assert router == {
            "request_router_class": PREFIX_CACHE_ROUTER,
            "request_router_kwargs": dict(PREFIX_CACHE_ROUTER_KWARGS),
        }, f"{model}: {router}"
        assert config["engine_kwargs"]["enable_prefix_caching"] is True, f"{model}: routing needs prefix caching"
    else:
        assert router is None, f"{model}: expected no router, got {router}"


def test_router_block_validates_with_serve_deployment_config() -> None:
    """The router block, on its own: Serve's DeploymentConfig loads the class and keeps the kwargs."""
    config = llm_configs_by_id(build_serve_config(parse_models(CONFIGS["routing on"])))["small"]
    router = dict(config["deployment_config"]["request_router_config"], request_router_class=INTERNAL_ROUTER)
    validated = DeploymentConfig(request_router_config=router).request_router_config
    assert validated.request_router_kwargs == dict(PREFIX_CACHE_ROUTER_KWARGS)
    accepted = set(inspect.signature(InternalPrefixCacheAffinityRouter.initialize_state).parameters)
    assert set(PREFIX_CACHE_ROUTER_KWARGS) <= accepted, f"router kwargs not accepted by initialize_state: {accepted}"


def test_public_router_path_is_a_thin_subclass_of_the_internal_router() -> None:
    """Justifies validating with the internal class: ray.serve.llm.request_router only re-exports it."""
    module, _, cls = PREFIX_CACHE_ROUTER.partition(":")
    source = (Path(ray.__file__).parent / "serve" / "llm" / "request_router.py").read_text()
    assert module == "ray.serve.llm.request_router" and f"class {cls}(_{cls}):" in source, source[:400]
    assert f"{INTERNAL_ROUTER.split(':')[0]} import (\n    {cls} as _{cls}," in source, "internal import moved"


def test_auth_is_on_by_default() -> None:
    for auth in (None, AuthSettings()):
        args = app_args(build_serve_config(parse_models([small()]), auth=auth))
        assert args == {
            "ingress_cls": "serve_app.ingress:AuthenticatedOpenAiIngress",
            "ingress_kwargs": {"api_key_file": "/etc/llmserve/api-keys/keys", "api_key_reload_s": 10.0},
        }, f"auth={auth}: {args}"


def test_auth_key_file_is_configurable_and_only_its_path_is_in_the_config() -> None:
    text = serve_config_yaml(
        parse_models([small()]), auth=AuthSettings(api_key_file="/keys/team-a", reload_interval_s=15)
    )
    assert "api_key_file: /keys/team-a" in text and "api_key_reload_s: 15.0" in text, text


def test_auth_off_only_when_explicitly_disabled() -> None:
    args = app_args(build_serve_config(parse_models([small()]), auth=AuthSettings(enabled=False)))
    assert args == {"ingress_cls": "serve_app.ingress:ConfiguredOpenAiIngress"}, "auth disabled: no key check"


@pytest.mark.parametrize("bad", ["", "keys", "relative/keys", "/etc/keys/"])
def test_auth_settings_reject_bad_key_file_paths(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape("AuthSettings.api_key_file must be an absolute file path")):
        AuthSettings(api_key_file=bad)


@pytest.mark.parametrize("bad", [0, 0.5, 301, True, "10"])
def test_auth_settings_reject_reload_intervals_out_of_range(bad) -> None:
    with pytest.raises(ValueError, match=r"AuthSettings.reload_interval_s must be a number of seconds in 1..300"):
        AuthSettings(reload_interval_s=bad)


def test_ingress_request_timeout_reaches_the_ingress_actor_environment() -> None:
    deployment = ingress_deployment(build_serve_config(parse_models([small()]), ingress_request_timeout_s=7200))
    env = deployment["ray_actor_options"]["runtime_env"]["env_vars"]
    assert env == {"RAY_SERVE_LLM_ROUTER_HTTP_TIMEOUT": "7200"}, env


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"app_name": ""}, "app_name must be a non-empty string"),
        ({"route_prefix": "v1"}, "route_prefix must start with '/'"),
        ({"route_prefix": "/llm/"}, "route_prefix must start with '/' and not end with one"),
        ({"http_port": 0}, "http_port must be an integer in 1..65535"),
        ({"ingress_request_timeout_s": 0}, "ingress_request_timeout_s must be a positive integer"),
        ({"auth": True}, "auth must be an AuthSettings or None"),
    ],
)
def test_bad_builder_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_serve_config(parse_models([small()]), **kwargs)


def test_builder_validates_specs_built_in_code() -> None:
    spec = ModelSpec(model_id="x", model_source="a/b", accelerator_type="L4", prefix_cache_routing=True)
    with pytest.raises(ModelConfigError, match=r"models\[0\]\.prefixCacheRouting: prefix-cache routing chooses"):
        build_serve_config([spec])


def test_output_is_deterministic_and_round_trips() -> None:
    models = parse_models(CONFIGS["two models"])
    text = serve_config_yaml(models)
    assert text == serve_config_yaml(tuple(reversed(models))), "model order must not change the output"
    assert yaml.safe_load(text) == build_serve_config(models), "YAML must load back to the same dict"
