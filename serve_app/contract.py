"""Names shared by the deploy-time builder and the in-cluster ingress.

The builder writes them into the Serve config; the ingress reads them on the cluster. Keeping them in one
stdlib-only module (shipped to the cluster with the ingress, see `serve_app.bundle`) means the two sides
cannot drift apart.
"""

from __future__ import annotations

import re

# Default name of the environment variable that holds the accepted API keys (never the keys themselves).
DEFAULT_API_KEY_ENV = "LLMSERVE_API_KEYS"
# `ingress_cls_config.ingress_cls`: Ray loads it with `load_class("module:Class")`.
INGRESS_CLASS_PATH = "serve_app.ingress:AuthenticatedOpenAiIngress"
# The constructor keyword the builder passes through `ingress_cls_config.ingress_extra_kwargs`.
API_KEY_ENV_KWARG = "api_key_env"
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
