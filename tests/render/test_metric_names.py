"""The metric names of the dashboard and the alerts are names the upstream exporters really export.

`infra/render/metrics.py` refuses a name that is not in its own table, but a name misspelled in the table and
in a panel alike passes that check and draws an empty chart. So the names are pinned here, as literals read
from the exporters' sources (each with its file), and every query of every stack may use only these.

- vLLM 0.29.0 registers `vllm:<name>` in `vllm/v1/metrics/loggers.py`; through Ray Serve LLM the name reaches
  Prometheus with ':' made '_' (`vllm/v1/metrics/ray_wrappers.py`, `_get_sanitized_opentelemetry_name`) under
  Ray's `ray` namespace (`ray/dashboard/modules/reporter/reporter_agent.py`, namespace="ray"), a counter with
  `_total` (the e2e tier scrapes a live server for the ones a CPU server exports).
- Ray 2.60.0 Serve: `ray/serve/_private/request_ingress_metrics.py` (`serve_num_{protocol}_requests`,
  `serve_num_{protocol}_error_requests`, protocol "http"), `ray/serve/_private/replica.py`
  (`serve_deployment_error_counter`), `ray/serve/_private/deployment_state.py`
  (`serve_deployment_replica_healthy`).
- GKE's managed DCGM exporter: the 18 fields of GoogleCloudPlatform/monitoring-dashboard-samples
  `integrations/dcgm/prometheus_metadata.yaml` (commit 25d8c3e8); there is no Xid field among them.
- KubeRay 1.7: `ray-operator/controllers/ray/metrics/ray_service_metrics.go` (`kuberay_service_condition_ready`).
- The project's pipeline metrics: `serve_app/pipeline_ingress.py` (`PipelineMetrics`).
- The project's tenant metrics: `serve_app/tenant_metrics.py` registers `llmserve_tenant_*` through `ray.util.metrics`,
  exported with Ray's `ray_` prefix and a counter's `_total` as vLLM's are (tests/e2e/test_tenants.py scrapes a live
  server for them).
"""

from __future__ import annotations

import json
import re

import pytest

from infra.render.metrics import METRICS

UPSTREAM_METRICS: dict[str, str] = {
    # vLLM 0.29.0 vllm/v1/metrics/loggers.py, through Ray 2.60
    "ray_vllm_num_requests_running": "gauge",  # "vllm:num_requests_running", line 494
    "ray_vllm_num_requests_waiting": "gauge",  # "vllm:num_requests_waiting", line 504
    "ray_vllm_kv_cache_usage_perc": "gauge",  # "vllm:kv_cache_usage_perc", line 562
    "ray_vllm_prefix_cache_queries_total": "counter",  # "vllm:prefix_cache_queries", line 585
    "ray_vllm_prefix_cache_hits_total": "counter",  # "vllm:prefix_cache_hits", line 596
    "ray_vllm_prompt_tokens_total": "counter",  # "vllm:prompt_tokens", line 671
    "ray_vllm_generation_tokens_total": "counter",  # "vllm:generation_tokens", line 705
    "ray_vllm_request_success_total": "counter",  # "vllm:request_success", line 715
    "ray_vllm_time_to_first_token_seconds": "histogram",  # "vllm:time_to_first_token_seconds", line 797
    "ray_vllm_inter_token_latency_seconds": "histogram",  # "vllm:inter_token_latency_seconds", line 830
    # Ray 2.60.0 Serve
    "ray_serve_num_http_requests_total": "counter",  # request_ingress_metrics.py line 38
    "ray_serve_num_http_error_requests_total": "counter",  # request_ingress_metrics.py line 44
    "ray_serve_deployment_error_counter_total": "counter",  # replica.py line 452
    "ray_serve_deployment_replica_healthy": "gauge",  # deployment_state.py line 3086
    # GKE managed DCGM (all 18 fields of integrations/dcgm/prometheus_metadata.yaml)
    **dict.fromkeys(
        (
            "DCGM_FI_DEV_GPU_UTIL",
            "DCGM_FI_DEV_MEM_COPY_UTIL",
            "DCGM_FI_DEV_GPU_TEMP",
            "DCGM_FI_DEV_MEMORY_TEMP",
            "DCGM_FI_DEV_POWER_USAGE",
            "DCGM_FI_PROF_SM_ACTIVE",
            "DCGM_FI_PROF_SM_OCCUPANCY",
            "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
            "DCGM_FI_PROF_PIPE_FP64_ACTIVE",
            "DCGM_FI_PROF_PIPE_FP32_ACTIVE",
            "DCGM_FI_PROF_PIPE_FP16_ACTIVE",
            "DCGM_FI_DEV_FB_FREE",
            "DCGM_FI_DEV_FB_USED",
            "DCGM_FI_DEV_FB_TOTAL",
            "DCGM_FI_PROF_PCIE_TX_BYTES",
            "DCGM_FI_PROF_PCIE_RX_BYTES",
            "DCGM_FI_PROF_NVLINK_TX_BYTES",
            "DCGM_FI_PROF_NVLINK_RX_BYTES",
        ),
        "gauge",
    ),
    # KubeRay 1.7
    "kuberay_service_condition_ready": "gauge",
    # The project's own, registered in serve_app/pipeline_ingress.py (PipelineMetrics) with ray.util.metrics:
    # Ray adds the `ray_` prefix and `_total` to counters like Serve's own (tests/serve_app/test_pipeline_run.py
    # checks the registered names; the e2e tier scrapes them)
    "ray_llmserve_pipeline_requests_total": "counter",
    "ray_llmserve_pipeline_latency_seconds": "histogram",
    "ray_llmserve_pipeline_step_requests_total": "counter",
    "ray_llmserve_pipeline_step_latency_seconds": "histogram",
    "ray_llmserve_pipeline_step_tokens_total": "counter",
    "ray_llmserve_pipeline_guard_denials_total": "counter",
    # This project's ingress (serve_app/engine_watch.py GateMetrics): Ray 2.60 exports a ray.util.metrics Counter
    # named N as ray_N_total (tests/e2e/test_engine_recovery.py scrapes it after a real engine death).
    "ray_llmserve_engine_deaths_total": "counter",
    "ray_llmserve_engine_unavailable_responses_total": "counter",
    # The project's ingress, serve_app/tenant_metrics.py
    "ray_llmserve_tenant_requests_total": "counter",  # "llmserve_tenant_requests"
    "ray_llmserve_tenant_rejected_requests_total": "counter",  # "llmserve_tenant_rejected_requests"
    "ray_llmserve_tenant_prompt_tokens_total": "counter",  # "llmserve_tenant_prompt_tokens"
    "ray_llmserve_tenant_completion_tokens_total": "counter",  # "llmserve_tenant_completion_tokens"
    "ray_llmserve_tenant_request_latency_seconds": "histogram",  # "llmserve_tenant_request_latency_seconds"
}
HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")


