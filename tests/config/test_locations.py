"""Regions, zones and the zones that offer each GPU machine, checked against the table in infra/catalog.py.

A region or zone that does not exist, or a GPU machine in a region that the table lists it in no zone of, is
refused before anything is created; a machine the table lists elsewhere in the region but not in the zone is a
warning that says what to check, since Google adds GPU zones more often than the table is renewed.
"""

from __future__ import annotations

import json

import pytest

from infra.catalog import LOCATIONS_SOURCE, MACHINE_PROFILES, MACHINE_ZONES, REGION_ZONES, zones_offering
from infra.config.stack import config_from_map
from infra.config.stackfiles import stack_config

QWEN_1_5B_ON_L4 = json.dumps(
    [{"id": "qwen", "source": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "acceleratorType": "L4"}]
)


def test_a_region_that_does_not_exist_is_refused(config_problems):
    problems = config_problems(gcp={"project": "my-project", "region": "mars-north9"})
    assert (
        "gcp:region: no Compute Engine region is called 'mars-north9'; allowed: one of the 44 regions of "
        "REGION_ZONES in infra/catalog.py (SkyPilot catalog v9 at 2c3d7ea, 2026-11-28; add one Google opened since)"
    ) in problems


def test_a_misspelt_region_gets_a_suggestion(config_problems):
    problems = config_problems(gcp={"project": "my-project", "region": "us-eats4"}, gpuZones='["us-eats4-b"]')
    assert "no Compute Engine region is called 'us-eats4' (did you mean 'us-east4'?)" in problems


def test_a_zone_the_region_does_not_have_is_refused(config_problems):
    problems = config_problems(gpuZones='["us-east4-z"]')
    assert (
        "llmserve:gpuZones[0]: us-east4 has no zone 'us-east4-z'; allowed: us-east4-a, us-east4-b, us-east4-c"
    ) in problems


def test_us_central1_has_zone_f_and_europe_west1_starts_at_b(parse_config, config_problems):
    models = QWEN_1_5B_ON_L4
    central = parse_config(
        gcp={"project": "p-123456", "region": "us-central1"},
        gpuMachineType="g2-standard-24",
        gpuZones='["us-central1-f"]',
        models=models,
    )
    assert central.gpu_pool.zones == ("us-central1-f",)
    problems = config_problems(
        gcp={"project": "p-123456", "region": "europe-west1"},
        gpuMachineType="g2-standard-24",
        gpuZones='["europe-west1-a"]',
        models=models,
    )
    assert (
        "europe-west1 has no zone 'europe-west1-a'; allowed: europe-west1-b, europe-west1-c, europe-west1-d" in problems
    )


def test_a_gpu_machine_in_a_region_without_it_is_refused_with_what_to_do(config_problems):
    # The case: a3-megagpu-8g in southamerica-east1 planned with exit 0 and failed half-way through `up`.
    problems = config_problems(
        gcp={"project": "my-project", "region": "southamerica-east1"}, gpuZones='["southamerica-east1-a"]'
    )
    assert (
        "llmserve:gpuZones[0]: the zone table (MACHINE_ZONES in infra/catalog.py, SkyPilot catalog v9 at 2c3d7ea, "
        "2026-11-28) lists a3-megagpu-8g in no zone of southamerica-east1, so GKE would refuse the GPU pool "
        "half-way through `pulumi up`; found 'southamerica-east1-a'; allowed: a zone of a region that has it "
        "(asia-east1, " in problems
    )
    assert 'gcloud compute machine-types list --filter="name=a3-megagpu-8g" --zones=southamerica-east1-a' in problems


def test_a_zone_of_the_right_region_that_lacks_the_machine_names_the_zones_that_have_it(parse_config):
    config = parse_config(gpuMachineType="g2-standard-24", gpuZones='["us-east4-b"]', models=QWEN_1_5B_ON_L4)
    assert any(
        "lists g2-standard-24 in us-east4-a, us-east4-c only, so GKE would refuse the GPU pool in us-east4-b" in warning
        for warning in config.warnings
    ), config.warnings


def test_a_zone_that_offers_the_machine_draws_no_zone_warning(parse_config):
    assert not [warning for warning in parse_config().warnings if "gpuZones" in warning]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_shipped_stacks_use_zones_that_offer_their_machine(stack):
    config = config_from_map(stack, *stack_config(stack))
    for zone in config.gpu_pool.zones:
        assert zone in zones_offering(config.gpu_pool.machine.machine_type, config.region), (stack, zone)


def test_the_table_pins_the_zones_read_from_the_catalog():
    """Literals from catalogs/v9/gcp/vms.csv at 2c3d7ea: what the stacks use, and the ends of each list."""
    assert LOCATIONS_SOURCE == "SkyPilot catalog v9 at 2c3d7ea, 2026-11-28"
    assert zones_offering("a3-megagpu-8g", "us-east4") == ("us-east4-a", "us-east4-b", "us-east4-c")
    assert zones_offering("a3-highgpu-8g", "europe-west4") == ("europe-west4-b", "europe-west4-c")
    assert zones_offering("g2-standard-24", "us-east4") == ("us-east4-a", "us-east4-c")
    assert zones_offering("a3-megagpu-8g", "southamerica-east1") == ()
    assert (len(MACHINE_ZONES["a3-highgpu-8g"]), len(MACHINE_ZONES["a3-megagpu-8g"])) == (16, 13)
    assert len(MACHINE_ZONES["g2-standard-24"]) == 18


def test_every_machine_profile_has_its_zones_and_every_zone_exists():
    assert set(MACHINE_ZONES) == set(MACHINE_PROFILES)
    for machine, regions in MACHINE_ZONES.items():
        for region, letters in regions.items():
            assert set(letters) <= set(REGION_ZONES[region]), (machine, region)
