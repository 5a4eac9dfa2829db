"""The dashboard and alert renderers, their config keys, and what the stacks' plans register.

Pure renderers (infra/render/monitoring.py, infra/render/metrics.py) are tested without Pulumi; the last tests
read the three stacks' plans under mocks.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from infra.config.errors import ConfigError
from infra.config.keys import CONFIG_KEYS_BY_NAME
from infra.config.sections.alerts import THRESHOLD_FIELDS, alert_thresholds
from infra.config.settings import AlertThresholds
from infra.config.stack import parse_stack_config
from infra.render import metrics
from infra.render import monitoring as render
from infra.render.log_alerts import log_alert_policy_args, render_log_alerts
from infra.render.metrics import METRICS
from infra.render.monitoring import (
    MonitoringSettings,
    alert_policy_args,
    dashboard_json,
    metrics_used,
    render_alerts,
    render_dashboard,
    serve_deployment_name,
)


def settings(**overrides) -> MonitoringSettings:
    values = dict(
        stack="prod",
        namespace="llm",
        rayservice="llm",
        model_ids=("deepseek-r1",),
        always_on_model_ids=("deepseek-r1",),
        min_gpus=16,
    )
    values.update(overrides)
    return MonitoringSettings(**values)


# --- the metric list ---------------------------------------------------------------------------------------------


def test_every_metric_used_is_listed_and_every_listed_metric_is_used():
    used = metrics_used(settings())
    listed = {metric.name for metric in METRICS}
    assert used == listed, f"used but not listed: {sorted(used - listed)}; listed but unused: {sorted(listed - used)}"


def test_every_metric_names_its_source_and_kind():
    for metric in METRICS:
        assert metric.kind in ("counter", "gauge", "histogram"), metric
        assert metric.source in (metrics.RAY, metrics.VLLM, metrics.DCGM, metrics.KUBERAY, metrics.LLMSERVE), metric
        # Ray's Prometheus export adds _total to counters (the OpenTelemetry path); gauges and histograms keep
        # their name, and queries must use the exported one.
        assert (metric.kind == "counter") == metric.name.endswith("_total") or metric.source == metrics.DCGM, metric


def test_an_engine_death_alerts_once_per_model_at_once():
    (died,) = [spec for spec in render.render_alerts(settings()) if spec.key == "engine-died"]
    assert died.query.startswith("sum by (model) (increase(ray_llmserve_engine_deaths_total{")
    assert died.query.endswith("[10m])) > 0") and died.duration_s == 0 and died.severity == "ERROR"


def test_histograms_are_queried_through_their_buckets():
    queries = " ".join(series.query for panel in render.panels(settings()) for series in panel.series)
    for metric in METRICS:
        if metric.kind == "histogram":
            assert f"{metric.name}_bucket" in queries and metric.exported_names[0] == f"{metric.name}_bucket"


def test_an_unlisted_metric_is_refused():
    with pytest.raises(KeyError, match=re.escape("not in infra/render/metrics.py METRICS")):
        metrics.metric("ray_vllm_num_requests_swapped")  # gone in vLLM 0.29's V1 engine


@pytest.mark.parametrize(
    "model_id, deployment",
    [
        ("deepseek-r1", "LLMServer:deepseek-r1"),
        ("deepseek-r1-distill-qwen-1.5b", "LLMServer:deepseek-r1-distill-qwen-1_5b"),
        ("org/model.v2", "LLMServer:org--model_v2"),
    ],
)
def test_serve_deployment_names_follow_ray_serve_llm(model_id, deployment):
    """Ray 2.60 `core/server/builder.py`: name_prefix "LLMServer:" + model_id with / -> -- and . -> _."""
    assert serve_deployment_name(model_id) == deployment


def test_serve_deployment_name_rule_is_rays_own():
    from pathlib import Path

    import ray

    source = (Path(ray.__file__).parent / "llm/_internal/serve/core/server/builder.py").read_text()
    assert 'return llm_config.model_id.replace("/", "--").replace(".", "_")' in source
    assert 'name_prefix = name_prefix or f"{deployment_cls.__name__}:"' in source


# --- the dashboard -----------------------------------------------------------------------------------------------

REQUIRED_PANELS = (
    "Requests/s",
    "Errors/s",
    "Time to first token",
    "Inter-token latency",
    "Tokens/s",
    "Running and waiting",
    "KV-cache usage",
    "Prefix-cache hit rate",
    "Healthy Serve replicas",
    "GPU utilisation",
    "GPU memory",
)


def test_dashboard_has_every_required_panel_on_a_mosaic():
    dashboard = render_dashboard(settings())
    assert set(dashboard) == {"displayName", "labels", "mosaicLayout"}
    tiles = dashboard["mosaicLayout"]["tiles"]
    titles = [tile["widget"]["title"] for tile in tiles]
    for required in REQUIRED_PANELS:
        assert any(title.startswith(required) for title in titles), f"no {required} panel in {titles}"
    assert dashboard["displayName"] == "llmserve prod: LLM serving"


def test_tiles_fit_the_grid_and_do_not_overlap():
    tiles = render_dashboard(settings())["mosaicLayout"]["tiles"]
    cells = set()
    for tile in tiles:
        assert tile["xPos"] >= 0 and tile["width"] >= 1 and tile["xPos"] + tile["width"] <= render.COLUMNS, tile
        covered = {
            (x, y)
            for x in range(tile["xPos"], tile["xPos"] + tile["width"])
            for y in range(tile["yPos"], tile["yPos"] + tile["height"])
        }
        assert not covered & cells, f"{tile['widget']['title']} overlaps another tile"
        cells |= covered


def test_every_chart_is_promql_with_the_server_defaults():
    for tile in render_dashboard(settings())["mosaicLayout"]["tiles"]:
        chart = tile["widget"]["xyChart"]
        assert chart["chartOptions"] == {"mode": "COLOR"} and chart["yAxis"] == {"label": "", "scale": "LINEAR"}
        for data_set in chart["dataSets"]:
            assert set(data_set["timeSeriesQuery"]) == {"prometheusQuery", "unitOverride"}
            assert data_set["targetAxis"] == "Y1" and data_set["plotType"] in ("LINE", "STACKED_AREA")
            assert_balanced(data_set["timeSeriesQuery"]["prometheusQuery"])


def test_serving_queries_are_scoped_to_the_serving_namespace():
    text = dashboard_json(settings(namespace="team-a"))
    for panel in render.panels(settings(namespace="team-a")):
        for series in panel.series:
            if "DCGM_" not in series.query:  # DCGM series carry the exporter's namespace, not the pod's
                assert 'namespace=\\"team-a\\"' in json.dumps(series.query), series.query
    assert 'namespace=\\"llm\\"' not in text


def test_dashboard_json_is_sorted_and_stable():
    text = dashboard_json(settings())
    assert text == dashboard_json(settings())
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def test_ttft_panel_query():
    ttft = next(p for p in render.panels(settings()) if p.title.startswith("Time to first token"))
    assert [s.query for s in ttft.series] == [
        f"histogram_quantile({q}, sum by (le, model_name) "
        f'(rate(ray_vllm_time_to_first_token_seconds_bucket{{namespace="llm"}}[5m])))'
        for q in (0.5, 0.95)
    ]
    assert ttft.unit == "s"


def assert_balanced(promql: str) -> None:
    stripped = re.sub(r'"[^"]*"', '""', promql)
    assert promql.count('"') % 2 == 0, promql
    for opening, closing in ("()", "{}", "[]"):
        depth = 0
        for char in stripped:
            depth += (char == opening) - (char == closing)
            assert depth >= 0, promql
        assert depth == 0, promql


# --- the alerts --------------------------------------------------------------------------------------------------


def alerts_by_key(current: MonitoringSettings) -> dict:
    return {spec.key: spec for spec in render_alerts(current)}


def test_prod_gets_every_alert_of_the_issue():
    assert set(alerts_by_key(settings())) == {
        "not-ready",
        "no-healthy-replica",
        "ttft-p95",
        "kv-cache-full",
        "wedged-engine",
        "gpu-lost",
        "engine-died",
    }
    assert [spec.key for spec in render_log_alerts(settings())] == ["gpu-xid"]


# The driver's Xid lines as NVIDIA documents them ("NVRM: Xid (PCI:0000:01:00): 79, pid=..., GPU has fallen off
# the bus"; docs.nvidia.com/deploy/xid-errors), with and without the kernel's timestamp prefix.
XID_LINES = [
    ("[ 9876.543210] NVRM: Xid (PCI:0000:10:1c): 63, pid=1896, Row Remapper: New row marked for remapping", "63"),
    ("NVRM: Xid (PCI:0000:01:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.", "79"),
]


def test_gpu_xid_matches_the_drivers_kernel_lines_in_the_serial_port_log():
    """GKE's DCGM exporter has no Xid field, so the alert matches the kernel's `NVRM: Xid` lines, which reach Cloud
    Logging through the VM's serial port log."""
    [xid] = render_log_alerts(settings())
    assert xid.filter.splitlines() == [
        'resource.type="gce_instance"',
        'log_id("serialconsole.googleapis.com/serial_port_1_output")',
        'labels."compute.googleapis.com/resource_name"=~"^gke-"',
        'textPayload:"NVRM: Xid"',
    ]
    assert xid.severity == "ERROR" and "serial-port-logging-enable=true" in xid.documentation
    assert xid.label_extractors["node"] == 'EXTRACT(labels."compute.googleapis.com/resource_name")'
    extractor = re.fullmatch(r'REGEXP_EXTRACT\(textPayload, "(.*)"\)', xid.label_extractors["xid"])
    assert extractor, xid.label_extractors
    for line, code in XID_LINES:  # RE2 and Python's re agree on this pattern (classes and a group, no escapes)
        assert re.search(extractor.group(1), line).group(1) == code, line


