"""The dashboard's tenant charts and the alert for a tenant throttled for long, from the ingress's usage metrics
(serve_app/tenant_metrics.py; names in infra/render/metrics.py). `infra/render/monitoring.py` adds them to the
stack's dashboard and alert policies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.render.metrics import metric

if TYPE_CHECKING:
    from infra.render.monitoring import AlertSpec, MonitoringSettings, Panel


def tenant_panels(settings: MonitoringSettings, ns: str) -> list[Panel]:
    """Requests, refusals, tokens and latency per tenant; `ns` is the stack's label selector (`{...}`)."""
    from infra.render.monitoring import Panel, Series

    def rate(name: str, by: str) -> str:
        return f"sum by ({by}) (rate({metric(name)}{ns}[5m]))"

    latency = metric("ray_llmserve_tenant_request_latency_seconds")
    return [
        Panel(
            "Requests/s by tenant and status",
            (
                Series(
                    rate("ray_llmserve_tenant_requests_total", "tenant, status"), "${labels.tenant} ${labels.status}"
                ),
            ),
            "1/s",
            "STACKED_AREA",
        ),
        Panel(
            "Refused/s by tenant (429 quota, 503 overload)",
            (
                Series(
                    rate("ray_llmserve_tenant_rejected_requests_total", "tenant, status, limit"),
                    "${labels.tenant} ${labels.status} ${labels.limit}",
                ),
            ),
            "1/s",
        ),
        Panel(
            "Tokens/s by tenant",
            (
                Series(rate("ray_llmserve_tenant_prompt_tokens_total", "tenant"), "${labels.tenant} prompt"),
                Series(rate("ray_llmserve_tenant_completion_tokens_total", "tenant"), "${labels.tenant} completion"),
            ),
            "1/s",
        ),
        Panel(
            "Request latency p95 by tenant",
            (
                Series(
                    f"histogram_quantile(0.95, sum by (le, tenant) (rate({latency}_bucket{ns}[5m])))",
                    "${labels.tenant}",
                ),
            ),
            "s",
        ),
    ]


def tenant_throttled_alert(settings: MonitoringSettings, minutes: int, ns: str) -> AlertSpec:
    from infra.render.monitoring import AlertSpec

    refused = metric("ray_llmserve_tenant_rejected_requests_total")
    return AlertSpec(
        "tenant-throttled",
        f"llmserve {settings.stack}: a tenant throttled for {minutes} minutes",
        f'sum by (tenant) (increase({refused}{ns.rstrip("}")},status="429"}}[5m])) > 0',
        minutes * 60,
        "WARNING",
        f"A tenant's requests have been refused with 429 in every 5-minute window for {minutes} minutes "
        "(llmserve:alertTenantThrottledMinutes): it runs above its llmserve:tenants quota. Raise its limits or "
        "ask its owner to slow down; `python -m infra usage <stack>` shows its use.",
    )
