"""The `gcp:` provider keys this project requires: the project id and the region (one that exists: infra/catalog.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from configkit import closest, did_you_mean, shown
from infra.catalog import LOCATIONS_SOURCE, REGION_ZONES
from infra.config import gcp_rules
from infra.config.values import ValueReader


def read_gcp(read: ValueReader, gcp_values: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The `gcp:` provider keys: (project, region), each None when missing or refused."""
    project, region = gcp_values.get("project"), gcp_values.get("region")
    if not project:
        read.problem("gcp:project: required but not set; run `pulumi config set gcp:project <project-id>`")
        project = None
    elif not isinstance(project, str) or gcp_rules.project_id_problem(project):
        read.problem(
            f"gcp:project: not a valid project id; found {shown(project)}; allowed: {gcp_rules.PROJECT_ID_RULE}"
        )
        project = None
    if not region:
        read.problem(
            "gcp:region: required but not set; run `pulumi config set gcp:region us-central1` "
            "(or the region of your GPU capacity)"
        )
        region = None
    elif not isinstance(region, str) or gcp_rules.region_problem(region):
        read.problem(f"gcp:region: not a region name; found {shown(region)}; allowed: {gcp_rules.REGION_RULE}")
        region = None
    elif region not in REGION_ZONES:
        read.problem(
            f"gcp:region: no Compute Engine region is called {region!r}"
            f"{did_you_mean(closest(region, REGION_ZONES, cutoff=0.8))}; allowed: one of the "
            f"{len(REGION_ZONES)} regions of REGION_ZONES in infra/catalog.py ({LOCATIONS_SOURCE}; add one "
            f"Google opened since)"
        )
        region = None
    return project, region
