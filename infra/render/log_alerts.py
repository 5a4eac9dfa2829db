"""Alert policies that match log entries (Cloud Logging), for what no scraped metric reports: GPU Xid errors.

Pure: `render_log_alerts(settings)` returns `LogAlertSpec`s and `log_alert_policy_args` the keyword arguments
of `gcp.monitoring.AlertPolicy` as plain data; `infra/components/monitoring.py` makes the resources.

Why a log alert: Xid errors are the NVIDIA driver's kernel messages, `NVRM: Xid (PCI:<bus id>): <code>, ...`.
GKE's managed DCGM exporter has no Xid field (its field list, GoogleCloudPlatform/monitoring-dashboard-samples
`integrations/dcgm/prometheus_metadata.yaml`, has 18 fields, none an Xid or ECC one), so a PromQL alert on
`DCGM_FI_DEV_XID_ERRORS` could never fire. Kernel messages reach Cloud Logging through the VM's serial port
log (`serialconsole.googleapis.com/serial_port_1_output` on `gce_instance`; Google's own GKE troubleshooting
skill reads GKE nodes' kernel messages there: google/skills `skills/cloud/gke-ai-troubleshooting-tpu-vbar-oom/
SKILL.md`), which Compute Engine writes only where serial port logging is on: the `serial-port-logging-enable`
metadata key, off by default (Compute Engine, "Viewing serial port output").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from infra.render.monitoring import MonitoringSettings, policy_envelope

SERIAL_PORT_LOG = "serialconsole.googleapis.com/serial_port_1_output"
INSTANCE_NAME_LABEL = 'labels."compute.googleapis.com/resource_name"'
# RE2, as Cloud Logging's REGEXP_EXTRACT reads it: the Xid code after the PCI bus id. Bracket classes instead
# of backslash escapes, so the pattern survives JSON and Python quoting unchanged.
XID_CODE_PATTERN = "NVRM: Xid [(]PCI:[^)]*[)]: ([0-9]+)"
NOTIFICATION_PERIOD_S = 300  # log-match alerts need a notification rate limit; one per node and code per 5 min


@dataclass(frozen=True)
class LogAlertSpec:
    """One alert policy with one log-match condition."""

    key: str  # short, stable; names the Pulumi resource
    display_name: str
    filter: str  # a Cloud Logging query
    label_extractors: Mapping[str, str]  # label -> extractor; each combination of values is its own alert
    severity: str  # CRITICAL | ERROR | WARNING
    documentation: str


def render_log_alerts(settings: MonitoringSettings) -> list[LogAlertSpec]:
    """The stack's log-match alert policies: GPU Xid errors."""
    return [gpu_xid_alert(settings)]


def gpu_xid_alert(settings: MonitoringSettings) -> LogAlertSpec:
    """An `NVRM: Xid` kernel line on a GKE node's serial port. The entries carry the VM's name, not its cluster:
    every stack in one project sees the Xid errors of all the project's GKE nodes (the `node` label says which)."""
    return LogAlertSpec(
        "gpu-xid",
        f"llmserve {settings.stack}: GPU Xid error",
        "\n".join(
            (
                'resource.type="gce_instance"',
                f'log_id("{SERIAL_PORT_LOG}")',
                f'{INSTANCE_NAME_LABEL}=~"^gke-"',
                'textPayload:"NVRM: Xid"',
            )
        ),
        {"node": f"EXTRACT({INSTANCE_NAME_LABEL})", "xid": f'REGEXP_EXTRACT(textPayload, "{XID_CODE_PATTERN}")'},
        "ERROR",
        "The NVIDIA driver logged Xid ${log.extracted_label.xid} on GKE node ${log.extracted_label.node}. "
        "48, 63, 64, 74, 79, 94 and 95 usually need the node drained and replaced (`kubectl drain`, then delete "
        "the VM); 13, 31 and 43 are usually the application's. Needs serial port logging on the GPU nodes "
        "(`gcloud compute project-info add-metadata --metadata serial-port-logging-enable=true`; an organization "
        "policy `compute.disableSerialPortLogging` forbids it), without which this alert cannot fire. It covers "
        "every GKE node of the project, not only this stack's.",
    )


def log_alert_policy_args(spec: LogAlertSpec, settings: MonitoringSettings) -> dict:
    """Keyword arguments of `gcp.monitoring.AlertPolicy` as plain data (the component builds the Args)."""
    args = policy_envelope(settings, spec.display_name, spec.severity, spec.documentation)
    args["conditions"] = [
        {
            "display_name": spec.display_name,
            "condition_matched_log": {"filter": spec.filter, "label_extractors": dict(spec.label_extractors)},
        }
    ]
    # "Required for alert policies with a LogMatch condition" (pulumi_gcp 10.2.0, monitoring/_inputs.py,
    # AlertPolicyAlertStrategyArgs.notification_rate_limit; the Cloud Monitoring API's AlertStrategy).
    args["alert_strategy"] = {
        **args["alert_strategy"],
        "notification_rate_limit": {"period": f"{NOTIFICATION_PERIOD_S}s"},
    }
    return args
