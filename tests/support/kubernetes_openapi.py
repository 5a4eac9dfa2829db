"""One way for the tests to check an object against Kubernetes' own OpenAPI schema (strict: unknown fields
fail), with a message that says which object and which field."""

from __future__ import annotations

import kubernetes_validate

from infra.catalog import KUBERNETES_SCHEMA_VERSION


def assert_valid_kubernetes_object(obj: dict, where: str) -> None:
    """Raise AssertionError naming `where`, the object and the failing field if `obj` is not valid."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_SCHEMA_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        name = (obj.get("metadata") or {}).get("name")
        raise AssertionError(
            f"{where}: {obj.get('kind')} {name} is not valid for Kubernetes {KUBERNETES_SCHEMA_VERSION}: "
            f"{getattr(error, 'message', error)} at {list(getattr(error, 'absolute_path', []))}"
        ) from error
