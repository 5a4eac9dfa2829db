"""The tenants section (infra/config/sections/tenants.py): tenants, their secret keys and the overload bound."""

from __future__ import annotations

import pytest

from infra.config.errors import ConfigError
from infra.config.stack import parse_stack_config
from serve_app.admission import TenantLimits

KEY_A, KEY_B, PLAIN = "a" * 24, "b" * 24, "p" * 24
TEAMS = [
    {"name": "team-a", "requestsPerMinute": 60, "tokensPerMinute": 10000, "priority": "high"},
    {"name": "team-b", "maxConcurrentRequests": 4, "priority": "low"},
]


def with_keys(stack_values, gcp_values, tenants, keys, api_key=PLAIN):
    values = {**stack_values, "tenants": tenants}
    secrets = {"tenantKeys": object(), "apiKey": object()}
    return parse_stack_config("test", values, gcp_values, secrets, {"tenantKeys": keys, "apiKey": api_key})


def test_a_stack_without_tenants_has_none_and_the_default_bound(parse_config):
    tenants = parse_config().tenants
    assert (tenants.tenants, tenants.keys, tenants.in_flight_per_seq, tenants.wait_s) == ((), None, 2.0, 5.0)
    assert tenants.throttled_alert_minutes == 15


def test_tenants_are_read_with_their_limits_and_keys(stack_values, gcp_values):
    config = with_keys(stack_values, gcp_values, TEAMS, f"team-a={KEY_A};team-b={KEY_B}")
    assert config.tenants.tenants == (
        ("team-a", TenantLimits(requests_per_minute=60, tokens_per_minute=10000, priority="high")),
        ("team-b", TenantLimits(max_concurrent=4, priority="low")),
    )
    assert config.tenants.keys is not None


@pytest.mark.parametrize(
    ("tenants", "message"),
    [
        (
            [{"name": "team-a", "requestsPerMinute": -5}],
            "llmserve:tenants[0].requestsPerMinute: found -5; allowed: a number above 0",
        ),
        (
            [{"name": "team-a", "maxConcurrentRequests": 2.5}],
            "llmserve:tenants[0].maxConcurrentRequests: found 2.5; allowed: a whole number above 0",
        ),
        (
            [{"name": "team-a", "priority": "urgent"}],
            "llmserve:tenants[0].priority: found 'urgent'; allowed: high, normal, low",
        ),
        (
            [{"name": "team-a", "priority": ["high"]}],
            "llmserve:tenants[0].priority: found ['high']; allowed: high, normal, low",
        ),
        ([{"name": "default"}], "llmserve:tenants[0].name: found 'default'; allowed: 1 to 63 lowercase"),
        ([{"name": "a"}, {"name": "a"}], "llmserve:tenants[1].name: tenant 'a' is declared twice"),
        (
            [{"name": "a", "requestPerMinute": 5}],
            "llmserve:tenants[0].requestPerMinute: unknown tenant key (did you mean 'requestsPerMinute'?)",
        ),
        ({"name": "a"}, "llmserve:tenants: must be a list of tenants"),
    ],
)
def test_bad_tenants_are_config_errors_naming_the_key(tenants, message, config_problems):
    assert message in config_problems(tenants=tenants)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            f"team-a={KEY_A};team-b={KEY_A}",
            "llmserve:tenantKeys: tenant 'team-b': key number 1 is also a key of tenant 'team-a'",
        ),
        (f"team-a={KEY_A};team-c={KEY_B}", "llmserve:tenantKeys: tenant 'team-c' is not declared in llmserve:tenants"),
        (f"team-a={PLAIN}", "llmserve:tenantKeys: tenant 'team-a': key number 1 is also in llmserve:apiKey"),
        ("team-a=tiny-key", "llmserve:tenantKeys: tenant 'team-a': key number 1 is shorter than 16 characters"),
    ],
)
def test_bad_tenant_keys_are_config_errors_that_never_quote_a_key(keys, message, stack_values, gcp_values):
    with pytest.raises(ConfigError) as raised:
        with_keys(stack_values, gcp_values, TEAMS, keys)
    assert message in str(raised.value)
    for key in (KEY_A, KEY_B, PLAIN, "tiny-key"):
        assert key not in str(raised.value), "a key leaked into the message"


def test_tenant_keys_without_tenants_are_refused(stack_values, gcp_values):
    with pytest.raises(ConfigError, match="llmserve:tenantKeys: set, but llmserve:tenants declares no tenant"):
        with_keys(stack_values, gcp_values, [], f"team-a={KEY_A}")


def test_the_overload_bound_keys_are_read_and_bounded(parse_config, config_problems):
    tenants = parse_config(admissionInFlightPercent=150, admissionWaitSeconds=0).tenants
    assert (tenants.in_flight_per_seq, tenants.wait_s) == (1.5, 0.0)
    assert "llmserve:admissionWaitSeconds: out of range; found 601" in config_problems(admissionWaitSeconds=601)
    assert "llmserve:admissionInFlightPercent: out of range; found -1" in config_problems(admissionInFlightPercent=-1)


def test_tenants_without_the_key_check_are_a_config_error(stack_values, gcp_values):
    """With apiAuth false no request carries a key, so no tenant could be told apart or limited."""
    values = {**stack_values, "tenants": TEAMS, "apiAuth": False, "serveExposure": "cluster"}
    with pytest.raises(ConfigError) as raised:
        parse_stack_config("test", values, gcp_values)
    assert "llmserve:tenants: 2 declared with llmserve:apiAuth false" in str(raised.value)
