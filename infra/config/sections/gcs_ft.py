"""GCS fault tolerance: whether the Ray cluster's metadata lives in Memorystore for Redis, and that instance's
tier, size and version (keys in infra/config/gcs_ft_keys.py; resources in infra/components/gcs_redis.py)."""

from __future__ import annotations

from infra.config.settings import GcsRedisConfig
from infra.config.stackfiles import PROJECT
from infra.config.values import ValueReader, read_cleanly

BASIC_TIER_WARNING = (
    f"{PROJECT}:gcsRedisTier: BASIC is one Redis node: Memorystore flushes it on maintenance or failure, the "
    "GCS then loses its store and the head restarts with an empty one, which restarts every worker (a cold "
    "start); STANDARD_HA keeps a replica in another zone and fails over"
)


def read_gcs_redis(read: ValueReader) -> GcsRedisConfig | None:
    """The instance's settings; None when GCS fault tolerance is off, or when a key is bad (its problem is then
    recorded, and the config is refused)."""
    enabled = read.get("gcsFaultTolerance")
    tier, size_gb, version = read.get("gcsRedisTier"), read.get("gcsRedisSizeGb"), read.get("gcsRedisVersion")
    if not enabled or not read_cleanly(tier, size_gb, version):
        return None
    if tier == "BASIC":
        read.warnings.append(BASIC_TIER_WARNING)
    return GcsRedisConfig(tier=tier, size_gb=size_gb, redis_version=version)
