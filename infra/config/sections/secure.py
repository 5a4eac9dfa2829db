"""Secure defaults and capacity settings that hold: their keys, and the rules they add to the serving keys.

Each default is on unless a stack opts out with a documented switch:
- secure boot on GPU nodes (`gpuSecureBoot`);
- NetworkPolicies that fence the Ray ports to the Ray cluster and the Serve port to its ingress path
  (`networkPolicies`, `serveClientNamespaces`);
- external exposure only over HTTPS, through a GKE Gateway with a Google-managed certificate for
  `serveHostname`; plain HTTP outside the cluster only with `serveAllowPlainHttp` (internal exposure).

Capacity: the host maintenance interval is a choice (`gpuHostMaintenanceInterval`, unset by default); queued
provisioning is refused with the reason (`sections/gpu_pool.py`).

`infra/config/stack.py` reads these keys as a section of their own (`read_secure_settings`), the serving section
checks them against the serving keys (`secure_problems`), and `secure_warnings` runs once the GPU pool is read.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from infra.config.settings import SecureSettings
from infra.config.stackfiles import PROJECT
from infra.config.values import ValueReader

# RFC 1123 DNS name with at least two labels, no wildcard: what a Google-managed certificate can cover.
_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def read_secure_settings(read: ValueReader) -> SecureSettings | None:
    """This section's keys; None when any of them is bad (the problem is already reported), so the rules that
    depend on them are skipped."""
    start = len(read.problems)
    interval = read.get("gpuHostMaintenanceInterval")
    hostname = read.matching(
        "serveHostname",
        lambda value: _HOSTNAME.fullmatch(value) is not None,
        "a lowercase DNS name like api.example.com (no wildcard, no scheme, no port)",
    )
    namespaces = read.get("serveClientNamespaces") or []
    for index, namespace in enumerate(namespaces):
        if not _NAMESPACE.fullmatch(namespace):
            read.problems.append(
                f"{PROJECT}:serveClientNamespaces[{index}]: expected a Kubernetes namespace name "
                f"(lowercase letters, digits, '-'); found {namespace!r}"
            )
    secure_boot, network_policies = read.get("gpuSecureBoot"), read.get("networkPolicies")
    allow_plain_http = read.get("serveAllowPlainHttp")
    if len(read.problems) > start:
        return None
    return SecureSettings(
        gpu_secure_boot=secure_boot,
        host_maintenance_interval=interval or None,
        network_policies=network_policies,
        serve_client_namespaces=tuple(namespaces),
        serve_hostname=hostname or None,
        serve_allow_plain_http=allow_plain_http,
    )


def secure_problems(
    settings: SecureSettings, *, exposure: str, source_ranges: Sequence[ipaddress.IPv4Network]
) -> list[str]:
    """Stage 2: rules between this module's keys and the serving keys."""
    problems = []
    if exposure == "external" and settings.serve_hostname is None:
        problems.append(
            f"{PROJECT}:serveExposure: external is served over HTTPS only (a GKE Gateway with a "
            f"Google-managed certificate), which needs a hostname; found no {PROJECT}:serveHostname; "
            f"allowed: set {PROJECT}:serveHostname to a DNS name you control (e.g. api.example.com), or "
            f"serveExposure=internal/cluster. Plain HTTP on a public address is never offered"
        )
    if exposure == "internal" and not settings.serve_allow_plain_http:
        problems.append(
            f"{PROJECT}:serveExposure: internal serves plain HTTP on an internal load balancer, so API "
            f"keys cross the VPC unencrypted; found {PROJECT}:serveAllowPlainHttp=false; allowed: set "
            f"{PROJECT}:serveAllowPlainHttp=true to accept that, or use serveExposure=external (HTTPS) "
            f"or cluster"
        )
    if exposure == "external" and source_ranges:
        problems.append(
            f"{PROJECT}:serveSourceRanges: not supported with serveExposure=external (the Gateway's "
            f"proxies, not the clients, connect to the pods); found {[str(r) for r in source_ranges]}; "
            f"allowed: [] (the API key guards the endpoint), or serveExposure=internal"
        )
    if settings.serve_hostname is not None and exposure != "external":
        problems.append(
            f"{PROJECT}:serveHostname: only used with serveExposure=external; found "
            f"{settings.serve_hostname!r} with serveExposure={exposure!r}; allowed: unset it, or set "
            f"serveExposure=external"
        )
    return problems


def secure_warnings(settings: SecureSettings, *, machine_type: str | None, on_demand: bool) -> list[str]:
    """Warnings about opt-outs and capacity that will not hold."""
    warnings = []
    if not settings.gpu_secure_boot:
        warnings.append(f"{PROJECT}:gpuSecureBoot: false; GPU nodes boot without verifying their boot chain")
    if not settings.network_policies:
        warnings.append(
            f"{PROJECT}:networkPolicies: false; any pod in the cluster reaches the Ray GCS, dashboard "
            f"(job submission: remote code execution if its token leaks) and Serve ports"
        )
    if settings.host_maintenance_interval == "PERIODIC":
        warnings.append(
            f"{PROJECT}:gpuHostMaintenanceInterval: PERIODIC; a pool that asks for it may not match a "
            f"reservation created without it (set it only when Google Cloud asks you to)"
        )
    if machine_type == "a3-highgpu-8g" and on_demand:
        warnings.append(
            f"{PROJECT}:gpuMachineType: a3-highgpu-8g cannot consume automatic reservations, so this "
            f"on-demand pool takes on-demand stock only, which is scarce; use gpuReservation (a "
            f"specific reservation), gpuFlexStart or gpuSpot"
        )
    return warnings
