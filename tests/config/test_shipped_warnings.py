"""A stack as shipped plans with only the warnings a new user must act on or decide, and each says which."""

from __future__ import annotations

import pytest

from infra.config.stack import config_from_map
from infra.config.stackfiles import stack_config

ACT = "act before `pulumi up`"
NOTHING_YET = "nothing to do before `pulumi up`"


@pytest.mark.parametrize(
    ("stack", "keys"),
    [
        ("dev", ["llmserve:masterAuthorizedNetworks"]),
        ("staging", ["llmserve:masterAuthorizedNetworks"]),
        ("prod", ["llmserve:gpuCompactPlacement", "llmserve:masterAuthorizedNetworks"]),
    ],
)
def test_a_shipped_stack_warns_only_where_the_user_must_act_or_decide(stack, keys):
    """No warning against the project's own R1 preset (maxNumSeqs 64 with room for 26 full-context sequences is a
    capacity note), and every warning left says whether to act."""
    warnings = config_from_map(stack, *stack_config(stack)).warnings
    assert [warning.split(": ")[0] for warning in warnings] == keys
    for warning in warnings:
        assert ACT in warning or NOTHING_YET in warning, warning


def test_the_placeholder_authorized_network_says_how_to_replace_it():
    [warning] = config_from_map("dev", *stack_config("dev")).warnings
    assert warning == (
        "llmserve:masterAuthorizedNetworks: 203.0.113.0/24 is a documentation range (RFC 5737), a placeholder; act "
        "before `pulumi up`: replace it with the CIDR of the machine that runs it (`pulumi config set --path "
        "'llmserve:masterAuthorizedNetworks[0]' \"$(curl -s https://checkip.amazonaws.com)/32\"`), or the "
        "Kubernetes objects cannot be applied"
    )


def test_compact_placement_on_a_reservation_says_when_to_turn_it_off():
    warning = config_from_map("prod", *stack_config("prod")).warnings[0]
    assert warning.startswith(
        "llmserve:gpuCompactPlacement: nothing to do before `pulumi up`; if GKE refuses to create the GPU pool, set "
        "it to false"
    )
    assert "AI-Hypercomputer/xpk PR #1130" in warning and "made advisory (docs/security.md)" in warning
