"""The weight source of each model and the model store, from the stack config: one test per rule."""

from __future__ import annotations

import json

import pytest

from infra.config.errors import ConfigError
from infra.config.sections.weights import default_bucket_name
from infra.config.stack import parse_stack_config

GCP = {"project": "my-proj", "region": "us-east4"}
COMMIT = "56d4cbbb4d29f4355bab4b9a39ccb717a14ad5ad"
R1 = {
    "id": "deepseek-r1",
    "source": "deepseek-ai/DeepSeek-R1",
    "revision": COMMIT,
    "acceleratorType": "H100",
    "tensorParallelSize": 8,
    "pipelineParallelSize": 2,
}
SMALL = {
    "id": "qwen-7b",
    "source": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "acceleratorType": "H100",
    "tensorParallelSize": 4,
}
BASE = {
    "gpuMachineType": "a3-megagpu-8g",
    "gpuZones": '["us-east4-b"]',
    "gpuNodeCount": "3",
    "masterAuthorizedNetworks": '["198.18.0.0/24"]',
}


def parse(models=(R1,), secrets=None, **overrides):
    values = {
        **BASE,
        "models": json.dumps(list(models)),
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in overrides.items()},
    }
    return parse_stack_config("prod", values, GCP, secrets)


def problems(models=(R1,), secrets=None, **overrides) -> str:
    with pytest.raises(ConfigError) as raised:
        parse(models, secrets, **overrides)
    return str(raised.value)


def test_auto_mounts_r1_from_the_store_and_downloads_small_models_directly():
    weights = parse([R1, SMALL]).weights
    r1, small = weights.for_model("deepseek-r1"), weights.for_model("qwen-7b")
    assert (r1.source, r1.origin, r1.revision, r1.prefix) == (
        "gcsfuse",
        "deepseek-ai/DeepSeek-R1",
        COMMIT,
        f"deepseek-r1/{COMMIT}/",
    )
    assert r1.staged_by_job and small.source == "huggingface" and not small.uses_store
    assert weights.store.bucket == "my-proj-prod-models" and weights.store.location == "us-east4"
    assert weights.store.force_destroy is False and weights.staging_timeout_minutes == 180


def test_no_store_when_every_model_downloads_from_the_hub():
    weights = parse([SMALL], weightSource="huggingface").weights
    assert weights.store is None and weights.staged_models == ()


def test_a_model_choice_beats_the_stack_default():
    weights = parse(
        [
            {**SMALL, "weightSource": "gcsfuse", "revision": COMMIT},
            {**R1, "weightSource": "huggingface", "revision": None},
        ]
    ).weights
    assert weights.for_model("qwen-7b").source == "gcsfuse" and weights.for_model("deepseek-r1").source == "huggingface"


def test_unknown_weight_sources_list_the_valid_ones():
    assert (
        "llmserve:weightSource: unknown value 'nfs'; allowed: auto, gcsfuse, runai-streamer, huggingface"
        in problems(weightSource="nfs")
    )
    assert (
        "models[0].weightSource: unknown value (did you mean 'gcsfuse'?); found 'gcsfuze'; allowed one of "
        "gcsfuse, runai-streamer, huggingface" in problems([{**R1, "weightSource": "gcsfuze"}])
    )


@pytest.mark.parametrize(
    "revision, message",
    [
        (
            None,
            "llmserve:models[0].revision: weightSource gcsfuse stages deepseek-ai/DeepSeek-R1 at one Hub commit; "
            "found None; allowed: the 40-character commit id",
        ),
        ("main", "found 'main'; allowed: the 40-character commit id"),
    ],
)
def test_a_staged_hub_model_needs_a_commit(revision, message):
    assert message in problems([{**R1, "revision": revision}])


def test_revision_is_refused_where_nothing_is_staged():
    assert "models[0].revision: only used with weightSource gcsfuse or runai-streamer" in problems(
        [{**SMALL, "revision": COMMIT}]
    )


@pytest.mark.parametrize(
    "source, message",
    [
        ("s3://", "models[0].source: s3:// URI without a bucket"),
        ("s3:///weights/r1", "models[0].source: s3:// URI without a bucket"),
        ("gs:///r1", "models[0].source: gs:// URI without a bucket"),
    ],
)
def test_uris_without_a_bucket_are_refused(source, message):
    assert message in problems([{**R1, "source": source, "revision": "v1"}])