def test_a_log_match_policy_carries_the_rate_limit_google_requires():
    current = settings(thresholds=AlertThresholds(notification_channel="projects/p-123456/notificationChannels/42"))
    [xid] = render_log_alerts(current)
    args = log_alert_policy_args(xid, current)
    assert args["conditions"] == [
        {
            "display_name": "llmserve prod: GPU Xid error",
            "condition_matched_log": {"filter": xid.filter, "label_extractors": dict(xid.label_extractors)},
        }
    ]
    assert args["alert_strategy"] == {"auto_close": "1800s", "notification_rate_limit": {"period": "300s"}}
    assert args["notification_channels"] == ["projects/p-123456/notificationChannels/42"]
    assert args["user_labels"] == {"llmserve": "true", "stack": "prod"}


def test_thresholds_from_config_reach_the_queries_and_durations():
    thresholds = AlertThresholds(
        not_ready_minutes=7, ttft_p95_seconds=4, kv_cache_percent=90, kv_cache_minutes=3, wedged_minutes=2
    )
    alerts = alerts_by_key(settings(thresholds=thresholds))
    assert alerts["ttft-p95"].query.endswith(") > 4") and alerts["ttft-p95"].duration_s == 600
    assert alerts["kv-cache-full"].query == (
        '100 * max by (model_name) (ray_vllm_kv_cache_usage_perc{namespace="llm"}) > 90'
    )
    assert alerts["kv-cache-full"].duration_s == 180
    assert alerts["not-ready"].duration_s == 420 and alerts["no-healthy-replica"].duration_s == 420
    assert alerts["wedged-engine"].duration_s == 120


