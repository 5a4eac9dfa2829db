"""The Memorystore for Redis instance that keeps the Ray cluster's metadata (GCS fault tolerance).

The RayService side (the Secret, `gcsFaultToleranceOptions`, the CA on the head) is rendered by
infra/render/gcs_ft.py and registered by `LlmService` (infra/components/serving.py) from `GcsRedis.connection`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config.settings import GcsRedisConfig
from infra.render.gcs_ft import ca_bundle, redis_address

# Memorystore reached over the cluster's VPC through VPC peering that the service sets up itself (no Private
# Service Access range to reserve); pulumi-gcp's default, written out.
CONNECT_MODE = "DIRECT_PEERING"
# TLS with a per-instance server CA (the only mode besides DISABLED); Ray 2.60's GCS trusts it through
# RAY_REDIS_CA_CERT (infra/render/gcs_ft.py).
TRANSIT_ENCRYPTION = "SERVER_AUTHENTICATION"


@dataclass(frozen=True)
class GcsRedisArgs:
    settings: GcsRedisConfig
    region: str
    network: pulumi.Input[str]  # the cluster's VPC (its id: projects/<p>/global/networks/<name>)
    stack: str
    deletion_protection: bool


@dataclass(frozen=True)
class GcsRedisConnection:
    """What the RayService needs to reach the instance: a `rediss://` address, the AUTH string (secret) and the
    instance's CA certificates as one PEM bundle."""

    address: pulumi.Output[str]
    password: pulumi.Output[str]
    ca_certificates: pulumi.Output[str]


class GcsRedis(pulumi.ComponentResource):
    """A Memorystore for Redis instance for the Ray GCS: AUTH on, TLS on, private to the cluster's VPC."""

    instance: gcp.redis.Instance
    connection: GcsRedisConnection

    def __init__(self, name: str, args: GcsRedisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmserve:gcp:GcsRedis", name, None, opts)
        settings = args.settings
        self.instance = gcp.redis.Instance(
            f"{name}-memorystore",
            display_name="Ray GCS store (llmserve)",
            tier=settings.tier,
            memory_size_gb=settings.size_gb,
            redis_version=settings.redis_version,
            region=args.region,
            authorized_network=args.network,
            connect_mode=CONNECT_MODE,
            auth_enabled=True,
            transit_encryption_mode=TRANSIT_ENCRYPTION,
            labels={"app": "llmserve", "stack": re.sub(r"[^a-z0-9_-]", "-", args.stack.lower())[:63]},
            deletion_protection=args.deletion_protection,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.connection = GcsRedisConnection(
            address=pulumi.Output.all(self.instance.host, self.instance.port).apply(
                lambda parts: redis_address(parts[0], int(parts[1]))
            ),
            password=pulumi.Output.secret(self.instance.auth_string),
            ca_certificates=self.instance.server_ca_certs.apply(ca_bundle),
        )
        self.register_outputs({"address": self.connection.address, "tier": settings.tier})
