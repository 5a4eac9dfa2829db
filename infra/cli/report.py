"""The capacity figures of a stack, as `capacity.json` and as lines of the plan's summary (the `capacity`
command prints the same lines for one model: infra/cli/capacity.py)."""

from __future__ import annotations

from infra.cli.capacity import cold_start_line, model_lines, profile_line
from infra.cli.upgrade_preview import ModelTimes
from infra.config.settings import StackConfig
from infra.planning.coldstart import NODE_PROVISIONING_MINUTES, cold_start_minutes, restart_minutes
from infra.planning.costs import StackShape, capacity_mode, stack_cost
from infra.planning.model_capacity import model_reports, profile_json
from infra.planning.sizing import idle_gpu_nodes
from serve_app.versions_data import VLLM_VERSION

CAPACITY_FORMAT = 1


def stack_capacity(config: StackConfig) -> dict:
    """capacity.json for a parsed `StackConfig`: per model memory and concurrency, per stack cost."""
    machine = config.gpu_pool.machine
    models = []
    for _, spec, report, why_not in model_reports(config.serving.models, machine):
        models.append(
            {
                "id": spec.model_id,
                "source": spec.model_source,
                # What this model's replicas load from (infra/config/sections/weights.py);
                # None for a hand-built config in tests.
                "weight_source": (
                    config.weights.for_model(spec.model_id).source if config.weights is not None else None
                ),
                "replicas": {"min": spec.min_replicas, "max": spec.max_replicas},
                "capacity": report.as_json() if report is not None else None,
                "not_checked": why_not,
                "cold_start_minutes": (
                    cold_start_minutes(report.architecture.stored_bytes()) if report is not None else None
                ),
                # The performance profile and what it changes (docs/capacity-and-cost.md#performance-profiles).
                "profile": profile_json(spec, report),
            }
        )
    return {
        "format": CAPACITY_FORMAT,
        "stack": config.stack,
        "model": f"vLLM {VLLM_VERSION} memory sizing; overheads, prices and cold starts are estimates",
        "machine": machine.machine_type,
        "gpu": machine.gke_accelerator,
        "models": models,
        "pipelines": [
            {"id": p.pipeline_id, "models": list(p.models()), "steps": [step.kind for step in p.steps]}
            for p in config.serving.pipelines
        ],
        "cost": stack_cost(stack_shape(config)),
        "cold_start": {
            "node_provisioning_minutes": {"low": NODE_PROVISIONING_MINUTES[0], "high": NODE_PROVISIONING_MINUTES[1]}
        },
    }


def model_times(config: StackConfig) -> dict[str, ModelTimes]:
    """Per model id, the estimated minutes until it serves again after a replica start in a new pod and after a
    Serve restart in a running one, from the weight source it uses (for `plan --against`)."""
    times = {}
    for _, spec, report, _ in model_reports(config.serving.models, config.gpu_pool.machine):
        if report is None:
            times[spec.model_id] = ModelTimes()
            continue
        stored = report.architecture.stored_bytes()
        source = config.weights.for_model(spec.model_id).source if config.weights is not None else "huggingface"
        cold, restart = cold_start_minutes(stored)[source], restart_minutes(stored)[source]
        times[spec.model_id] = ModelTimes((cold["low"], cold["high"]), (restart["low"], restart["high"]))
    return times


def stack_shape(config: StackConfig) -> StackShape:
    """What the stack's cost depends on, from its config."""
    pool, cluster = config.gpu_pool, config.cluster
    return StackShape(
        region=config.region,
        gpu_machine=pool.machine,
        capacity_mode=capacity_mode(reservation=bool(pool.reservation), spot=pool.spot, flex_start=pool.flex_start),
        idle_gpu_nodes=idle_gpu_nodes(config.serving.models, pool.machine, pool.min_gpu_nodes, pool.max_gpu_nodes),
        max_gpu_nodes=pool.max_gpu_nodes,
        system_machine_type=cluster.system_machine_type,
        system_node_count=cluster.system_node_count,
        zonal_cluster=cluster.location != config.region,
        gcs_redis_tier=config.gcs_redis.tier if config.gcs_redis else None,
        gcs_redis_size_gb=config.gcs_redis.size_gb if config.gcs_redis else 0,
    )


def _idle_to_max(pair: dict, fmt: str) -> str:
    """One number when the idle and the busiest stack cost the same, else both ends of the range."""
    if pair["idle"] == pair["max"]:
        return fmt.format(pair["max"])
    return f"{fmt.format(pair['idle'])} idle, {fmt.format(pair['max'])} at most"


def summary_lines(capacity: dict) -> list[str]:
    """The plan summary's capacity and cost section."""
    lines = ["", f"Capacity ({capacity['model']}):"]
    for model in capacity["models"]:
        if model["capacity"] is None:
            lines.append(f"  {model['id']}: not checked ({model['not_checked']})")
            continue
        lines += model_lines(model["id"], model["capacity"])
        lines.append(profile_line(model["profile"]))
        lines.append(cold_start_line(model["cold_start_minutes"], model["weight_source"]))
    if capacity.get("pipelines"):
        lines.append("  pipelines (OpenAI model ids over the models above):")
        for pipeline in capacity["pipelines"]:
            lines.append(
                f"    {pipeline['id']}: {' -> '.join(pipeline['steps'])}; models {', '.join(pipeline['models'])}"
            )
    node = capacity["cold_start"]["node_provisioning_minutes"]
    lines.append(f"  + {node['low']:g}-{node['high']:g} min when GPU nodes have to be created")
    cost = capacity["cost"]
    gpu_hours = cost["gpu_hours_per_hour"]
    nodes = cost["gpu_nodes"]
    lines += [
        "",
        f"Cost (list prices of {cost['prices']['as_of']}, {cost['region']}; excludes {cost['excludes']}):",
        f"  GPU-hours per hour: {_idle_to_max(gpu_hours, '{:g}')} "
        f"({_idle_to_max(nodes, '{:g}')} x {cost['gpu_machine']} x {cost['gpus_per_node']} GPUs)",
    ]
    for mode, pair in cost["hourly_usd"].items():
        name = mode.replace("_", "-")
        configured = (
            " <- configured"
            if name == cost["capacity_mode"] or (name == "on-demand" and cost["capacity_mode"] == "flex-start")
            else ""
        )
        value = "no price" if pair["max"] is None else _idle_to_max(pair, "${:,.2f}/h")
        lines.append(f"  {name}: {value}{configured}")
    redis = cost.get("gcs_fault_tolerance")
    if redis is not None:
        price = "no price" if redis["usd_per_hour"] is None else f"${redis['usd_per_hour']:,.3f}/h"
        lines.append(
            f"  GCS fault tolerance: {redis['service']} {redis['tier']} {redis['size_gb']} GB, {price} "
            f"(included above; prices of {redis['prices']['as_of']})"
        )
    lines += [f"  note: {note}" for note in cost["notes"]]
    return lines
