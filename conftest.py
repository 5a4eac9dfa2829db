"""Fixtures both test suites use, the unit tests (tests/) and the policy pack's (policy/tests): the shipped
stacks, each planned once per session (tests/support/plans.py). tests/conftest.py has the unit tests' others.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

pytest.register_assert_rewrite("tests.support")

from tests.support.plans import STACKS, PlannedStack, StackPlans  # noqa: E402  (after the rewrite hook)


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    """Each shipped stack in turn: dev, staging, prod. A test about fewer stacks parametrizes `stack` itself."""
    return request.param


@pytest.fixture(scope="session")
def stack_plans() -> StackPlans:
    """Every stack's plan, made on first use and kept for the session. Tests ask for `planned`, which copies."""
    return StackPlans()


@pytest.fixture
def planned(stack_plans: StackPlans) -> Callable[[str], PlannedStack]:
    """`planned(stack)`: the stack's offline plan as this test's own deep copy (edit it freely: no other test
    sees it); asked again in the same test, the same copy."""
    return functools.cache(stack_plans.copy_of)
