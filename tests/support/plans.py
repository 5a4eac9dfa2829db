"""The shipped stacks' offline plans, for the tests: each stack's real program run once per test session under
Pulumi's mocks (`infra.cli.plan.run_program`, preview=False, so no check is silently skipped), and every test
handed its own deep copy of the resources, so that no test sees what another one changed. The parsed config is
shared: it is frozen all the way down (tests/test_fixtures.py checks that it stays so).

Pulumi is imported only when a stack is planned: the e2e tier loads the conftest files without it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.cli.plan import RecordedResource
    from infra.config.stack import StackConfig

STACKS = ("dev", "staging", "prod")


@dataclass(frozen=True)
class PlannedStack:
    """One stack's plan: its parsed config and every resource its program registered, in registration order."""

    stack: str
    config: StackConfig
    resources: list[RecordedResource]

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [resource for resource in self.resources if resource.type == type_token]

    def only(self, type_token: str, name: str) -> RecordedResource:
        """The one resource of `type_token` named `name`; fails naming the stack if there is none or several."""
        matches = [resource for resource in self.of_type(type_token) if resource.name == name]
        assert len(matches) == 1, f"{self.stack}: expected one {type_token} named {name}, found {len(matches)}"
        return matches[0]

    def manifests(self) -> list[dict]:
        """The Kubernetes objects among the resources, as `python -m infra plan` writes them to manifests.yaml."""
        from infra.cli.plan import kubernetes_manifests

        return kubernetes_manifests(self.resources)

    def cluster(self) -> dict:
        return self.only("gcp:container/cluster:Cluster", "llm-gke").inputs

    def system_pool(self) -> dict:
        return self.only("gcp:container/nodePool:NodePool", "llm-gke-system").inputs

    def gpu_pool(self) -> dict:
        return self.only("gcp:container/nodePool:NodePool", "llm-gpu").inputs


class StackPlans:
    """Plans a stack the first time it is asked for and keeps the result; hands out copies of the resources."""

    def __init__(self) -> None:
        self._plans: dict[str, tuple[StackConfig, list[RecordedResource]]] = {}

    def copy_of(self, stack: str) -> PlannedStack:
        if stack not in self._plans:
            from infra.cli.plan import run_program

            self._plans[stack] = run_program(stack)
        config, resources = self._plans[stack]
        return PlannedStack(stack, config, copy.deepcopy(resources))
