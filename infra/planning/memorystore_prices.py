"""Memorystore for Redis list prices in USD per GB-hour, per tier and region, for the M1 capacity band (1-4 GB).

Source: Google's Cloud Billing Catalog (service "Cloud Memorystore for Redis", SKUs "Redis Capacity Basic M1
<region>" and "Redis Capacity Standard M1 <region>", billed per GiB-hour of provisioned capacity), as saved by
doitintl/gcpinstances.info in `public/data/memorystore-pricing.json` (commit 0133443, `updatedAt`
2026-04-27), read on 2026-12-03; its `scripts/memorystore-machine-types.ts` puts M2 at 5 GB, so M1 is 1-4 GB.
Google's own pricing page (cloud.google.com/memorystore/docs/redis/pricing) shows the same SKUs per region. A
dated snapshot, not a quote; committed-use discounts do not apply to M1.

Only the regions of `REGION_ZONES` (infra/catalog.py) are listed; a Standard Tier instance bills its capacity
once at the Standard rate (the replica is included), read replicas off.
"""

from __future__ import annotations

MEMORYSTORE_PRICE_SOURCE = (
    "Cloud Billing Catalog SKUs 'Redis Capacity Basic/Standard M1 <region>' via doitintl/gcpinstances.info "
    "public/data/memorystore-pricing.json (commit 0133443, updated 2026-04-27)"
)
MEMORYSTORE_PRICES_AS_OF = "2026-04-27"
M1_MAX_GB = 4  # M2 starts at 5 GB

_BASIC_M1 = {
    "africa-south1": 0.051,
    "asia-east1": 0.064,
    "asia-east2": 0.063,
    "asia-northeast1": 0.065,
    "asia-northeast2": 0.065,
    "asia-northeast3": 0.065,
    "asia-south1": 0.063,
    "asia-south2": 0.063,
    "asia-southeast1": 0.065,
    "asia-southeast2": 0.066,
    "asia-southeast3": 0.05145,
    "australia-southeast1": 0.065,
    "australia-southeast2": 0.065,
    "europe-central2": 0.053,
    "europe-north1": 0.051,
    "europe-north2": 0.05145,
    "europe-southwest1": 0.059,
    "europe-west1": 0.051,
    "europe-west10": 0.07546,
    "europe-west12": 0.053,
    "europe-west2": 0.053,
    "europe-west3": 0.053,
    "europe-west4": 0.051,
    "europe-west6": 0.058,
    "europe-west8": 0.057,
    "europe-west9": 0.057,
    "me-central1": 0.05954,
    "me-central2": 0.0784,
    "me-west1": 0.0539,
    "northamerica-northeast1": 0.052,
    "northamerica-northeast2": 0.052,
    "northamerica-south1": 0.05341,
    "southamerica-east1": 0.087,
    "southamerica-west1": 0.07,
    "us-central1": 0.049,
    "us-central2": 0.049,
    "us-east1": 0.049,
    "us-east4": 0.049,
    "us-east5": 0.049,
    "us-south1": 0.058,
    "us-west1": 0.049,
    "us-west2": 0.057,
    "us-west3": 0.057,
    "us-west4": 0.049,
}
_STANDARD_M1 = {
    "africa-south1": 0.08371,
    "asia-east1": 0.081,
    "asia-east2": 0.11,
    "asia-northeast1": 0.114,
    "asia-northeast2": 0.114,
    "asia-northeast3": 0.114,
    "asia-south1": 0.11,
    "asia-south2": 0.11,
    "asia-southeast1": 0.114,
    "asia-southeast2": 0.086,
    "asia-southeast3": 0.0672,
    "australia-southeast1": 0.114,
    "australia-southeast2": 0.114,
    "europe-central2": 0.09,
    "europe-north1": 0.086,
    "europe-north2": 0.0672,
    "europe-southwest1": 0.077,
    "europe-west1": 0.086,
    "europe-west10": 0.09856,
    "europe-west12": 0.09,
    "europe-west2": 0.09,
    "europe-west3": 0.09,
    "europe-west4": 0.086,
    "europe-west6": 0.098,
    "europe-west8": 0.074,
    "europe-west9": 0.074,
    "me-central1": 0.07776,
    "me-central2": 0.1024,
    "me-west1": 0.0704,
    "northamerica-northeast1": 0.088,
    "northamerica-northeast2": 0.088,
    "northamerica-south1": 0.06976,
    "southamerica-east1": 0.146,
    "southamerica-west1": 0.092,
    "us-central1": 0.064,
    "us-central2": 0.064,
    "us-east1": 0.064,
    "us-east4": 0.064,
    "us-east5": 0.064,
    "us-south1": 0.076,
    "us-west1": 0.064,
    "us-west2": 0.098,
    "us-west3": 0.098,
    "us-west4": 0.064,
}
# (tier, region) -> USD per GB-hour, for instances of 1-4 GB.
M1_PRICES: dict[tuple[str, str], float] = {
    **{("BASIC", region): price for region, price in _BASIC_M1.items()},
    **{("STANDARD_HA", region): price for region, price in _STANDARD_M1.items()},
}


def memorystore_hourly_usd(tier: str, region: str, size_gb: int) -> float | None:
    """USD per hour of an instance of `size_gb` (1-4 GB) in `tier` and `region`; None where the table has no
    price."""
    if not 1 <= size_gb <= M1_MAX_GB:
        raise ValueError(f"{size_gb} GB is outside the M1 band (1-{M1_MAX_GB} GB) this table prices")
    rate = M1_PRICES.get((tier, region))
    return None if rate is None else round(rate * size_gb, 4)
