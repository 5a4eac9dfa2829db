"""Serve's rules for a new serveConfigV2 (infra/cli/serve_rules.py), each checked against Ray 2.60 itself: the
application code version is Ray's `get_app_code_version`, a deployment's restart is Ray's
`DeploymentVersion.requires_actor_restart`, the rolling-update step is Ray's default percentage."""

from __future__ import annotations

import copy

import pytest

from infra.cli import serve_rules
from infra.cli.serve_rules import ModelReplicas, app_change, deployment_name, serve_change
from infra.cli.upgrade_preview import ROLLING_UPDATE_PERCENTAGE, ModelTimes, PreviewContext, model_restart

R1_DEPLOYMENT = "LLMServer:deepseek-r1"


def llm(model_id: str, low: int = 1, high: int = 1) -> dict:
    return {
        "model_loading_config": {"model_id": model_id, "model_source": f"org/{model_id}"},
        "engine_kwargs": {"max_num_seqs": 64},
        "deployment_config": {"autoscaling_config": {"min_replicas": low, "max_replicas": high}},
    }


def app(name: str = "llm", *models: dict, **extra) -> dict:
    return {
        "name": name,
        "import_path": "ray.serve.llm:build_openai_app",
        "route_prefix": "/",
        "args": {"llm_configs": list(models or [llm("deepseek-r1")])},
        **extra,
    }


def ray_code_version(application: dict) -> str:
    from ray.serve._private.deploy_utils import get_app_code_version
    from ray.serve.schema import ServeApplicationSchema

    return get_app_code_version(ServeApplicationSchema.model_validate(application))


def ray_restarts(old: dict, new: dict) -> bool:
    """Whether Ray 2.60 restarts a deployment's replicas when its options go from `old` to `new` (same code)."""
    from ray.serve._private.config import DeploymentConfig
    from ray.serve._private.version import DeploymentVersion

    def version(options: dict) -> DeploymentVersion:
        config = {k: v for k, v in options.items() if k in DeploymentConfig.model_fields and k != "name"}
        return DeploymentVersion(
            "same-code",
            DeploymentConfig(**config),
            options.get("ray_actor_options"),
            placement_group_bundles=options.get("placement_group_bundles"),
            placement_group_strategy=options.get("placement_group_strategy"),
            max_replicas_per_node=options.get("max_replicas_per_node"),
        )

    return version(old).requires_actor_restart(version(new))


@pytest.mark.parametrize(
    "edit",
    [
        lambda a: a["args"]["llm_configs"][0]["engine_kwargs"].update(max_num_seqs=32),
        lambda a: a["args"]["llm_configs"][0]["deployment_config"]["autoscaling_config"].update(max_replicas=2),
        lambda a: a.update(import_path="serve_app.other:build"),
        lambda a: a.update(runtime_env={"env_vars": {"A": "1"}}),
        lambda a: a.update(
            deployments=[{"name": R1_DEPLOYMENT, "request_router_config": {"request_router_kwargs": {}}}]
        ),
    ],
    ids=["engine option", "max_replicas in args", "import_path", "runtime_env", "request_router_config override"],
)
def test_what_changes_the_code_version_restarts_every_model_of_the_application(edit):
    old = app("llm", llm("deepseek-r1"), llm("distill", 0, 2))
    new = copy.deepcopy(old)
    edit(new)
    assert ray_code_version(old) != ray_code_version(new)  # Ray's own verdict
    change = app_change("llm", old, new)
    assert change.kind == "restarts" and change.new_version
    assert change.models == (ModelReplicas("deepseek-r1", 1, 1), ModelReplicas("distill", 0, 2))


@pytest.mark.parametrize(
    "options",
    [
        {"num_replicas": 2},
        {"max_ongoing_requests": 8},
        {"user_config": {"a": 1}},
        {"health_check_period_s": 30.0},
        {"graceful_shutdown_timeout_s": 5.0},
        {"autoscaling_config": {"min_replicas": 1, "max_replicas": 3}},
    ],
)
def test_running_deployment_options_are_applied_without_a_restart(options):
    # The override keeps an autoscaling_config throughout (see the next test), except beside num_replicas,
    # which Ray refuses with one.
    autoscaling = {} if "num_replicas" in options else {"autoscaling_config": {"min_replicas": 1, "max_replicas": 1}}
    old = app("llm", deployments=[{"name": R1_DEPLOYMENT, **autoscaling}])
    new = app("llm", deployments=[{"name": R1_DEPLOYMENT, **autoscaling, **options}])
    assert ray_code_version(old) == ray_code_version(new)
    assert not ray_restarts(autoscaling, {**autoscaling, **options})
    assert app_change("llm", old, new).kind == "in place"


def test_an_autoscaling_config_added_to_an_override_changes_the_code_version():
    """Ray lists the policy of every override that has an autoscaling_config, None included: one more entry."""
    old = app("llm", deployments=[{"name": R1_DEPLOYMENT}])
    new = app("llm", deployments=[{"name": R1_DEPLOYMENT, "autoscaling_config": {"max_replicas": 2}}])
    assert ray_code_version(old) != ray_code_version(new)
    assert app_change("llm", old, new).new_version == (f"deployments[{R1_DEPLOYMENT}].autoscaling_config",)


