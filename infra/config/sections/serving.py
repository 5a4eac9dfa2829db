"""What is served and how it is reached: the models (parsed by `serve_app.spec`), the Ray image and its upgrade
strategy, the exposure and its source ranges, API-key auth, and the rules between the models and the GPU pool."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra.catalog import RAY_LLM_IMAGE, MachineProfile
from infra.config.sections.secure import secure_problems
from infra.config.settings import GpuPoolConfig, SecureSettings, ServingConfig
from infra.config.stackfiles import PROJECT
from infra.config.values import ValueReader, clean
from infra.planning.model_capacity import capacity_findings
from infra.planning.sizing import group_use
from serve_app.auth import MIN_API_KEY_LENGTH, parse_api_keys
from serve_app.errors import ModelConfigError
from serve_app.spec import ModelSpec, parse_models

if TYPE_CHECKING:  # the secrets' type only: the config is read where Pulumi may not be installed (local_run)
    import pulumi

_K8S_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# A container image reference (distribution/reference's grammar, simplified): [registry[:port]/]path[:tag][@digest].
_IMAGE = re.compile(
    r"([a-zA-Z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?"
)


@dataclass(frozen=True)
class _ServingKeys:
    """The serving keys as read, each None when missing or bad."""

    models: tuple[ModelSpec, ...] | None
    namespace: str | None
    ray_image: str | None  # "" for the pinned image
    ray_cluster_upgrade: str | None
    cpu_workers: int | None
    exposure: str | None
    source_ranges: list[ipaddress.IPv4Network] | None
    api_auth: bool | None
    ready_timeout_minutes: int | None
    stream_drain_seconds: int | None


def read_serving(
    read: ValueReader,
    machine: MachineProfile | None,
    pool: GpuPoolConfig | None,
    secure: SecureSettings | None,
    secrets: Mapping[str, pulumi.Input[str]],
    plain_secrets: Mapping[str, str],
) -> ServingConfig | None:
    """The serving settings; None when any serving key, the GPU pool or the secure settings is bad. The rules that
    need only the machine run even when the pool is bad. `secrets` pass through unread; `plain_secrets` are the
    same values in plain text, for checks only."""
    start = len(read.problems)
    keys = _read_serving_keys(read)
    _check_api_key(read, plain_secrets.get("apiKey"))
    _check_serving_rules(read, keys, machine, pool, secure)
    # `models` can be None with no problem since `start`: an encrypted `models` is refused by the key checks, earlier.
    if len(read.problems) > start or keys.models is None or pool is None or secure is None:
        return None
    image = keys.ray_image or RAY_LLM_IMAGE
    _warn_about_serving(read, keys, pool, image)
    _warn_about_idle_gpus(read, keys.models, pool)
    return ServingConfig(
        models=keys.models,
        namespace=clean(keys.namespace),
        ray_image=image,
        ray_cluster_upgrade=clean(keys.ray_cluster_upgrade),
        cpu_workers=clean(keys.cpu_workers),
        exposure=clean(keys.exposure),
        source_ranges=tuple(str(network) for network in clean(keys.source_ranges)),
        api_auth=clean(keys.api_auth),
        ready_timeout_minutes=clean(keys.ready_timeout_minutes),
        stream_drain_seconds=clean(keys.stream_drain_seconds),
        api_key=secrets.get("apiKey"),
        hf_token=secrets.get("hfToken"),
    )


def _read_serving_keys(read: ValueReader) -> _ServingKeys:
    models = read_models(read)
    namespace = read.matching(
        "servingNamespace",
        lambda value: _K8S_LABEL.fullmatch(value) is not None,
        "a Kubernetes namespace name: 1 to 63 lowercase letters, digits and '-', starting "
        "and ending with a letter or digit",
    )
    if namespace == "":
        read.problem(f"{PROJECT}:servingNamespace: must not be empty; allowed: a Kubernetes namespace name")
    ray_image = read.matching(
        "rayImage",
        lambda value: _IMAGE.fullmatch(value) is not None,
        "a container image reference like registry/repository:tag or "
        "repository@sha256:<digest>, or empty for the pinned image",
    )
    return _ServingKeys(
        models=models,
        namespace=namespace,
        ray_image=ray_image,
        ray_cluster_upgrade=read.get("rayClusterUpgrade"),
        cpu_workers=read.get("cpuWorkers"),
        exposure=read.get("serveExposure"),
        source_ranges=read.cidr_list("serveSourceRanges"),
        api_auth=read.get("apiAuth"),
        ready_timeout_minutes=read.get("serveReadyTimeoutMinutes"),
        stream_drain_seconds=read.get("streamDrainSeconds"),
    )


def _check_serving_rules(
    read: ValueReader,
    keys: _ServingKeys,
    machine: MachineProfile | None,
    pool: GpuPoolConfig | None,
    secure: SecureSettings | None,
) -> None:
    """The rules between the serving keys, the models and the GPU pool, and the secure settings' serving rules."""
    exposure, models = keys.exposure, keys.models
    if keys.api_auth is False and exposure is not None and exposure != "cluster":
        read.problem(
            f"{PROJECT}:apiAuth: false with {PROJECT}:serveExposure={exposure!r} would put an open "
            f"model endpoint on a load balancer; allowed: apiAuth=true, or serveExposure=cluster"
        )
    if (
        keys.cpu_workers is not None
        and models is not None
        and keys.cpu_workers < 1
        and any(model.min_replicas == 0 for model in models)
    ):
        read.problem(
            f"{PROJECT}:cpuWorkers: a model that scales to zero needs a CPU worker for the ingress that "
            f"wakes it; found {keys.cpu_workers}; allowed: 1 or more"
        )
    if models is not None and machine is not None:
        read.problems.extend(serving_problems(models, machine, pool.max_gpu_nodes if pool is not None else None))
        capacity_errors, capacity_warnings = capacity_findings(models, machine, f"{PROJECT}:models")
        read.problems.extend(capacity_errors)
        read.warnings.extend(capacity_warnings)
    if secure is not None and exposure is not None and keys.source_ranges is not None:
        read.problems.extend(secure_problems(secure, exposure=exposure, source_ranges=keys.source_ranges))


