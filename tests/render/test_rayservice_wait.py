"""The RayService's `pulumi.com/waitFor` conditions, evaluated against the states KubeRay puts a RayService in.

`satisfied()` does what pulumi-kubernetes 4.34 does with the annotation (provider/pkg/jsonpath/jsonpath.go and
await/condition): a JSON list means all conditions at once; `jsonpath={expr}[=value]` is RFC 9535 JSONPath
(evaluated here with the `jsonpath-rfc9535` package), whose first selected value must equal the value, or,
without a value, exist (an object or list counts as existing); `condition=Type` wants that status condition
"True".

The states replay KubeRay 1.7's RayService status writes (ray-operator/controllers/ray/rayservice_controller.go at
v1.7.0): `reconcileServe` reads the Serve application statuses from the dashboard (`getAndCheckServeStatus`) *before*
it submits a changed serveConfigV2 (`updateServeDeployment`), and `calculateStatus` writes
`status.observedGeneration = metadata.generation` together with those statuses, replacing the previous map
(`ActiveServiceStatus.Applications = activeClusterServeApplications`); `Ready` is True while the serve Service has
endpoints and `UpgradeInProgress` False (`NoPendingCluster`) without a pending cluster (`calculateConditions`). The
next reconcile reads what Ray Serve reports after the PUT: `apply_config` marked every application of the new config
DEPLOYING before the PUT returned (ray/serve/_private/application_state.py `_set_target_state`), the new
`config-<hash>` marker included, and the old marker DELETING (`apply_app_configs`), as the e2e tier sees on the
local server.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping

import jsonpath_rfc9535 as jsonpath
import pytest
import yaml

from infra.render.rayservice import render_rayservice, render_serve_config
from serve_app.builder import serve_config_hash

R1 = {
    "id": "deepseek-r1",
    "source": "deepseek-ai/DeepSeek-R1",
    "acceleratorType": "H100",
    "tensorParallelSize": 8,
    "pipelineParallelSize": 2,
}
R1_CHANGED = {"maxNumSeqs": 32}  # an in-place change: only spec.serveConfigV2 moves


def first_match(expression: str, obj: dict) -> tuple[bool, str]:
    """(matched, found) for one `jsonpath=` condition, as the provider's `Parsed.Matches`."""
    parsed = re.fullmatch(r"\{(.*)\}(?:=(.+))?", expression.removeprefix("jsonpath="))
    assert parsed, f"not {{expr}}[=value]: {expression}"
    path, value = parsed.group(1), parsed.group(2) or ""
    if not path.startswith("$"):
        path = "$" + path
    selected = [node.value for node in jsonpath.find(path, obj)]
    if not selected:
        return False, "selected nothing"
    first = selected[0]
    if isinstance(first, (dict, list)):
        return not value, "(object)"
    found = str(first).lower() if isinstance(first, bool) else str(first)
    return (found == value) if value else True, found


def condition_holds(expression: str, obj: dict) -> tuple[bool, str]:
    if expression.startswith("jsonpath="):
        return first_match(expression, obj)
    kind, _, wanted = expression.removeprefix("condition=").partition("=")
    for condition in obj.get("status", {}).get("conditions", []):
        if condition["type"] == kind:
            return condition["status"].lower() == (wanted or "True").lower(), condition["status"]
    return False, "no such condition"


def satisfied(annotation: str, obj: dict) -> tuple[bool, str]:
    """Whether the annotation's conditions all hold; else the first unmet one and what it found."""
    for expression in json.loads(annotation):
        holds, found = condition_holds(expression, obj)
        if not holds:
            return False, f"{expression} (found {found})"
    return True, ""


def rendered(rayservice_settings, **r1_changes) -> tuple[dict, list[str]]:
    """The RayService for R1 on A3 Mega (with `r1_changes` to its model entry) and its application names."""
    settings = rayservice_settings(models=({**R1, **r1_changes},))
    names = [application["name"] for application in render_serve_config(settings)["applications"]]
    return render_rayservice(settings), names