@pytest.mark.parametrize(
    "options",
    [
        {"ray_actor_options": {"num_cpus": 2}},
        {"placement_group_bundles": [{"GPU": 1}], "placement_group_strategy": "PACK"},
        {"max_replicas_per_node": 1},
    ],
)
def test_actor_options_restart_only_that_deployments_model(options):
    models = (llm("deepseek-r1"), llm("distill", 0, 2))
    old = app("llm", *models, deployments=[{"name": R1_DEPLOYMENT}, {"name": "OpenAiIngress"}])
    new = app("llm", *models, deployments=[{"name": R1_DEPLOYMENT, **options}, {"name": "OpenAiIngress", **options}])
    assert ray_code_version(old) == ray_code_version(new)
    assert ray_restarts({}, options)
    change = app_change("llm", old, new)
    assert (change.kind, change.models, change.deployments) == (
        "restarts",
        (ModelReplicas("deepseek-r1", 1, 1),),
        ("OpenAiIngress",),
    )
    assert not change.new_version


def test_a_new_route_prefix_is_applied_to_the_running_replicas():
    old, new = app("llm"), app("llm", route_prefix="/v2")
    assert ray_code_version(old) == ray_code_version(new)
    assert app_change("llm", old, new).kind == "in place"


def test_an_application_field_these_rules_do_not_know_counts_as_a_restart():
    assert app_change("llm", app("llm"), app("llm", some_new_field=1)).kind == "restarts"


def test_applications_added_and_removed_start_and_stop_with_their_models():
    old = {"applications": [app("a", llm("m1")), app("b", llm("m2"))]}
    new = {"applications": [app("b", llm("m2")), app("c", llm("m3", 0, 4))]}
    kinds = [(a.name, a.kind, [m.model_id for m in a.models]) for a in serve_change(old, new).apps]
    assert kinds == [("a", "removed", ["m1"]), ("c", "added", ["m3"])]


def test_a_change_to_one_per_model_application_leaves_the_others_alone():
    old = {"applications": [app("a", llm("m1")), app("b", llm("m2"))]}
    new = copy.deepcopy(old)
    new["applications"][1]["args"]["llm_configs"][0]["engine_kwargs"]["max_num_seqs"] = 8
    (change,) = serve_change(old, new).apps
    assert (change.name, change.kind, change.models) == ("b", "restarts", (ModelReplicas("m2", 1, 1),))


def test_a_running_serve_ignores_new_http_options_and_applies_target_capacity():
    old = {"applications": [app()], "http_options": {"host": "0.0.0.0", "port": 8000}}
    new = {"applications": [app()], "http_options": {"host": "0.0.0.0", "port": 9000}, "target_capacity": 50}
    change = serve_change(old, new)
    assert (change.apps, change.ignored, change.applied) == ((), ("http_options.port",), ("target_capacity",))


def test_serve_llm_names_a_models_deployment_after_its_id():
    # ray/llm/_internal/serve/core/server/builder.py:37-38, 64-73 (2.60.0); not importable without vLLM here.
    assert (
        deployment_name("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")
        == "LLMServer:deepseek-ai--DeepSeek-R1-Distill-Qwen-1_5B"
    )


def test_the_rolling_update_step_is_rays_default():
    from ray.serve._private.constants import DEFAULT_ROLLING_UPDATE_PERCENTAGE

    assert ROLLING_UPDATE_PERCENTAGE == DEFAULT_ROLLING_UPDATE_PERCENTAGE == 0.2


@pytest.mark.parametrize(
    "low, high, expected, may_drop",
    [
        (1, 1, "m: its only replica restarts: down for one engine start, about 5.5-15 min (estimated)", True),
        (
            0,
            2,
            "m: at zero replicas nothing restarts; running one replica it is down for one engine start, about "
            "5.5-15 min (estimated); with more, a rolling restart keeps it serving",
            True,
        ),
        (2, 4, "m: 2-4 replicas restart 1 at a time (Serve's rolling update); the others keep serving", False),
        (10, 10, "m: 10-10 replicas restart 2 at a time (Serve's rolling update); the others keep serving", False),
        (0, 0, "m: no replica, nothing restarts", False),
    ],
)
def test_a_restart_takes_a_model_down_when_its_only_replica_restarts(low, high, expected, may_drop):
    """Serve stops max(1, 20 % of the target) old replicas at a time before starting new ones
    (deployment_state.py:4185-4195, 4339-4397): a model with one replica is down for one engine start."""
    context = PreviewContext({"m": ModelTimes(restart=(5.5, 15.0))})
    assert model_restart(ModelReplicas("m", low, high), context) == (expected, may_drop)


def test_the_rules_name_the_fields_ray_puts_in_the_code_version():
    """deploy_utils.py:168-196 (2.60.0) hashes these application fields."""
    assert serve_rules.CODE_VERSION_APP_FIELDS == ("import_path", "runtime_env", "args", "autoscaling_policy")
