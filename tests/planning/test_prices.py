"""The price table: the SkyPilot catalog's rows for every region where the machines exist, one rule applied."""

from __future__ import annotations

import pytest

from infra.catalog import MACHINE_PROFILES, MACHINE_ZONES, REGION_ZONES
from infra.planning.costs import StackShape, stack_cost
from infra.planning.prices import CATALOG_PLACEHOLDERS, PRICE_SOURCE, PRICES, PRICES_AS_OF


def test_the_source_and_its_date():
    assert PRICE_SOURCE.startswith(
        "Google Cloud list prices via the SkyPilot catalog (catalogs/v9/gcp/vms.csv, commit 2c3d7ea, dated 2026-11-28)"
    )
    assert PRICES_AS_OF == "2026-11-28"


@pytest.mark.parametrize("machine", sorted(MACHINE_ZONES))
def test_every_region_that_offers_a_gpu_machine_has_its_price_row(machine):
    assert {region for kind, region in PRICES if kind == machine} == set(MACHINE_ZONES[machine])


def test_the_system_pools_machines_are_priced_wherever_e2_is_listed():
    regions = {region for kind, region in PRICES if kind == "e2-standard-8"}
    assert regions == set(REGION_ZONES) - {"asia-southeast3", "us-central2"}  # no e2 rows in the catalog there
    assert {region for kind, region in PRICES if kind == "e2-standard-16"} == regions
    assert PRICES[("e2-standard-16", "europe-west4")].on_demand == pytest.approx(2 * 0.29509)


def test_europe_west4_now_has_prices():
    """The issue's example: "on-demand: no price" in europe-west4. Catalog rows: VM 9.93306 / 3.69866, 8 x H100
    Mega 107.58048 / 39.9536, 8 x H100 101.88413 / 37.9288, g2-standard-24 0.92571 / 0.48576 + 2 x L4 0.58804 /
    0.3089."""
    mega = PRICES[("a3-megagpu-8g", "europe-west4")]
    assert (mega.on_demand, mega.spot) == (pytest.approx(117.51354), pytest.approx(43.65226))
    assert PRICES[("a3-highgpu-8g", "europe-west4")].on_demand == pytest.approx(111.81719)
    assert PRICES[("g2-standard-24", "europe-west4")].on_demand == pytest.approx(0.92571 + 2 * 0.58804)


def test_the_shipped_stacks_prices_are_unchanged():
    assert PRICES[("a3-megagpu-8g", "us-east4")].on_demand == pytest.approx(92.2143)
    assert PRICES[("a3-highgpu-8g", "us-east4")].on_demand == pytest.approx(87.83247)
    assert PRICES[("g2-standard-24", "us-central1")].on_demand == pytest.approx(2.00083)


def test_the_catalogs_repeated_placeholder_is_withheld_and_says_why():
    """8 x H100 at $33.60609 in 12 regions (below its own Spot figure in us-central1): no on-demand price there,
    the Spot price kept."""
    assert CATALOG_PLACEHOLDERS == {"H100": 33.60609, "H100 Mega": 35.39149}
    price = PRICES[("a3-highgpu-8g", "us-central1")]
    assert price.on_demand is None and price.spot == pytest.approx(5.15632 + 42.7096)
    assert price.withheld == (
        "the catalog's $33.61 on demand for its H100 GPUs in us-central1 is its placeholder (the same figure in 12 "
        "regions; infra/planning/prices.py), not a price"
    )
    assert "the same figure in 13 regions" in PRICES[("a3-megagpu-8g", "us-east5")].withheld
    assert not PRICES[("a3-megagpu-8g", "us-central1")].withheld  # 82.75421 is a real per-region figure


def _shape(machine: str, region: str) -> StackShape:
    return StackShape(
        region=region,
        gpu_machine=MACHINE_PROFILES[machine],
        capacity_mode="on-demand",
        idle_gpu_nodes=2,
        max_gpu_nodes=2,
        system_machine_type="e2-standard-16",
        system_node_count=1,
        zonal_cluster=False,
    )


def test_a_stack_in_europe_west4_is_priced():
    cost = stack_cost(_shape("a3-megagpu-8g", "europe-west4"))
    assert cost["hourly_usd"]["on_demand"]["max"] == round(2 * 117.51354 + 2 * 0.29509 + 0.10, 2) == 235.72
    assert cost["notes"] == []


def test_a_withheld_price_is_a_note_not_a_number():
    cost = stack_cost(_shape("a3-highgpu-8g", "us-central1"))
    assert cost["hourly_usd"]["on_demand"] == {"idle": None, "max": None}
    assert cost["hourly_usd"]["spot"]["max"] == round(2 * (5.15632 + 42.7096) + 2 * 0.26805 + 0.10, 2)
    assert cost["notes"] == [
        "no on-demand price for a3-highgpu-8g in us-central1: the catalog's $33.61 on demand for its H100 GPUs in "
        "us-central1 is its placeholder (the same figure in 12 regions; infra/planning/prices.py), not a price"
    ]
