"""Google Cloud's own naming rules, checked at plan time so that `pulumi up` is not refused half-way.

Each function returns None when the value is acceptable, else the rule as Google states it, ready to follow
"allowed: " in a config problem. Sources: project ids (cloud.google.com/resource-manager/docs/creating-managing-
projects, "Before you begin"), resource names (cloud.google.com/compute/docs/naming-resources: RFC 1035),
regions and zones (cloud.google.com/compute/docs/regions-zones), VPC subnet ranges
(cloud.google.com/vpc/docs/subnets, "IPv4 subnet ranges": the smallest primary range is a /29).
"""

from __future__ import annotations

import re


def stack_slug(stack: str) -> str:
    """A stack name as lowercase letters, digits and '-', for ids (service accounts) that must be unique per stack."""
    return re.sub(r"[^a-z0-9-]", "-", stack.lower()).strip("-") or "stack"


PROJECT_ID_RULE = (
    "a Google Cloud project id: 6 to 30 characters, lowercase letters, digits and hyphens, starting "
    "with a letter and not ending with a hyphen (the id, not the project's display name or number)"
)
RFC1035_RULE = (
    "a name of 1 to 63 characters (RFC 1035): lowercase letters, digits and hyphens, starting with a "
    "letter and not ending with a hyphen"
)
REGION_RULE = "a Compute Engine region name such as us-east4 or europe-west4"
ZONE_RULE = "a Compute Engine zone name such as us-east4-a"
MACHINE_TYPE_RULE = "a Compute Engine machine type name such as e2-standard-16 or n2-custom-8-32768"
SMALLEST_SUBNET_PREFIX = 29

_PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_RFC1035 = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
_MACHINE_TYPE = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)+")


def project_id_problem(value: str) -> str | None:
    return None if _PROJECT_ID.fullmatch(value) else PROJECT_ID_RULE


def rfc1035_problem(value: str) -> str | None:
    return None if _RFC1035.fullmatch(value) else RFC1035_RULE


def region_problem(value: str) -> str | None:
    return None if _REGION.fullmatch(value) else REGION_RULE


def zone_problem(value: str) -> str | None:
    return None if _ZONE.fullmatch(value) else ZONE_RULE


def machine_type_problem(value: str) -> str | None:
    return None if _MACHINE_TYPE.fullmatch(value) and len(value) <= 63 else MACHINE_TYPE_RULE
