"""Tests share code through fixtures only, and the shared fixtures keep their promise: a test can change what it
was handed without another test seeing it.

No test module imports another test module, a conftest or tests/support: what they share is code under
tests/support that the conftest files hand out as fixtures (`pytest --fixtures` lists them). The stacks are
planned once per session (conftest.py, tests/support/plans.py): each test gets a deep copy of the resources,
and the parsed config, which is shared, is frozen all the way down. The plan command runs once per stack
(tests/conftest.py): each test gets a copy of its folder.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import json
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST_FOLDERS = (ROOT / "tests", ROOT / "policy" / "tests")


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
    assert (plan_command_runs.copy_of("dev").folder / "resources.json").read_text() == (
        theirs.folder / "resources.json"
    ).read_text()


def _mutable_parts(value, path: str) -> list[str]:
    """The paths under `value` that a test could change in place."""
    if isinstance(value, (str, bytes, int, float, bool, type(None), enum.Enum)):
        return []
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        own = [] if value.__dataclass_params__.frozen else [f"{path} ({type(value).__name__} is not frozen)"]
        return own + [
            part
            for field in dataclasses.fields(value)
            for part in _mutable_parts(getattr(value, field.name), f"{path}.{field.name}")
        ]
    if isinstance(value, types.MappingProxyType):
        return [part for key, item in value.items() for part in _mutable_parts(item, f"{path}[{key!r}]")]
    if isinstance(value, (tuple, frozenset)):
        return [part for index, item in enumerate(value) for part in _mutable_parts(item, f"{path}[{index}]")]
    return [f"{path} ({type(value).__name__})"]


def test_the_shared_config_is_frozen_all_the_way_down(stack, planned):
    assert _mutable_parts(planned(stack).config, "config") == [], (
        "tests share the parsed config: freeze these fields or copy the config in tests/support/plans.py"
    )


def test_the_frozen_check_finds_a_mutable_part():
    @dataclasses.dataclass(frozen=True)
    class Holder:
        names: list

    assert _mutable_parts(Holder(names=[]), "holder") == ["holder.names (list)"]


# --- no test module imports another ------------------------------------------------------------------------------


def _test_modules() -> list[Path]:
    return sorted(path for folder in TEST_FOLDERS for path in folder.rglob("test_*.py"))


def _suite_module_names() -> set[str]:
    """Every name under which a module of the test folders could be imported: test modules, conftests, support."""
    names = {"tests", "support", "conftest"}
    for folder in TEST_FOLDERS:
        names.update(path.stem for path in folder.rglob("*.py"))
    return names


def _imports_from_the_suite(source: str, suite: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] in suite]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append("." * node.level + (node.module or ""))
            elif node.module and node.module.split(".")[0] in suite:
                found.append(node.module)
    return found


@pytest.mark.parametrize("path", _test_modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_test_module_imports_another_a_conftest_or_the_support_code(path):
    imported = _imports_from_the_suite(path.read_text(encoding="utf-8"), _suite_module_names())
    assert not imported, f"{path.relative_to(ROOT)} imports {imported}: ask for a fixture instead (conftest.py)"


def test_the_import_check_sees_a_test_module_import():
    source = "from test_platform import planned\nimport tests.support.plans\nfrom . import helpers\nimport yaml\n"
    assert _imports_from_the_suite(source, _suite_module_names()) == ["test_platform", "tests.support.plans", "."]
