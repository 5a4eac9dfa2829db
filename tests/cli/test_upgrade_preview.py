"""`plan --against` on real plans: each scenario plans a shipped stack and a variant of it, the way an operator's
edit to the stack file would change it, and checks what the preview says the change does on the cluster.

The rules behind the verdicts are KubeRay v1.7.0's and Ray 2.60's (infra/cli/kuberay_rules.py,
infra/cli/serve_rules.py; their own tests replay each rule). The estimates are infra/planning/coldstart.py's.
"""

from __future__ import annotations

import json

from infra.cli.plandiff import diff_plans, format_diff
from infra.cli.report import model_times
from infra.render.rayservice import REPLICA_BOUNDS_ANNOTATION

RAYSERVICE = "llm-serve-rayservice"
NEW_IMAGE = "rayproject/ray-llm:2.61.0-py312-cu130"


def preview(old, new):
    """The diff of two variant plans, with the new plan's estimates, as `plan --against` computes it."""
    return diff_plans(old.resources, new.resources, model_times(new.config))


def rayservice_change(diff):
    changes = [c for c in diff.changes if c.name == RAYSERVICE]
    assert len(changes) == 1, [(c.action, c.name) for c in diff.changes]
    return changes[0]


def models_json(models):
    return json.dumps(models)


def test_one_models_engine_option_on_dev_restarts_only_that_model(stack_variant, stack_models):
    """Each model is its own Serve application: one model's option changes that application's args, hence its
    code version, and Serve restarts that model alone; the ingress only learns the new hash (user_config) and
    the other model keeps serving. A model with at most one replica is down for one engine start while it runs;
    the estimate is shown."""
    models = stack_models("dev")
    models[1]["maxNumSeqs"] = 32  # deepseek-r1-distill-qwen-1.5b
    diff = preview(stack_variant("dev"), stack_variant("dev", models=models_json(models)))
    change = rayservice_change(diff)
    assert [c.name for c in diff.changes] == [RAYSERVICE] and change.action == "change"
    assert change.upgrade.kind == "in place, models restart"
    assert change.upgrade.reason == (
        "Serve restarts deepseek-r1-distill-qwen-1.5b on the running cluster; the endpoint drops "
        "deepseek-r1-distill-qwen-1.5b for one engine start where a single replica runs"
    )
    assert change.upgrade.details[:3] == (
        # The ingress's overload bound follows maxNumSeqs (serve_app/admission_config.py), also without a restart.
        "application 'llm': deployments[OpenAiIngress].user_config.admission.capacity.deepseek-r1-distill-qwen-1.5b, "
        "deployments[OpenAiIngress].user_config.serve_config_hash applied to the running replicas, no restart",
        "application 'model-deepseek-r1-distill-qwen-1.5b' restarts: args.engine_kwargs.max_num_seqs changed, "
        "which makes its code version (import_path, runtime_env, args), so every deployment of it restarts",
        "  deepseek-r1-distill-qwen-1.5b: at zero replicas nothing restarts; running one replica it is down for "
        "one engine start, about 2.5-7.1 min (estimated); with more, a rolling restart keeps it serving",
    )
    assert not [line for line in change.upgrade.details if "deepseek-r1-distill-qwen-7b" in line]


def test_one_models_engine_option_on_prod_takes_r1_down_for_one_engine_start(stack_variant, stack_models):
    """prod (Recreate) serves R1 with one replica: a Serve-only change is applied in place (no Pulumi
    replacement), and Serve stops that replica before it starts the new one."""
    models = stack_models("prod")
    models[0]["maxNumSeqs"] = 32
    change = rayservice_change(preview(stack_variant("prod"), stack_variant("prod", models=models_json(models))))
    assert change.action == "change" and change.upgrade.kind == "in place, models restart"
    assert (
        "  deepseek-r1: its only replica restarts: down for one engine start, about 5.5-15 min (estimated)"
        in change.upgrade.details
    )
    assert change.upgrade.reason == (
        "Serve restarts deepseek-r1 on the running cluster; the endpoint drops deepseek-r1 for one engine start "
        "where a single replica runs"
    )


def test_a_replica_count_change_on_dev_builds_a_second_cluster_that_has_the_new_bounds(stack_variant, stack_models):
    """KubeRay's hash leaves maxReplicas out; the bounds this program writes into the pod template are hashed,
    so raising a model's maxReplicas builds a second cluster with the new bounds instead of changing nothing."""
    models = stack_models("dev")
    models[0].update(maxReplicas=2, targetOngoingRequests=8)  # deepseek-r1-distill-qwen-7b, TP 2: group l4-x2
    change = rayservice_change(preview(stack_variant("dev"), stack_variant("dev", models=models_json(models))))
    assert change.action == "change" and change.upgrade.kind == "second cluster"
    assert "it needs 0 GPUs at its smallest (up to 6 as it scales)" in change.upgrade.reason
    assert "the GPU pool has 4 GPUs at most" in change.upgrade.reason
    annotation = f"workerGroupSpecs[1].template.metadata.annotations.{REPLICA_BOUNDS_ANNOTATION}"
    assert change.upgrade.details[:2] == (
        f"KubeRay's hash sees {annotation}; it leaves out workerGroupSpecs[1].maxReplicas",
        "worker group bounds: l4-x2 0-1 -> 0-2 pods",
    )