def _warn_about_serving(read: ValueReader, keys: _ServingKeys, pool: GpuPoolConfig, image: str) -> None:
    if keys.exposure == "internal" and not keys.source_ranges:
        read.warnings.append(
            f"{PROJECT}:serveSourceRanges: empty, so the {keys.exposure} load balancer accepts any source"
        )
    if keys.exposure == "cluster" and keys.source_ranges:
        read.warnings.append(
            f"{PROJECT}:serveSourceRanges: has no effect with {PROJECT}:serveExposure=cluster (no load balancer)"
        )
    if pool.driver_version == "DEFAULT" and "-cu13" in image:
        read.warnings.append(
            f"{PROJECT}:gpuDriverVersion: DEFAULT with a CUDA 13 image "
            f"({image}); CUDA 13 needs an R580 or newer driver, which GKE's "
            f"default driver may not be; LATEST is the safe choice"
        )
    if not keys.api_auth:
        read.warnings.append(
            f"{PROJECT}:apiAuth: false; anyone who can reach the cluster-internal service can use the models"
        )


def _warn_about_idle_gpus(read: ValueReader, models: tuple[ModelSpec, ...], pool: GpuPoolConfig) -> None:
    """GPUs paid for that no replica can use: a group whose replicas leave part of their whole nodes empty, and
    nodes of a fixed-size pool that no model needs."""
    machine, per_node = pool.machine, pool.machine.gpu_count
    uses = group_use(models, machine, pool.max_gpu_nodes)
    for use in uses:
        if use.idle_gpus <= 0:
            continue
        indices = [index for index, model in enumerate(models) if model.model_id in use.group.model_ids]
        where = ", ".join(f"{PROJECT}:models[{index}].maxReplicas" for index in indices)
        nodes = use.group.max_pods
        read.warnings.append(
            f"{where}: {' and '.join(use.group.model_ids)} {'run' if len(indices) > 1 else 'runs'} at most "
            f"{_count(use.max_replicas, 'replica')} of {_count(use.group.gpus_per_replica, 'GPU')} but "
            f"{'take' if len(indices) > 1 else 'takes'} {_count(nodes, 'whole node')} of {per_node} GPUs "
            f"({machine.machine_type}; one Ray worker pod per node), so {use.idle_gpus} of those {use.node_gpus} "
            f"GPUs stay idle and are paid for; act only if that is not intended: maxReplicas "
            f"{use.replicas_to_fill(per_node)}{' together' if len(indices) > 1 else ''} fills "
            f"{'it' if nodes == 1 else 'them'}, or serve the model from a stack whose machine has fewer GPUs"
        )
    needed = sum(use.group.max_pods for use in uses)
    if not pool.autoscaling and pool.node_count > needed:
        spare = pool.node_count - needed
        read.warnings.append(
            f"{PROJECT}:gpuNodeCount: {pool.node_count} nodes, but the models' replicas take at most {needed}; "
            f"{_count(spare, 'node')} ({spare * per_node} GPUs) stay idle and are paid for; act only if that is "
            f"not intended: gpuNodeCount {needed}"
        )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def read_models(read: ValueReader) -> tuple[ModelSpec, ...] | None:
    raw_models = read.get("models")
    if raw_models is None:
        return None
    try:
        return parse_models(raw_models, key=f"{PROJECT}:models")
    except ModelConfigError as error:
        read.problems.extend(error.problems)
        return None


