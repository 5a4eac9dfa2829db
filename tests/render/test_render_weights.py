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


def settings_for(config, **extra) -> RayServiceSettings:
    """The RayServiceSettings of `config`'s models on a 4-node A3 Mega pool (Recreate, cluster exposure)."""
    return RayServiceSettings(
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
        **extra,
    )


def rayservice(config, **extra) -> dict:
    return render_rayservice(settings_for(config, weights=weights_settings(config), **extra))


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


# gcsfuse's option names at GoogleCloudPlatform/gcsfuse 7b39292 (v3.11.x), cfg/params.yaml: the config path
# (section:key in GKE's mount options) of each option the store mounts use, and those that file marks
# deprecated. `metadata-cache:type-cache-max-size-mb` is ignored since v3.8.0 ("Type cache is deprecated",
# cmd/legacy_main.go); `stat-cache-max-size-mb` is the one size for both caches.
GCSFUSE_CURRENT = {
    "implicit-dirs",
    "only-dir",
    "metadata-cache:ttl-secs",
    "metadata-cache:stat-cache-max-size-mb",
    "metadata-cache:negative-ttl-secs",
    "file-system:kernel-list-cache-ttl-secs",
    "file-cache:max-size-mb",
    "file-cache:cache-file-for-range-read",
    "file-cache:enable-parallel-downloads",
    "file-cache:parallel-downloads-per-file",
}
GCSFUSE_DEPRECATED = {
    "metadata-cache:type-cache-max-size-mb",
    "metadata-cache:enable-nonexistent-type-cache",
    "metadata-cache:deprecated-stat-cache-capacity",
    "metadata-cache:deprecated-stat-cache-ttl",
    "metadata-cache:deprecated-type-cache-ttl",
    "stat-cache-capacity",
    "stat-cache-ttl",
    "type-cache-ttl",
    "type-cache-max-size-mb",
}


def _option_values(volume: dict) -> dict[str, str]:
    """`section:key:value` and `key=value` options as {name: value}; a bare flag has the value ""."""
    values = {}
    for option in volume["csi"]["volumeAttributes"]["mountOptions"].split(","):
        name, _, value = option.partition("=") if "=" in option else option.rpartition(":")
        if not name:  # a bare flag such as implicit-dirs
            name, value = value, ""
        values[name] = value
    return values


@pytest.mark.parametrize("source", ["gcsfuse", "runai-streamer"])
def test_store_mounts_use_only_current_gcsfuse_option_names_with_the_same_values(source):
    extra = {"rayImage": "example/ray-runai:1", "rayImageHasRunaiStreamer": "true"} if source != "gcsfuse" else {}
    template = gpu_template(rayservice(stack([{**R1, "weightSource": source}], **extra)))
    (volume,) = [v for v in template["spec"]["volumes"] if "csi" in v]
    values = _option_values(volume)
    assert not set(values) & GCSFUSE_DEPRECATED, f"deprecated gcsfuse options: {set(values) & GCSFUSE_DEPRECATED}"
    assert set(values) <= GCSFUSE_CURRENT, f"not a gcsfuse option at v3.11: {set(values) - GCSFUSE_CURRENT}"
    expected = {"implicit-dirs": "", "metadata-cache:ttl-secs": "-1", "metadata-cache:negative-ttl-secs": "0"}
    if source == "gcsfuse":
        expected |= {
            "metadata-cache:stat-cache-max-size-mb": "-1",  # the size the type cache had: unlimited
            "file-system:kernel-list-cache-ttl-secs": "-1",
            "file-cache:max-size-mb": "-1",
            "file-cache:cache-file-for-range-read": "true",
            "file-cache:enable-parallel-downloads": "true",
            "file-cache:parallel-downloads-per-file": "16",
        }
    assert values == {**expected, "only-dir": f"deepseek-r1/{COMMIT}"}


