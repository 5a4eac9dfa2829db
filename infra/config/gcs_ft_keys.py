"""The keys of GCS fault tolerance: a Memorystore for Redis instance that keeps the Ray cluster's metadata, so that
a restart of the Ray head does not restart the GPU workers and reload the models (infra/components/gcs_redis.py).

Declared here rather than in infra/config/keys.py, which lists them in its `KEY_SECTIONS`.
"""

from __future__ import annotations

from configkit import ConfigKey, Range

REDIS_TIERS = ("BASIC", "STANDARD_HA")
# Memorystore for Redis versions of Redis 6 and 7 (pulumi-gcp 10.2 `redis.Instance.redis_version`; its examples
# use REDIS_7_2). Older versions are left out: Ray's own CI runs GCS fault tolerance against Redis 7.
REDIS_VERSIONS = ("REDIS_6_X", "REDIS_7_0", "REDIS_7_2")
# The M1 capacity band of Memorystore's price list is 1-4 GB (M2 starts at 5 GB); the prices table holds M1 rows
# only (infra/planning/prices.py). A serving cluster's GCS metadata (nodes, actors, placement groups, the Serve
# config) is megabytes.
REDIS_SIZE_GB = Range(1, 4, why="Memorystore's M1 band, which the price table holds; GCS metadata is megabytes")

GCS_FT_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "gcsFaultTolerance",
        "boolean",
        "Keep the Ray cluster's metadata (GCS) in a Memorystore for Redis instance (AUTH and TLS on, reached "
        "privately from the cluster's VPC), so that a restart of the Ray head keeps the GPU workers and their "
        "loaded models; without it a head restart restarts every worker (a cold start). On for staging and prod.",
        False,
    ),
    ConfigKey(
        "gcsRedisTier",
        "string",
        "Memorystore tier: STANDARD_HA (a replica in another zone, automatic failover) or BASIC (one node: its "
        "maintenance or failure flushes it and takes the GCS down with it).",
        "STANDARD_HA",
        choices=REDIS_TIERS,
    ),
    ConfigKey("gcsRedisSizeGb", "integer", "Memorystore capacity in GB.", 1, range=REDIS_SIZE_GB),
    ConfigKey("gcsRedisVersion", "string", "Memorystore's Redis version.", "REDIS_7_2", choices=REDIS_VERSIONS),
)
