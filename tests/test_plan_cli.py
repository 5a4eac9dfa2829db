"""`python -m infra plan <stack>`: the files reviewers' tooling reads, and its exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from infra.plan import PROJECT_ROOT, main


@pytest.fixture(scope="module")
def prod_plan(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan")
    assert main(["plan", "prod", "--out", str(out)]) == 0
    return out


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
    assert "a3-highgpu-8g x 2 nodes, 8 x nvidia-h100-80gb per node, up to 16 GPUs" in summary, summary
    assert "GPUDirect: tcpx (4 GPU NIC networks)" in summary, summary
    assert "documentation range" in summary, summary


def _project_with(tmp_path: Path, stack: str, config: dict) -> Path:
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))
    return tmp_path


def test_invalid_config_exits_2_with_the_problem_on_stderr_and_writes_nothing(tmp_path, capsys):
    root = _project_with(tmp_path, "broken", {
        "gcp:project": "p", "gcp:region": "us-east4", "llmserve:gpuMachineType": "a3-megagpu-8g",
        "llmserve:gpuZones": ["us-west1-a"], "llmserve:masterAuthorizedNetworks": ["0.0.0.0/0"],
        "llmserve:models": [{"id": "r1", "source": "deepseek-ai/DeepSeek-R1", "acceleratorType": "H100",
                             "revision": "56d4cbbb4d29f4355bab4b9a39ccb717a14ad5ad",
                             "tensorParallelSize": 8, "pipelineParallelSize": 2}]})
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
    assert not [r for r in resources if r["type"] == "random:index/randomPassword:RandomPassword"], \
        "a configured apiKey must replace the generated one"
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