def _check_api_key(read: ValueReader, api_key: str | None) -> None:
    if api_key is None:
        return
    api_keys = parse_api_keys(api_key)
    short = [index for index, key in enumerate(api_keys) if len(key) < MIN_API_KEY_LENGTH]
    if short or not api_keys:
        read.problem(
            f"{PROJECT}:apiKey: every key (comma-separated) needs at least {MIN_API_KEY_LENGTH} "
            f"characters, or the ingress refuses to start; found "
            f"{'no key' if not short else f'short key(s) at position(s) {short}'}"
        )


def serving_problems(models: tuple[ModelSpec, ...], machine: MachineProfile, max_gpu_nodes: int | None) -> list[str]:
    """Rules between the models and the GPU pool they run on; those about the pool's size are skipped when
    `max_gpu_nodes` is None (the size is bad and already reported)."""
    problems = []
    per_node = machine.gpu_count
    pool_gpus = per_node * max_gpu_nodes if max_gpu_nodes is not None else None
    for index, model in enumerate(models):
        where = f"{PROJECT}:models[{index}]"
        if model.accelerator_type != machine.ray_accelerator:
            problems.append(
                f"{where}.acceleratorType: {model.accelerator_type!r} does not match the GPU pool's "
                f"{machine.gke_accelerator} ({machine.machine_type}); allowed: "
                f"{machine.ray_accelerator!r}"
            )
        tensor = model.tensor_parallel_size
        if per_node % tensor:
            problems.append(
                f"{where}.tensorParallelSize: a tensor-parallel group stays within one node (its GPUs "
                f"exchange activations every layer; only pipeline stages cross nodes); found {tensor} "
                f"on {machine.machine_type} nodes with {per_node} GPUs; allowed: a divisor of "
                f"{per_node} ({', '.join(str(n) for n in range(1, per_node + 1) if per_node % n == 0)}); "
                f"use pipelineParallelSize to span nodes"
            )
            continue
        gpus = model.gpus_per_replica
        if gpus % per_node and per_node % gpus:
            problems.append(
                f"{where}: tensorParallelSize x pipelineParallelSize = {gpus} GPUs does not fill "
                f"whole {machine.machine_type} nodes ({per_node} GPUs each); allowed: a multiple of "
                f"{per_node}, or a divisor of it so that replicas share a node evenly"
            )
        elif pool_gpus is not None and gpus * max(model.min_replicas, 1) > pool_gpus:
            problems.append(
                f"{where}: needs {gpus * max(model.min_replicas, 1)} GPUs "
                f"({max(model.min_replicas, 1)} x {gpus}) but the GPU pool can never have more than "
                f"{pool_gpus} ({max_gpu_nodes} x {per_node}); allowed: raise gpuNodeCount/gpuMaxNodes "
                f"or shrink the model"
            )
    needed = sum(model.gpus_per_replica * model.min_replicas for model in models)
    if pool_gpus is not None and needed > pool_gpus and not problems:
        problems.append(
            f"{PROJECT}:models: the minimum replicas need {needed} GPUs together but the GPU pool can "
            f"never have more than {pool_gpus}; allowed: lower minReplicas or grow the pool"
        )
    return problems
