"""The GCS fault-tolerance keys (infra/config/gcs_ft_keys.py): off unless asked, every bad value a config error
that names the key, the value found and what is allowed."""

from __future__ import annotations

import pytest

from infra.config.settings import GcsRedisConfig


def test_off_by_default(parse_config):
    assert parse_config().gcs_redis is None


def test_on_takes_a_one_gb_standard_ha_redis_7_2(parse_config):
    config = parse_config(gcsFaultTolerance=True)
    assert config.gcs_redis == GcsRedisConfig(tier="STANDARD_HA", size_gb=1, redis_version="REDIS_7_2")
    assert not any("gcsRedisTier" in warning for warning in config.warnings)


def test_every_setting_is_read(parse_config):
    config = parse_config(gcsFaultTolerance=True, gcsRedisTier="BASIC", gcsRedisSizeGb=4, gcsRedisVersion="REDIS_6_X")
    assert config.gcs_redis == GcsRedisConfig(tier="BASIC", size_gb=4, redis_version="REDIS_6_X")
    # BASIC is one node that Memorystore flushes on maintenance: said, not refused.
    assert any(w.startswith("llmserve:gcsRedisTier: BASIC is one Redis node") for w in config.warnings)


def test_settings_without_the_switch_create_nothing(parse_config):
    assert parse_config(gcsRedisTier="BASIC", gcsRedisSizeGb=2).gcs_redis is None


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"gcsFaultTolerance": "yes"}, "llmserve:gcsFaultTolerance: expected true or false; found 'yes'"),
        ({"gcsFaultTolerance": True, "gcsRedisTier": "STANDARD"}, "llmserve:gcsRedisTier: unknown value 'STANDARD'"),
        (
            {"gcsFaultTolerance": True, "gcsRedisSizeGb": 5},
            "llmserve:gcsRedisSizeGb: out of range; found 5; allowed: 1 to 4 (Memorystore's M1 band",
        ),
        ({"gcsFaultTolerance": True, "gcsRedisSizeGb": 0}, "llmserve:gcsRedisSizeGb: out of range; found 0"),
        (
            {"gcsFaultTolerance": True, "gcsRedisSizeGb": "big"},
            "llmserve:gcsRedisSizeGb: expected a whole number; found 'big'; allowed: 1 to 4",
        ),
        (
            {"gcsFaultTolerance": True, "gcsRedisVersion": "REDIS_5_0"},
            "llmserve:gcsRedisVersion: unknown value 'REDIS_5_0'",
        ),
        # A bad value is refused whether or not the switch is on: a typo waits for no second edit.
        ({"gcsRedisTier": "basic"}, "llmserve:gcsRedisTier: unknown value 'basic'"),
    ],
)
def test_bad_values_are_config_errors(config_problems, overrides, expected):
    problems = config_problems(**overrides)
    assert expected in problems, problems


def test_unknown_values_list_what_is_allowed(config_problems):
    assert "allowed: BASIC, STANDARD_HA" in config_problems(gcsFaultTolerance=True, gcsRedisTier="HA")
    assert "allowed: REDIS_6_X, REDIS_7_0, REDIS_7_2" in config_problems(gcsRedisVersion="7.2")
