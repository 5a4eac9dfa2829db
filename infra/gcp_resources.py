"""Google Cloud resources registered by type token, for the one pulumi_gcp module too slow to import.

`import pulumi_gcp.storage` takes 0.25-0.3 s on a 2-core machine (its package imports every storage resource
and their 20,000 lines of input and output types), a tenth of the offline plan. As `KubernetesObject` does for
Kubernetes objects, `GcpResource` registers the same type token (`gcp:storage/bucket:Bucket`, ...) with the
same camelCase inputs and the provider version the typed classes pin, so the engine and the provider treat it
exactly like the typed resource; only Python-side argument checking is lost, which the renderers' tests cover.
Every other Google Cloud resource in this program uses the typed classes.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import pulumi
from pulumi_gcp import _utilities as gcp_utilities

BUCKET = "gcp:storage/bucket:Bucket"
BUCKET_IAM_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
# The typed Bucket marks these outputs secret; so does this registration.
BUCKET_SECRET_OUTPUTS = ("effectiveLabels", "pulumiLabels")


class GcpResource(pulumi.CustomResource):
    """A Google Cloud resource from its type token and its inputs, spelled as the engine receives them."""

    def __init__(self, type_token: str, resource_name: str, inputs: Mapping[str, Any],
                 opts: Optional[pulumi.ResourceOptions] = None, secret_outputs: Sequence[str] = ()):
        if not type_token.startswith("gcp:"):
            raise ValueError(f"{resource_name}: not a Google Cloud type token: {type_token!r}")
        extra = pulumi.ResourceOptions.merge(gcp_utilities.get_resource_opts_defaults(),
                                             pulumi.ResourceOptions(additional_secret_outputs=list(secret_outputs)))
        super().__init__(type_token, resource_name, dict(inputs), pulumi.ResourceOptions.merge(opts, extra))
