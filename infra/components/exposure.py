"""The serving endpoint's fences and front door: NetworkPolicies and, for external exposure, HTTPS only.

`ServingExposure` owns the Google Cloud side of the HTTPS endpoint (a global static address and a
Google-managed Certificate Manager certificate, DNS-authorized, in a certificate map) and renders the
Kubernetes objects (infra/render/exposure.py) that `LlmService` creates in the serving namespace before the
Ray pods start. Pass them on as `LlmServiceArgs.guard_objects`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config.settings import SecureSettings
from infra.render import exposure as render
from infra.render.exposure import ExposureSettings


@dataclass(frozen=True)
class ServingExposureArgs:
    settings: ExposureSettings
    secure: SecureSettings


class ServingExposure(pulumi.ComponentResource):
    """NetworkPolicies (unless `networkPolicies` is false) and, with serveExposure=external, the HTTPS front door.

    The certificate is issued once the DNS authorization's CNAME record exists (`dns_records` output) and the
    hostname's A record points at `address`; until then the Gateway serves nothing, never plain HTTP.
    """

    guard_objects: list[dict]
    address: gcp.compute.GlobalAddress | None
    dns_records: pulumi.Output | None

    def __init__(self, name: str, args: ServingExposureArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmserve:gcp:ServingExposure", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        self.guard_objects = render.render_network_policies(settings) if args.secure.network_policies else []
        self.address = None
        self.dns_records = None
        if settings.serving.exposure == "external":
            hostname = settings.hostname
            assert hostname is not None  # set exactly when the exposure is external (ExposureSettings)
            self.address = gcp.compute.GlobalAddress(f"{name}-address", opts=child)
            authorization = gcp.certificatemanager.DnsAuthorization(f"{name}-dns-auth", domain=hostname, opts=child)
            certificate = gcp.certificatemanager.Certificate(
                f"{name}-cert",
                managed=gcp.certificatemanager.CertificateManagedArgs(
                    domains=[hostname], dns_authorizations=[authorization.id]
                ),
                opts=child,
            )
            certificate_map = gcp.certificatemanager.CertificateMap(f"{name}-certmap", opts=child)
            gcp.certificatemanager.CertificateMapEntry(
                f"{name}-certmap-entry",
                map=certificate_map.name,
                hostname=hostname,
                certificates=[certificate.id],
                opts=child,
            )
            self.guard_objects += render.render_gateway_objects(settings, certificate_map.name, self.address.name)
            self.dns_records = pulumi.Output.all(self.address.address, authorization.dns_resource_records).apply(
                lambda values: (
                    [f"{hostname}. A {values[0]}"]
                    + [f"{record.name} {record.type} {record.data}" for record in (values[1] or [])]
                )
            )
        self.register_outputs({"address": self.address.address if self.address else None})
