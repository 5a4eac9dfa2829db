"""The layout is the architecture: each package imports only from the layers below it.

Bottom to top: `configkit` (the config-key type and message helpers both config readers share), `staging` (the
weight-staging tool), `serve_app` (what is served), `infra.catalog` (machine facts), `infra.planning` (capacity,
sizing, cost arithmetic), `infra.config` (stack files, typed config, validation), `infra.render` (pure
renderers), `infra.components` (Pulumi resources), `infra.cli` (commands), and `local_run` (the local CPU runner)
on top. Read from the source with `ast`, nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = (
    "configkit",
    "staging",
    "serve_app",
    "infra.catalog",
    "infra.planning",
    "infra.config",
    "infra.render",
    "infra.components",
    "infra.cli",
    "local_run",
)
PACKAGES = ("configkit", "staging", "serve_app", "infra", "local_run")


def _layer(module: str) -> int | None:
    matches = [index for index, layer in enumerate(LAYERS) if module == layer or module.startswith(layer + ".")]
    return matches[-1] if matches else None


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    return modules


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


MODULES = _modules()


def test_every_module_belongs_to_a_layer():
    assert MODULES, "no modules found"
    assert [name for name in MODULES if _layer(name) is None] == ["infra", "infra.__main__"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_runs_from_a_lower_layer_back_up(module):
    own = _layer(module)
    if own is None:
        return
    upward = sorted(name for name in _imports(MODULES[module]) if (other := _layer(name)) is not None and other > own)
    assert not upward, f"{module} ({LAYERS[own]}) imports {upward}, which sit above it"


def test_serve_app_imports_nothing_from_infra_or_the_local_runner():
    offenders = {
        module: sorted(name for name in _imports(path) if name.split(".")[0] in ("infra", "local_run"))
        for module, path in MODULES.items()
        if module.startswith("serve_app")
    }
    assert not {module: names for module, names in offenders.items() if names}


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """The check itself can fail: a renderer that imports a component is caught."""
    module = tmp_path / "bad.py"
    module.write_text("from infra.components.serving import LlmService\n")
    assert _layer("infra.render.bad") < max(_layer(name) for name in _imports(module))
