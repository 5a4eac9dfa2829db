"""Stack files read as the Pulumi CLI reads them (YAML 1.2, scalars as their text), and every malformed file
ending in a clear error (exit 2), never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from infra.cli.main import main
from infra.cli.plan import PROJECT_ROOT
from infra.config.stackfiles import SECRET, StackFileError, stack_config


def _project(tmp_path: Path, stack_text: str, stack: str = "t") -> Path:
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(stack_text, encoding="utf-8")
    return tmp_path


def _values(tmp_path: Path, stack_text: str) -> dict[str, str]:
    return stack_config("t", _project(tmp_path, stack_text))[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("yes", "yes"),
        ("on", "on"),
        ("off", "off"),
        ("no", "no"),
        ("y", "y"),  # YAML 1.1 booleans: strings
        ("true", "true"),
        ("0x10", "0x10"),
        ("1_000", "1_000"),
        ("2.0", "2.0"),
        ("'3'", "3"),
        ("2026-11-01T00:00:00Z", "2026-11-01T00:00:00Z"),
        ("", ""),
        ("~", ""),
        ('"é ü 日本"', "é ü 日本"),
    ],
)
def test_a_top_level_scalar_reaches_the_program_as_its_text(tmp_path, text, expected):
    values = _values(tmp_path, f"config:\n  llmserve:gpuReservation: {text}\n")
    assert values["llmserve:gpuReservation"] == expected


def test_nested_scalars_follow_the_yaml_1_2_core_schema(tmp_path):
    values = _values(
        tmp_path,
        "config:\n  llmserve:models:\n    - a: yes\n      b: True\n      c: 0o17\n"
        "      d: 0x1f\n      e: 8.0\n      f: ~\n      g: 1.5e3\n      h: 2026-01-01\n"
        "      i: 99999999999999999999\n      j: !!str 12\n",
    )
    assert json.loads(values["llmserve:models"]) == [
        {"a": "yes", "b": True, "c": 15, "d": 31, "e": 8, "f": None, "g": 1500, "h": "2026-01-01", "i": 1e20, "j": "12"}
    ]


def test_encrypted_values_are_marked_secret_even_inside_a_structure(tmp_path):
    config, secrets = stack_config(
        "t",
        _project(
            tmp_path,
            (
                "config:\n  llmserve:apiKey:\n    secure: v1:abc\n"
                "  llmserve:models:\n    - id: x\n      envVars:\n        A:\n          secure: v1:def\n"
            ),
        ),
    )
    assert config["llmserve:apiKey"] == SECRET
    assert json.loads(config["llmserve:models"])[0]["envVars"]["A"] == SECRET
    assert secrets == ["llmserve:apiKey", "llmserve:models"]


MALFORMED = [
    ("top level a list", "- config: {}\n", r"the top level must be a map"),
    ("top level a scalar", "hello\n", r"the top level must be a map"),
    ("config a list", "config:\n  - llmserve:gpuNodeCount: 3\n", r"`config:` must be a map"),
    ("config a string", "config: text\n", r"`config:` must be a map"),
    (
        "key without namespace",
        "config:\n  gpuNodeCount: 3\n",
        r"config key 'gpuNodeCount' is not of the form <namespace>:<key>.*llmserve:gpuNodeCount.*namespaces "
        r"llmserve:, gcp:, kubernetes:, random:, pulumi:",
    ),
    ("non-string key", "config:\n  1: 3\n", r"keys must be strings; found '1' \(int\)"),
    ("null key", "config:\n  ~: 3\n", r"keys must be strings"),
    ("list as key", "config:\n  ? [a]\n  : 3\n", r"keys must be strings; found a list"),
    (
        "duplicate key",
        "config:\n  llmserve:gpuNodeCount: 3\n  llmserve:gpuNodeCount: 4\n",
        r"line 3: duplicate key 'llmserve:gpuNodeCount' \(first on line 2\)",
    ),
    ("duplicate nested key", "config:\n  llmserve:models:\n    - id: a\n      id: b\n", r"duplicate key 'id'"),
    (
        "infinity inside a structure",
        "config:\n  llmserve:models:\n    - maxModelLen: .inf\n",
        r"llmserve:models\[0\]\.maxModelLen, line 3: \.inf inside a list or map, which the Pulumi CLI cannot pass",
    ),
    ("nan inside a structure", "config:\n  llmserve:models: [.nan]\n", r"models\[0\], line 2: \.nan inside"),
    ("recursive alias", "config:\n  llmserve:models: &a [*a]\n", r"refers to itself"),
    ("merge key", "config:\n  llmserve:models:\n    - <<: {id: a}\n", r"merge keys"),
    ("unknown tag", "config:\n  llmserve:gpuNodeCount: !custom 3\n", r"unsupported YAML tag"),
    ("wrong explicit tag", "config:\n  llmserve:models: [!!int abc]\n", r"'abc' is not a valid !!int"),
    ("wrong explicit tag at the top", "config:\n  llmserve:gpuNodeCount: !!int abc\n", r"'abc' is not a valid !!int"),
    ("not yaml", "config: [\n", r"not valid YAML"),
    ("two documents", "config: {}\n---\nconfig: {}\n", r"not valid YAML"),
    ("tab indentation", "config:\n\tllmserve:gpuNodeCount: 3\n", r"not valid YAML"),
]


@pytest.mark.parametrize("case, text, message", MALFORMED, ids=[case for case, _, _ in MALFORMED])
def test_malformed_stack_files_are_refused_with_the_file_and_the_fix(tmp_path, case, text, message):
    with pytest.raises(StackFileError, match=message):
        _values(tmp_path, text)


def test_invalid_utf8_is_a_stack_file_error(tmp_path):
    root = _project(tmp_path, "")
    (root / "Pulumi.t.yaml").write_bytes(b"config:\n  llmserve:gpuReservation: \xff\xfe\n")
    with pytest.raises(StackFileError, match="not valid YAML"):
        stack_config("t", root)


def test_a_malformed_pulumi_yaml_is_a_stack_file_error(tmp_path):
    root = _project(tmp_path, "config: {}\n")
    (root / "Pulumi.yaml").write_text("name: llmserve\nconfig:\n  - gpuNodeCount\n")
    with pytest.raises(StackFileError, match=r"Pulumi.yaml.*`config:` must be a map"):
        stack_config("t", root)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "config:\n",
        "config: {}\n",
        "config:\n  llmserve:models:\n",
        "config:\n  llmserve:models: []\n",
        "- 1\n",
        "config:\n  gpuNodeCount: 3\n",
    ],
)
def test_the_plan_command_exits_2_on_an_empty_or_malformed_stack(tmp_path, capsys, text):
    root = _project(tmp_path, text)
    assert main(["plan", "t"], root=root) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: stack 't': ") and "Traceback" not in err, err
