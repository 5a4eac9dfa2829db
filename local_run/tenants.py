"""The stack's tenants on the local server: their limits as the stack declares them, and a fresh random key for
each (the stack's `llmserve:tenantKeys` is a Pulumi secret the runner cannot decrypt), written next to the API-key
file as the Secret's `tenant-keys` item is on the cluster and printed in the ready JSON (`tenant_keys`)."""

from __future__ import annotations

import secrets
from pathlib import Path

from infra.config.errors import ConfigError
from infra.config.sections.tenants import tenants_from_values
from infra.config.stackfiles import PROJECT, PROJECT_ROOT, StackFileError, stack_config
from infra.render.tenants import admission_settings
from local_run.errors import LocalRunError
from serve_app.admission_config import AdmissionSettings

# What the config names before LocalServer points it at its own folder (as it does the API-key file).
LOCAL_TENANT_KEY_FILE = "/etc/llmserve/api-keys/tenant-keys"


def stack_admission(stack: str, root: Path | None = None) -> AdmissionSettings:
    """The tenants' limits and the overload bound of `stack`, read from its stack files."""
    try:
        values, _ = stack_config(stack, root or PROJECT_ROOT)
    except StackFileError as error:
        raise LocalRunError(str(error)) from error
    prefix = f"{PROJECT}:"
    own = {name[len(prefix) :]: value for name, value in values.items() if name.startswith(prefix)}
    try:
        return admission_settings(tenants_from_values(own))
    except ConfigError as error:
        raise LocalRunError(str(error)) from error


def new_tenant_keys(admission: AdmissionSettings) -> dict[str, str]:
    """A random key per tenant (the local stand-in for the keys `pulumi up` generates or is given)."""
    return {name: secrets.token_urlsafe(32) for name in sorted(admission.tenants)}