def test_s3_sources_are_staged_under_a_label():
    weights = parse(
        [{**R1, "source": "s3://team-weights/r1/", "revision": "2026-11", "preset": "deepseek-r1"}],
        secrets={"s3AccessKeyId": "id", "s3SecretAccessKey": "key"},
    ).weights
    r1 = weights.for_model("deepseek-r1")
    assert (r1.origin, r1.prefix) == ("s3://team-weights/r1/", "deepseek-r1/2026-11/") and weights.s3_credentials
    assert "set both or neither" in problems([R1], secrets={"s3AccessKeyId": "id"})
    assert "an s3:// source needs a label" in problems(
        [{**R1, "source": "s3://team-weights/r1", "revision": None, "preset": "deepseek-r1"}]
    )


def test_weights_staged_by_hand_are_mounted_without_a_job():
    r1 = parse(
        [{**R1, "source": "gs://my-proj-prod-models/deepseek-r1/v1", "revision": None, "preset": "deepseek-r1"}]
    ).weights.for_model("deepseek-r1")
    assert (r1.source, r1.origin, r1.revision, r1.staged_by_job) == ("gcsfuse", "", "v1", False)
    assert "reads the stack's model store, at gs://my-proj-prod-models/deepseek-r1/<revision>" in problems(
        [{**R1, "source": "gs://elsewhere/deepseek-r1/v1", "revision": None, "preset": "deepseek-r1"}]
    )


def test_a_local_path_cannot_be_staged_from_the_cluster():
    assert "models[0].source: weightSource gcsfuse cannot stage '/models/r1' from the cluster" in problems(
        [{**R1, "source": "/models/r1", "preset": "deepseek-r1"}]
    )


def test_the_store_must_be_in_the_gpu_region():
    assert (
        "llmserve:modelStoreLocation: the model store must be in the GPU pool's region so both nodes read it "
        "without cross-region egress; found 'us-central1'; allowed: 'us-east4'"
        in problems(modelStoreLocation="us-central1")
    )
    assert "found 'US'" in problems(modelStoreLocation="US")
    assert parse(modelStoreLocation="us-east4").weights.store.location == "us-east4"


def test_force_destroy_is_refused_on_a_protected_stack():
    assert "llmserve:modelStoreForceDestroy: true would let `pulumi destroy` delete every staged model" in problems(
        modelStoreForceDestroy="true"
    )
    assert parse(modelStoreForceDestroy="true", deletionProtection="false").weights.store.force_destroy


def test_soft_delete_is_off_by_default_and_otherwise_within_cloud_storages_bounds():
    assert parse().weights.store.soft_delete_days == 0
    assert parse(modelStoreSoftDeleteDays="7").weights.store.soft_delete_days == 7
    assert parse(modelStoreSoftDeleteDays="90").weights.store.soft_delete_days == 90
    assert (
        "llmserve:modelStoreSoftDeleteDays: Cloud Storage keeps soft-deleted objects 7 to 90 days or not at all; "
        "found 3; allowed: 0 (off) or 7 to 90" in problems(modelStoreSoftDeleteDays="3")
    )
    assert "llmserve:modelStoreSoftDeleteDays: out of range; found 91; allowed: 0 to 90" in problems(
        modelStoreSoftDeleteDays="91"
    )


def test_bad_bucket_names_are_refused_and_long_defaults_stay_valid():
    assert "llmserve:modelStoreBucket: not a valid bucket name; found 'Models!'" in problems(modelStoreBucket="Models!")
    name = default_bucket_name("a-very-long-project-identifier-30", "a-very-long-stack-name-for-testing-purposes")
    assert len(name) <= 63 and name.endswith("-models")


RUNAI = {**R1, "weightSource": "runai-streamer"}


def test_runai_streamer_is_refused_on_the_pinned_image():
    message = problems([RUNAI])
    assert "models[0].weightSource: runai-streamer needs runai-model-streamer[gcs] in the Ray image" in message
    assert "(the pinned image, not known to contain it)" in message
    assert "rayImageHasRunaiStreamer=false for rayImage='example/ray:1'" in problems([RUNAI], rayImage="example/ray:1")


