"""Worker-group bounds where KubeRay's cluster hash sees them, so that a replica-count change takes effect.

KubeRay v1.7.0 hashes the cluster spec without replicas, minReplicas and maxReplicas
(ray-operator/controllers/ray/utils/util.go:645-668): a change to only those builds no new cluster and is not
applied to the running one (kuberay #2331, #4568). Under NewCluster the renderer writes each group's bounds into
its pod template, which the hash covers; under Recreate Pulumi replaces the RayService on any change anyway.
"""

from __future__ import annotations

import dataclasses

from infra.catalog import MACHINE_PROFILES
from infra.render.rayservice import REPLICA_BOUNDS_ANNOTATION, render_rayservice

G2 = MACHINE_PROFILES["g2-standard-24"]
DISTILL = {
    "id": "qwen-7b",
    "source": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "acceleratorType": "L4",
    "tensorParallelSize": 2,
    "minReplicas": 0,
    "maxReplicas": 1,
}


def groups(settings) -> dict[str, dict]:
    cluster = render_rayservice(settings)["spec"]["rayClusterConfig"]
    return {group["groupName"]: group for group in cluster["workerGroupSpecs"]}


def test_under_new_cluster_every_group_carries_its_bounds_in_its_pod_template(rayservice_settings):
    rendered = groups(rayservice_settings(machine=G2, models=[DISTILL], cpu_workers=2))
    bounds = {name: g["template"]["metadata"]["annotations"][REPLICA_BOUNDS_ANNOTATION] for name, g in rendered.items()}
    assert bounds == {"l4-x2": "0-1", "cpu": "2-2"}
    assert {name: (g["minReplicas"], g["maxReplicas"]) for name, g in rendered.items()} == {
        "l4-x2": (0, 1),
        "cpu": (2, 2),
    }


def test_the_gpudirect_annotations_are_kept_beside_the_bounds(rayservice_settings):
    (gpu,) = [g for name, g in groups(rayservice_settings()).items() if name != "cpu"]  # R1 on A3 Mega
    annotations = gpu["template"]["metadata"]["annotations"]
    assert annotations[REPLICA_BOUNDS_ANNOTATION] == "2-2"
    assert "networking.gke.io/interfaces" in annotations, annotations


def test_new_bounds_change_the_pod_template(rayservice_settings):
    """A new maxReplicas changes the template (hashed), not only maxReplicas (not hashed); the preview's
    KubeRay rules (tests/cli/test_kuberay_rules.py) take it from there."""
    before = rayservice_settings(machine=G2, models=[DISTILL])
    after = rayservice_settings(machine=G2, models=[{**DISTILL, "maxReplicas": 2, "targetOngoingRequests": 8}])
    old, new = (groups(s)["l4-x2"] for s in (before, after))
    assert (old["maxReplicas"], new["maxReplicas"]) == (1, 2)
    assert old["template"]["metadata"]["annotations"][REPLICA_BOUNDS_ANNOTATION] == "0-1"
    assert new["template"]["metadata"]["annotations"][REPLICA_BOUNDS_ANNOTATION] == "0-2"


def test_under_recreate_the_pod_templates_carry_no_bounds(rayservice_settings):
    """Pulumi replaces the RayService on any rayClusterConfig change there; an annotation would only add a
    restart of prod when it first appears."""
    settings = dataclasses.replace(rayservice_settings(machine=G2, models=[DISTILL]), upgrade="Recreate")
    for group in groups(settings).values():
        assert REPLICA_BOUNDS_ANNOTATION not in group["template"]["metadata"].get("annotations", {})


def test_the_bounds_annotation_has_the_documented_name(rayservice_settings):
    """docs/operations.md names it `llmserve.dev/worker-replicas`: the rendered pod template carries that key."""
    rendered = groups(rayservice_settings(machine=G2, models=[DISTILL], cpu_workers=2))
    assert rendered["l4-x2"]["template"]["metadata"]["annotations"]["llmserve.dev/worker-replicas"] == "0-1"
