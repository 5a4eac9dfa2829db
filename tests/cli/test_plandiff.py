"""`python -m infra plan <stack> --against <folder>`: per-resource actions and the RayService upgrade path.

The scenarios start from the real plans of the dev and prod stacks and change one thing each, the way an
operator's edit to a stack file would.
"""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from infra.cli.main import main
from infra.cli.plandiff import changed_paths, diff_plans, format_diff, pool_gpus, rayservice_upgrade
from infra.cli.report import model_times

RAYSERVICE = "llm-serve-rayservice"


@pytest.fixture
def plans(plan_output):
    """stack -> the resources.json of dev and prod, as `--against` reads it."""
    return {stack: json.loads((plan_output(stack).folder / "resources.json").read_text()) for stack in ("dev", "prod")}


def edited(resources, name, edit):
    resources = copy.deepcopy(resources)
    edit(next(r for r in resources if r["name"] == name)["inputs"])
    return resources


def serve_edit(change):
    def edit(inputs):
        config = yaml.safe_load(inputs["spec"]["serveConfigV2"])
        change(config)
        inputs["spec"]["serveConfigV2"] = yaml.safe_dump(config, sort_keys=True)

    return edit


def image_edit(inputs):
    for group in [
        inputs["spec"]["rayClusterConfig"]["headGroupSpec"],
        *inputs["spec"]["rayClusterConfig"]["workerGroupSpecs"],
    ]:
        group["template"]["spec"]["containers"][0]["image"] = "rayproject/ray-llm:2.61.0-py312-cu130"


def only_change(diff):
    assert len(diff.changes) == 1, [(c.action, c.name) for c in diff.changes]
    return diff.changes[0]


def test_identical_plans_have_no_changes(plans):
    diff = diff_plans(plans["prod"], plans["prod"])
    assert diff.changes == [] and diff.unchanged == len(plans["prod"])
    assert "no changes" in format_diff(diff, "build/prod")


def test_a_serve_config_change_is_in_place(plans):
    new = edited(
        plans["prod"],
        RAYSERVICE,
        serve_edit(lambda c: c["applications"][2]["args"]["engine_kwargs"].update(max_num_seqs=32)),  # the R1 app
    )
    change = only_change(diff_plans(plans["prod"], new))
    assert (change.action, change.name) == ("change", RAYSERVICE)
    assert change.paths == ("spec.serveConfigV2.applications[2].args.engine_kwargs.max_num_seqs",)
    assert change.upgrade.kind == "in place, models restart"
    assert change.upgrade.reason.startswith("Serve restarts deepseek-r1 on the running cluster")
    assert change.upgrade.details[-1] == (
        "  deepseek-r1: its only replica restarts: down for one engine start (no estimate)"  # no times given
    )


def test_a_cluster_change_under_recreate_replaces_the_rayservice_with_downtime(plans, planned):
    new = edited(plans["prod"], RAYSERVICE, image_edit)  # prod: rayClusterUpgrade Recreate
    change = only_change(diff_plans(plans["prod"], new, model_times(planned("prod").config)))
    assert change.action == "replace"
    assert change.upgrade.kind == "recreate with downtime"
    assert "spec.rayClusterConfig.workerGroupSpecs[0].template.spec.containers[0].image" in change.paths
    # R1 from the model store (gcsfuse): image pull, weights, Ray and Serve, engine start (coldstart.py).
    assert "one cold start: about 7.5-20 min for deepseek-r1 (estimated)" in change.upgrade.reason


def test_a_cluster_change_under_newcluster_needs_a_second_cluster_of_gpus(plans):
    new = edited(plans["dev"], RAYSERVICE, image_edit)  # dev: NewCluster, GPU groups autoscale from 0
    change = only_change(diff_plans(plans["dev"], new))
    assert change.action == "change" and change.upgrade.kind == "second cluster"
    assert "needs 0 GPUs at its smallest (up to 4 as it scales)" in change.upgrade.reason, change.upgrade.reason


def test_second_cluster_gpu_count_for_a_static_sixteen_gpu_cluster(plans):
    rayservice = next(r for r in plans["prod"] if r["name"] == RAYSERVICE)["inputs"]
    old = copy.deepcopy(rayservice)
    old["spec"]["upgradeStrategy"] = {"type": "NewCluster"}
    new = copy.deepcopy(old)
    image_edit(new)
    upgrade = rayservice_upgrade(old, new)
    assert upgrade.kind == "second cluster" and "needs 16 GPUs at its smallest while" in upgrade.reason
    assert "never completes" not in upgrade.reason  # the pool's size is not known to rayservice_upgrade alone


def test_new_ingress_code_renames_the_configmap_and_rolls_the_cluster(plans):
    def rename(inputs):
        inputs["metadata"]["name"] = "llm-serve-app-0123456789"

    new = edited(plans["prod"], "llm-serve-serve-app", rename)
    new = edited(
        new,
        RAYSERVICE,
        lambda i: i["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["volumes"][0]["configMap"].update(
            name="llm-serve-app-0123456789"
        ),
    )
    actions = {c.name: (c.action, c.upgrade and c.upgrade.kind) for c in diff_plans(plans["prod"], new).changes}
    assert actions == {"llm-serve-serve-app": ("replace", None), RAYSERVICE: ("replace", "recreate with downtime")}


def test_adds_and_deletes(plans):
    old = [r for r in plans["prod"] if r["name"] != "llm-monitoring-ttft-p95"]
    new = [r for r in plans["prod"] if r["name"] != "llm-monitoring-dashboard"]
    diff = diff_plans(old, new)
    assert [(c.action, c.name) for c in diff.changes] == [
        ("delete", "llm-monitoring-dashboard"),
        ("add", "llm-monitoring-ttft-p95"),
    ]
    assert diff.counts() == {"add": 1, "change": 0, "replace": 0, "delete": 1}