def test_without_the_bounds_in_the_pod_template_a_replica_count_change_is_not_applied(stack_variant, stack_models):
    """The same change as rendered before the bounds annotation: KubeRay would leave the running RayCluster at
    its old bounds and build nothing (kuberay #2331, #4568), while Serve allows the second replica."""
    models = stack_models("dev")
    models[0].update(maxReplicas=2, targetOngoingRequests=8)
    old, new = stack_variant("dev"), stack_variant("dev", models=models_json(models))
    for plan in (old, new):
        rayservice = next(r for r in plan.resources if r["name"] == RAYSERVICE)["inputs"]
        for group in rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
            del group["template"]["metadata"]["annotations"][REPLICA_BOUNDS_ANNOTATION]
    change = rayservice_change(preview(old, new))
    assert change.upgrade.kind == "not applied by KubeRay"
    assert change.upgrade.reason == (
        "workerGroupSpecs[1].maxReplicas changed, which KubeRay's cluster hash leaves out: KubeRay neither updates "
        "the running RayCluster nor builds a new one, so this does not take effect (kuberay #2331, #4568); the "
        "groups keep their old bounds (l4-x2 0-1 -> 0-2 pods), and replicas that need more never schedule"
    )
    assert any(
        line.startswith("application 'model-deepseek-r1-distill-qwen-7b' restarts: args.deployment_config")
        for line in change.upgrade.details
    ), change.upgrade.details


def test_an_appended_model_on_dev_grows_its_worker_group_through_a_second_cluster(stack_variant, stack_models):
    models = stack_models("dev")
    models.append(
        {
            "id": "qwen-extra",
            "source": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
            "acceleratorType": "L4",
            "minReplicas": 0,
            "maxReplicas": 1,
            "maxModelLen": 8192,
        }
    )
    change = rayservice_change(preview(stack_variant("dev"), stack_variant("dev", models=models_json(models))))
    assert change.upgrade.kind == "second cluster"
    assert "worker group bounds: l4-x1 0-1 -> 0-2 pods" in change.upgrade.details
    assert change.upgrade.details[-1] == (
        "the Serve config goes to the new cluster only; the old one keeps serving the previous config until the switch"
    )


def test_an_appended_model_that_fits_its_worker_group_starts_alone_in_place(stack_variant, stack_models):
    """With the 1.5B model's group already at the pool's size (2 pods), one more 1-GPU model leaves the Ray
    cluster as it is: only the Serve config changes; the new model's application starts and no model restarts
    (the ingress learns the model list through user_config)."""
    models = stack_models("dev")
    models[1]["maxReplicas"] = 4  # deepseek-r1-distill-qwen-1.5b: 4 x 1 GPU = 2 pods, the pool's 2 nodes
    before = stack_variant("dev", models=models_json(models))
    extra = {"id": "qwen-extra", "source": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "acceleratorType": "L4"}
    models.append({**extra, "minReplicas": 0, "maxReplicas": 1})
    change = rayservice_change(preview(before, stack_variant("dev", models=models_json(models))))
    assert change.upgrade.kind == "in place, no restart"
    assert change.upgrade.reason == "applied to the running cluster; no model restarts"
    assert change.upgrade.details[:2] == (
        "application 'llm': deployments[OpenAiIngress].user_config.admission.capacity.qwen-extra, "
        "deployments[OpenAiIngress].user_config.models, "
        "deployments[OpenAiIngress].user_config.recovery_s.qwen-extra, "
        "deployments[OpenAiIngress].user_config.serve_config_hash applied to the running replicas, no restart",
        "application 'model-qwen-extra' is added: Serve builds and starts it (qwen-extra)",
    )


def test_an_image_change_on_dev_needs_a_second_cluster_that_fits_the_pool(stack_variant):
    change = rayservice_change(preview(stack_variant("dev"), stack_variant("dev", rayImage=NEW_IMAGE)))
    assert change.action == "change" and change.upgrade.kind == "second cluster"
    assert change.upgrade.reason.endswith(
        "it needs 0 GPUs at its smallest (up to 4 as it scales) while the old cluster keeps its own (0 at least); "
        "the GPU pool has 4 GPUs at most"
    )


def test_an_image_change_on_prod_recreates_the_rayservice_with_one_cold_start_of_downtime(stack_variant):
    diff = preview(stack_variant("prod"), stack_variant("prod", rayImage=NEW_IMAGE))
    change = rayservice_change(diff)
    assert [(c.action, c.name) for c in diff.changes] == [("replace", RAYSERVICE)]
    assert change.upgrade.kind == "recreate with downtime"
    assert change.upgrade.reason.endswith(
        "so every model is down for one cold start: about 7.5-20 min for deepseek-r1 (estimated), + 5-10 min "
        "where GPU nodes have to be created"
    )
    assert "+- replace  llm-serve-rayservice" in format_diff(diff, "build/prod-before")


def test_an_image_change_on_a_full_newcluster_pool_never_completes(stack_variant):
    """prod's 16 GPUs are all the first cluster's: under NewCluster a second cluster of 16 never schedules."""
    old = stack_variant("prod", rayClusterUpgrade="NewCluster")
    change = rayservice_change(preview(old, stack_variant("prod", rayClusterUpgrade="NewCluster", rayImage=NEW_IMAGE)))
    assert change.upgrade.kind == "second cluster"
    assert change.upgrade.reason.endswith(
        "it needs 16 GPUs at its smallest while the old cluster keeps its own (16 at least); the GPU pool has 16 "
        "GPUs at most, so the second cluster never gets them and the upgrade never completes"
    )
