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


INGRESS = (
    "- name: llm\n  route_prefix: /\n  import_path: serve_app.apps:build_ingress_app\n"
    "  args: {ingress_cls: 'serve_app.ingress:AuthenticatedOpenAiIngress'}\n"
)


@pytest.mark.parametrize(
    "applications, offenders",
    [
        (INGRESS, []),
        (INGRESS + "- name: model-a\n  route_prefix: null\n  import_path: serve_app.apps:build_model_app\n", []),
        (INGRESS + "- name: model-a\n  route_prefix: /a\n  import_path: serve_app.apps:build_model_app\n", ["model-a"]),
        (INGRESS + "- name: model-a\n  import_path: serve_app.apps:build_model_app\n", ["model-a"]),  # default "/"
        (INGRESS.replace("AuthenticatedOpenAiIngress", "ConfiguredOpenAiIngress"), ["llm"]),
        ("- name: llm\n  import_path: ray.serve.llm:build_openai_app\n  args: {}\n", ["llm"]),
    ],
    ids=["ingress", "model not exposed", "model exposed", "route prefix left to the default", "no key", "Ray's app"],
)
def test_endpoint_key_check_covers_every_application_that_takes_http(applications, offenders):
    props = {"spec": {"serveConfigV2": "applications:\n" + applications}}
    problems = rules.endpoint_key_check("kubernetes:ray.io/v1:RayService", props)
    assert [problem.split("'")[1] for problem in problems] == offenders, problems