def test_a_google_resource_renamed_is_replaced():
    old = [{"type": "gcp:compute/network:Network", "name": "net", "parent": None, "inputs": {"name": "a", "mtu": 8244}}]
    new = [{"type": "gcp:compute/network:Network", "name": "net", "parent": None, "inputs": {"name": "b", "mtu": 8244}}]
    assert only_change(diff_plans(old, new)).action == "replace"
    new[0]["inputs"] = {"name": "a", "mtu": 1460}
    assert only_change(diff_plans(old, new)).action == "change"


def test_rayservice_created_and_deleted():
    assert rayservice_upgrade(None, {"spec": {}}).kind == "create"
    assert rayservice_upgrade({"spec": {}}, None).kind == "delete"


def test_changed_paths_look_inside_yaml_strings_and_lists():
    assert list(changed_paths({"a": [1, {"b": "x: 1\ny: 2\n"}]}, {"a": [1, {"b": "x: 1\ny: 3\n"}]})) == ["a[1].b.y"]
    assert list(changed_paths({"a": [1]}, {"a": [1, 2]})) == ["a"]
    assert list(changed_paths({"a": 1}, {"b": 1})) == ["a", "b"]


def test_the_command_prints_the_diff_after_the_plan(tmp_path, capsys, plans):
    previous = tmp_path / "previous"
    previous.mkdir()
    old = edited(plans["prod"], RAYSERVICE, image_edit)
    (previous / "resources.json").write_text(json.dumps(old))
    assert main(["plan", "prod", "--out", str(tmp_path / "new"), "--against", str(previous)]) == 0
    out = capsys.readouterr().out
    assert f"Changes against {previous}: 0 add, 0 change, 1 replace, 0 delete" in out
    assert "warning: the previous plan does not say which stack it is of (no readable capacity.json)" in out
    assert "+- replace  llm-serve-rayservice (kubernetes:ray.io/v1:RayService)" in out
    assert "RayService upgrade: recreate with downtime" in out


@pytest.mark.parametrize(
    "content, message", [(None, "no resources.json there"), ("{", "cannot be read"), ('{"a": 1}', "is not a plan")]
)
def test_a_bad_previous_folder_exits_2_before_planning(tmp_path, capsys, content, message):
    if content is not None:
        (tmp_path / "resources.json").write_text(content)
    assert main(["plan", "prod", "--out", str(tmp_path / "new"), "--against", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_the_kubernetes_provider_lets_secrets_change_in_place(plans):
    """pulumi-kubernetes replaces a Secret whose data changes unless the provider sets enableSecretMutable
    (provider/pkg/provider/diff.go, forceNewProperties): a key rotation would delete the API-key Secret and
    create it again, and a Ray pod starting in between could not mount its keys. Plans redact secret values,
    so the rotation is stood in for by a changed stringData value."""
    for stack in ("dev", "prod"):
        provider = next(r for r in plans[stack] if r["type"] == "pulumi:providers:kubernetes")
        assert provider["inputs"].get("enableSecretMutable") == "true", f"{stack}: {provider['inputs']}"

    def rotate(inputs):
        inputs["stringData"]["keys"] = "[secret, rotated]"

    rotated = edited(plans["prod"], "llm-serve-api-key", rotate)
    change = only_change(diff_plans(plans["prod"], rotated))
    assert (change.action, change.paths) == ("change", ("stringData.keys",))

    without_flag = copy.deepcopy(rotated)
    next(r for r in without_flag if r["type"] == "pulumi:providers:kubernetes")["inputs"].pop("enableSecretMutable")
    actions = {c.name: c.action for c in diff_plans(plans["prod"], without_flag).changes}
    assert actions == {"llm-gke-k8s": "change", "llm-serve-api-key": "replace"}

    def retype(inputs):
        inputs["type"] = "kubernetes.io/basic-auth"

    assert only_change(diff_plans(plans["prod"], edited(plans["prod"], "llm-serve-api-key", retype))).action == (
        "replace"  # a Secret's type is never changed in place, flag or not
    )


def test_a_configmap_whose_data_changes_is_replaced_without_enable_configmap_mutable(plans):
    def change_data(inputs):
        inputs["data"] = {**inputs["data"], "extra": "x"}
        inputs.pop("immutable")  # even a mutable ConfigMap: the provider does not set enableConfigMapMutable

    change = only_change(diff_plans(plans["prod"], edited(plans["prod"], "llm-weights-code", change_data)))
    assert change.action == "replace" and "data.extra" in change.paths


def test_the_gpu_pool_size_comes_from_the_plans_node_pools(plans):
    assert pool_gpus(plans["dev"]) == 4  # g2-standard-24: 2 L4 x up to 2 nodes
    assert pool_gpus(plans["prod"]) == 16  # a3-megagpu-8g: 8 H100 x 2 nodes


def test_against_a_plan_of_another_stack_says_so(tmp_path, capsys, plan_output):
    previous = plan_output("dev").folder
    assert main(["plan", "prod", "--out", str(tmp_path / "new"), "--against", str(previous)]) == 0
    out = capsys.readouterr().out
    assert (
        "  warning: the previous plan is of stack 'dev', not 'prod': the changes below compare two different "
        "stacks, not a change to 'prod'"
    ) in out


def test_against_the_same_stack_there_is_no_stack_warning(tmp_path, capsys, plan_output):
    previous = plan_output("prod").folder
    assert main(["plan", "prod", "--out", str(previous), "--against", str(previous)]) == 0
    out = capsys.readouterr().out
    assert f"Changes against {previous}: 0 add, 0 change, 0 replace, 0 delete" in out and "warning:" not in out
