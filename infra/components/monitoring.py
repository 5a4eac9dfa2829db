"""Seeing the endpoint: a Cloud Monitoring dashboard, alert policies and the KubeRay operator scrape.

The dashboard and the PromQL alerts are rendered by `infra/render/monitoring.py` from the one metric list of
`infra/render/metrics.py`, the log-match alerts (GPU Xid errors) by `infra/render/log_alerts.py`; this
component only turns them into resources. The Ray pods' own PodMonitorings
belong to the serving component (infra/components/serving.py); the operator's, which the RayService-not-ready
alert needs, is made here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.components.resources import KubernetesObject
from infra.config.settings import StackConfig
from infra.planning.sizing import idle_gpu_nodes
from infra.render import monitoring as render
from infra.render.log_alerts import log_alert_policy_args, render_log_alerts
from infra.render.rayservice import RayServiceSettings


@dataclass(frozen=True)
class MonitoringArgs:
    settings: render.MonitoringSettings
    gcp_project: str
    # The GKE cluster's name (an output of the cluster): every query selects its series by it.
    cluster_name: pulumi.Input[str]
    kubernetes_provider: pulumi.ProviderResource
    operator_namespace: str
    # What must exist before the operator's PodMonitoring (its namespace, the GMP CRDs).
    operator: pulumi.Resource | None = None


def _query_of(index: int) -> Callable[[Sequence[render.AlertSpec]], str]:
    """The query of alert number `index`, bound now rather than when the output resolves."""
    return lambda alerts: alerts[index].query


class Monitoring(pulumi.ComponentResource):
    """One dashboard and one alert policy per `render_alerts` entry, for one stack."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmserve:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings = args.settings
        in_cluster = pulumi.Output.from_input(args.cluster_name).apply(
            lambda cluster: dataclasses.replace(settings, cluster=cluster)
        )

        self.dashboard = gcp.monitoring.Dashboard(
            f"{name}-dashboard",
            dashboard_json=in_cluster.apply(render.dashboard_json),
            project=args.gcp_project,
            opts=child,
        )
        # Which alerts exist does not depend on the cluster's name; their queries do.
        alerts_in_cluster = in_cluster.apply(render.render_alerts)
        self.alert_policies = []
        for index, spec in enumerate(render.render_alerts(settings)):
            plain = render.alert_policy_args(spec, settings)
            plain["conditions"][0]["condition_prometheus_query_language"]["query"] = alerts_in_cluster.apply(
                _query_of(index)
            )
            self.alert_policies.append(
                gcp.monitoring.AlertPolicy(
                    f"{name}-{spec.key}", project=args.gcp_project, **_alert_policy_inputs(plain), opts=child
                )
            )
        for log_spec in render_log_alerts(settings):
            self.alert_policies.append(
                gcp.monitoring.AlertPolicy(
                    f"{name}-{log_spec.key}",
                    project=args.gcp_project,
                    **_alert_policy_inputs(log_alert_policy_args(log_spec, settings)),
                    opts=child,
                )
            )
        KubernetesObject(
            f"{name}-kuberay-operator-podmonitoring",
            render.render_operator_pod_monitoring(args.operator_namespace),
            pulumi.ResourceOptions(
                parent=self, provider=args.kubernetes_provider, depends_on=[args.operator] if args.operator else None
            ),
        )
        self.register_outputs({"dashboard": self.dashboard.id})


def monitoring_settings(config: StackConfig, rayservice: RayServiceSettings) -> render.MonitoringSettings:
    """What the dashboard and the alerts depend on, from the stack config and the RayService settings."""
    pool = config.gpu_pool
    # A static pool has node_count nodes in each of its zones; an autoscaling one never fewer than min_nodes,
    # nor fewer than the Ray GPU workers the models' minReplicas keep.
    nodes = (
        pool.node_count * len(pool.zones)
        if not pool.autoscaling
        else idle_gpu_nodes(config.serving.models, pool.machine, pool.min_gpu_nodes, pool.max_gpu_nodes)
    )
    return render.MonitoringSettings(
        stack=config.stack,
        namespace=rayservice.namespace,
        rayservice=rayservice.name,
        model_ids=tuple(model.model_id for model in rayservice.models),
        always_on_model_ids=tuple(model.model_id for model in rayservice.models if model.min_replicas >= 1),
        min_gpus=nodes * pool.machine.gpu_count,
        thresholds=config.alerts,
        tenant_throttled_minutes=config.tenants.throttled_alert_minutes if config.tenants.tenants else None,
    )


def _condition(condition: dict) -> gcp.monitoring.AlertPolicyConditionArgs:
    """One renderer condition (PromQL or log match) as pulumi-gcp's typed Args."""
    monitoring = gcp.monitoring
    if "condition_matched_log" in condition:
        return monitoring.AlertPolicyConditionArgs(
            display_name=condition["display_name"],
            condition_matched_log=monitoring.AlertPolicyConditionConditionMatchedLogArgs(
                **condition["condition_matched_log"]
            ),
        )
    return monitoring.AlertPolicyConditionArgs(
        display_name=condition["display_name"],
        condition_prometheus_query_language=monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
            **condition["condition_prometheus_query_language"]
        ),
    )


def _alert_policy_inputs(plain: dict) -> dict:
    """The renderer's plain dict as pulumi-gcp's typed Args."""
    monitoring = gcp.monitoring
    strategy = dict(plain["alert_strategy"])
    if "notification_rate_limit" in strategy:
        strategy["notification_rate_limit"] = monitoring.AlertPolicyAlertStrategyNotificationRateLimitArgs(
            **strategy["notification_rate_limit"]
        )
    return {
        "display_name": plain["display_name"],
        "combiner": plain["combiner"],
        "severity": plain["severity"],
        "conditions": [_condition(condition) for condition in plain["conditions"]],
        "documentation": monitoring.AlertPolicyDocumentationArgs(**plain["documentation"]),
        "notification_channels": plain["notification_channels"],
        "alert_strategy": monitoring.AlertPolicyAlertStrategyArgs(**strategy),
        "user_labels": plain["user_labels"],
    }
