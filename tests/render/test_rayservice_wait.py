"""The RayService's `pulumi.com/waitFor` conditions, evaluated against the states KubeRay puts a RayService in.

`satisfied()` does what pulumi-kubernetes 4.34 does with the annotation (provider/pkg/jsonpath/jsonpath.go and
await/condition): a JSON list means all conditions at once; `jsonpath={expr}[=value]` is RFC 9535 JSONPath
(evaluated here with the `jsonpath-rfc9535` package), whose first selected value must equal the value, or,
without a value, exist (an object or list counts as existing); `condition=Type` wants that status condition
"True". The states follow KubeRay 1.7's RayService status: `observedGeneration` and the application statuses
are written together after the new serve config was submitted.
"""

from __future__ import annotations

import copy
import json
import re

import jsonpath_rfc9535 as jsonpath
import pytest

from infra.render.rayservice import render_rayservice, wait_for_conditions


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


@pytest.fixture
def rayservice(rayservice_settings) -> dict:
    """The RayService the renderer makes for R1 on A3 Mega."""
    return render_rayservice(rayservice_settings())


@pytest.fixture
def annotation(rayservice) -> str:
    return rayservice["metadata"]["annotations"]["pulumi.com/waitFor"]


def in_state(rayservice: dict, kuberay_state: dict) -> dict:
    """A copy of `rayservice` at the generation, and with the status, of `kuberay_state` (see `state`)."""
    obj = copy.deepcopy(rayservice)
    obj["metadata"]["generation"] = kuberay_state["generation"]
    if "status" in kuberay_state:
        obj["status"] = copy.deepcopy(kuberay_state["status"])
    return obj


def state(
    generation: int,
    observed: int | None,
    ready: str | None,
    app: str | None,
    message: str = "",
    pending_cluster: bool = False,
) -> dict:
    """The RayService's generation and the status KubeRay has written for it (none yet while `observed` is None)."""
    written: dict = {"generation": generation}
    if observed is None:
        return written  # just created: KubeRay has not written a status yet
    status: dict = {"observedGeneration": observed, "activeServiceStatus": {"rayClusterName": "llm-abcde"}}
    if ready is not None:
        status["conditions"] = [
            {"type": "Ready", "status": ready, "reason": "NonZeroServeEndpoints", "observedGeneration": observed},
            {
                "type": "UpgradeInProgress",
                "status": "True" if pending_cluster else "False",
                "reason": "BothActivePendingClustersExist" if pending_cluster else "NoPendingCluster",
                "observedGeneration": observed,
            },
        ]
    if app is not None:
        status["activeServiceStatus"]["applicationStatuses"] = {
            "llm": {
                "status": app,
                "message": message,
                "serveDeploymentStatuses": {"LLMServer:deepseek-r1": {"status": "HEALTHY"}},
            }
        }
    written["status"] = status
    return written


@pytest.mark.parametrize(
    "case, kuberay_state, done, shown",
    [
        ("just created", state(1, None, None, None), False, "selected nothing"),
        ("cold start: head not ready, no application yet", state(1, 1, "False", None), False, "found False"),
        ("created and serving", state(1, 1, "True", "RUNNING"), True, ""),
        # The case condition=Ready alone gets wrong: right after an in-place serveConfigV2 update the object has
        # the new generation, KubeRay has not reconciled it, and everything still says RUNNING for the old config.
        ("in-place update, before KubeRay saw it", state(5, 4, "True", "RUNNING"), False, "observedGeneration"),
        (
            "in-place update deploying, old endpoints still Ready",
            state(5, 5, "True", "DEPLOYING"),
            False,
            "found DEPLOYING",
        ),
        (
            "in-place update failed",
            state(5, 5, "True", "DEPLOY_FAILED", "Engine failed to start"),
            False,
            "found DEPLOY_FAILED",
        ),
        ("in-place update done", state(5, 5, "True", "RUNNING"), True, ""),
        ("running but no serve endpoint", state(5, 5, "False", "RUNNING"), False, "condition=Ready (found False)"),
        # rayClusterUpgrade NewCluster: KubeRay has seen the new cluster spec and starts a pending cluster, while the
        # old one is still Ready and its application RUNNING; the update is not done until the switch.
        (
            "NewCluster upgrade, second cluster pending",
            state(6, 6, "True", "RUNNING", pending_cluster=True),
            False,
            "condition=UpgradeInProgress=False (found True)",
        ),
        ("NewCluster upgrade switched", state(6, 6, "True", "RUNNING"), True, ""),
    ],
)
def test_pulumi_up_returns_only_when_this_spec_runs(case, kuberay_state, done, shown, rayservice, annotation):
    result, unmet = satisfied(annotation, in_state(rayservice, kuberay_state))
    assert result is done, f"{case}: {unmet}"
    assert shown in unmet, f"{case}: {unmet}"


def test_every_application_must_run(rayservice):
    two_apps = wait_for_conditions({"applications": [{"name": "llm"}, {"name": "team-b"}]})
    obj = in_state(rayservice, state(2, 2, "True", "RUNNING"))
    obj["status"]["activeServiceStatus"]["applicationStatuses"]["team-b"] = {"status": "DEPLOY_FAILED"}
    result, unmet = satisfied(json.dumps(two_apps), obj)
    assert not result and "['team-b']" in unmet and "found DEPLOY_FAILED" in unmet, unmet
    obj["status"]["activeServiceStatus"]["applicationStatuses"]["team-b"]["status"] = "RUNNING"
    assert satisfied(json.dumps(two_apps), obj) == (True, "")


def test_the_observed_generation_filter_looks_at_status_only(rayservice, annotation):
    """A sibling that happens to equal the generation (numServeEndpoints, say) must not satisfy it."""
    obj = in_state(rayservice, state(2, 1, "True", "RUNNING"))
    obj["status"]["numServeEndpoints"] = 2
    assert satisfied(annotation, obj)[0] is False