def test_runai_streamer_with_a_declared_image_is_accepted_with_a_warning_for_pp():
    config = parse([RUNAI], rayImage="example/ray-runai:1", rayImageHasRunaiStreamer="true")
    assert config.weights.for_model("deepseek-r1").source == "runai-streamer" and config.weights.uses_runai
    assert any("runai-streamer with pipelineParallelSize=2" in warning for warning in config.warnings)


@pytest.mark.parametrize(
    "engine, message",
    [
        (
            {"load_format": "runai_streamer_sharded"},
            "engineKwargs.load_format: runai_streamer_sharded is refused: vLLM "
            "0.29's runai_streamer_sharded cannot list gs:// checkpoints",
        ),
        ({"load_format": "safetensors"}, "weightSource runai-streamer sets it to runai_streamer; found 'safetensors'"),
        (
            {"model_loader_extra_config": {"distributed": True, "cache": 1}},
            "accepts only distributed, concurrency, memory_limit",
        ),
        ({"model_loader_extra_config": {"distributed": False}}, "distributed: false makes each of the 8 ranks"),
    ],
)
def test_streamer_options_it_cannot_serve_are_refused(engine, message):
    assert message in problems(
        [{**RUNAI, "engineKwargs": engine}], rayImage="example/ray-runai:1", rayImageHasRunaiStreamer="true"
    )


def test_streaming_load_formats_need_the_streamer_source():
    assert (
        "models[0].engineKwargs.load_format: runai_streamer streams from object storage, but weightSource is "
        "gcsfuse" in problems([{**R1, "engineKwargs": {"load_format": "runai_streamer"}}])
    )


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"revision": COMMIT + "\n"}, "llmserve:models[0].revision"),
        (
            {"source": "s3://team-weights/r1", "revision": "v1\n", "preset": "deepseek-r1"},
            "llmserve:models[0].revision",
        ),
    ],
)
def test_a_trailing_newline_is_not_a_valid_revision(overrides, key):
    """`^...$` with re.match accepts a trailing newline, which would end up in the store's object names."""
    assert key in problems([{**R1, **overrides}])


def test_a_trailing_newline_is_not_a_valid_bucket():
    assert "llmserve:modelStoreBucket: not a valid bucket name" in problems(modelStoreBucket="my-models\n")


# --- a revision kept when the source changed --------------------------------------------------------------------


def test_a_new_source_with_the_shipped_r1_commit_plans_with_a_warning_that_says_what_to_set():
    """The new user's edit: source changed to another repository, revision left at prod's R1 commit. The plan
    cannot look the commit up offline; it knows the commit the stacks pin is R1's, and the staging Job would fail."""
    config = parse([{**R1, "source": "deepseek-ai/DeepSeek-R1-0528"}])
    [warning] = [warning for warning in config.warnings if ".revision" in warning]
    assert warning == (
        f"llmserve:models[0].revision: {COMMIT} is a commit of deepseek-ai/DeepSeek-R1, but source is "
        "'deepseek-ai/DeepSeek-R1-0528' (changed source, same revision?); act before `pulumi up`: set revision to "
        "deepseek-ai/DeepSeek-R1-0528's commit (`python -c \"from huggingface_hub import HfApi; "
        "print(HfApi().model_info('deepseek-ai/DeepSeek-R1-0528').sha)\"`), or the staging Job fails when it looks "
        "the commit up in deepseek-ai/DeepSeek-R1-0528"
    )


def test_two_models_of_one_stack_staged_at_one_commit_from_two_repositories_warn():
    other = {**SMALL, "weightSource": "gcsfuse", "revision": "0" * 40}
    config = parse([R1, other, {**other, "id": "qwen-14b", "source": "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B"}])
    assert [warning.split(": ")[0] for warning in config.warnings if ".revision" in warning] == [
        "llmserve:models[2].revision"
    ]


def test_the_pinned_commit_with_its_own_repository_draws_no_revision_warning():
    assert not [warning for warning in parse().warnings if ".revision" in warning]
    assert not [
        warning for warning in parse([{**R1, "source": "DeepSeek-AI/deepseek-r1"}]).warnings if ".revision" in warning
    ]