def test_every_listed_metric_is_an_upstream_name_of_the_same_kind():
    for metric in METRICS:
        assert metric.name in UPSTREAM_METRICS, f"{metric.name} is exported by none of the pinned sources"
        assert metric.kind == UPSTREAM_METRICS[metric.name], metric


def selected_metrics(promql: str) -> set[str]:
    """Every metric a query selects (a name followed by its `{...}` selector), a histogram's series by its name.
    Read without infra/render/metrics.py, so that a name misspelled there is not excused by it."""
    names = set()
    for name in re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\{", promql):
        base = HISTOGRAM_SERIES.sub("", name)
        names.add(base if UPSTREAM_METRICS.get(base) == "histogram" else name)
    return names


def planned_queries(resources) -> list[str]:
    """Every PromQL string of a planned stack: each dashboard chart's and each PromQL alert's."""
    queries = []
    for resource in resources:
        if resource.type == "gcp:monitoring/dashboard:Dashboard":
            tiles = json.loads(resource.inputs["dashboardJson"])["mosaicLayout"]["tiles"]
            queries += [
                data_set["timeSeriesQuery"]["prometheusQuery"]
                for tile in tiles
                for data_set in tile["widget"]["xyChart"]["dataSets"]
            ]
        if resource.type == "gcp:monitoring/alertPolicy:AlertPolicy":
            for condition in resource.inputs["conditions"]:
                if "conditionPrometheusQueryLanguage" in condition:
                    queries.append(condition["conditionPrometheusQueryLanguage"]["query"])
    return queries


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_query_of_every_stack_selects_only_upstream_names(planned, stack):
    queries = planned_queries(planned(stack).resources)
    assert len(queries) > 15, stack
    used = set().union(*(selected_metrics(query) for query in queries))
    assert used and used <= set(UPSTREAM_METRICS), (
        f"{stack}: not exported upstream: {sorted(used - set(UPSTREAM_METRICS))}"
    )


def test_the_selector_reader_finds_a_misspelt_name():
    """The check above would catch `ray_vllm_kv_cache_usage_percent` in both the table and a panel."""
    query = '100 * max by (model_name) (ray_vllm_kv_cache_usage_percent{cluster="c",namespace="llm"})'
    assert selected_metrics(query) == {"ray_vllm_kv_cache_usage_percent"}
    bucket = 'histogram_quantile(0.95, sum by (le) (rate(ray_vllm_time_to_first_token_seconds_bucket{ns="llm"}[5m])))'
    assert selected_metrics(bucket) == {"ray_vllm_time_to_first_token_seconds"}
