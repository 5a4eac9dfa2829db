"""The KubeRay operator, from its Helm chart at a pinned version, on the system pool."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.catalog import (
    KUBERAY_CHART,
    KUBERAY_CHART_REPO,
    KUBERAY_CHART_VERSION,
    KUBERAY_OPERATOR_IMAGE,
    KUBERAY_OPERATOR_TAG,
    SYSTEM_POOL_LABELS,
)

OPERATOR_NAMESPACE = "kuberay-system"


@dataclass(frozen=True)
class KubeRayArgs:
    namespace: str = OPERATOR_NAMESPACE


def operator_values() -> dict:
    """Chart values: the pinned image, on the system pool, with metrics for Managed Prometheus."""
    return {
        "image": {"repository": KUBERAY_OPERATOR_IMAGE, "tag": KUBERAY_OPERATOR_TAG},
        "nodeSelector": dict(SYSTEM_POOL_LABELS),
        "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "metrics": {"enabled": True},
    }


class KubeRayOperator(pulumi.ComponentResource):
    """The operator and its CRDs (installed by Helm from the chart's crds/ on first install).

    Helm never upgrades CRDs: moving to a chart with new CRD fields means replacing the CRDs by hand
    (`kubectl replace` or server-side apply; a client-side apply fails on their size) before `pulumi up`.
    """

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: KubeRayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmserve:k8s:KubeRay", name, None, opts)
        self.release = k8s.helm.v3.Release(
            name,
            name=KUBERAY_CHART,  # one operator per cluster: a fixed release name keeps `helm list` readable
            chart=KUBERAY_CHART,
            version=KUBERAY_CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=KUBERAY_CHART_REPO),
            namespace=args.namespace,
            create_namespace=True,
            values=operator_values(),
            atomic=True,  # a failed install rolls back instead of leaving a half-installed operator
            timeout=600,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"status": self.release.status})
