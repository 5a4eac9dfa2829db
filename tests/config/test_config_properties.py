"""Property-based tests: random and adversarial stack files end in the config error or a valid config, never in
another exception.

Four generators, about 1,240 examples per run in total (the `EXAMPLES` table):
- `test_mutated_stack_files_...`: the project's own stacks with one to four mutations each: a wrong type at any
  leaf (numbers huge, negative and non-finite, booleans, null, unicode and YAML-1.1-looking strings, lists,
  maps), keys deleted, extra and misspelt keys added, empty and duplicate lists, overlapping CIDRs, repeated
  models; written out as YAML and read back through infra/config/stackfiles.py and infra/config/stack.py (no engine);
- `test_damaged_stack_text_...`: the stack files' text with random edits (YAML syntax characters, tabs,
  unicode, lines duplicated or dropped), for the parser's own errors;
- `test_typed_values_...`: `parse_stack_config` called directly with any value, typed or text, for any key, as
  a program that builds the values itself would;
- `test_the_plan_command_...`: 40 mutated stacks through the real `python -m infra plan`, in-process, which
  must exit 0 with both files written or 2 with the problems on stderr and nothing written.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from infra.cli.main import main
from infra.cli.plan import PROJECT_ROOT
from infra.config.errors import ConfigError
from infra.config.keys import CONFIG_KEYS
from infra.config.settings import StackConfig
from infra.config.stack import config_from_map, parse_stack_config
from infra.config.stackfiles import StackFileError, stack_config

EXAMPLES = {"mutated": 600, "damaged": 300, "typed": 300, "plan": 40}
STACKS = ("dev", "staging", "prod")
BASES = {stack: yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text()) for stack in STACKS}
TEXTS = {stack: (PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text() for stack in STACKS}
COMMON = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

CIDRS = [
    "10.0.0.0/20",
    "10.0.0.0/8",
    "10.4.0.0/14",
    "10.0.32.0/20",
    "172.16.0.32/28",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "192.168.0.0/27",
    "0.0.0.0/0",
    "203.0.113.0/24",
    "10.0.0.1/20",
    "fd00::/64",
    "300.0.0.0/8",
]
ZONES = ["us-central1-a", "us-east4-a", "us-east4-b", "europe-west4-c", "us-east4", "US-EAST4-A"]
STRINGS = [
    "yes",
    "no",
    "on",
    "off",
    "y",
    "~",
    "null",
    "0x10",
    "0o17",
    "1e3",
    ".inf",
    ".nan",
    "",
    " ",
    "true",
    "TRUE",
    "False",
    "2026-11-01T00:00:00Z",
    "é",
    "日本語",
    "\u202e",
    "\U0001f600",
    "a" * 300,
    "[secret]",
    "a3-megagpu-8g",
    "g2-standard-24",
    "H100",
    "L4",
    "REGULAR",
    "Recreate",
    "external",
    "-1",
    "1.5",
]
KEY_NAMES = [key.name for key in CONFIG_KEYS] + ["gpuMachinetype", "gpunodecount", "foo", ""]
MODEL_KEYS = [
    "id",
    "source",
    "acceleratorType",
    "tensorParallelSize",
    "pipelineParallelSize",
    "minReplicas",
    "maxReplicas",
    "initialReplicas",
    "targetOngoingRequests",
    "maxModelLen",
    "gpuMemoryUtilization",
    "engineKwargs",
    "envVars",
    "preset",
    "prefixCacheRouting",
    "tensor_parallel_size",
    "bogus",
]

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2, 8, 16, 1000, 1001, 2**31, 2**63 - 1, 2**63, 2**64, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 1.0, 8.0, -0.0, 1e21, 1e308, float("inf"), float("-inf"), float("nan")]),
)
scalars = st.one_of(
    numbers, st.booleans(), st.none(), st.sampled_from(STRINGS), st.text(max_size=12), st.sampled_from(CIDRS + ZONES)
)
leaves = st.deferred(lambda: _leaves).map(copy.deepcopy)  # a fresh object each draw: `just` shares its value
_leaves = st.one_of(
    scalars,
    st.just([]),
    st.just({}),
    st.just({"secure": "v1:AAAAencrypted"}),  # encrypted, anywhere
    st.lists(st.sampled_from(CIDRS + ZONES), max_size=4),  # overlapping and duplicate entries
    st.lists(scalars, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=6), st.integers(), st.booleans()), scalars, max_size=3),
)
# Values each key may well have, so that many mutated stacks stay valid and the rules between keys are reached.
PLAUSIBLE = {
    f"llmserve:{name}": values
    for name, values in {
        "gpuNodeCount": [0, 1, 2, 3, 4],
        "gpuAutoscaling": [True, False],
        "gpuMinNodes": [0, 1, 2],
        "gpuMaxNodes": [0, 1, 2, 4],
        "gpuCompactPlacement": [True, False],
        "gpuDirect": [True, False],
        "gpuSpot": [True, False],
        "gpuFlexStart": [True, False],
        "gpuQueuedProvisioning": [True, False],
        "gpuNetworkCount": [0, 4, 8],
        "gpuReservation": ["", "res-1", "res-1/reservationBlocks/block-1"],
        "regionalCluster": [True, False],
        "releaseChannel": ["RAPID", "STABLE"],
        "kubernetesVersion": ["", "1.33", "1.33.5-gke.1080000"],
        "serveExposure": ["cluster", "internal", "external"],
        "apiAuth": [True, False],
        "cpuWorkers": [0, 1, 2],
        "serveSourceRanges": [[], ["10.8.0.0/16"], ["10.8.0.0/16"] * 2],
        "masterAuthorizedNetworks": [["198.18.0.0/24"], ["0.0.0.0/0"], ["198.18.0.0/24", "198.19.0.0/24"]],
        "allowOpenControlPlane": [True, False],
        "podsCidr": ["10.4.0.0/14", "10.0.0.0/14", "10.64.0.0/14"],
        "servicesCidr": ["10.0.32.0/20", "10.0.0.0/20"],
        "gpuNetworksCidr": ["192.168.0.0/16", "10.0.0.0/16"],
        "rayClusterUpgrade": ["NewCluster", "Recreate"],
        "rayImage": ["", "rayproject/ray-llm:2.60.0"],
        "gpuMachineType": ["a3-highgpu-8g", "a3-megagpu-8g", "g2-standard-24"],
        "gpuZones": [["us-east4-a"], ["us-east4-a", "us-east4-b"], ["us-central1-a"]],
        "deletionProtection": [True, False],
        "nodeUpgradeFreeze": [True, False],
    }.items()
}
PLAUSIBLE.update({"gcp:region": ["us-east4", "us-central1"], "gcp:project": ["my-gcp-project", "p"]})

namespaced_keys = st.one_of(
    st.sampled_from(KEY_NAMES).map(lambda name: f"llmserve:{name}"),
    st.sampled_from(KEY_NAMES).map(lambda name: f"llmserv:{name}"),
    st.sampled_from(KEY_NAMES),  # no namespace
    st.sampled_from(
        [
            "gcp:project",
            "gcp:region",
            "gcp:zone",
            "gcp:credentials",
            "kubernetes:context",
            "pulumi:tags",
            "random:x",
            "aws:region",
        ]
    ),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _parent(doc: Any, path: tuple) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


@st.composite
def mutated_stacks(draw) -> Any:
    stack = draw(st.sampled_from(STACKS))
    doc = copy.deepcopy(BASES[stack])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        action = draw(
            st.sampled_from(
                [
                    "plausible",
                    "plausible",
                    "plausible",
                    "replace",
                    "replace",
                    "delete",
                    "add",
                    "add_model_key",
                    "repeat_models",
                    "empty_models",
                    "replace_top",
                ]
            )
        )
        config = doc.get("config") if isinstance(doc, dict) else None
        if action == "replace_top":
            doc = draw(st.one_of(leaves, st.just({"config": draw(leaves)})))
        elif not isinstance(config, dict):
            continue
        elif action == "plausible":
            key = draw(st.sampled_from(sorted(PLAUSIBLE)))
            config[key] = copy.deepcopy(draw(st.sampled_from(PLAUSIBLE[key])))
        elif action == "add":
            config[draw(namespaced_keys)] = draw(leaves)
        elif action in ("repeat_models", "empty_models", "add_model_key"):
            models = config.get("llmserve:models")
            if action == "empty_models" or not isinstance(models, list):
                config["llmserve:models"] = copy.deepcopy(draw(st.sampled_from([[], None, {}, [None]])))
            elif action == "repeat_models":
                config["llmserve:models"] = models + copy.deepcopy(models)
            elif models and isinstance(models[0], dict):
                models[0][draw(st.sampled_from(MODEL_KEYS))] = draw(leaves)
        else:
            paths = [path for path in _paths(config) if path]
            if not paths:
                continue
            path = draw(st.sampled_from(paths))
            parent = _parent(config, path)
            if action == "delete":
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(leaves)
    return doc


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _outcome(root: Path, stack: str) -> Any:
    """The config error, or the parsed config; any other exception fails the test."""
    try:
        config, secret_keys = stack_config(stack, root)
        parsed = config_from_map(stack, config, secret_keys)
        event("valid config")
        return parsed
    except (StackFileError, ConfigError) as error:
        event(type(error).__name__)
        assert str(error).strip(), "an error without a message"
        assert "Traceback" not in str(error)
        return error


def _check_valid(config: StackConfig) -> None:
    """What a valid config promises the components, beyond "no exception"."""
    pool, network = config.gpu_pool, config.network
    assert len(network.gpu_subnet_cidrs) == pool.gpu_network_count
    assert all(zone.startswith(config.region + "-") for zone in pool.zones)
    assert 0 <= pool.node_count <= 1000 and pool.min_nodes >= 0 and pool.max_nodes <= 1000
    pool_gpus = pool.machine.gpu_count * pool.max_gpu_nodes
    for model in config.serving.models:
        assert pool.machine.gpu_count % model.tensor_parallel_size == 0
        assert model.gpus_per_replica * max(model.min_replicas, 1) <= pool_gpus
        for value in (model.gpu_memory_utilization, model.target_ongoing_requests):
            assert value is None or math.isfinite(value)
    json.dumps([model.model_id for model in config.serving.models])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stacks")
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    return root


@settings(COMMON, max_examples=EXAMPLES["mutated"])
@given(doc=mutated_stacks())
def test_mutated_stack_files_end_in_the_config_error_or_a_valid_config(scratch, doc):
    (scratch / "Pulumi.fuzz.yaml").write_text(_dump(doc), encoding="utf-8")
    outcome = _outcome(scratch, "fuzz")
    if isinstance(outcome, StackConfig):
        _check_valid(outcome)


_YAML_BITS = st.sampled_from(
    [
        ":",
        "-",
        " ",
        "  ",
        "\t",
        "\n",
        "[",
        "]",
        "{",
        "}",
        "#",
        "&a",
        "*a",
        "!",
        "!!int ",
        "|",
        ">",
        "'",
        '"',
        "%",
        "@",
        "`",
        ",",
        "?",
        "<<: ",
        "~",
        "yes",
        "é",
        "\u2028",
        "\x00",
        "\ufeff",
        "secure: ",
        "llmserve:",
        "gpuNodeCount: -1",
    ]
)


@st.composite
def damaged_texts(draw) -> str:
    lines = TEXTS[draw(st.sampled_from(STACKS))].splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        action = draw(st.sampled_from(["insert", "insert", "drop", "repeat", "swap"]))
        if action == "insert":
            line = lines[index]
            at = draw(st.integers(min_value=0, max_value=len(line)))
            bit = draw(st.one_of(_YAML_BITS, st.text(max_size=4)))
            lines[index] = line[:at] + bit + line[at:]
        elif action == "drop" and len(lines) > 1:
            del lines[index]
        elif action == "repeat":
            lines.insert(index, lines[index])
        else:
            other = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
    return "".join(lines)


@settings(COMMON, max_examples=EXAMPLES["damaged"])
@given(text=damaged_texts())
def test_damaged_stack_text_ends_in_the_config_error_or_a_valid_config(scratch, text):
    (scratch / "Pulumi.fuzz.yaml").write_bytes(text.encode("utf-8", "surrogatepass"))
    outcome = _outcome(scratch, "fuzz")
    if isinstance(outcome, StackConfig):
        _check_valid(outcome)


@settings(COMMON, max_examples=EXAMPLES["typed"])
@given(
    values=st.dictionaries(st.sampled_from(KEY_NAMES), st.one_of(leaves, leaves.map(json.dumps)), max_size=12),
    gcp=st.fixed_dictionaries(
        {
            "project": st.one_of(st.sampled_from(["my-gcp-project"]), scalars),
            "region": st.one_of(st.sampled_from(["us-east4"]), scalars),
        }
    ),
    base=st.sampled_from(STACKS),
)
def test_typed_values_end_in_the_config_error_or_a_valid_config(values, gcp, base):
    config = BASES[base]["config"]
    merged = {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith("llmserve:")}
    merged.update(values)
    try:
        outcome = parse_stack_config("typed", merged, gcp)
        event("valid config")
    except ConfigError as error:
        event("ConfigError")
        assert error.problems and all(isinstance(problem, str) and problem for problem in error.problems)
    else:
        _check_valid(outcome)


@pytest.fixture(scope="module")
def plan_project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    return root


@settings(COMMON, max_examples=EXAMPLES["plan"])
@given(doc=mutated_stacks())
def test_the_plan_command_exits_0_with_a_plan_or_2_with_the_problems(plan_project, capsys, doc):
    (plan_project / "Pulumi.fuzz.yaml").write_text(_dump(doc), encoding="utf-8")
    out = plan_project / "out"
    code = main(["plan", "fuzz", "--out", str(out)], root=plan_project)
    captured = capsys.readouterr()
    event(f"exit {code}")
    if code == 0:
        assert json.loads((out / "resources.json").read_text()), "an empty plan"
        assert list(yaml.safe_load_all((out / "manifests.yaml").read_text()))
        assert "Offline plan of stack 'fuzz'" in captured.out
    else:
        assert code == 2, captured.err
        assert captured.err.startswith("error: stack 'fuzz': ") and "Traceback" not in captured.err
        assert not (out / "resources.json").exists() and not (out / "manifests.yaml").exists()
