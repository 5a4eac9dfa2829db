"""The configuration reference (docs/configuration.md) and Pulumi.yaml are generated from the key tables and current."""

from __future__ import annotations

import shutil
import subprocess
import sys

import yaml

from infra.config.keys import CONFIG_KEYS, PROVIDER_KEYS
from infra.config.reference import COMMAND, generated_files, main, stale_files
from infra.config.stackfiles import PROJECT_ROOT
from serve_app.spec import KEYS as MODEL_KEYS

REFERENCE = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
STACK_PART, MODELS_PART = REFERENCE.split("## The keys of a `models` entry")


def test_the_reference_and_pulumi_yaml_are_current():
    stale = [str(path) for path in stale_files()]
    assert not stale, f"{', '.join(stale)} out of date with the key tables: run `{COMMAND}`"


def test_the_check_names_a_stale_file_and_the_command_that_fixes_it(tmp_path, capsys):
    for relative in generated_files():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / relative, tmp_path / relative)
    assert main(["--check"], root=tmp_path) == 0
    pulumi_yaml = tmp_path / "Pulumi.yaml"
    pulumi_yaml.write_text(pulumi_yaml.read_text().replace("default: 2\n", "default: 3\n", 1))
    assert main(["--check"], root=tmp_path) == 1
    assert capsys.readouterr().err == (f"Pulumi.yaml is out of date with the key tables; run `{COMMAND}`\n")
    assert main([], root=tmp_path) == 0 and stale_files(tmp_path) == []
    assert pulumi_yaml.read_text() == (PROJECT_ROOT / "Pulumi.yaml").read_text()


def test_the_command_runs_as_documented():
    result = subprocess.run(
        [sys.executable, "-m", "infra.config.reference", "--check"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stderr


def test_every_key_has_a_row_with_its_type_default_range_secret_and_description():
    for key in (*PROVIDER_KEYS, *CONFIG_KEYS):
        assert STACK_PART.count(f"| `{key.name}` |") == 1, key.name
    for key in MODEL_KEYS:
        assert MODELS_PART.count(f"| `{key.name}` |") == 1, key.name
    assert (
        "| `gpuNodeCount` | integer | 2 | 0 to 1000 (GKE allows at most 1000 nodes per node pool and zone) | no "
        "| Static number of GPU nodes (used when gpuAutoscaling is false). |"
    ) in REFERENCE
    assert '| `releaseChannel` | string | "REGULAR" | RAPID, REGULAR, STABLE, EXTENDED | no |' in REFERENCE
    assert '| `gpuHostMaintenanceInterval` | string | "" | "", AS_NEEDED, PERIODIC | no |' in REFERENCE
    assert "| `apiKey` | string | unset |  | yes |" in REFERENCE
    assert "| `masterAuthorizedNetworks` | list of strings | required |  | no |" in REFERENCE
    assert "| `gcp:project` | string | required |  |" in REFERENCE
    assert "| `gpuMemoryUtilization` | number | vLLM's, or the preset's | > 0 and <= 1 |" in REFERENCE


def test_pulumi_yaml_keeps_the_defaults_the_program_reads():
    """The offline plan reads these defaults; they are the values the stacks were planned with."""
    declared = yaml.safe_load((PROJECT_ROOT / "Pulumi.yaml").read_text())["config"]
    assert {name: declaration["default"] for name, declaration in declared.items() if "default" in declaration} == {
        key.name: key.default for key in CONFIG_KEYS if key.default is not None and not key.secret
    }
    assert (
        declared["gpuNodeCount"]["default"],
        declared["releaseChannel"]["default"],
        declared["serveSourceRanges"]["default"],
        declared["gpuReservation"]["default"],
    ) == (2, "REGULAR", [], "")


def test_the_reference_lists_the_sections_in_the_order_of_pulumi_yaml():
    headings = [line for line in REFERENCE.splitlines() if line.startswith("#")]
    assert headings == [
        "# Configuration reference",
        "## Provider keys",
        "## Project keys (`llmserve:`)",
        "### GPU node pool",
        "### Cluster",
        "### Address ranges",
        "### Serving",
        "### Secure defaults and capacity",
        "### Model weights",
        "### Alerts",
        "### GCS fault tolerance",
        "### Tenants and admission",
        "## The keys of a `models` entry",
    ]
