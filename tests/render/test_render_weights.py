"""The weight sources rendered: GPU worker volumes and checks, the Serve config, the staging objects.

Every object is checked against Kubernetes' OpenAPI (strict) and the RayService against the KubeRay CRD
rules; the Serve config against Ray's own `LLMConfig` and `ServeDeploySchema`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from infra.catalog import MACHINE_PROFILES
from infra.config.stack import parse_stack_config
from infra.render import weight_staging
from infra.render import weights as render
from infra.render.rayservice import RayServiceSettings, render_rayservice
from serve_app.builder import model_llm_configs, stamp_serve_config
from staging.layout import MANIFEST_NAME

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from ray.llm._internal.serve.core.configs.llm_config import LLMConfig
    from ray.serve.schema import ServeDeploySchema

A3_MEGA = MACHINE_PROFILES["a3-megagpu-8g"]
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
S3_R1 = {**R1, "source": "s3://team-weights/r1", "revision": "2026-11", "preset": "deepseek-r1"}


def stack(models=(R1,), secrets=None, **values):
    raw = {
        "gpuMachineType": "a3-megagpu-8g",
        "gpuZones": '["us-east4-b"]',
        "gpuNodeCount": "4",
        "masterAuthorizedNetworks": '["198.18.0.0/24"]',
        "models": json.dumps(list(models)),
        **{key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()},
    }
    return parse_stack_config("prod", raw, {"project": "my-proj", "region": "us-east4"}, secrets)


def weights_settings(config, hf_token=False) -> render.WeightsSettings:
    return render.WeightsSettings(
        config=config.weights,
        namespace="llm",
        gcp_project="proj",
        bucket=config.weights.store.bucket if config.weights.store else None,
        ray_service_account="llm-ray",
        reader_email=render.gsa_email("llm-weights-ro-prod", "proj"),
        stager_service_account="llm-weights-stager",
        stager_email=render.gsa_email("llm-weights-rw-prod", "proj"),
        hf_token_secret="llm-hf-token" if hf_token else None,
    )


def rayservice(config, **extra) -> dict:
    settings = RayServiceSettings(
        name="llm",
        namespace="llm",
        image="ray-llm:test",
        models=config.serving.models,
        machine=A3_MEGA,
        gpudirect=A3_MEGA.gpudirect,
        max_gpu_nodes=4,
        cpu_workers=1,
        upgrade="Recreate",
        exposure="cluster",
        weights=weights_settings(config),
        **extra,
    )
    return render_rayservice(settings)


def gpu_template(service: dict, group: str = "h100-x16") -> dict:
    groups = {g["groupName"]: g for g in service["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    return groups[group]["template"]


def llm_configs(service: dict) -> dict:
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    return {c["model_loading_config"]["model_id"]: c for c in model_llm_configs(config)}


def test_gcsfuse_mounts_the_model_folder_read_only_on_every_gpu_worker_with_the_tuned_options():
    template = gpu_template(rayservice(stack()))
    annotations = template["metadata"]["annotations"]
    assert {key: annotations[key] for key in annotations if key.startswith("gke-gcsfuse/")} == {
        "gke-gcsfuse/volumes": "true",
        "gke-gcsfuse/cpu-limit": "0",
        "gke-gcsfuse/memory-limit": "0",
        "gke-gcsfuse/ephemeral-storage-limit": "0",
        "gke-gcsfuse/ephemeral-storage-request": "750Gi",
    }
    (volume,) = [v for v in template["spec"]["volumes"] if "csi" in v]
    assert volume["csi"]["driver"] == "gcsfuse.csi.storage.gke.io" and volume["csi"]["readOnly"] is True
    attributes = volume["csi"]["volumeAttributes"]
    assert attributes["bucketName"] == "my-proj-prod-models"
    options = attributes["mountOptions"].split(",")
    for option in (
        "implicit-dirs",
        "metadata-cache:ttl-secs:-1",
        "file-cache:max-size-mb:-1",
        "file-cache:enable-parallel-downloads:true",
        "file-cache:cache-file-for-range-read:true",
        f"only-dir=deepseek-r1/{COMMIT}",
    ):
        assert option in options
    assert " " not in attributes["mountOptions"]
    ray = template["spec"]["containers"][0]
    assert ray["name"] == "ray-worker"  # KubeRay needs the Ray container first; the warm-up comes after it
    assert {"name": volume["name"], "mountPath": "/mnt/models/deepseek-r1", "readOnly": True} in ray["volumeMounts"]
    assert [c["name"] for c in template["spec"]["containers"]] == ["ray-worker", "weights-warmup"]
    assert template["spec"]["initContainers"][-1]["name"] == "weights-manifest-check"
    assert template["spec"]["serviceAccountName"] == "llm-ray"


def test_serve_config_points_gcsfuse_models_at_the_mount_and_leaves_hub_models_alone():
    configs = llm_configs(rayservice(stack([R1, SMALL])))
    assert configs["deepseek-r1"]["model_loading_config"]["model_source"] == "/mnt/models/deepseek-r1"
    assert "load_format" not in configs["deepseek-r1"]["engine_kwargs"]
    assert configs["qwen-7b"]["model_loading_config"]["model_source"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"


def test_only_groups_with_gcsfuse_models_mount_the_store():
    service = rayservice(stack([R1, SMALL]))  # R1 (gcsfuse) in h100-x16, the 7B (huggingface) in h100-x4
    small_group = gpu_template(service, "h100-x4")
    assert "csi" not in json.dumps(small_group["spec"]["volumes"])
    assert "gke-gcsfuse/volumes" not in small_group.get("metadata", {}).get("annotations", {})


def test_runai_streamer_streams_from_the_store_uri_with_distributed_loading():
    config = stack(
        [{**R1, "weightSource": "runai-streamer"}], rayImage="example/ray-runai:1", rayImageHasRunaiStreamer="true"
    )
    service = rayservice(config)
    r1 = llm_configs(service)["deepseek-r1"]
    assert r1["model_loading_config"]["model_source"] == {
        "bucket_uri": f"gs://my-proj-prod-models/deepseek-r1/{COMMIT}"
    }
    assert r1["engine_kwargs"]["load_format"] == "runai_streamer"
    assert r1["engine_kwargs"]["model_loader_extra_config"] == {
        "distributed": True,
        "concurrency": 16,
        "memory_limit": 100_000_000_000,
    }
    template = gpu_template(service)
    assert template["spec"]["serviceAccountName"] == "llm-ray"
    # Mounted for the manifest check only: no file cache, not in the Ray container, no warm-up.
    (volume,) = [v for v in template["spec"]["volumes"] if "csi" in v]
    options = volume["csi"]["volumeAttributes"]["mountOptions"].split(",")
    assert f"only-dir=deepseek-r1/{COMMIT}" in options and not any(o.startswith("file-cache") for o in options)
    assert "/mnt/models" not in json.dumps(template["spec"]["containers"][0]["volumeMounts"])
    assert [c["name"] for c in template["spec"]["containers"]] == ["ray-worker"]
    (check,) = [c for c in template["spec"]["initContainers"] if c["name"] == "weights-manifest-check"]
    assert check["command"][-1] == "/mnt/models/deepseek-r1"
    assert "gke-gcsfuse/ephemeral-storage-request" not in template["metadata"]["annotations"]


def test_huggingface_only_stacks_render_as_before():
    config = stack([SMALL])
    assert config.weights.store is None
    plain = RayServiceSettings(
        name="llm",
        namespace="llm",
        image="ray-llm:test",
        models=config.serving.models,
        machine=A3_MEGA,
        gpudirect=A3_MEGA.gpudirect,
        max_gpu_nodes=4,
        cpu_workers=1,
        upgrade="Recreate",
        exposure="cluster",
    )
    assert rayservice(config) == render_rayservice(plain)


CASES = {
    "gcsfuse": lambda: stack([R1, SMALL]),
    "runai": lambda: stack(
        [{**R1, "weightSource": "runai-streamer"}], rayImage="example/ray-runai:1", rayImageHasRunaiStreamer="true"
    ),
    "s3": lambda: stack(
        [S3_R1], secrets={"s3AccessKeyId": "id", "s3SecretAccessKey": "key"}, s3EndpointUrl="https://s3.example.com"
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_rendered_rayservice_is_valid_for_kuberay_kubernetes_and_ray(
    case, assert_valid_kubernetes_object, validate_rayservice
):
    service = rayservice(CASES[case]())
    validate_rayservice(service)
    for group in service["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        template = group["template"]
        assert_valid_kubernetes_object(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "x", **template.get("metadata", {})},
                "spec": template["spec"],
            },
            f"{case}: pod",
        )
    serve = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve)
    assert stamp_serve_config(serve) == serve, "the weights patch must leave the config stamped with its own hash"
    for llm in model_llm_configs(serve):
        validated = LLMConfig.model_validate(llm)
        assert validated.model_id == llm["model_loading_config"]["model_id"]


@pytest.mark.parametrize("case", CASES)
def test_staging_objects_are_valid_kubernetes_objects(case, assert_valid_kubernetes_object):
    config = CASES[case]()
    settings = weights_settings(config, hf_token=True)
    objects = [
        weight_staging.render_service_account("llm-ray", "llm", settings.reader_email),
        weight_staging.render_staging_configmap(settings),
        weight_staging.render_s3_secret(settings),
    ]
    objects += [weight_staging.render_staging_job(settings, weights) for weights in config.weights.staged_models]
    for obj in objects:
        assert_valid_kubernetes_object(obj, case)


def test_the_staging_job_runs_the_staging_command_as_the_writer_on_the_system_pool():
    config = stack()
    settings = weights_settings(config, hf_token=True)
    (weights,) = config.weights.staged_models
    job = weight_staging.render_staging_job(settings, weights)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == "llm-weights-stager" and pod["nodeSelector"] == {"llmserve.dev/pool": "system"}
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1
    assert container["image"] == "python:3.11-slim-bookworm"  # the README's staging image
    assert container["args"][:8] == [
        "--source",
        "deepseek-ai/DeepSeek-R1",
        "--revision",
        COMMIT,
        "--bucket",
        "my-proj-prod-models",
        "--model-id",
        "deepseek-r1",
    ]
    assert "-r /opt/staging/requirements-staging.txt" in container["command"][2]
    assert 'exec python -m staging "$@"' in container["command"][2]
    env = {item["name"]: item for item in container["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "llm-hf-token", "key": "token"}
    assert env["HF_XET_HIGH_PERFORMANCE"]["value"] == "1" and "AWS_ACCESS_KEY_ID" not in env
    items = {item["path"] for item in pod["volumes"][0]["configMap"]["items"]}
    assert {"staging/copy.py", "staging/__main__.py", "requirements-staging.txt"} <= items
    assert job["spec"]["activeDeadlineSeconds"] == 180 * 60


def test_an_s3_staging_job_reads_its_keys_from_the_secret():
    config = stack(
        [S3_R1], secrets={"s3AccessKeyId": "id", "s3SecretAccessKey": "key"}, s3EndpointUrl="https://s3.example.com"
    )
    settings = weights_settings(config)
    (weights,) = config.weights.staged_models
    job = weight_staging.render_staging_job(settings, weights)
    env = {item["name"]: item for item in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "llm-s3-credentials",
        "key": "AWS_SECRET_ACCESS_KEY",
    }
    assert env["AWS_ENDPOINT_URL"]["value"] == "https://s3.example.com"


def test_a_new_revision_is_a_new_job_and_the_same_one_keeps_its_name():
    first = stack()
    second = stack([{**R1, "revision": "0" * 40}])

    def job_name(config):
        return weight_staging.staging_job_name(weights_settings(config), config.weights.staged_models[0])

    assert job_name(first) == job_name(stack()) != job_name(second)


@pytest.mark.parametrize("model_id", ["team/model-", "a" * 62 + "-tail", "r1."])
def test_the_staging_jobs_model_label_is_a_valid_label_value(model_id, assert_valid_kubernetes_object):
    """A label value ends in a letter or digit; model ids may end in '-' or '.', or be cut at one."""
    config = stack([{**R1, "id": model_id}])
    job = weight_staging.render_staging_job(weights_settings(config), config.weights.staged_models[0])
    value = job["metadata"]["labels"]["llmserve.dev/staging-model"]
    assert re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?", value), value
    assert_valid_kubernetes_object(job, model_id)


# --- the manifest check, run for real --------------------------------------------------------------------------


def test_the_init_container_runs_staging_manifest_check_py_as_written(tmp_path):
    """The GPU workers' check is the file staging/manifest_check.py, byte for byte, looking for the manifest
    name the stager writes (staging/layout.py)."""
    template = gpu_template(rayservice(stack()))
    (check,) = [c for c in template["spec"]["initContainers"] if c["name"] == "weights-manifest-check"]
    script = (Path(__file__).resolve().parents[2] / "staging" / "manifest_check.py").read_text()
    assert check["command"][:3] == ["python3", "-c", script]
    assert f"os.path.join(root, {MANIFEST_NAME!r})" in script


def run_check(*roots) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", render.manifest_check_script(), *map(str, roots)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_pod_refuses_to_start_without_a_manifest(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    result = run_check(tmp_path)
    assert result.returncode == 1
    assert "refusing to start the model server" in result.stderr and "no staging manifest" in result.stderr


def test_the_pod_refuses_a_folder_that_does_not_match_its_manifest(tmp_path):
    (tmp_path / "a.safetensors").write_bytes(b"12345")
    (tmp_path / ".manifest.json").write_text(
        json.dumps(
            {"revision": "v1", "files": [{"path": "a.safetensors", "size": 6}, {"path": "b.safetensors", "size": 1}]}
        )
    )
    result = run_check(tmp_path)
    assert result.returncode == 1
    assert "a.safetensors has size 5, the manifest says 6" in result.stderr
    assert "b.safetensors has size None" in result.stderr


def test_the_pod_starts_on_a_complete_model(tmp_path):
    (tmp_path / "a.safetensors").write_bytes(b"12345")
    (tmp_path / ".manifest.json").write_text(
        json.dumps({"revision": "v1", "files": [{"path": "a.safetensors", "size": 5}]})
    )
    result = run_check(tmp_path)
    assert result.returncode == 0 and f"weights ok: {tmp_path}: 1 files, revision v1" in result.stdout


def test_the_warmup_reads_every_file_but_the_manifest(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.safetensors", "sub/b.safetensors", ".manifest.json"):
        (tmp_path / name).write_bytes(b"x" * 1000)
    script = render._warmup_script([str(tmp_path)]).replace("exec sleep infinity", "true")
    script = script.replace("dd if={} of=/dev/null bs=16M status=none", "echo {}")
    result = subprocess.run(["/bin/bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert sorted(result.stdout.split()[:2]) == sorted(
        [str(tmp_path / "a.safetensors"), str(tmp_path / "sub/b.safetensors")]
    )
    assert "weights warm-up done" in result.stdout
