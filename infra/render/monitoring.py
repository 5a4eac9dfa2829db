"""The stack's Cloud Monitoring dashboard and alert policies, as plain data built from metric names.

Pure: `render_dashboard(settings)` returns the dashboard as a dict (the `dashboard_json` of
`gcp.monitoring.Dashboard`, after `dashboard_json()`), `render_alerts(settings)` the alert policies as
`AlertSpec`s. `infra/components/monitoring.py` wraps them in resources. Every PromQL string is assembled here from
the names in `infra/render/metrics.py` (`metric()` refuses any other), which also says where each metric comes
from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from infra.catalog import KUBERAY_OPERATOR_SELECTOR, PART_OF_LABEL
from infra.config.settings import AlertThresholds
from infra.render.metrics import metric, metric_names_in
from infra.render.pipeline_panels import pipeline_panel_specs
from infra.render.tenant_monitoring import tenant_panels, tenant_throttled_alert
from serve_app.spec import llm_server_deployment as serve_deployment_name

# --- settings -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitoringSettings:
    stack: str
    namespace: str  # the RayService's namespace
    rayservice: str  # the RayService's name
    model_ids: tuple[str, ...]
    always_on_model_ids: tuple[str, ...]  # minReplicas >= 1: "no healthy replica" is an outage for these
    min_gpus: int  # GPUs the pool always has (0 when it scales to zero)
    thresholds: AlertThresholds = field(default_factory=AlertThresholds)
    # The GKE cluster's name. Managed Prometheus labels every series with it, and Cloud Monitoring queries span
    # the whole project: without it, two stacks in one project would read (and alert on) each other's series.
    cluster: str = ""
    tenant_throttled_minutes: int | None = None  # llmserve:alertTenantThrottledMinutes; None: no tenants, no alert


# --- PromQL ---------------------------------------------------------------------------------------------------


def _in_cluster(settings: MonitoringSettings) -> str:
    return f'cluster="{settings.cluster}",' if settings.cluster else ""


def _in_namespace(settings: MonitoringSettings) -> str:
    return f'{_in_cluster(settings)}namespace="{settings.namespace}"'


def _dcgm(settings: MonitoringSettings, name: str) -> str:
    """A DCGM series of this stack's cluster (the exporter runs in GKE's own namespace, so no namespace)."""
    return metric(name) + (f"{{{_in_cluster(settings).rstrip(',')}}}" if settings.cluster else "")


def _serve(settings: MonitoringSettings, extra: str = "") -> str:
    # Serve's own health routes (/-/healthz, /-/routes) are not traffic.
    return "{" + _in_namespace(settings) + ',route!~"/-/.*"' + (f",{extra}" if extra else "") + "}"


def _ns(settings: MonitoringSettings) -> str:
    return "{" + _in_namespace(settings) + "}"


def quantile_query(settings: MonitoringSettings, histogram: str, q: float, window: str = "5m") -> str:
    return (
        f"histogram_quantile({q}, sum by (le, model_name) (rate({metric(histogram)}_bucket{_ns(settings)}[{window}])))"
    )


@dataclass(frozen=True)
class Series:
    query: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    series: tuple[Series, ...]
    unit: str = "1"
    plot: str = "LINE"


def panels(settings: MonitoringSettings) -> list[Panel]:
    """The dashboard's charts, in reading order: traffic, the tenants, latency, the engines, the GPUs, the
    pipelines."""
    pipelines = [
        Panel(title, tuple(Series(query, legend) for query, legend in series), unit)
        for title, series, unit in pipeline_panel_specs(_ns(settings))
    ]
    return [
        *_traffic_panels(settings),
        *tenant_panels(settings, _ns(settings)),
        *_latency_panels(settings),
        *_engine_panels(settings),
        *_gpu_panels(settings),
        *pipelines,
    ]


_LLM_DEPLOYMENTS = 'deployment=~"LLMServer:.*"'  # the model replicas, not the OpenAI ingress


def _traffic_panels(settings: MonitoringSettings) -> list[Panel]:
    """What clients send and get back: requests by status, errors, finished requests per model."""
    return [
        Panel(
            "Requests/s by status code",
            (
                Series(
                    f"sum by (status_code) (rate({metric('ray_serve_num_http_requests_total')}{_serve(settings)}[5m]))",
                    "${labels.status_code}",
                ),
            ),
            "1/s",
            "STACKED_AREA",
        ),
        Panel(
            "Errors/s (HTTP 4xx/5xx by code; replica exceptions by model)",
            (
                Series(
                    f"sum by (error_code) (rate({metric('ray_serve_num_http_error_requests_total')}"
                    f"{_serve(settings)}[5m]))",
                    "HTTP ${labels.error_code}",
                ),
                Series(
                    f"sum by (deployment) (rate({metric('ray_serve_deployment_error_counter_total')}"
                    f"{{{_in_namespace(settings)},{_LLM_DEPLOYMENTS}}}[5m]))",
                    "${labels.deployment}",
                ),
            ),
            "1/s",
        ),
        Panel(
            "Dead engines: 503s/s while a model recovers, by model",
            (
                Series(
                    f"sum by (model) (rate({metric('ray_llmserve_engine_unavailable_responses_total')}"
                    f"{_ns(settings)}[5m]))",
                    "${labels.model}",
                ),
            ),
            "1/s",
        ),
        Panel(
            "Finished requests/s by model",
            (
                Series(
                    "sum by (model_name, finished_reason) "
                    f"(rate({metric('ray_vllm_request_success_total')}{_ns(settings)}[5m]))",
                    "${labels.model_name} ${labels.finished_reason}",
                ),
            ),
            "1/s",
            "STACKED_AREA",
        ),
    ]


def _latency_panels(settings: MonitoringSettings) -> list[Panel]:
    """What a user waits for: the first token, then each next one; p50 and p95 per model."""
    return [
        _percentiles_panel(settings, "Time to first token p50 / p95", "ray_vllm_time_to_first_token_seconds"),
        _percentiles_panel(settings, "Inter-token latency p50 / p95", "ray_vllm_inter_token_latency_seconds"),
    ]


def _percentiles_panel(settings: MonitoringSettings, title: str, histogram: str) -> Panel:
    return Panel(
        title,
        tuple(
            Series(quantile_query(settings, histogram, q), f"p{int(q * 100)} ${{labels.model_name}}")
            for q in (0.5, 0.95)
        ),
        "s",
    )


def _engine_panels(settings: MonitoringSettings) -> list[Panel]:
    """How each model's engines keep up: tokens, the batch and queue, the caches, healthy replicas."""
    ns = _ns(settings)
    return [
        Panel(
            "Tokens/s by model (prompt, generation)",
            tuple(
                Series(f"sum by (model_name) (rate({metric(name)}{ns}[5m]))", f"{kind} ${{labels.model_name}}")
                for kind, name in (
                    ("prompt", "ray_vllm_prompt_tokens_total"),
                    ("generation", "ray_vllm_generation_tokens_total"),
                )
            ),
            "1/s",
        ),
        Panel(
            "Running and waiting requests by model",
            tuple(
                Series(f"sum by (model_name) ({metric(name)}{ns})", f"{kind} ${{labels.model_name}}")
                for kind, name in (
                    ("running", "ray_vllm_num_requests_running"),
                    ("waiting", "ray_vllm_num_requests_waiting"),
                )
            ),
            "1",
        ),
        Panel(
            "KV-cache usage by model",
            (
                Series(
                    f"100 * max by (model_name) ({metric('ray_vllm_kv_cache_usage_perc')}{ns})", "${labels.model_name}"
                ),
            ),
            "%",
        ),
        Panel(
            "Prefix-cache hit rate by model",
            (
                Series(
                    f"100 * sum by (model_name) (rate({metric('ray_vllm_prefix_cache_hits_total')}{ns}[5m])) / "
                    f"sum by (model_name) (rate({metric('ray_vllm_prefix_cache_queries_total')}{ns}[5m]))",
                    "${labels.model_name}",
                ),
            ),
            "%",
        ),
        Panel(
            "Healthy Serve replicas by model",
            (
                Series(
                    f"sum by (deployment) ({metric('ray_serve_deployment_replica_healthy')}"
                    f"{{{_in_namespace(settings)},{_LLM_DEPLOYMENTS}}})",
                    "${labels.deployment}",
                ),
            ),
            "1",
        ),
    ]


