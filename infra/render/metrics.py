"""The one list of every metric name the dashboard and the alerts use, with where each comes from.

Every PromQL string of `infra/render/monitoring.py` takes its names through `metric()`, which refuses a name
that is not in `METRICS`, so a renamed metric is one edit here. `LOCAL_METRICS` are the ones the local CPU
server exports too (the e2e tier checks them).

Metric names are as Managed Prometheus stores them: Ray exports on each Ray pod's port 8080, with counters
ending in `_total` and histograms queried through `_bucket`; vLLM's engine metrics come through Ray as
`ray_vllm_*` with a `model_name` label; DCGM metrics come from GKE's managed DCGM exporter; KubeRay's from the
operator (scraped by the PodMonitoring of `infra/render/monitoring.py`). Sources: Ray Serve's monitoring guide
(docs.ray.io/en/latest/serve/monitoring.html), vLLM's `vllm/v1/metrics/loggers.py`, GKE's DCGM metrics page
(cloud.google.com/kubernetes-engine/docs/how-to/dcgm-metrics) and KubeRay's `ray-operator/controllers/ray/metrics`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RAY = "Ray 2.60 Serve"
VLLM = "vLLM 0.29 engine, re-exported by Ray 2.60"
DCGM = "NVIDIA DCGM exporter (GKE managed DCGM package)"
KUBERAY = "KubeRay 1.7 operator"
# serve_app/pipeline_ingress.py and engine_watch.py register them with ray.util.metrics; Ray adds the ray_ prefix.
LLMSERVE = "this project's ingress, through Ray 2.60's ray.util.metrics"


@dataclass(frozen=True)
class Metric:
    """One metric as PromQL names it. `local`: the local CPU server exports it too (the e2e tier checks it)."""

    name: str
    kind: str  # "counter" | "gauge" | "histogram"
    source: str
    meaning: str
    local: bool = False

    @property
    def exported_names(self) -> tuple[str, ...]:
        """The series names a scrape shows (a histogram as its buckets, sum and count)."""
        if self.kind == "histogram":
            return tuple(f"{self.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        return (self.name,)


METRICS: tuple[Metric, ...] = (
    # Ray Serve (proxy, replicas, controller)
    Metric("ray_serve_num_http_requests_total", "counter", RAY, "HTTP requests by route and status code", True),
    Metric("ray_serve_num_http_error_requests_total", "counter", RAY, "HTTP requests answered 4xx or 5xx", True),
    Metric(
        "ray_serve_deployment_error_counter_total",
        "counter",
        RAY,
        "exceptions in a deployment's replicas (per model: deployment LLMServer:<model>)",
    ),
    Metric("ray_serve_deployment_replica_healthy", "gauge", RAY, "1 per healthy replica, by deployment", True),
    # vLLM engine metrics through Ray, labelled model_name
    Metric("ray_vllm_num_requests_running", "gauge", VLLM, "requests in the running batch", True),
    Metric("ray_vllm_num_requests_waiting", "gauge", VLLM, "requests queued for the engine", True),
    Metric("ray_vllm_kv_cache_usage_perc", "gauge", VLLM, "KV-cache usage as a fraction (1 = full)", True),
    Metric("ray_vllm_prefix_cache_queries_total", "counter", VLLM, "prefix-cache lookups, in tokens", True),
    Metric("ray_vllm_prefix_cache_hits_total", "counter", VLLM, "prefix-cache hits, in tokens", True),
    Metric("ray_vllm_prompt_tokens_total", "counter", VLLM, "prompt tokens processed", True),
    Metric("ray_vllm_generation_tokens_total", "counter", VLLM, "tokens generated", True),
    Metric("ray_vllm_request_success_total", "counter", VLLM, "finished requests by finished_reason", True),
    Metric("ray_vllm_time_to_first_token_seconds", "histogram", VLLM, "time to first token (TTFT)", True),
    Metric("ray_vllm_inter_token_latency_seconds", "histogram", VLLM, "time between output tokens (ITL)", True),
    # Multi-model pipelines, recorded by the ingress (serve_app/pipeline_ingress.py PipelineMetrics), labelled
    # pipeline (and outcome), or pipeline, step, kind and model (and type, reason)
    Metric("ray_llmserve_pipeline_requests_total", "counter", LLMSERVE, "pipeline requests by outcome", True),
    Metric("ray_llmserve_pipeline_latency_seconds", "histogram", LLMSERVE, "pipeline request latency", True),
    Metric("ray_llmserve_pipeline_step_requests_total", "counter", LLMSERVE, "pipeline steps run", True),
    Metric("ray_llmserve_pipeline_step_latency_seconds", "histogram", LLMSERVE, "pipeline step latency", True),
    Metric("ray_llmserve_pipeline_step_tokens_total", "counter", LLMSERVE, "tokens by step and type", True),
    Metric("ray_llmserve_pipeline_guard_denials_total", "counter", LLMSERVE, "guard denials by reason", True),
    # GPUs (DCGM), labelled Hostname and gpu
    Metric("DCGM_FI_DEV_GPU_UTIL", "gauge", DCGM, "GPU busy %, 0-100"),
    Metric("DCGM_FI_DEV_FB_USED", "gauge", DCGM, "GPU memory used, MiB"),
    Metric("DCGM_FI_DEV_FB_FREE", "gauge", DCGM, "GPU memory free, MiB"),
    Metric("DCGM_FI_DEV_GPU_TEMP", "gauge", DCGM, "GPU temperature; one series per GPU present"),
    # No Xid field: GKE's managed DCGM field list has none (monitoring-dashboard-samples,
    # integrations/dcgm/prometheus_metadata.yaml); the Xid alert matches kernel log lines instead.
    # The project's own, counted by the OpenAI ingress
    Metric("ray_llmserve_engine_deaths_total", "counter", LLMSERVE, "vLLM engine deaths seen, by model"),
    Metric(
        "ray_llmserve_engine_unavailable_responses_total",
        "counter",
        LLMSERVE,
        "503 answers while a model's engine was dead, by model",
    ),
    # Usage per tenant and model, labelled tenant and model (never a key)
    Metric("ray_llmserve_tenant_requests_total", "counter", LLMSERVE, "generation requests by tenant, model, status"),
    Metric(
        "ray_llmserve_tenant_rejected_requests_total",
        "counter",
        LLMSERVE,
        "requests refused before any engine work: 429 (a quota) or 503 (overload), by tenant, model and limit",
    ),
    Metric("ray_llmserve_tenant_prompt_tokens_total", "counter", LLMSERVE, "prompt tokens by tenant and model"),
    Metric("ray_llmserve_tenant_completion_tokens_total", "counter", LLMSERVE, "completion tokens by tenant and model"),
    Metric(
        "ray_llmserve_tenant_request_latency_seconds",
        "histogram",
        LLMSERVE,
        "seconds from arrival at the ingress to the end of the answer",
    ),
    # KubeRay
    Metric(
        "kuberay_service_condition_ready",
        "gauge",
        KUBERAY,
        'always 1; the RayService Ready state is the `condition` label ("true"/"false")',
    ),
)
METRICS_BY_NAME = {metric.name: metric for metric in METRICS}
LOCAL_METRICS = tuple(metric for metric in METRICS if metric.local)


def metric(name: str) -> str:
    """`name`, if it is in `METRICS`; every query goes through here so that none uses an unlisted name."""
    if name not in METRICS_BY_NAME:
        raise KeyError(f"metric {name!r} is not in infra/render/metrics.py METRICS; add it there with its source")
    return name


def metric_names_in(promql: str) -> set[str]:
    """The metrics a PromQL string uses: identifiers that look like metric names, a histogram's series
    (`_bucket`, `_sum`, `_count`) named by the histogram."""
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", re.sub(r'"[^"]*"', '""', promql)))
    names = set()
    for word in words:
        if not word.startswith(("ray_", "DCGM_", "kuberay_")):
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", word)
        listed = METRICS_BY_NAME.get(base)
        names.add(base if listed is not None and listed.kind == "histogram" else word)
    return names
