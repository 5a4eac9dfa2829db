"""`python -m serve_app.local`: what it rewrites for a CPU (and what it must leave alone), and its preflight
errors. Pure: no Ray, no vLLM; the running server is tested in tests/e2e."""

from __future__ import annotations

import copy
import socket
from pathlib import Path

import pytest

from serve_app.builder import AuthSettings, build_serve_config
from serve_app.local import (
    CPU_ENV,
    CPU_MAX_MODEL_LEN,
    LocalRunError,
    cpu_serve_config,
    ensure_port_free,
    stack_serving,
)

PATHS = {"deepseek-r1": Path("/cache/deepseek_v3"),
         "deepseek-r1-distill-qwen-7b": Path("/cache/qwen2"), "deepseek-r1-distill-qwen-1.5b": Path("/cache/qwen2")}


def configs(stack: str):
    models, auth = stack_serving(stack)
    original = build_serve_config(models, auth=auth)
    return original, cpu_serve_config(original, PATHS, port=8123)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_only_what_a_cpu_needs_is_rewritten(stack):
    original, local = configs(stack)
    for before, after in zip(original["applications"][0]["args"]["llm_configs"],
                             local["applications"][0]["args"]["llm_configs"]):
        model_id = before["model_loading_config"]["model_id"]
        assert after["model_loading_config"] == {"model_id": model_id, "model_source": str(PATHS[model_id])}
        assert "accelerator_type" not in after and after["accelerator_config"] == {"kind": "cpu"}
        assert after["placement_group_config"] == {"bundles": [{"CPU": 1}]}
        engine = after["engine_kwargs"]
        assert (engine["tensor_parallel_size"], engine["pipeline_parallel_size"]) == (1, 1), model_id
        assert engine["max_model_len"] == CPU_MAX_MODEL_LEN, model_id
        # Untouched: autoscaling, routing, health checks, reasoning parser, the preset's env vars.
        assert after["deployment_config"] == before["deployment_config"], model_id
        assert engine.get("reasoning_parser") == before["engine_kwargs"].get("reasoning_parser"), model_id
        before_env = before.get("runtime_env", {}).get("env_vars", {})
        assert after["runtime_env"]["env_vars"] == {**before_env, **CPU_ENV}, model_id
    original_args = {k: v for k, v in original["applications"][0]["args"].items() if k != "llm_configs"}
    local_args = {k: v for k, v in local["applications"][0]["args"].items() if k != "llm_configs"}
    assert local_args == original_args, "the ingress and its auth settings must run as configured"
    assert local["http_options"] == {"host": "127.0.0.1", "port": 8123}


def test_the_rewrite_does_not_touch_its_input():
    original, _ = configs("prod")
    snapshot = copy.deepcopy(original)
    cpu_serve_config(original, PATHS, port=8000)
    assert original == snapshot


def test_dev_serves_two_models_with_auth_on():
    models, auth = stack_serving("dev")
    assert sorted(model.model_id for model in models) == ["deepseek-r1-distill-qwen-1.5b",
                                                          "deepseek-r1-distill-qwen-7b"]
    assert auth == AuthSettings(enabled=True)


def test_unknown_stack_is_a_clear_error():
    with pytest.raises(LocalRunError, match="no stack file Pulumi.nope.yaml; known stacks: dev, prod, staging"):
        stack_serving("nope")


def test_port_in_use_is_a_clear_error():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(LocalRunError, match=f"port {port} \\(the OpenAI API\\) is already in use"):
            ensure_port_free(port, "the OpenAI API")
