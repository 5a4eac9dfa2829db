"""The inputs tests make variants of: a small valid stack config, and the RayService settings of a prod-shaped
stack (DeepSeek-R1 at TP 8 x PP 2 on two A3 Mega nodes)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.catalog import MACHINE_PROFILES, GpuDirect, MachineProfile
from infra.config.errors import ConfigError
from infra.config.settings import StackConfig
from infra.config.stack import parse_stack_config
from infra.render.rayservice import RayServiceSettings
from serve_app.spec import parse_models

R1_REVISION = "56d4cbbb4d29f4355bab4b9a39ccb717a14ad5ad"  # the Hub commit the stacks stage
R1 = {
    "id": "deepseek-r1",
    "source": "deepseek-ai/DeepSeek-R1",
    "revision": R1_REVISION,
    "acceleratorType": "H100",
    "tensorParallelSize": 8,
    "pipelineParallelSize": 2,
}

# The `gcp:` values and the `llmserve:` values (namespace left off) of a small valid stack.
GCP = {"project": "my-project", "region": "us-east4"}
BASE = {
    "gpuMachineType": "a3-megagpu-8g",
    "gpuZones": '["us-east4-b"]',
    "masterAuthorizedNetworks": '["198.18.0.0/24"]',
    "models": json.dumps([R1]),
}


def parse_config(gcp: dict = GCP, **overrides: Any) -> StackConfig:
    """BASE with `overrides` (each JSON-encoded unless a string; "null" removes the key), parsed."""
    values = {
        **BASE,
        **{key: value if isinstance(value, str) else json.dumps(value) for key, value in overrides.items()},
    }
    values = {key: value for key, value in values.items() if value != "null"}
    return parse_stack_config("test", values, gcp)


def config_problems(**overrides: Any) -> str:
    """The message of the ConfigError that `parse_config(**overrides)` must raise."""
    gcp = overrides.pop("gcp", GCP)
    with pytest.raises(ConfigError) as raised:
        parse_config(gcp=gcp, **overrides)
    return str(raised.value)


def rayservice_settings(
    machine: MachineProfile = MACHINE_PROFILES["a3-megagpu-8g"],
    models=(R1,),
    gpudirect: GpuDirect | None = None,
    max_gpu_nodes: int = 2,
    **overrides: Any,
) -> RayServiceSettings:
    """Settings for `render_rayservice` and friends: R1 on A3 Mega with the machine's GPUDirect, unless told."""
    values = dict(
        name="llm",
        namespace="llm",
        image="ray-llm:test",
        models=parse_models(list(models)),
        machine=machine,
        gpudirect=machine.gpudirect if gpudirect is None else gpudirect,
        max_gpu_nodes=max_gpu_nodes,
        cpu_workers=1,
        upgrade="NewCluster",
        exposure="cluster",
    )
    values.update(overrides)
    return RayServiceSettings(**values)