def _gpu_panels(settings: MonitoringSettings) -> list[Panel]:
    """The GPU nodes, from DCGM: how busy each is and how full its memory."""
    used, free = _dcgm(settings, "DCGM_FI_DEV_FB_USED"), _dcgm(settings, "DCGM_FI_DEV_FB_FREE")
    return [
        Panel(
            "GPU utilisation by node",
            (Series(f"avg by (Hostname) ({_dcgm(settings, 'DCGM_FI_DEV_GPU_UTIL')})", "${labels.Hostname}"),),
            "%",
        ),
        Panel(
            "GPU memory used by node",
            (
                Series(
                    f"100 * sum by (Hostname) ({used}) / (sum by (Hostname) ({used}) + sum by (Hostname) ({free}))",
                    "${labels.Hostname}",
                ),
            ),
            "%",
        ),
    ]


# --- the dashboard --------------------------------------------------------------------------------------------

COLUMNS = 48
TILE_WIDTH, TILE_HEIGHT = 24, 16


def _chart(panel: Panel) -> dict:
    # The server fills these defaults in; emitting them avoids a permanent diff on every `pulumi up`.
    return {
        "title": panel.title,
        "xyChart": {
            "chartOptions": {"mode": "COLOR"},
            "dataSets": [
                {
                    "legendTemplate": series.legend,
                    "minAlignmentPeriod": "60s",
                    "plotType": panel.plot,
                    "targetAxis": "Y1",
                    "timeSeriesQuery": {"prometheusQuery": series.query, "unitOverride": panel.unit},
                }
                for series in panel.series
            ],
            "thresholds": [],
            "yAxis": {"label": "", "scale": "LINEAR"},
        },
    }


