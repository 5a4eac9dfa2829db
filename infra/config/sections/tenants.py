"""Tenants and admission: who may call with which key, within which limits (`llmserve:tenants`,
`llmserve:tenantKeys`), and the per-model overload bound (`llmserve:admissionInFlightPercent`,
`llmserve:admissionWaitSeconds`). The ingress enforces them (serve_app/admission.py); see docs/tenants.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from configkit import closest, did_you_mean, shown
from infra.config.settings import TenantsConfig
from infra.config.stackfiles import PROJECT
from serve_app.admission import DEFAULT_TENANT, PRIORITIES, TenantLimits
from serve_app.auth import parse_api_keys
from serve_app.tenants import TENANT_NAME, TenantKeyError, parse_tenant_keys

if TYPE_CHECKING:
    import pulumi

    from infra.config.values import ValueReader

# camelCase config field -> TenantLimits field
LIMIT_FIELDS: Mapping[str, str] = {
    "requestsPerMinute": "requests_per_minute",
    "tokensPerMinute": "tokens_per_minute",
    "maxConcurrentRequests": "max_concurrent",
}
TENANT_FIELDS = ("name", *LIMIT_FIELDS, "priority")
MAX_LIMIT = 1e12  # far above any real quota; refuses an absurd (overflowing) value


def read_tenants(
    read: ValueReader, secrets: Mapping[str, pulumi.Input[str]], plain_secrets: Mapping[str, str]
) -> TenantsConfig | None:
    """The tenants, their keys (a secret, passed through) and the overload bound; None when any is bad."""
    start = len(read.problems)
    raw = read.get("tenants")
    tenants = _tenant_list(read, raw if raw is not None else [])
    percent, wait_s = read.get("admissionInFlightPercent"), read.get("admissionWaitSeconds")
    throttled = read.get("alertTenantThrottledMinutes")
    keys_text = plain_secrets.get("tenantKeys")
    if tenants is not None and keys_text is not None:
        _check_tenant_keys(read, tenants, keys_text, plain_secrets.get("apiKey"))
    if tenants and read.get("apiAuth") is False:  # no key check: no tenant could be told apart, none limited
        read.problem(
            f"{PROJECT}:tenants: {len(tenants)} declared with {PROJECT}:apiAuth false; tenants are told apart by "
            f"their keys; allowed: apiAuth true, or no tenants"
        )
    if tenants is not None and not tenants and "tenantKeys" in secrets:
        read.problem(f"{PROJECT}:tenantKeys: set, but {PROJECT}:tenants declares no tenant; declare them there")
    if len(read.problems) > start or tenants is None or None in (percent, wait_s, throttled):
        return None
    return TenantsConfig(
        tenants=tuple(sorted(tenants.items())),
        keys=secrets.get("tenantKeys") if tenants else None,
        in_flight_per_seq=percent / 100,
        wait_s=float(wait_s),
        throttled_alert_minutes=int(throttled),
    )


def _tenant_list(read: ValueReader, raw: Any) -> dict[str, TenantLimits] | None:
    key = f"{PROJECT}:tenants"
    if not isinstance(raw, list):
        read.problem(f"{key}: must be a list of tenants; found {shown(raw)}")
        return None
    tenants: dict[str, TenantLimits] = {}
    problems = len(read.problems)
    for index, entry in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(entry, dict):
            read.problem(f"{where}: must be a map with a name and limits; found {shown(entry)}")
            continue
        for field_name in sorted(set(entry) - set(TENANT_FIELDS)):
            hint = did_you_mean(closest(field_name, TENANT_FIELDS))
            read.problem(f"{where}.{field_name}: unknown tenant key{hint}; allowed: {', '.join(TENANT_FIELDS)}")
        name = _tenant_name(read, where, entry.get("name"), tenants)
        limits = _tenant_limits(read, where, entry)
        if name is not None and limits is not None:
            tenants[name] = limits
    return None if len(read.problems) > problems else tenants


def _tenant_name(read: ValueReader, where: str, name: Any, seen: Mapping[str, TenantLimits]) -> str | None:
    if not isinstance(name, str) or TENANT_NAME.fullmatch(name) is None or name == DEFAULT_TENANT:
        read.problem(
            f"{where}.name: found {shown(name)}; allowed: 1 to 63 lowercase letters, digits and '-', starting and "
            f"ending with a letter or digit, not {DEFAULT_TENANT!r} (the plain apiKey's tenant)"
        )
        return None
    if name in seen:
        read.problem(f"{where}.name: tenant {name!r} is declared twice")
        return None
    return name


def _tenant_limits(read: ValueReader, where: str, entry: Mapping[str, Any]) -> TenantLimits | None:
    fields: dict[str, Any] = {}
    ok = True
    for config_name, field_name in LIMIT_FIELDS.items():
        value = entry.get(config_name)
        if value is None:
            continue
        integer = config_name == "maxConcurrentRequests"
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not 0 < value <= MAX_LIMIT:
            what = "a whole number" if integer else "a number"
            read.problem(
                f"{where}.{config_name}: found {shown(value)}; allowed: {what} above 0 (up to "
                f"{MAX_LIMIT:.0e}), or leave it out for no limit"
            )
            ok = False
            continue
        fields[field_name] = value
    priority = entry.get("priority", "normal")
    if not isinstance(priority, str) or priority not in PRIORITIES:
        read.problem(f"{where}.priority: found {shown(priority)}; allowed: {', '.join(PRIORITIES)}")
        ok = False
    return TenantLimits(**fields, priority=priority) if ok else None


def _check_tenant_keys(read: ValueReader, tenants: Mapping[str, TenantLimits], text: str, api_key: str | None) -> None:
    """The secret's text, checked; messages name tenants and positions, never a key."""
    key = f"{PROJECT}:tenantKeys"
    try:
        keys = parse_tenant_keys(text)
    except TenantKeyError as error:
        read.problem(
            f"{key}: {error}; allowed: `tenant=KEY[,KEY...]` entries separated by ';' or new lines, "
            "each key at least 16 characters and given to one tenant"
        )
        return
    for name in sorted(set(keys) - set(tenants)):
        hint = did_you_mean(closest(name, tenants))
        read.problem(f"{key}: tenant {name!r} is not declared in {PROJECT}:tenants{hint}")
    plain = set(parse_api_keys(api_key or ""))
    for name, tenant_keys in sorted(keys.items()):
        shared = [index for index, tenant_key in enumerate(tenant_keys, start=1) if tenant_key in plain]
        if shared:
            read.problem(
                f"{key}: tenant {name!r}: key number {shared[0]} is also in {PROJECT}:apiKey (the "
                f"unlimited {DEFAULT_TENANT!r} tenant); a key identifies one tenant"
            )


def tenants_from_values(values: Mapping[str, Any]) -> TenantsConfig:
    """The tenants section alone from a stack's `llmserve:` values (namespace left off), for the local runner,
    which reads the stack files without Pulumi and has no secrets (it makes the tenants' keys itself)."""
    from infra.config.errors import ConfigError
    from infra.config.keys import CONFIG_KEYS_BY_NAME
    from infra.config.values import ValueReader

    read = ValueReader(values, CONFIG_KEYS_BY_NAME)
    tenants = read_tenants(read, {}, {})
    if tenants is None or read.problems:
        raise ConfigError(read.problems)
    return tenants
