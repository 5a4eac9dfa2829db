"""The config keys of tenants and admission, declared here to keep infra/config/keys.py within its size; keys.py
lists them in `CONFIG_KEYS` under "Tenants and admission"."""

from __future__ import annotations

from configkit import ConfigKey, Range

# Tenants and admission (sections/tenants.py; enforced by serve_app/admission.py, see docs/tenants.md).
TENANT_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "tenants",
        "object",
        "Tenants with keys of their own and limits: a list of {name, requestsPerMinute, tokensPerMinute, "
        "maxConcurrentRequests, priority (high, normal or low; default normal)}; a limit left out is none. "
        "Unset: no tenants; the apiKey keys are always the unlimited tenant `default`. Needs apiAuth true "
        "(tenants are told apart by their keys).",
        default_text="no tenants",
    ),
    ConfigKey(
        "tenantKeys",
        "string",
        "The tenants' API keys: `team-a=KEY1,KEY2;team-b=KEY3` (a tenant's keys comma-separated, rotated as "
        "apiKey is); set with `pulumi config set --secret llmserve:tenantKeys ...`. A declared tenant without a "
        "key here gets a random one, exported as the `tenant_keys` secret output.",
        secret=True,
    ),
    ConfigKey(
        "admissionInFlightPercent",
        "integer",
        "The overload bound: each model admits at most this percentage of maxReplicas x maxNumSeqs (vLLM's "
        "largest default, 1024, when maxNumSeqs is unset) requests in flight through the ingress; beyond it a "
        "request waits up to admissionWaitSeconds for a slot, higher priority first, then gets 503 with "
        "Retry-After. 0: no bound.",
        200,
        range=Range(0, 100_000),
    ),
    ConfigKey(
        "admissionWaitSeconds",
        "integer",
        "How long a request waits for a slot of a model at its overload bound before a 503 (0: refused at once).",
        5,
        range=Range(0, 600),
    ),
    ConfigKey(
        "alertTenantThrottledMinutes",
        "integer",
        "Alert when a tenant's requests are refused with 429 in every 5-minute window for this many minutes.",
        15,
        range=Range(1, 1440),
    ),
)
