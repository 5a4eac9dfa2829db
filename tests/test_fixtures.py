"""The shared fixtures keep their promise: a test can change what it was handed without another test seeing it.

The stacks are planned once per session (conftest.py, tests/support/plans.py); each test gets a deep copy of
the resources, and the parsed config, which is shared, is frozen all the way down. The plan command runs once
per stack (tests/conftest.py); each test gets a copy of its folder.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types


def test_a_change_to_a_planned_resource_stays_with_the_copy_it_was_made_on(stack_plans):
    mine, theirs = stack_plans.copy_of("dev"), stack_plans.copy_of("dev")
    assert mine.resources == theirs.resources and mine.resources is not theirs.resources
    mine.resources[0].inputs["changed-by-a-test"] = True
    mine.resources.pop()
    assert "changed-by-a-test" not in theirs.resources[0].inputs
    assert len(stack_plans.copy_of("dev").resources) == len(theirs.resources) == len(mine.resources) + 1


def test_one_test_gets_one_copy_per_stack(planned, plan_output):
    assert planned("dev") is planned("dev") and planned("dev") is not planned("prod")
    assert plan_output("dev") is plan_output("dev") and plan_output("dev") is not plan_output("prod")


def test_a_change_to_the_plan_commands_folder_stays_with_the_copy_it_was_made_on(plan_command_runs):
    mine, theirs = plan_command_runs.copy_of("dev"), plan_command_runs.copy_of("dev")
    assert mine.folder != theirs.folder and mine.summary == theirs.summary
    assert sorted(path.name for path in mine.folder.iterdir()) == ["capacity.json", "manifests.yaml", "resources.json"]
    (mine.folder / "resources.json").write_text("[]")
    assert json.loads((theirs.folder / "resources.json").read_text()) != []
    assert (plan_command_runs.copy_of("dev").folder / "resources.json").read_text() == \
        (theirs.folder / "resources.json").read_text()


def _mutable_parts(value, path: str) -> list[str]:
    """The paths under `value` that a test could change in place."""
    if isinstance(value, (str, bytes, int, float, bool, type(None), enum.Enum)):
        return []
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        own = [] if value.__dataclass_params__.frozen else [f"{path} ({type(value).__name__} is not frozen)"]
        return own + [part for field in dataclasses.fields(value)
                      for part in _mutable_parts(getattr(value, field.name), f"{path}.{field.name}")]
    if isinstance(value, types.MappingProxyType):
        return [part for key, item in value.items() for part in _mutable_parts(item, f"{path}[{key!r}]")]
    if isinstance(value, (tuple, frozenset)):
        return [part for index, item in enumerate(value) for part in _mutable_parts(item, f"{path}[{index}]")]
    return [f"{path} ({type(value).__name__})"]


def test_the_shared_config_is_frozen_all_the_way_down(stack, planned):
    assert _mutable_parts(planned(stack).config, "config") == [], \
        "tests share the parsed config: freeze these fields or copy the config in tests/support/plans.py"


def test_the_frozen_check_finds_a_mutable_part():
    @dataclasses.dataclass(frozen=True)
    class Holder:
        names: list

    assert _mutable_parts(Holder(names=[]), "holder") == ["holder.names (list)"]