def test_not_ready_reads_kuberays_condition_label_under_gmp():
    query = alerts_by_key(settings())["not-ready"].query
    assert query == (
        'max by (name) (kuberay_service_condition_ready{name="llm",exported_namespace="llm",condition="false"}) == 1'
    )


def test_wedged_engine_fires_on_waiting_without_generation():
    query = alerts_by_key(settings())["wedged-engine"].query
    assert query == (
        '(sum by (model_name) (ray_vllm_num_requests_waiting{namespace="llm"}) > 0) unless on '
        '(model_name) (sum by (model_name) (rate(ray_vllm_generation_tokens_total{namespace="llm"}'
        "[5m])) > 0)"
    )


def test_no_healthy_replica_only_for_models_that_must_always_run():
    current = settings(model_ids=("a.b", "zero"), always_on_model_ids=("a.b",))
    query = alerts_by_key(current)["no-healthy-replica"].query
    assert 'deployment=~"LLMServer:a_b"' in query and "zero" not in query
    assert "absent(ray_serve_deployment_replica_healthy" in query, "a vanished series must fire too"
    assert "no-healthy-replica" not in alerts_by_key(settings(always_on_model_ids=()))


def test_gpu_lost_counts_against_the_pools_floor_and_is_off_when_it_scales_to_zero():
    assert alerts_by_key(settings(min_gpus=16))["gpu-lost"].query == "(count(DCGM_FI_DEV_GPU_TEMP) or vector(0)) < 16"
    assert "gpu-lost" not in alerts_by_key(settings(min_gpus=0))


def test_policy_arguments():
    current = settings(thresholds=AlertThresholds(notification_channel="projects/p-123456/notificationChannels/42"))
    for spec in render_alerts(current):
        args = alert_policy_args(spec, current)
        promql = args["conditions"][0]["condition_prometheus_query_language"]
        assert promql["disable_metric_validation"] is True, "a fresh stack has none of the metrics yet"
        assert int(promql["evaluation_interval"][:-1]) % 30 == 0
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", promql["alert_rule"]), promql["alert_rule"]
        assert args["notification_channels"] == ["projects/p-123456/notificationChannels/42"]
        assert args["severity"] in ("CRITICAL", "ERROR", "WARNING") and len(args["documentation"]["content"]) < 8192
        assert_balanced(promql["query"])
    assert alert_policy_args(render_alerts(settings())[0], settings())["notification_channels"] == []


