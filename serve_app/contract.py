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
# The ingress class ("module:Class") the ingress application's args name; serve_app.apps imports it.
INGRESS_CLASS_PATH = "serve_app.ingress:AuthenticatedOpenAiIngress"
# The constructor keywords the builder passes in the ingress application's args (`ingress_kwargs`).
API_KEY_FILE_KWARG = "api_key_file"
API_KEY_RELOAD_KWARG = "api_key_reload_s"
# Tenants (serve_app.tenants, serve_app.admission): the tenant-key file's path (a second item of the API-key
# Secret, only when the stack has tenants), the ingress user_config entry with their limits and the per-model
# overload bound, and the ASGI scope entry in which the key check names the caller's tenant.
TENANT_KEY_FILE_KWARG = "tenant_key_file"
ADMISSION_KEY = "admission"
TENANT_SCOPE_KEY = "llmserve.tenant"

# --- the applications of the Serve config (one per model, one ingress, one config marker) -----------------
# Ray Serve gives every deployment of an application one code version, derived from the application's args
# (ray/serve/_private/deploy_utils.py get_app_code_version, Ray 2.60): one application per model keeps a change
# to one model from restarting the others, and the ingress application's args hold nothing a model change
# touches. What the ingress must know about the models travels in its `user_config`, which Serve hands to the
# running replica's `reconfigure` without restarting it.
INGRESS_APP_BUILDER = "serve_app.apps:build_ingress_app"
MODEL_APP_BUILDER = "serve_app.apps:build_model_app"
CONFIG_MARKER_BUILDER = "serve_app.apps:build_config_marker"
INGRESS_DEPLOYMENT = "OpenAiIngress"
MODEL_APP_PREFIX = "model-"
CONFIG_MARKER_PREFIX = "config-"
# The ingress application's args: the ingress class ("module:Class") and its constructor keywords.
INGRESS_CLS_ARG = "ingress_cls"
INGRESS_KWARGS_ARG = "ingress_kwargs"
PLAIN_INGRESS_CLASS_PATH = "serve_app.ingress:ConfiguredOpenAiIngress"
# The ingress deployment's user_config: the config's hash and, per model, where its deployment lives.
CONFIG_HASH_KEY = "serve_config_hash"
MODELS_KEY = "models"
# Where the ingress reports the config it serves (behind the API key like every other route).
SERVED_CONFIG_ROUTE = "/v1/llmserve/config"


def model_app_name(model_id: str) -> str:
    """The Serve application of one model: named after its id alone, so it is stable across option changes."""
    return MODEL_APP_PREFIX + model_id


def config_marker_name(config_hash: str) -> str:
    """The application named after the config's hash: absent from every status written before it was applied."""
    return CONFIG_MARKER_PREFIX + config_hash
