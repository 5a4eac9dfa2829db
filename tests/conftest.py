"""Fixtures for every unit test; `stack` and the planned stacks are in the repository root's conftest.py.

The code behind them lives in tests/support. It is imported inside each fixture, not at the top: this file is
also loaded when the e2e tier is collected in .venv-local, which has neither kubernetes-validate nor Pulumi.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from infra.config.settings import StackConfig
    from infra.render.rayservice import RayServiceSettings
    from tests.support.kuberay_schema import Violation
    from tests.support.plans import PlanCommandRuns, PlanOutput, VariantPlan, VariantPlans


# --- Kubernetes and KubeRay schemas -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def assert_valid_kubernetes_object() -> Callable[[dict, str], None]:
    """`assert_valid_kubernetes_object(obj, where)`: fail naming `where`, the object and the field unless `obj` is
    valid for the cluster's Kubernetes version (strict: unknown fields fail)."""
    from tests.support.kubernetes_openapi import assert_valid_kubernetes_object

    return assert_valid_kubernetes_object


@pytest.fixture(scope="session")
def validate_rayservice() -> Callable[[dict], None]:
    """`validate_rayservice(obj)`: fail listing every violation of the KubeRay v1.7.0 RayService CRD subset and
    the operator's own rules (tests/support/kuberay_schema.py)."""
    from tests.support.kuberay_schema import validate_rayservice

    return validate_rayservice


@pytest.fixture(scope="session")
def rayservice_violations() -> Callable[[Any], list[Violation]]:
    """`rayservice_violations(obj)`: the same findings as `validate_rayservice`, as a list of (path, message)."""
    from tests.support.kuberay_schema import rayservice_violations

    return rayservice_violations


@pytest.fixture
def rayservice_schema() -> dict:
    """The JSON Schema of the RayService subset (a copy: the validator keeps its own)."""
    from tests.support.kuberay_schema import RAYSERVICE_SCHEMA

    return copy.deepcopy(RAYSERVICE_SCHEMA)


# --- the plan command's output ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def plan_command_runs(tmp_path_factory: pytest.TempPathFactory) -> PlanCommandRuns:
    """`python -m infra plan <stack>` per stack, run on first use and kept for the session. Tests ask for
    `plan_output`, which copies."""
    from tests.support.plans import PlanCommandRuns

    return PlanCommandRuns(tmp_path_factory)


@pytest.fixture
def plan_output(plan_command_runs: PlanCommandRuns) -> Callable[[str], PlanOutput]:
    """`plan_output(stack)`: the folder `python -m infra plan <stack> --out <folder>` wrote, as this test's own copy,
    and the summary it printed (`.folder`, `.summary`); asked again in the same test, the same copy."""
    return functools.cache(plan_command_runs.copy_of)


@pytest.fixture(scope="session")
def variant_plans() -> VariantPlans:
    """Stack variants, each planned on first use and kept for the session. Tests ask for `stack_variant`."""
    from tests.support.plans import VariantPlans

    return VariantPlans()


@pytest.fixture
def stack_variant(variant_plans: VariantPlans) -> Callable[..., VariantPlan]:
    """`stack_variant(stack, **overrides)`: the real program for `stack` with config values replaced (keys without
    the `llmserve:` namespace, values as the CLI passes them: JSON text for lists and maps), as this test's own
    copy (`.config`, `.resources` as in resources.json); `stack_variant(stack)` is the stack as shipped."""

    def plan(stack: str, **overrides: str) -> VariantPlan:
        return variant_plans.plan(stack, {f"llmserve:{key}": value for key, value in overrides.items()})

    return plan


@pytest.fixture
def stack_models(variant_plans: VariantPlans) -> Callable[[str], list[dict]]:
    """`stack_models(stack)`: the `llmserve:models` entries of a shipped stack file, this test's copy to edit."""
    import json

    return lambda stack: json.loads(variant_plans.values(stack)["llmserve:models"])


# --- inputs to make variants of ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def parse_config() -> Callable[..., StackConfig]:
    """`parse_config(gcp=..., **overrides)`: the StackConfig of a small valid stack (an a3-megagpu-8g pool in
    us-east4-b serving DeepSeek-R1) with `overrides` of its `llmserve:` keys, each JSON-encoded unless a string,
    "null" removing the key (tests/support/inputs.py)."""
    from tests.support.inputs import parse_config

    return parse_config


@pytest.fixture(scope="session")
def config_problems() -> Callable[..., str]:
    """`config_problems(**overrides)`: the message of the ConfigError that `parse_config(**overrides)` must raise
    (the test fails if it raises none)."""
    from tests.support.inputs import config_problems

    return config_problems


@pytest.fixture
def stack_values() -> dict[str, str]:
    """The `llmserve:` values (namespace left off) of the stack `parse_config` starts from; this test's copy."""
    from tests.support.inputs import BASE

    return dict(BASE)


@pytest.fixture
def gcp_values() -> dict[str, str]:
    """The `gcp:` values (project, region) of the stack `parse_config` starts from; this test's copy."""
    from tests.support.inputs import GCP

    return dict(GCP)


@pytest.fixture(scope="session")
def rayservice_settings() -> Callable[..., RayServiceSettings]:
    """`rayservice_settings(machine=A3 Mega, models=(R1,), gpudirect=the machine's, max_gpu_nodes=2, **overrides)`:
    RayServiceSettings for the renderers (name and namespace llm, one CPU worker, NewCluster upgrades, cluster
    exposure); each call builds new ones."""
    from tests.support.inputs import rayservice_settings

    return rayservice_settings