# --- config --------------------------------------------------------------------------------------------------


def test_config_defaults_are_the_renderers_defaults():
    defaults = AlertThresholds()
    for key, field_name in THRESHOLD_FIELDS.items():
        assert CONFIG_KEYS_BY_NAME[key].default == getattr(defaults, field_name), key
        bounds = CONFIG_KEYS_BY_NAME[key].range
        assert bounds.minimum <= getattr(defaults, field_name) <= bounds.maximum, key
    assert CONFIG_KEYS_BY_NAME["alertNotificationChannel"].default == defaults.notification_channel == ""


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"alertKvCacheUsagePercent": 101},
            r"llmserve:alertKvCacheUsagePercent: out of range; found 101; allowed: an "
            r"integer from 50 to 100",
        ),
        ({"alertKvCacheUsagePercent": 10}, r"alertKvCacheUsagePercent: out of range; found 10"),
        (
            {"alertTtftP95Seconds": 0},
            r"llmserve:alertTtftP95Seconds: out of range; found 0; allowed: an integer from 1",
        ),
        ({"alertNotReadyMinutes": 5000}, r"alertNotReadyMinutes: out of range; found 5000"),
        ({"alertWedgedMinutes": -1}, r"alertWedgedMinutes: out of range"),
        ({"alertKvCacheMinutes": True}, r"alertKvCacheMinutes: out of range; found True"),
        (
            {"alertNotificationChannel": "my-channel"},
            r"llmserve:alertNotificationChannel: not a notification channel resource name; found 'my-channel'; "
            r"allowed: projects/<project-id>/notificationChannels/<numeric-id>",
        ),
        ({"alertNotificationChannel": "projects/p/notificationChannels/42"}, "not a notification channel"),
        ({"alertNotificationChannel": "projects/my-project/notificationChannels/abc"}, "not a notification channel"),
        ({"alertNotificationChannel": "projects/my-project/alertPolicies/42"}, "not a notification channel"),
    ],
)
def test_bad_alert_settings_name_the_key_the_value_and_what_is_allowed(values, message):
    thresholds, problems = alert_thresholds(values, "llmserve:")
    assert len(problems) == 1 and re.search(message, problems[0]), problems
    assert thresholds == AlertThresholds(), "a bad value must not half-apply"


@pytest.mark.parametrize(
    "channel",
    [
        "projects/my-project/notificationChannels/1234567890",
        "projects/example.com:my-project/notificationChannels/1",
        "",
    ],
)
def test_good_channels_are_accepted(channel):
    thresholds, problems = alert_thresholds({"alertNotificationChannel": channel}, "llmserve:")
    assert problems == [] and thresholds.notification_channel == channel


def test_stack_config_reads_the_alert_keys_and_rejects_bad_ones(stack_values, gcp_values):
    config = parse_stack_config(
        "test", {**stack_values, "alertTtftP95Seconds": "30", "alertKvCacheUsagePercent": "90"}, gcp_values
    )
    assert dataclasses.astuple(config.alerts)[:3] == (10, 30, 90)
    with pytest.raises(ConfigError, match=r"llmserve:alertKvCacheUsagePercent: out of range; found 120"):
        parse_stack_config("test", {**stack_values, "alertKvCacheUsagePercent": "120"}, gcp_values)
    with pytest.raises(ConfigError, match=r"llmserve:alertTtftP95Seconds: expected a whole number; found 'fast'"):
        parse_stack_config("test", {**stack_values, "alertTtftP95Seconds": "fast"}, gcp_values)


# --- the stacks --------------------------------------------------------------------------------------------------


