"""Names shared by the deploy-time builder and the in-cluster ingress.

The builder writes them into the Serve config; the ingress reads them on the cluster. Keeping them in one
stdlib-only module (shipped to the cluster with the ingress, see `serve_app.bundle`) means the two sides
cannot drift apart.
"""

from __future__ import annotations

# Where the accepted API keys are read on the Ray pods: a file of a mounted Secret volume (never `subPath`,
# never env), which the kubelet updates in place when the Secret changes, so keys rotate without a restart.
DEFAULT_API_KEY_FILE = "/etc/llmserve/api-keys/keys"
# How often (seconds) the ingress re-reads that file; part of the documented rotation bound.
DEFAULT_API_KEY_RELOAD_S = 10.0
# `ingress_cls_config.ingress_cls`: Ray loads it with `load_class("module:Class")`.
INGRESS_CLASS_PATH = "serve_app.ingress:AuthenticatedOpenAiIngress"
# The constructor keywords the builder passes through `ingress_cls_config.ingress_extra_kwargs`.
API_KEY_FILE_KWARG = "api_key_file"
API_KEY_RELOAD_KWARG = "api_key_reload_s"
