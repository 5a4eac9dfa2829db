"""Tenants for the serving objects: the admission settings the ingress gets from the stack's config, and the text
of the tenants' key file (the `tenant-keys` item of the API-key Secret): the keys `llmserve:tenantKeys`
gives, and for a declared tenant it names no key for, the one generated for it (infra/components/serving.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from infra.config.settings import TenantsConfig
from serve_app.admission_config import AdmissionSettings
from serve_app.tenants import format_tenant_keys, parse_tenant_keys


def admission_settings(tenants: TenantsConfig) -> AdmissionSettings:
    """What the ingress's user_config gets (serve_app/admission_config.py) from the `tenants` config section."""
    return AdmissionSettings(dict(tenants.tenants), tenants.in_flight_per_seq, tenants.wait_s)


def tenant_keys_text(given: str | None, tenants: Sequence[str], generated: Mapping[str, str]) -> str:
    """Every declared tenant's keys as `serve_app.tenants` reads them: given ones first, generated for the rest.
    `given` was checked when the config was read (infra/config/sections/tenants.py)."""
    keys: dict[str, tuple[str, ...]] = dict(parse_tenant_keys(given or ""))
    for name in tenants:
        if not keys.get(name):
            keys[name] = (generated[name],)
    return format_tenant_keys({name: keys[name] for name in tenants})


def current_tenant_keys(text: str) -> dict[str, str]:
    """Tenant -> the one key its clients send: the last one listed (the newest, during a rotation)."""
    newest = {}
    for line in text.splitlines():  # as tenant_keys_text wrote it: no re-check (an offline plan's mock keys repeat)
        name, _, keys = line.partition("=")
        if keys:
            newest[name] = keys.split(",")[-1]
    return newest
