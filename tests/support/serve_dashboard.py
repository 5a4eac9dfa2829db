"""The Ray dashboard's declarative Serve API, called as KubeRay calls it, for the e2e tier's shared server."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def dashboard(server: dict, method: str = "GET", body: dict | None = None) -> Any:
    """PUT the whole Serve config (as KubeRay's UpdateDeployments does), or GET the applications' statuses."""
    import httpx  # in the e2e environment

    token = Path(server["ray_auth_token_file"]).read_text()
    response = httpx.request(
        method,
        f"{server['dashboard_url']}/api/serve/applications/",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    response.raise_for_status()
    return response.json() if method == "GET" else None