def dashboard_stack_label(stack: str) -> str:
    """A dashboard label key naming the stack. Google allows lowercase letters, digits, '_' and '-' (63 at most,
    starting with a letter); a Pulumi stack name may also hold capitals and '.'."""
    return ("stack-" + re.sub(r"[^a-z0-9_-]", "-", stack.lower()))[:63]


def render_dashboard(settings: MonitoringSettings) -> dict:
    """The dashboard (REST `projects.dashboards` shape): two charts per row on a 48-column mosaic."""
    tiles = [
        {
            "xPos": (index % 2) * TILE_WIDTH,
            "yPos": (index // 2) * TILE_HEIGHT,
            "width": TILE_WIDTH,
            "height": TILE_HEIGHT,
            "widget": _chart(panel),
        }
        for index, panel in enumerate(panels(settings))
    ]
    return {
        "displayName": f"llmserve {settings.stack}: LLM serving",
        "labels": {"llmserve": "", dashboard_stack_label(settings.stack): ""},
        "mosaicLayout": {"columns": COLUMNS, "tiles": tiles},
    }


def dashboard_json(settings: MonitoringSettings) -> str:
    """`render_dashboard` as the provider wants it: a JSON string, keys sorted so that it is stable."""
    return json.dumps(render_dashboard(settings), sort_keys=True, separators=(",", ":"))


# --- the alerts -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertSpec:
    """One alert policy with one PromQL condition (the provider's docs leave mixing kinds unverified)."""

    key: str  # short, stable; names the Pulumi resource
    display_name: str
    query: str
    duration_s: int
    severity: str  # CRITICAL | ERROR | WARNING
    documentation: str


def render_alerts(settings: MonitoringSettings) -> list[AlertSpec]:
    """The stack's PromQL alert policies: four for every stack, and one per condition that only some stacks can
    meet (models that must always run, GPUs that must always report). GPU Xid errors are no metric of GKE's
    DCGM exporter; their alert matches log lines (infra/render/log_alerts.py)."""
    alerts = _serving_alerts(settings)
    if settings.tenant_throttled_minutes is not None:
        alerts.append(tenant_throttled_alert(settings, settings.tenant_throttled_minutes, _ns(settings)))
    if settings.always_on_model_ids:
        alerts.append(_no_healthy_replica_alert(settings))
    if settings.min_gpus:
        alerts.append(_gpu_lost_alert(settings))
    return alerts


def _serving_alerts(settings: MonitoringSettings) -> list[AlertSpec]:
    t = settings.thresholds
    ns = _ns(settings)
    return [
        AlertSpec(
            "not-ready",
            f"llmserve {settings.stack}: RayService not ready",
            f"max by (name) ({metric('kuberay_service_condition_ready')}"
            f'{{{_in_cluster(settings)}name="{settings.rayservice}",exported_namespace="{settings.namespace}",'
            f'condition="false"}}) == 1',
            t.not_ready_minutes * 60,
            "CRITICAL",
            "KubeRay reports the RayService not Ready: no Serve endpoint answers. Check `kubectl -n "
            f"{settings.namespace} describe rayservice {settings.rayservice}` and the head pod's logs.",
        ),
        AlertSpec(
            "wedged-engine",
            f"llmserve {settings.stack}: requests waiting but no tokens generated",
            f"(sum by (model_name) ({metric('ray_vllm_num_requests_waiting')}{ns}) > 0) unless on (model_name) "
            f"(sum by (model_name) (rate({metric('ray_vllm_generation_tokens_total')}{ns}[5m])) > 0)",
            t.wedged_minutes * 60,
            "CRITICAL",
            "A model's engine has queued requests but produced no token: a wedged engine (NCCL hang, a dead "
            "pipeline stage). Restarting its replica (or the GPU worker pods) usually clears it.",
        ),
        AlertSpec(
            "engine-died",
            f"llmserve {settings.stack}: a vLLM engine died",
            f"sum by (model) (increase({metric('ray_llmserve_engine_deaths_total')}{ns}[10m])) > 0",
            0,
            "ERROR",
            "A model's vLLM engine died (GPU Xid, OOM, a crash); its replica left at once and Serve is starting a "
            "new one (a cold start on the GPU nodes still up). Meanwhile requests to the model get 503 with "
            "Retry-After. Repeated deaths: check the GPU Xid alert and the replica's logs. See docs/operations.md.",
        ),
        AlertSpec(
            "ttft-p95",
            f"llmserve {settings.stack}: p95 time to first token above {t.ttft_p95_seconds} s",
            f"{quantile_query(settings, 'ray_vllm_time_to_first_token_seconds', 0.95)} > {t.ttft_p95_seconds}",
            600,
            "WARNING",
            f"p95 TTFT over 10 minutes is above {t.ttft_p95_seconds} s (llmserve:alertTtftP95Seconds): the queue "
            "is building or prompts got longer. See the dashboard's waiting requests and KV-cache panels.",
        ),
        AlertSpec(
            "kv-cache-full",
            f"llmserve {settings.stack}: KV cache above {t.kv_cache_percent}%",
            f"100 * max by (model_name) ({metric('ray_vllm_kv_cache_usage_perc')}{ns}) > {t.kv_cache_percent}",
            t.kv_cache_minutes * 60,
            "WARNING",
            f"A model's KV cache has been above {t.kv_cache_percent}% for {t.kv_cache_minutes} minutes: requests "
            "queue and get preempted. Add replicas or lower maxNumSeqs / maxModelLen.",
        ),
    ]


def _no_healthy_replica_alert(settings: MonitoringSettings) -> AlertSpec:
    names = "|".join(re.escape(serve_deployment_name(model_id)) for model_id in settings.always_on_model_ids)
    healthy = metric("ray_serve_deployment_replica_healthy")
    # `sum` over nothing is nothing, so an absent series (the head or the Serve controller gone) needs the
    # `or` branch to fire as well.
    return AlertSpec(
        "no-healthy-replica",
        f"llmserve {settings.stack}: a model has no healthy replica",
        f'(sum by (deployment) ({healthy}{{{_in_namespace(settings)},deployment=~"{names}"}}) < 1) or '
        f'absent({healthy}{{{_in_namespace(settings)},deployment=~"{names}"}})',
        settings.thresholds.not_ready_minutes * 60,
        "CRITICAL",
        "A model that should always run (minReplicas >= 1) has no healthy Serve replica, or Serve reports "
        "nothing at all.",
    )


def _gpu_lost_alert(settings: MonitoringSettings) -> AlertSpec:
    return AlertSpec(
        "gpu-lost",
        f"llmserve {settings.stack}: fewer than {settings.min_gpus} GPUs report",
        f"(count({_dcgm(settings, 'DCGM_FI_DEV_GPU_TEMP')}) or vector(0)) < {settings.min_gpus}",
        300,
        "CRITICAL",
        f"The GPU pool always has {settings.min_gpus} GPUs, but fewer report DCGM metrics: a GPU node was "
        "lost (preempted, repaired, or its driver failed).",
    )


def policy_envelope(settings: MonitoringSettings, display_name: str, severity: str, documentation: str) -> dict:
    """What every alert policy of the stack carries besides its condition: name, severity, documentation, the
    notification channel, labels and auto-close (PromQL alerts here, log-match ones in log_alerts.py)."""
    channels = [settings.thresholds.notification_channel] if settings.thresholds.notification_channel else []
    return {
        "display_name": display_name,
        "combiner": "OR",
        "severity": severity,
        "documentation": {"content": documentation, "mime_type": "text/markdown", "subject": display_name},
        "notification_channels": channels,
        "alert_strategy": {"auto_close": "1800s"},
        "user_labels": {"llmserve": "true", "stack": re.sub(r"[^a-z0-9_-]", "-", settings.stack.lower())},
    }


def alert_policy_args(spec: AlertSpec, settings: MonitoringSettings) -> dict:
    """Keyword arguments of `gcp.monitoring.AlertPolicy` as plain data (the component builds the Args)."""
    return {
        **policy_envelope(settings, spec.display_name, spec.severity, spec.documentation),
        "conditions": [
            {
                "display_name": spec.display_name,
                "condition_prometheus_query_language": {
                    "query": spec.query,
                    "duration": f"{spec.duration_s}s",
                    "evaluation_interval": "60s",
                    "alert_rule": re.sub(r"[^A-Za-z0-9_]", "_", spec.key),
                    "rule_group": f"llmserve_{re.sub(r'[^A-Za-z0-9_]', '_', settings.stack)}",
                    # A fresh stack has written none of these metrics yet; creation must not depend on them.
                    "disable_metric_validation": True,
                },
            }
        ],
    }


def render_operator_pod_monitoring(namespace: str) -> dict:
    """Scrape the KubeRay operator (chart 1.7.0: container port `http` 8080 serves /metrics), for the
    kuberay_* metrics the not-ready alert reads."""
    return {
        "apiVersion": "monitoring.googleapis.com/v1",
        "kind": "PodMonitoring",
        "metadata": {"name": "kuberay-operator", "namespace": namespace, "labels": dict(PART_OF_LABEL)},
        "spec": {
            "selector": {"matchLabels": dict(KUBERAY_OPERATOR_SELECTOR)},
            "endpoints": [{"port": "http", "interval": "30s"}],
        },
    }


def metrics_used(settings: MonitoringSettings, alerts: Sequence[AlertSpec] | None = None) -> set[str]:
    """Every metric name the dashboard and the alerts use (for tests and reviews)."""
    queries = [series.query for panel in panels(settings) for series in panel.series]
    queries += [spec.query for spec in (alerts if alerts is not None else render_alerts(settings))]
    return set().union(*(metric_names_in(query) for query in queries))
