"""The shipped stacks' offline plans, for the tests, made once per test session and handed out as copies, so
that no test sees what another one changed:

- `StackPlans`: each stack's real program under Pulumi's mocks (`infra.cli.plan.run_program`, preview=False,
  so no check is silently skipped). Every test gets its own deep copy of the resources; the parsed config is
  shared, as it is frozen all the way down (tests/project/test_fixtures.py checks that it stays so).
- `PlanCommandRuns`: `python -m infra plan <stack> --out <folder>` run in-process, for the tests of the
  command and of what it writes. Every test gets its own copy of the folder.
- `VariantPlans`: a shipped stack's program run with some of its config values replaced, the way an operator's
  edit to the stack file would (for `plan --against` scenarios). Each variant is planned once per session.

Pulumi is imported only when a stack is planned: the e2e tier loads the conftest files without it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from infra.cli.plan import RecordedResource
    from infra.config.settings import StackConfig

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


@dataclass(frozen=True)
class PlanOutput:
    """What `python -m infra plan <stack> --out <folder>` left: the folder (resources.json, manifests.yaml,
    capacity.json) and the summary it printed."""

    folder: Path
    summary: str


class PlanCommandRuns:
    """Runs the plan command for a stack the first time it is asked for; hands out copies of its folder."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp_path_factory = tmp_path_factory
        self._runs: dict[str, PlanOutput] = {}

    def copy_of(self, stack: str) -> PlanOutput:
        if stack not in self._runs:
            from infra.cli.main import main

            folder = self._tmp_path_factory.mktemp(f"plan-{stack}")
            summary = io.StringIO()
            with contextlib.redirect_stdout(summary):
                code = main(["plan", stack, "--out", str(folder)])
            assert code == 0, f"python -m infra plan {stack} exited {code}:\n{summary.getvalue()}"
            self._runs[stack] = PlanOutput(folder, summary.getvalue())
        run = self._runs[stack]
        copied = self._tmp_path_factory.mktemp(f"plan-{stack}-copy")
        shutil.copytree(run.folder, copied, dirs_exist_ok=True)
        return PlanOutput(copied, run.summary)


@dataclass(frozen=True)
class VariantPlan:
    """A variant's parsed config and its resources as resources.json holds them (sorted by name, then type)."""

    config: StackConfig
    resources: list[dict]


class VariantPlans:
    """Plans stack variants on first use and keeps them; hands out copies of the resources."""

    def __init__(self) -> None:
        self._plans: dict[tuple[str, str], VariantPlan] = {}

    @staticmethod
    def values(stack: str) -> dict[str, str]:
        """The stack's config values as the Pulumi CLI passes them (lists and maps as JSON text)."""
        from infra.config.stackfiles import stack_config

        return dict(stack_config(stack)[0])

    def plan(self, stack: str, overrides: dict[str, str]) -> VariantPlan:
        key = (stack, json.dumps(overrides, sort_keys=True))
        if key not in self._plans:
            import pytest

            from infra.cli import plan as plan_module
            from infra.config.stackfiles import stack_config

            values, secret_keys = stack_config(stack)
            values = {**values, **overrides}
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(plan_module, "stack_config", lambda name, root: (values, secret_keys))
                config, resources = plan_module.run_program(stack)
            recorded = sorted((r.as_json() for r in resources), key=lambda r: (r["name"], r["type"]))
            self._plans[key] = VariantPlan(config, recorded)
        planned = self._plans[key]
        return VariantPlan(planned.config, copy.deepcopy(planned.resources))
