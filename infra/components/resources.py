"""Resources registered by type token: rendered Kubernetes objects, and the one Google Cloud module too slow to
import.

The renderers in infra/render return whole Kubernetes objects (apiVersion, kind, metadata, spec/data) as plain
dicts. `KubernetesObject` registers such a dict with the Kubernetes provider under the same type token the
typed SDK classes use (`kubernetes:apps/v1:DaemonSet`, `kubernetes:ray.io/v1:RayService`, ...), so the provider
treats it exactly as it would a `k8s.apps.v1.DaemonSet` (await logic, diffs, server-side apply). It exists
because the typed classes' core/v1 module alone takes ~0.8 s to import, which would make the offline plan miss
its 3 s budget, and because one wrapper for every rendered kind keeps the components trivial.

`GcpResource` does the same for Google Cloud: `import pulumi_gcp.storage` takes 0.25-0.3 s on a 2-core machine
(its package imports every storage resource and their 20,000 lines of input and output types), a tenth of the
offline plan. It registers the same type token (`gcp:storage/bucket:Bucket`, ...) with the same camelCase
inputs and the provider version the typed classes pin, so the engine and the provider treat it exactly like
the typed resource; only Python-side argument checking is lost, which the renderers' tests cover. Every other
Google Cloud resource in this program uses the typed classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pulumi_gcp import _utilities as gcp_utilities
from pulumi_kubernetes import _utilities as k8s_utilities

SECRET_FIELDS = ("data", "stringData")
BUCKET = "gcp:storage/bucket:Bucket"
BUCKET_IAM_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
# The typed Bucket marks these outputs secret; so does this registration.
BUCKET_SECRET_OUTPUTS = ("effectiveLabels", "pulumiLabels")


class KubernetesObject(pulumi.CustomResource):
    """A Kubernetes object from a rendered dict. Pass the cluster's provider through `opts` (or a parent)."""

    def __init__(self, resource_name: str, obj: Mapping[str, Any], opts: pulumi.ResourceOptions | None = None):
        missing = [field for field in ("apiVersion", "kind", "metadata") if field not in obj]
        if missing:
            raise ValueError(f"{resource_name}: a Kubernetes object needs {', '.join(missing)}")
        extra = pulumi.ResourceOptions(version=k8s_utilities.get_version())
        if obj["kind"] == "Secret":
            extra.additional_secret_outputs = list(SECRET_FIELDS)
        super().__init__(
            f"kubernetes:{obj['apiVersion']}:{obj['kind']}",
            resource_name,
            dict(obj),
            pulumi.ResourceOptions.merge(opts, extra),
        )


class GcpResource(pulumi.CustomResource):
    """A Google Cloud resource from its type token and its inputs, spelled as the engine receives them."""

    def __init__(
        self,
        type_token: str,
        resource_name: str,
        inputs: Mapping[str, Any],
        opts: pulumi.ResourceOptions | None = None,
        secret_outputs: Sequence[str] = (),
    ):
        if not type_token.startswith("gcp:"):
            raise ValueError(f"{resource_name}: not a Google Cloud type token: {type_token!r}")
        extra = pulumi.ResourceOptions.merge(
            gcp_utilities.get_resource_opts_defaults(),
            pulumi.ResourceOptions(additional_secret_outputs=list(secret_outputs)),
        )
        super().__init__(type_token, resource_name, dict(inputs), pulumi.ResourceOptions.merge(opts, extra))


class GcsBucket(GcpResource):
    """A `gcp:storage/bucket:Bucket`, with the typed Bucket's secret outputs."""

    # The engine sets an output attribute for each input (pulumi.runtime.rpc.transfer_properties); these are read.
    name: pulumi.Output[str]

    def __init__(self, resource_name: str, inputs: Mapping[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(BUCKET, resource_name, inputs, opts, secret_outputs=BUCKET_SECRET_OUTPUTS)


def service_account_member(email: pulumi.Output[str]) -> pulumi.Output[str]:
    """The IAM member string of a service account, from its email output."""
    return email.apply(lambda address: f"serviceAccount:{address}")


def grant_name(prefix: str, role: str) -> str:
    """A logical name for one role grant: `<prefix>-<role's last segment>`, dots as dashes
    (roles/storage.objectViewer -> `<prefix>-storage-objectViewer`)."""
    return f"{prefix}-{role.split('/')[-1].replace('.', '-')}"
