"""`python -m local_run`: what it rewrites for a CPU (and what it must leave alone), and its preflight
errors. Pure: no Ray, no vLLM; the running server is tested in tests/e2e."""

from __future__ import annotations

import copy
import ctypes
import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from local_run.errors import LocalRunError
from local_run.serve_config import CPU_ENV, CPU_MAX_MODEL_LEN, cpu_serve_config, stack_serving
from local_run.server import LOCAL_SITE, LocalServer, ensure_port_free
from serve_app.builder import AuthSettings, build_serve_config, model_llm_configs, serve_config_hash, stamp_serve_config

PATHS = {
    "deepseek-r1": Path("/cache/deepseek_v3"),
    "deepseek-r1-distill-qwen-7b": Path("/cache/qwen2"),
    "deepseek-r1-distill-qwen-1.5b": Path("/cache/qwen2"),
}


def configs(stack: str):
    models, auth = stack_serving(stack)
    original = build_serve_config(models, auth=auth)
    return original, cpu_serve_config(original, PATHS, port=8123)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_only_what_a_cpu_needs_is_rewritten(stack):
    original, local = configs(stack)
    # strict: the local config keeps every model, so a missing one is a bug this test should catch.
    for before, after in zip(model_llm_configs(original), model_llm_configs(local), strict=True):
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
    original_apps, local_apps = apps(original), apps(local)
    assert local_apps["llm"]["args"] == original_apps["llm"]["args"], (
        "the ingress and its auth settings run as configured"
    )
    assert [name for name in local_apps if not name.startswith("config-")] == [
        name for name in original_apps if not name.startswith("config-")
    ], "the same applications"
    assert stamp_serve_config(local) == local, "the rewrite leaves the config stamped with its own hash"
    assert serve_config_hash(local) != serve_config_hash(original), "a different config, a different name"
    ingress = local_apps["llm"]["deployments"][0]["user_config"]["models"]
    assert {model["max_model_len"] for model in ingress} == {CPU_MAX_MODEL_LEN}, "the ingress follows the rewrite"
    assert local["http_options"] == {"host": "127.0.0.1", "port": 8123}


def apps(config: dict) -> dict:
    return {application["name"]: application for application in config["applications"]}


def test_the_local_server_points_the_ingress_at_its_key_file_and_restamps():
    models, auth = stack_serving("dev")
    config = build_serve_config(models, auth=auth)
    server = LocalServer(config, api_key="k" * 32)
    try:
        served = apps(server.serve_config)["llm"]["args"]["ingress_kwargs"]["api_key_file"]
        assert served == str(server.api_key_file) and server.api_key_file.read_text() == "k" * 32 + "\n"
        assert stamp_serve_config(server.serve_config) == server.serve_config
        assert server.config_hash == serve_config_hash(server.serve_config) != serve_config_hash(config)
        assert apps(config)["llm"]["args"]["ingress_kwargs"]["api_key_file"] == "/etc/llmserve/api-keys/keys"
    finally:
        server.stop()


def test_the_rewrite_does_not_touch_its_input():
    original, _ = configs("prod")
    snapshot = copy.deepcopy(original)
    cpu_serve_config(original, PATHS, port=8000)
    assert original == snapshot


def test_dev_serves_two_models_with_auth_on():
    models, auth = stack_serving("dev")
    assert sorted(model.model_id for model in models) == [
        "deepseek-r1-distill-qwen-1.5b",
        "deepseek-r1-distill-qwen-7b",
    ]
    assert auth == AuthSettings(enabled=True)


def test_unknown_stack_is_a_clear_error():
    with pytest.raises(
        LocalRunError, match=re.escape("no stack file Pulumi.nope.yaml; known stacks: dev, prod, staging")
    ):
        stack_serving("nope")


def test_port_in_use_is_a_clear_error():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(LocalRunError, match=f"port {port} \\(the OpenAI API\\) is already in use"):
            ensure_port_free(port, "the OpenAI API")


def _amx_tile_data_supported() -> bool:
    """What the kernel offers (ARCH_GET_XCOMP_SUPP = 0x1021, bit 18 = XTILEDATA), asked independently of the
    module under test."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return False
    supported = ctypes.c_uint64(0)
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(158, 0x1021, ctypes.byref(supported)) == 0 and bool(supported.value >> 18 & 1)


def test_every_local_process_asks_for_the_amx_tile_data_state_where_the_cpu_has_it():
    """A fresh interpreter with LOCAL_SITE on PYTHONPATH (as every process of the local server gets it) holds
    the AMX tile-data permission when the CPU offers it, and asks for nothing when it does not."""
    probe = (
        "import ctypes, sitecustomize; permitted = ctypes.c_uint64(0); "
        "ctypes.CDLL(None).syscall(158, 0x1022, ctypes.byref(permitted)); "
        "print(sitecustomize.__file__, sitecustomize.request_amx_tile_data(), permitted.value >> 18 & 1)"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(LOCAL_SITE)},
        capture_output=True,
        text=True,
        check=True,
    )
    module_file, granted, permitted_bit = run.stdout.split()
    assert Path(module_file).parent == LOCAL_SITE
    expected = _amx_tile_data_supported()
    assert (granted, permitted_bit) == (str(expected), str(int(expected))), run.stdout


def test_the_local_server_puts_the_amx_site_on_every_process_path():
    models, auth = stack_serving("dev")
    server = LocalServer(build_serve_config(models, auth=auth), api_key=None)
    try:
        assert server.env["PYTHONPATH"].split(os.pathsep) == [str(server.workdir / "pythonpath"), str(LOCAL_SITE)]
        assert (LOCAL_SITE / "sitecustomize.py").is_file()
    finally:
        server.stop()
