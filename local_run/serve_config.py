"""The stack's Serve config, read from its stack files and rewritten for a CPU; nothing else changes."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from infra.config.stackfiles import PROJECT, PROJECT_ROOT, StackFileError, stack_config
from local_run.errors import LocalRunError
from serve_app.admission_config import AdmissionSettings
from serve_app.builder import (
    DEFAULT_STREAM_DRAIN_S,
    AuthSettings,
    build_serve_config,
    model_llm_configs,
    stamp_serve_config,
)
from serve_app.engine_health import RECOVERY_KEY
from serve_app.errors import ModelConfigError
from serve_app.pipeline_spec import Pipeline, parse_pipelines
from serve_app.spec import ModelSpec, parse_models

# What a CPU needs and nothing more. A 512-token context keeps the KV cache at VLLM_CPU_KVCACHE_SPACE GiB.
CPU_MAX_MODEL_LEN = 512
CPU_MAX_NUM_SEQS = 16
CPU_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache per engine
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # two engines on two cores: let the OS schedule them
    "HF_HUB_OFFLINE": "1",  # the tiny models are local; never reach for the hub
}


# The Retry-After the 503s count down from after an engine dies on this CPU server: a little under the recovery
# tests/e2e/test_engine_recovery.py measures (36 to 52 s on a busy 2-core machine, docs/operations.md).
CPU_RECOVERY_S = 30


def stack_serving(stack: str, root: Path | None = None) -> tuple[tuple[ModelSpec, ...], AuthSettings]:
    """The models and API-key settings of `stack`, read from its stack files as `pulumi up` would."""
    try:
        values, _ = stack_config(stack, root or PROJECT_ROOT)
    except StackFileError as error:
        raise LocalRunError(str(error)) from error
    raw_models = values.get(f"{PROJECT}:models")
    if raw_models is None:
        raise LocalRunError(f"stack '{stack}' sets no {PROJECT}:models")
    try:
        models = parse_models(json.loads(raw_models), key=f"{PROJECT}:models")
    except ModelConfigError as error:
        raise LocalRunError(str(error)) from error
    auth_enabled = values.get(f"{PROJECT}:apiAuth", "true").lower() != "false"
    return models, AuthSettings(enabled=auth_enabled)


def stack_stream_drain_s(stack: str, root: Path | None = None) -> int:
    """`streamDrainSeconds` of `stack` (Serve's graceful_shutdown_timeout_s), as the plan reads it."""
    try:
        values, _ = stack_config(stack, root or PROJECT_ROOT)
    except StackFileError as error:
        raise LocalRunError(str(error)) from error
    raw = values.get(f"{PROJECT}:streamDrainSeconds")
    if raw is None:
        return DEFAULT_STREAM_DRAIN_S
    try:
        return int(raw)
    except ValueError:
        raise LocalRunError(
            f"{PROJECT}:streamDrainSeconds: found {raw!r}; allowed: a whole number of seconds"
        ) from None


def stack_pipelines(stack: str, models: Sequence[ModelSpec], root: Path | None = None) -> tuple[Pipeline, ...]:
    """The pipelines of `stack` (none when it sets none), checked against its models as the plan checks them."""
    try:
        values, _ = stack_config(stack, root or PROJECT_ROOT)
    except StackFileError as error:
        raise LocalRunError(str(error)) from error
    raw = values.get(f"{PROJECT}:pipelines")
    pipelines, problems = parse_pipelines(
        None if raw is None else json.loads(raw), [model.model_id for model in models], key=f"{PROJECT}:pipelines"
    )
    if problems:
        raise LocalRunError("\n".join(problems))
    return pipelines


def cpu_serve_config(serve_config: Mapping[str, Any], model_paths: Mapping[str, Path], port: int) -> dict:
    """A copy of `serve_config` that runs on a CPU: each model's source becomes its tiny stand-in in
    `model_paths` (by model id), TP/PP 1, the CPU as accelerator, a small context. Nothing else changes,
    except what the ingress is told of the models and the config's hash, which follow (`stamp_serve_config`)."""
    config = copy.deepcopy(dict(serve_config))
    config["http_options"] = {**config.get("http_options", {}), "host": "127.0.0.1", "port": port}
    for llm in model_llm_configs(config):
        model_id = llm["model_loading_config"]["model_id"]
        llm["model_loading_config"]["model_source"] = str(model_paths[model_id])
        llm.pop("accelerator_type", None)
        llm["accelerator_config"] = {"kind": "cpu"}
        llm["placement_group_config"] = {"bundles": [{"CPU": 1}]}
        engine = llm.setdefault("engine_kwargs", {})
        engine.update(
            tensor_parallel_size=1,
            pipeline_parallel_size=1,
            max_model_len=CPU_MAX_MODEL_LEN,
            max_num_batched_tokens=CPU_MAX_MODEL_LEN,
            dtype="bfloat16",
            enforce_eager=True,
            max_num_seqs=min(engine.get("max_num_seqs", CPU_MAX_NUM_SEQS), CPU_MAX_NUM_SEQS),
        )
        engine.pop("gpu_memory_utilization", None)  # GPU memory; the CPU backend sizes by CPU_ENV instead
        env_vars = llm.setdefault("runtime_env", {}).setdefault("env_vars", {})
        env_vars.update(CPU_ENV)
    model_ids = [llm["model_loading_config"]["model_id"] for llm in model_llm_configs(config)]
    _set_recovery(config, dict.fromkeys(model_ids, CPU_RECOVERY_S))
    return stamp_serve_config(config)


def _set_recovery(config: dict, recovery_s: Mapping[str, int]) -> None:
    """The ingress's recovery estimates (its user_config's `recovery_s`, kept by `stamp_serve_config`)."""
    for app in config["applications"]:
        for deployment in app.get("deployments", []):
            if isinstance(deployment.get("user_config"), dict) and RECOVERY_KEY in deployment["user_config"]:
                deployment["user_config"][RECOVERY_KEY] = dict(sorted(recovery_s.items()))


def local_serve_config(
    models: Sequence[ModelSpec],
    auth: AuthSettings,
    model_paths: Mapping[str, Path],
    port: int,
    pipelines: Sequence[Pipeline] = (),
    admission: AdmissionSettings | None = None,
    stream_drain_s: int = DEFAULT_STREAM_DRAIN_S,
) -> dict:
    serve_config = build_serve_config(
        models, pipelines=pipelines, auth=auth, admission=admission, stream_drain_s=stream_drain_s
    )
    return cpu_serve_config(serve_config, model_paths, port)
