"""One way to put a rendered Kubernetes object on the cluster.

The renderers in infra/render return whole objects (apiVersion, kind, metadata, spec/data) as plain dicts.
`KubernetesObject` registers such a dict with the Kubernetes provider under the same type token the typed SDK
classes use (`kubernetes:apps/v1:DaemonSet`, `kubernetes:ray.io/v1:RayService`, ...), so the provider treats it
exactly as it would a `k8s.apps.v1.DaemonSet` (await logic, diffs, server-side apply). It exists because the
typed classes' core/v1 module alone takes ~0.8 s to import, which would make the offline plan miss its 3 s
budget, and because one wrapper for every rendered kind keeps the components trivial.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import pulumi
from pulumi_kubernetes import _utilities as k8s_utilities

SECRET_FIELDS = ("data", "stringData")


class KubernetesObject(pulumi.CustomResource):
    """A Kubernetes object from a rendered dict. Pass the cluster's provider through `opts` (or a parent)."""

    def __init__(self, resource_name: str, obj: Mapping[str, Any], opts: Optional[pulumi.ResourceOptions] = None):
        missing = [field for field in ("apiVersion", "kind", "metadata") if field not in obj]
        if missing:
            raise ValueError(f"{resource_name}: a Kubernetes object needs {', '.join(missing)}")
        extra = pulumi.ResourceOptions(version=k8s_utilities.get_version())
        if obj["kind"] == "Secret":
            extra.additional_secret_outputs = list(SECRET_FIELDS)
        super().__init__(f"kubernetes:{obj['apiVersion']}:{obj['kind']}", resource_name, dict(obj),
                         pulumi.ResourceOptions.merge(opts, extra))