def kuberay_status(
    observed: int,
    applications: Mapping[str, str] | None,
    *,
    ready: str = "True",
    pending_cluster: bool = False,
    message: str = "",
) -> dict:
    """A status as KubeRay 1.7's calculateStatus writes it; `applications` maps name -> Serve status."""
    status: dict = {
        "observedGeneration": observed,
        "activeServiceStatus": {"rayClusterName": "llm-abcde"},
        "conditions": [
            {"type": "Ready", "status": ready, "reason": "NonZeroServeEndpoints", "observedGeneration": observed},
            {
                "type": "UpgradeInProgress",
                "status": "True" if pending_cluster else "False",
                "reason": "BothActivePendingClustersExist" if pending_cluster else "NoPendingCluster",
                "observedGeneration": observed,
            },
        ],
    }
    if applications is not None:
        status["activeServiceStatus"]["applicationStatuses"] = {
            name: {
                "status": state,
                "message": message if state in ("DEPLOY_FAILED", "UNHEALTHY") else "",
                "serveDeploymentStatuses": {},
            }
            for name, state in applications.items()
        }
    return status


def at(rayservice: dict, generation: int, status: dict | None) -> dict:
    """`rayservice` as the provider reads it back: this generation and this status (None: none written yet)."""
    obj = copy.deepcopy(rayservice)
    obj["metadata"]["generation"] = generation
    if status is not None:
        obj["status"] = status
    return obj


def serve_config_of(rayservice: dict) -> dict:
    return yaml.safe_load(rayservice["spec"]["serveConfigV2"])


def annotation_of(rayservice: dict) -> str:
    return rayservice["metadata"]["annotations"]["pulumi.com/waitFor"]


@pytest.fixture
def change(rayservice_settings) -> dict:
    """An in-place Serve config change of R1 (maxNumSeqs 64 -> 32): the old and new RayService and app names."""
    old, old_names = rendered(rayservice_settings)
    new, new_names = rendered(rayservice_settings, **R1_CHANGED)
    assert new["spec"]["rayClusterConfig"] == old["spec"]["rayClusterConfig"], "only serveConfigV2 may change"
    assert new["spec"]["serveConfigV2"] != old["spec"]["serveConfigV2"]
    return {"old": old, "new": new, "old_names": old_names, "new_names": new_names}


def in_place_update_sequence(change: dict) -> list[tuple[str, int, dict]]:
    """KubeRay 1.7's status writes for an in-place serveConfigV2 change, in order, as (what, generation, status)."""
    old_marker, ingress, model = change["old_names"]
    new_marker = change["new_names"][0]
    old_running = {old_marker: "RUNNING", ingress: "RUNNING", model: "RUNNING"}
    return [
        ("generation bumped, status still the previous generation's", 5, kuberay_status(4, old_running)),
        ("observedGeneration caught up, with the statuses read before the submit", 5, kuberay_status(5, old_running)),
        (
            "after the submit: the new config's applications DEPLOYING",
            5,
            kuberay_status(
                5, {old_marker: "DELETING", new_marker: "DEPLOYING", ingress: "DEPLOYING", model: "DEPLOYING"}
            ),
        ),
        (
            "marker and ingress RUNNING, the changed model still loading",
            5,
            kuberay_status(5, {new_marker: "RUNNING", ingress: "RUNNING", model: "DEPLOYING"}),
        ),
        ("the new config RUNNING", 5, kuberay_status(5, {new_marker: "RUNNING", ingress: "RUNNING", model: "RUNNING"})),
    ]


def test_the_wait_names_the_config_marker_first_then_every_application(change) -> None:
    conditions = json.loads(annotation_of(change["new"]))
    marker, ingress, model = change["new_names"]
    digest = change["new"]["metadata"]["annotations"]["llmserve.dev/serve-config-hash"]
    assert marker == f"config-{digest}" and digest == serve_config_hash(serve_config_of(change["new"])), (
        "the marker and the annotation carry the hash of the serve config in the spec"
    )
    assert conditions == [
        "jsonpath={$[?@.observedGeneration == $.metadata.generation]}",
        "condition=Ready",
        "condition=UpgradeInProgress=False",
        f"jsonpath={{.status.activeServiceStatus.applicationStatuses['{marker}'].status}}=RUNNING",
        f"jsonpath={{.status.activeServiceStatus.applicationStatuses.{ingress}.status}}=RUNNING",
        f"jsonpath={{.status.activeServiceStatus.applicationStatuses['{model}'].status}}=RUNNING",
    ]


