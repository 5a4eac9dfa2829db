"""KubeRay v1.7.0's rules for a change of a RayService's rayClusterConfig (infra/cli/kuberay_rules.py), replayed
on the dev stack's real cluster spec. KubeRay is Go and not run here: the fields its hash leaves out are pinned
as literals from ray-operator/controllers/ray/utils/util.go:653-665 at tag v1.7.0."""

from __future__ import annotations

import copy

import pytest

from infra.cli import kuberay_rules
from infra.cli.kuberay_rules import cluster_change, hashed_view
from infra.cli.paths import changed_paths
from infra.cli.upgrade_preview import rayservice_upgrade

RAYSERVICE = "llm-serve-rayservice"


@pytest.fixture
def dev_cluster(stack_variant):
    """The dev stack's RayService inputs (NewCluster): GPU groups l4-x1 and l4-x2, then the cpu group."""
    return next(r for r in stack_variant("dev").resources if r["name"] == RAYSERVICE)["inputs"]


def verdict(old_spec: dict, new_spec: dict) -> kuberay_rules.ClusterChange:
    return cluster_change(old_spec, new_spec, changed_paths(old_spec, new_spec))


def test_the_hash_leaves_out_exactly_kuberays_fields():
    assert kuberay_rules.WORKER_GROUP_UNHASHED == (
        "replicas",
        "minReplicas",
        "maxReplicas",
        "scaleStrategy.workersToDelete",
    )
    assert kuberay_rules.POD_TEMPLATE_UNHASHED == ("template.spec.tolerations", "template.spec.schedulingGates")
    assert kuberay_rules.CLUSTER_UNHASHED == ("upgradeStrategy", "suspend")


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c["workerGroupSpecs"][1].update(maxReplicas=2),
        lambda c: c["workerGroupSpecs"][0].update(minReplicas=1, replicas=1),
        lambda c: c["workerGroupSpecs"][0].update(scaleStrategy={"workersToDelete": ["pod-a"]}),
        lambda c: c["workerGroupSpecs"][0]["template"]["spec"]["tolerations"].append(
            {"key": "x", "operator": "Exists"}
        ),
        lambda c: c["headGroupSpec"]["template"]["spec"].update(schedulingGates=[{"name": "kueue"}]),
        lambda c: c.update(suspend=True),
    ],
    ids=["maxReplicas", "min and replicas", "workersToDelete", "worker tolerations", "head schedulingGates", "suspend"],
)
def test_a_change_to_only_unhashed_fields_is_not_applied(dev_cluster, edit):
    old = dev_cluster["spec"]["rayClusterConfig"]
    new = copy.deepcopy(old)
    edit(new)
    assert verdict(old, new).kind == "not hashed"


def test_an_image_or_a_template_annotation_is_hashed(dev_cluster):
    old = dev_cluster["spec"]["rayClusterConfig"]
    new = copy.deepcopy(old)
    new["workerGroupSpecs"][0]["template"]["metadata"]["annotations"]["a"] = "b"
    assert verdict(old, new).kind == "new hash"
    new = copy.deepcopy(old)
    new["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = "other"
    assert verdict(old, new).hashed_paths == ("headGroupSpec.template.spec.containers[0].image",)


def test_a_worker_group_appended_at_the_end_updates_the_running_cluster_in_place(dev_cluster):
    """rayservice_controller.go:1379-1407: the first N groups hash the same, so KubeRay updates the RayCluster
    (modifyRayCluster copies the whole spec: the existing groups' new bounds go with it)."""
    old = dev_cluster["spec"]["rayClusterConfig"]
    new = copy.deepcopy(old)
    extra = copy.deepcopy(new["workerGroupSpecs"][0])
    extra["groupName"] = "l4-x2-more"
    new["workerGroupSpecs"].append(extra)
    new["workerGroupSpecs"][0]["maxReplicas"] = 2
    change = verdict(old, new)
    assert (change.kind, change.appended_groups) == ("groups appended", ("l4-x2-more",))

    old_service, new_service = dev_cluster, copy.deepcopy(dev_cluster)
    new_service["spec"]["rayClusterConfig"] = new
    upgrade = rayservice_upgrade(old_service, new_service)
    assert upgrade.kind == "in place, no restart"
    assert upgrade.details[0].startswith("worker group(s) l4-x2-more appended: KubeRay updates the running RayCluster")


def test_a_worker_group_inserted_before_the_last_or_removed_needs_a_new_cluster(dev_cluster):
    old = dev_cluster["spec"]["rayClusterConfig"]
    inserted = copy.deepcopy(old)
    inserted["workerGroupSpecs"].insert(0, {**copy.deepcopy(old["workerGroupSpecs"][0]), "groupName": "l4-x0"})
    assert verdict(old, inserted).kind == "new hash"
    removed = copy.deepcopy(old)
    removed["workerGroupSpecs"].pop()
    assert verdict(old, removed).kind == "new hash"


def test_an_emptied_scale_strategy_hashes_like_none(dev_cluster):
    """Go marshals the ScaleStrategy struct the same whether it was empty or workersToDelete was cleared."""
    cluster = dev_cluster["spec"]["rayClusterConfig"]
    with_strategy = copy.deepcopy(cluster)
    with_strategy["workerGroupSpecs"][0]["scaleStrategy"] = {"workersToDelete": ["pod-a"]}
    assert hashed_view(with_strategy) == hashed_view(cluster)


def test_new_cluster_builds_a_second_cluster_and_none_lets_pulumi_recreate(dev_cluster):
    """isZeroDowntimeUpgradeEnabled (rayservice_controller.go:868-897): a second cluster only under NewCluster;
    under None KubeRay would do nothing, so the Recreate stacks have Pulumi replace the RayService."""
    new = copy.deepcopy(dev_cluster)
    new["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = "other"
    assert rayservice_upgrade(dev_cluster, new).kind == "second cluster"
    for spec in (dev_cluster, new):
        spec["spec"]["upgradeStrategy"] = {"type": "None"}
    assert rayservice_upgrade(dev_cluster, new).kind == "recreate with downtime"
