"""`python -m infra plan <stack>`: the files reviewers' tooling reads, and its exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from infra.cli.main import main
from infra.cli.plan import PROJECT_ROOT


@pytest.fixture
def prod_plan(plan_output):
    return plan_output("prod").folder


def test_resources_json_has_one_object_per_resource_with_the_agreed_keys(prod_plan):
    resources = json.loads((prod_plan / "resources.json").read_text())
    assert isinstance(resources, list) and resources
    for resource in resources:
        assert list(resource) == ["type", "name", "parent", "inputs"], resource
    names = {resource["name"] for resource in resources}
    dangling = [r["name"] for r in resources if r["parent"] is not None and r["parent"] not in names]
    assert not dangling, f"parents that are not in the plan: {dangling}"
    node_pool = next(r for r in resources if r["name"] == "llm-gpu" and r["type"].endswith(":NodePool"))
    assert node_pool["parent"] == "llm-gpu" and node_pool["inputs"]["nodeConfig"]["machineType"] == "a3-megagpu-8g"


def test_manifests_yaml_holds_api_server_shaped_objects(prod_plan):
    manifests = list(yaml.safe_load_all((prod_plan / "manifests.yaml").read_text()))
    assert manifests
    for manifest in manifests:
        assert list(manifest)[:3] == ["apiVersion", "kind", "metadata"], manifest
    kinds = sorted({m["kind"] for m in manifests})
    assert {"DaemonSet", "GKENetworkParamSet", "Network"} <= set(kinds), kinds


def test_plan_output_is_byte_stable(prod_plan, tmp_path):
    assert main(["plan", "prod", "--out", str(tmp_path)]) == 0
    for name in ("resources.json", "manifests.yaml"):
        assert (tmp_path / name).read_bytes() == (prod_plan / name).read_bytes(), name


def test_summary_lists_gpus_gpudirect_and_warnings(capsys, tmp_path):
    assert main(["plan", "staging", "--out", str(tmp_path)]) == 0
    summary = capsys.readouterr().out
    assert "a3-highgpu-8g x 0-2 nodes (autoscaling), 8 x nvidia-h100-80gb per node, up to 16 GPUs" in summary, summary
    assert "GPUDirect: tcpx (4 GPU NIC networks)" in summary, summary
    assert "documentation range" in summary, summary


def _project_with(tmp_path: Path, stack: str, config: dict) -> Path:
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))
    return tmp_path


def test_invalid_config_exits_2_with_the_problem_on_stderr_and_writes_nothing(tmp_path, capsys):
    root = _project_with(
        tmp_path,
        "broken",
        {
            "gcp:project": "my-project",
            "gcp:region": "us-east4",
            "llmserve:gpuMachineType": "a3-megagpu-8g",
            "llmserve:gpuZones": ["us-west1-a"],
            "llmserve:masterAuthorizedNetworks": ["0.0.0.0/0"],
            "llmserve:models": [
                {
                    "id": "r1",
                    "source": "deepseek-ai/DeepSeek-R1",
                    "acceleratorType": "H100",
                    "revision": "56d4cbbb4d29f4355bab4b9a39ccb717a14ad5ad",
                    "tensorParallelSize": 8,
                    "pipelineParallelSize": 2,
                }
            ],
        },
    )
    assert main(["plan", "broken"], root=root) == 2
    err = capsys.readouterr().err
    assert "llmserve:gpuZones[0]: zone 'us-west1-a' is not in gcp:region 'us-east4'" in err, err
    assert "0.0.0.0/0 opens the control plane" in err, err
    assert not (root / "build").exists()


def test_unknown_stack_exits_2_and_lists_the_known_stacks(capsys):
    assert main(["plan", "nosuchstack"]) == 2
    err = capsys.readouterr().err
    assert "no stack file Pulumi.nosuchstack.yaml; known stacks: dev, prod, staging" in err, err


def _plan_with_secret(tmp_path: Path, base_stack: str, key: str) -> list[dict]:
    """Plan a copy of the project whose `base_stack` also sets the encrypted config value `key`."""
    stack = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{base_stack}.yaml").read_text())["config"]
    stack[key] = {"secure": "v1:AAAAencrypted"}
    work = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT, work, ignore=shutil.ignore_patterns(".venv*", "build", ".git", "__pycache__"))
    (work / "Pulumi.withsecret.yaml").write_text(yaml.safe_dump({"config": stack}))
    out = tmp_path / "out"
    assert main(["plan", "withsecret", "--out", str(out)], root=work) == 0
    return json.loads((out / "resources.json").read_text())


def test_encrypted_values_are_planned_as_redacted_secrets(tmp_path):
    resources = _plan_with_secret(tmp_path, "prod", "llmserve:apiKey")
    assert not [r for r in resources if r["type"] == "random:index/randomPassword:RandomPassword"], (
        "a configured apiKey must replace the generated one"
    )
    secret = next(r for r in resources if r["name"] == "llm-serve-api-key" and r["type"] == "kubernetes:v1:Secret")
    assert secret["inputs"]["stringData"] == {"keys": "[secret]"}


def test_a_configured_hf_token_reaches_the_gpu_workers_from_its_secret(tmp_path):
    resources = _plan_with_secret(tmp_path, "dev", "llmserve:hfToken")
    secret = next(r for r in resources if r["name"] == "llm-serve-hf-token")
    assert secret["inputs"]["stringData"] == {"token": "[secret]"}
    rayservice = next(r for r in resources if r["type"] == "kubernetes:ray.io/v1:RayService")
    for group in rayservice["inputs"]["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        env = {e["name"]: e for e in group["template"]["spec"]["containers"][0]["env"]}
        assert ("HF_TOKEN" in env) == (group["groupName"] != "cpu"), group["groupName"]


def test_a_failed_plan_removes_the_earlier_plan_so_nothing_out_of_date_is_left(tmp_path, capsys):
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copy(PROJECT_ROOT / "Pulumi.dev.yaml", root / "Pulumi.dev.yaml")
    shutil.copy(PROJECT_ROOT / "__main__.py", root / "__main__.py")
    assert main(["plan", "dev"], root=root) == 0
    out = root / "build" / "dev"
    assert (out / "resources.json").is_file() and (out / "manifests.yaml").is_file()
    capsys.readouterr()

    (root / "Pulumi.dev.yaml").write_text(
        (root / "Pulumi.dev.yaml").read_text().replace("llmserve:gpuMaxNodes: 2", "llmserve:gpuMaxNodes: -1")
    )
    assert main(["plan", "dev"], root=root) == 2
    err = capsys.readouterr().err
    assert "llmserve:gpuMaxNodes: out of range; found -1; allowed: 0 to 1000" in err, err
    assert f"Removed the earlier plan in {out}" in err, err
    assert not out.exists()


def test_a_failed_plan_leaves_other_files_in_the_output_folder_alone(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "resources.json").write_text("[]\n")
    (out / "notes.txt").write_text("mine\n")
    assert main(["plan", "nosuchstack", "--out", str(out)]) == 2
    assert sorted(path.name for path in out.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            {"llmserve:apiKey": "a-plain-text-key-of-40-characters-xxxxxxx"},
            "llmserve:apiKey: must be stored encrypted; found a plain value; set it with "
            "`pulumi config set --secret llmserve:apiKey <value>`",
        ),
        (
            {"gcp:credentials": '{"type": "service_account"}'},
            "gcp:credentials: must be stored encrypted; found a plain value",
        ),
        (
            {"llmserv:gpuNodeCount": "3"},
            "llmserv:gpuNodeCount: namespace 'llmserv' is read by neither this project nor its providers",
        ),
        ({"llmserve:gpuAutoscaling": "yes"}, "llmserve:gpuAutoscaling: expected true or false; found 'yes'"),
        ({"llmserve:models": []}, "llmserve:models: must list at least one model"),
        # `pulumi config set llmserve:models null` stores the text "null": JSON for "no value", not a list.
        ({"llmserve:models": "null"}, "llmserve:models: expected a YAML/JSON list of objects; found 'null'"),
        (
            {"llmserve:gpuNodeCount": {"secure": "v1:AAAAencrypted"}},
            "llmserve:gpuNodeCount: stored encrypted, which the offline plan cannot read",
        ),
    ],
)
def test_the_plan_refuses_what_pulumi_up_would_get_wrong(tmp_path, capsys, extra, message):
    stack = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())["config"]
    root = _project_with(tmp_path, "bad", {**stack, **extra})
    if extra.get("llmserve:gpuAutoscaling") == "yes":  # written plain, as a user would, not quoted by the dumper
        path = root / "Pulumi.bad.yaml"
        path.write_text(path.read_text().replace("'yes'", "yes"))
    assert main(["plan", "bad"], root=root) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n  - ") == 1, err