def test_an_in_place_change_waits_until_the_new_config_runs_and_only_then(change) -> None:
    annotation = annotation_of(change["new"])
    sequence = in_place_update_sequence(change)
    results = [
        (what, *satisfied(annotation, at(change["new"], generation, status))) for what, generation, status in sequence
    ]
    assert [done for _, done, _ in results] == [False, False, False, False, True], results
    pre_submit = results[1]
    assert (
        f"applicationStatuses['{change['new_names'][0]}']" in pre_submit[2] and "selected nothing" in pre_submit[2]
    ), "the write with the pre-submit statuses is held back by the new config's marker"


def test_without_the_marker_the_pre_submit_write_would_end_the_wait(change) -> None:
    """Why the marker is there: every other condition holds on KubeRay's first write for the new generation,
    which still carries the previous config's statuses (the bug of issue 14: `pulumi up` returned at once)."""
    marker = change["new_names"][0]
    without_marker = [c for c in json.loads(annotation_of(change["new"])) if marker not in c]
    _, generation, status = in_place_update_sequence(change)[1]
    assert satisfied(json.dumps(without_marker), at(change["new"], generation, status)) == (True, "")


def test_a_deploy_failed_application_never_ends_the_wait(change) -> None:
    """pulumi-kubernetes has no failure condition (#4428): DEPLOY_FAILED holds the wait until the timeout."""
    annotation = annotation_of(change["new"])
    marker, ingress, model = change["new_names"]
    for failed in (marker, ingress, model):
        states = {marker: "RUNNING", ingress: "RUNNING", model: "RUNNING", failed: "DEPLOY_FAILED"}
        status = kuberay_status(5, states, message="Failed to update the deployments ['LLMServer:deepseek-r1'].")
        done, unmet = satisfied(annotation, at(change["new"], 5, status))
        assert not done and "found DEPLOY_FAILED" in unmet and failed in unmet, (failed, unmet)


@pytest.mark.parametrize(
    "case, generation, applications, ready, pending, done, shown",
    [
        ("just created, no status yet", 1, None, None, False, False, "selected nothing"),
        ("cold start: head not ready, no application yet", 1, {}, "False", False, False, "found False"),
        ("created and serving", 1, "new", "True", False, True, ""),
        ("running but no serve endpoint", 1, "new", "False", False, False, "condition=Ready (found False)"),
        # rayClusterUpgrade NewCluster: KubeRay has seen the new cluster spec and starts a pending cluster, while the
        # old one is still Ready and its applications RUNNING; the update is not done until the switch.
        (
            "NewCluster upgrade, second cluster pending",
            6,
            "new",
            "True",
            True,
            False,
            "UpgradeInProgress=False (found True)",
        ),
        ("NewCluster upgrade switched", 6, "new", "True", False, True, ""),
    ],
)
def test_create_and_cluster_upgrades(change, case, generation, applications, ready, pending, done, shown) -> None:
    running = dict.fromkeys(change["new_names"], "RUNNING")
    if ready is None:
        status = None
    else:
        status = kuberay_status(
            generation, running if applications == "new" else applications, ready=ready, pending_cluster=pending
        )
    result, unmet = satisfied(annotation_of(change["new"]), at(change["new"], generation, status))
    assert result is done, f"{case}: {unmet}"
    assert shown in unmet, f"{case}: {unmet}"


def test_every_application_must_run(change) -> None:
    """Each application of the config, not only the marker: the ingress and every model."""
    running = dict.fromkeys(change["new_names"], "RUNNING")
    for name in change["new_names"]:
        status = kuberay_status(5, {**running, name: "DEPLOYING"})
        done, unmet = satisfied(annotation_of(change["new"]), at(change["new"], 5, status))
        assert not done and name in unmet and "found DEPLOYING" in unmet, (name, unmet)


def test_the_observed_generation_filter_looks_at_status_only(change) -> None:
    """A sibling that happens to equal the generation (numServeEndpoints, say) must not satisfy it."""
    status = kuberay_status(1, dict.fromkeys(change["new_names"], "RUNNING"))
    status["numServeEndpoints"] = 2
    assert satisfied(annotation_of(change["new"]), at(change["new"], 2, status))[0] is False