def test_each_stack_registers_a_dashboard_its_alerts_and_the_operator_scrape(planned):
    for stack, expected in (
        (
            "dev",
            {"not-ready", "ttft-p95", "kv-cache-full", "wedged-engine", "engine-died", "gpu-xid", "tenant-throttled"},
        ),
        (
            "prod",
            {
                "not-ready",
                "no-healthy-replica",
                "ttft-p95",
                "kv-cache-full",
                "wedged-engine",
                "engine-died",
                "gpu-lost",
                "gpu-xid",
            },
        ),
    ):
        resources = planned(stack).resources
        dashboards = [r for r in resources if r.type == "gcp:monitoring/dashboard:Dashboard"]
        assert len(dashboards) == 1 and dashboards[0].parent == "llm-monitoring", stack
        assert json.loads(dashboards[0].inputs["dashboardJson"])["displayName"] == f"llmserve {stack}: LLM serving"
        policies = {
            r.name.removeprefix("llm-monitoring-")
            for r in resources
            if r.type == "gcp:monitoring/alertPolicy:AlertPolicy"
        }
        assert policies == expected, stack
        scrape = [r for r in resources if r.name == "llm-monitoring-kuberay-operator-podmonitoring"]
        assert len(scrape) == 1 and scrape[0].inputs["metadata"]["namespace"] == "kuberay-system"
        assert scrape[0].provider is not None, "the operator scrape must go to the cluster's provider"


def test_each_stack_alerts_on_xid_lines_through_a_log_match_policy(planned, stack):
    xid = planned(stack).only("gcp:monitoring/alertPolicy:AlertPolicy", "llm-monitoring-gpu-xid").inputs
    [condition] = xid["conditions"]
    assert set(condition) == {"displayName", "conditionMatchedLog"}, "no PromQL: GKE's DCGM has no Xid metric"
    assert 'textPayload:"NVRM: Xid"' in condition["conditionMatchedLog"]["filter"]
    assert xid["alertStrategy"]["notificationRateLimit"] == {"period": "300s"}


def test_prod_gpu_floor_is_the_pools_sixteen_h100s(planned):
    lost = next(r for r in planned("prod").resources if r.name == "llm-monitoring-gpu-lost")
    assert lost.inputs["conditions"][0]["conditionPrometheusQueryLanguage"]["query"].endswith("< 16")


def test_every_query_of_a_planned_stack_selects_its_own_cluster(planned):
    """Cloud Monitoring queries span the project: two stacks in one project (same namespace `llm`, same
    RayService `llm`) must not read or alert on each other's series. Managed Prometheus labels every series
    with the GKE cluster's name, which the plan's mocks report as the cluster's logical name."""
    resources = planned("prod").resources
    queries = [
        resource.inputs["conditions"][0]["conditionPrometheusQueryLanguage"]["query"]
        for resource in resources
        if resource.type == "gcp:monitoring/alertPolicy:AlertPolicy"
        and "conditionPrometheusQueryLanguage" in resource.inputs["conditions"][0]
    ]
    [dashboard] = [resource for resource in resources if resource.type == "gcp:monitoring/dashboard:Dashboard"]
    tiles = json.loads(dashboard.inputs["dashboardJson"])["mosaicLayout"]["tiles"]
    queries += [
        data_set["timeSeriesQuery"]["prometheusQuery"]
        for tile in tiles
        for data_set in tile["widget"]["xyChart"]["dataSets"]
    ]
    assert len(queries) > 15
    for query in queries:
        selectors = re.findall(r"\b(?:ray|DCGM|kuberay)_\w+(\{[^}]*\})?", query)
        assert selectors and all('cluster="llm-gke"' in selector for selector in selectors), query


def test_a_stack_without_a_cluster_name_renders_unscoped_queries():
    query = alerts_by_key(settings())["gpu-lost"].query
    assert "DCGM_FI_DEV_GPU_TEMP)" in query and "cluster=" not in query
    scoped = alerts_by_key(settings(cluster="llm-gke-1a2b"))["gpu-lost"].query
    assert 'DCGM_FI_DEV_GPU_TEMP{cluster="llm-gke-1a2b"}' in scoped


@pytest.mark.parametrize(
    "stack, label", [("prod", "stack-prod"), ("Team.Prod_2", "stack-team-prod_2"), ("x" * 80, "stack-" + "x" * 57)]
)
def test_the_dashboards_stack_label_is_one_google_accepts(stack, label):
    key = render.dashboard_stack_label(stack)
    assert key == label and re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key)
    assert label in render.render_dashboard(settings(stack=stack))["labels"]


def test_tenant_usage_is_on_the_dashboard_and_a_long_throttled_tenant_alerts_only_with_tenants():
    titles = [panel.title for panel in render.panels(settings())]
    assert "Refused/s by tenant (429 quota, 503 overload)" in titles and "Tokens/s by tenant" in titles
    assert "tenant-throttled" not in alerts_by_key(settings())
    alert = alerts_by_key(settings(tenant_throttled_minutes=20))["tenant-throttled"]
    assert alert.duration_s == 1200
    assert alert.query.startswith("sum by (tenant) (increase(ray_llmserve_tenant_rejected_requests_total{")
    assert alert.query.endswith(',status="429"}[5m])) > 0')