def test_serve_config_points_gcsfuse_models_at_the_mount_and_leaves_hub_models_alone():
    configs = llm_configs(rayservice(stack([R1, SMALL])))
    assert configs["deepseek-r1"]["model_loading_config"]["model_source"] == "/mnt/models/deepseek-r1"
    assert "load_format" not in configs["deepseek-r1"]["engine_kwargs"]
    assert configs["qwen-7b"]["model_loading_config"]["model_source"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"


@pytest.mark.parametrize("source", ["gcsfuse", "runai-streamer"])
def test_models_from_the_store_run_offline_and_hub_models_keep_the_hub(source):
    """HF_HUB_OFFLINE=1 (huggingface_hub's switch) for a model the store serves, without the Hub download
    settings the R1 preset brings; a model that loads from the Hub keeps them and stays online."""
    extra = {"rayImage": "example/ray-runai:1", "rayImageHasRunaiStreamer": "true"} if source != "gcsfuse" else {}
    hub_r1 = {**{k: v for k, v in R1.items() if k != "revision"}, "id": "r1-hub", "weightSource": "huggingface"}
    configs = llm_configs(rayservice(stack([{**R1, "weightSource": source}, hub_r1], gpuNodeCount="8", **extra)))
    store_env = configs["deepseek-r1"]["runtime_env"]["env_vars"]
    assert store_env["HF_HUB_OFFLINE"] == "1"
    assert "HF_XET_HIGH_PERFORMANCE" not in store_env and "HF_HUB_ENABLE_HF_TRANSFER" not in store_env
    assert store_env["RAYLLM_ENGINE_START_TIMEOUT_S"] == "7200"  # the preset's other settings stay
    hub_env = configs["r1-hub"]["runtime_env"]["env_vars"]
    assert hub_env["HF_XET_HIGH_PERFORMANCE"] == "1" and "HF_HUB_OFFLINE" not in hub_env


def test_a_gpu_group_that_serves_only_store_models_gets_no_hub_token():
    service = rayservice(stack([R1, SMALL]), hf_token=True)  # R1 (store) in h100-x16, the 7B (Hub) in h100-x4

    def env(group: str) -> set[str]:
        return {item["name"] for item in gpu_template(service, group)["spec"]["containers"][0]["env"]}

    assert "HF_TOKEN" not in env("h100-x16") and "HF_HOME" in env("h100-x16")
    assert "HF_TOKEN" in env("h100-x4")


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
    plain = settings_for(config)
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
    assert container["image"] == STAGING_IMAGE
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
    assert "-r /opt/staging/requirements/staging.txt" in container["command"][2]
    assert 'exec python -m staging "$@"' in container["command"][2]
    env = {item["name"]: item for item in container["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "llm-hf-token", "key": "token"}
    assert env["HF_XET_HIGH_PERFORMANCE"]["value"] == "1" and "AWS_ACCESS_KEY_ID" not in env
    items = {item["path"] for item in pod["volumes"][0]["configMap"]["items"]}
    assert {"staging/copy.py", "staging/__main__.py", "requirements/staging.txt"} <= items
    assert job["spec"]["activeDeadlineSeconds"] == 180 * 60
    assert container["args"][-2:] == ["--access-wait-seconds", "600"]  # IAM grants take minutes to propagate


# python:3.11.16-slim-bookworm's image index as Docker Official Images recorded it (docker-library/repo-info,
# repos/python/remote/3.11.16-slim-bookworm.md at 422f3cfe488dc9ae394c5058b27db617f72c91db). Not pulled here.
STAGING_IMAGE = "python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f"


def test_the_staging_image_is_pinned_by_a_well_formed_digest():
    job = weight_staging.render_staging_job(weights_settings(stack()), stack().weights.staged_models[0])
    image = job["spec"]["template"]["spec"]["containers"][0]["image"]
    match = re.fullmatch(r"(?P<repo>[a-z0-9./-]+):(?P<tag>[\w.-]+)@sha256:(?P<digest>[0-9a-f]{64})", image)
    assert match, f"not <image>:<tag>@sha256:<64 hex digits>: {image}"
    assert match["repo"] == "python" and match["tag"].startswith("3.11.")  # the lock is compiled for CPython 3.11
    assert image == STAGING_IMAGE


def test_the_staging_job_runs_as_non_root_without_privileges():
    """Pod Security's "restricted" profile: non-root, no privilege escalation, no capabilities, RuntimeDefault
    seccomp. The work volume (an emptyDir, mode 0777) takes the installs and HOME."""
    job = weight_staging.render_staging_job(weights_settings(stack()), stack().weights.staged_models[0])
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert {"name": "HOME", "value": "/work"} in container["env"]
    assert {"name": "work", "mountPath": "/work"} in container["volumeMounts"]


def test_a_failed_staging_job_is_replaced_by_the_next_pulumi_up():
    """pulumi-kubernetes keeps waiting on a Failed Job at the next update unless the Job carries
    pulumi.com/replaceUnready: "true" (provider.go, Diff); the name, a content hash, would never change."""
    job = weight_staging.render_staging_job(weights_settings(stack()), stack().weights.staged_models[0])
    assert job["metadata"]["annotations"]["pulumi.com/replaceUnready"] == "true"


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
    script = re.sub(r"dd if=\{\} of=/dev/null bs=\S+ status=none", "echo {}", script)
    result = subprocess.run(["/bin/bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert sorted(result.stdout.split()[:2]) == sorted(
        [str(tmp_path / "a.safetensors"), str(tmp_path / "sub/b.safetensors")]
    )
    assert "weights warm-up done" in result.stdout


# --- the warm-up's memory ----------------------------------------------------------------------------------------

# Measured with GNU coreutils 9.1 dd (`/usr/bin/time -f %M dd if=<100 MiB file> of=/dev/null bs=<N>M`): a dd
# holds its block plus 1.6 MiB (2.6 MiB at bs=1M, 17.7 MiB at bs=16M), rounded up here to 2; bash, find, xargs
# and sleep hold about 3 MiB each. On cgroup v2 the kubelet kills the whole container past its limit.
DD_BEYOND_BLOCK_MIB = 2
SHELL_MIB = 4 * 3


def _warmup(template: dict) -> tuple[int, int, int]:
    """(files read at once, dd block in MiB, memory limit in MiB) of the rendered warm-up container."""
    (warmup,) = [c for c in template["spec"]["containers"] if c["name"] == "weights-warmup"]
    script = warmup["command"][-1]
    parallel = int(re.search(r"xargs -0 -P (\d+) ", script).group(1))
    block = int(re.search(r" bs=(\d+)M ", script).group(1))
    limit = warmup["resources"]["limits"]["memory"]
    assert limit.endswith("Mi"), limit
    return parallel, block, int(limit[:-2])


def test_the_warmup_fits_in_its_memory_limit_with_a_2x_margin():
    """Every dd at once, plus the shell, stays under half the limit: the old 16 x bs=16M (~300 MiB) under a
    256 Mi limit was OOM-killed and restarted forever, and the GPU pods never became Ready."""
    parallel, block, limit = _warmup(gpu_template(rayservice(stack())))
    peak = parallel * (block + DD_BEYOND_BLOCK_MIB) + SHELL_MIB
    assert parallel == 16, "the warm-up still reads 16 files at once"
    assert 2 * peak <= limit, f"{parallel} x dd bs={block}M needs ~{peak} MiB; the limit is {limit} Mi"


@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="needs GNU time to measure dd's peak memory")
def test_a_dd_holds_its_block_and_under_2_mib_more(tmp_path):
    """The allowance the arithmetic above uses, measured on this machine with the rendered block size."""
    _, block, _ = _warmup(gpu_template(rayservice(stack())))
    data = tmp_path / "shard"
    data.write_bytes(b"\0" * (4 * block * 2**20))
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "dd", f"if={data}", "of=/dev/null", f"bs={block}M", "status=none"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    peak_kib = int(result.stderr.split()[-1])
    assert peak_kib <= (block + DD_BEYOND_BLOCK_MIB) * 1024, f"dd bs={block}M peaked at {peak_kib} KiB"
