"""The policy pack's rules (policy/rules.py, pure: no pulumi_policy) on every stack's offline plan.

The pack's own tests (policy/tests, in the pulumi-policy environment) run each policy through pulumi_policy with
compliant, violating and unknown values; this file keeps the main suite honest: every shipped stack passes
every rule, and the rules' machine table matches infra/catalog.py.
"""

from __future__ import annotations

import pytest
import rules

from infra.catalog import MACHINE_PROFILES, GpuDirect


@pytest.mark.parametrize("rule_name", sorted(rules.RESOURCE_RULES))
def test_every_stack_passes_every_resource_rule(stack, rule_name, planned):
    rule = rules.RESOURCE_RULES[rule_name]
    violations = [(r.type, r.name, message) for r in planned(stack).resources for message in rule(r.type, r.inputs)]
    assert not violations, f"{stack}: {rule_name}: {violations}"


def test_every_stack_passes_every_stack_rule(stack, planned):
    resources = [(r.type, r.inputs) for r in planned(stack).resources]
    for name, rule in rules.STACK_RULES.items():
        assert rule(resources) == [], f"{stack}: {name}"


def test_the_rules_know_the_catalogs_gpu_networks():
    expected = {m.machine_type: m.gpu_nic_count for m in MACHINE_PROFILES.values() if m.gpudirect is not GpuDirect.NONE}
    assert expected == rules.A3_GPU_NETWORKS


@pytest.mark.parametrize(
    "image, ok",
    [
        ("rayproject/ray-llm:2.60.0-py312-cu130", True),
        ("gcr.io/x/y@sha256:" + "a" * 64, True),
        ("localhost:5000/ray", False),  # the port is not a tag
        ("ubuntu", False),
        ("ubuntu:latest", False),
        ("", False),
    ],
)
def test_image_pinning(image, ok):
    assert (rules.image_problem(image) is None) == ok, rules.image_problem(image)
