"""The kubeconfig that Pulumi's Kubernetes provider uses to reach the new cluster."""

from __future__ import annotations

import json

AUTH_PLUGIN = "gke-gcloud-auth-plugin"


def render_kubeconfig(context_name: str, endpoint: str, cluster_ca_certificate: str) -> str:
    """A kubeconfig (as JSON, which is valid YAML) for `endpoint`.

    It holds no credential: the client runs `gke-gcloud-auth-plugin` for a short-lived token from the caller's
    gcloud login each time, so the kubeconfig can sit in Pulumi state and outputs without being a secret.
    """
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": context_name,
                    "cluster": {"server": f"https://{endpoint}", "certificate-authority-data": cluster_ca_certificate},
                }
            ],
            "users": [
                {
                    "name": context_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": AUTH_PLUGIN,
                            "installHint": (
                                "Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin"
                            ),
                            "provideClusterInfo": True,
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
            "contexts": [{"name": context_name, "context": {"cluster": context_name, "user": context_name}}],
            "current-context": context_name,
        },
        indent=2,
        sort_keys=True,
    )
