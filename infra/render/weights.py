"""The weight sources as plain Kubernetes and Serve-config data: pure, tested without Pulumi.

- `patch_gpu_template`: for `gcsfuse` models, the GPU worker pod gains the GCS FUSE sidecar annotations, one
  read-only CSI ephemeral volume per model (the model's store folder, `only-dir`), an init container that
  refuses to start the pod when the folder has no staging manifest, and a warm-up container (after the Ray
  container: KubeRay wants Ray first) that reads every shard in parallel so both nodes fill their file cache
  at once while vLLM starts.
- `patch_serve_config`: `model_source` becomes the mount path (gcsfuse) or the store URI with vLLM's
  `runai_streamer` load format (runai-streamer).
- the staging side: the Ray pods' and the stager's Kubernetes service accounts (Workload Identity), the
  staging code ConfigMap, the S3 credentials Secret and one staging Job per staged model.

Mount options and annotations follow the GCS FUSE CSI driver and gcsfuse (reference: model-weights.md §4).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from infra.catalog import PART_OF_LABEL, STAGING_IMAGE, SYSTEM_POOL_LABELS, MachineProfile
from infra.render.files import content_name, files_configmap, files_volume, keyed_files
from infra.config.sections.weights import RUNAI_LOAD_FORMAT
from infra.config.settings import ModelWeights, WeightsConfig
from serve_app.spec import ModelSpec
from staging.layout import MANIFEST_NAME

MODEL_MOUNT_ROOT = "/mnt/models"
GCSFUSE_DRIVER = "gcsfuse.csi.storage.gke.io"
WORKLOAD_IDENTITY_ANNOTATION = "iam.gke.io/gcp-service-account"
RAY_CONTAINER = "ray-worker"
# Every worker reads the whole checkpoint (vLLM's loader skips nothing under PP), so the file cache on the
# nodes' local SSD must hold it: 690 GB for R1 and a margin; smaller models get a smaller reservation.
CACHE_GIB_BY_PRESET = {"deepseek-r1": 750}
CACHE_GIB_DEFAULT = 100
# gcsfuse options for an immutable, read-mostly model folder (gcsfuse cfg/params.yaml; GKE needs a non-zero
# file-cache size to turn the file cache on at all). The file cache lives in the sidecar's default cache
# volume, an emptyDir on node ephemeral storage = the local-SSD RAID on A3 and G2 pools.
GCSFUSE_MOUNT_OPTIONS = (
    "implicit-dirs",
    "metadata-cache:ttl-secs:-1",
    "metadata-cache:stat-cache-max-size-mb:-1",
    "metadata-cache:type-cache-max-size-mb:-1",
    "metadata-cache:negative-ttl-secs:0",
    "file-system:kernel-list-cache-ttl-secs:-1",
    "file-cache:max-size-mb:-1",
    "file-cache:cache-file-for-range-read:true",
    "file-cache:enable-parallel-downloads:true",
    "file-cache:parallel-downloads-per-file:16",
)
# For the manifest check of models vLLM streams itself: listings and stats only, nothing cached on disk.
GCSFUSE_METADATA_OPTIONS = ("implicit-dirs", "metadata-cache:ttl-secs:-1", "metadata-cache:negative-ttl-secs:0")
WARMUP_PARALLEL_FILES = 16
HF_TOKEN_SECRET_KEY = "token"  # the key of the HF token Secret (the RayService's workers read it too)


@dataclass(frozen=True)
class WeightsSettings:
    """What the rendered objects need about the weights, resolved by the wiring from the stack config."""

    config: WeightsConfig
    namespace: str
    gcp_project: str
    bucket: Optional[str]  # None when no model reads the store
    ray_service_account: str  # KSA of every Ray pod when the store exists
    reader_email: str
    stager_service_account: str
    stager_email: str
    hf_token_secret: Optional[str] = None  # the HF token Secret, when the stack has a token
    name: str = "llm"

    @property
    def s3_secret(self) -> str:
        return f"{self.name}-s3-credentials"


def gsa_email(account_id: str, gcp_project: str) -> str:
    """A user-managed service account's email: a pure function of its id and project."""
    return f"{account_id}@{gcp_project}.iam.gserviceaccount.com"


def mount_path(model_id: str) -> str:
    return f"{MODEL_MOUNT_ROOT}/{model_id}"


def _volume_name(model_id: str) -> str:
    slug = re.sub(r"[^a-z0-9-]", "-", model_id.lower()).strip("-")[:40].strip("-")
    return f"weights-{slug}-{hashlib.sha256(model_id.encode()).hexdigest()[:6]}"


# --- the GPU worker pods -------------------------------------------------------------------------------------


def gcsfuse_models(weights: WeightsConfig, model_ids: Sequence[str]) -> list[ModelWeights]:
    return [weights.for_model(model_id) for model_id in sorted(model_ids)
            if weights.for_model(model_id).source == "gcsfuse"]


def with_store_identity(template: dict, settings: WeightsSettings) -> dict:
    """A worker pod template that runs as the store reader's Kubernetes service account (Workload Identity).
    Workers only: the head reads no weights and keeps the service account KubeRay gives it (the in-tree
    autoscaler's RBAC is bound to that one)."""
    if not settings.bucket:
        return template
    template = copy.deepcopy(template)
    template["spec"]["serviceAccountName"] = settings.ray_service_account
    return template


def cache_request_gib(models: Sequence[ModelSpec], machine: MachineProfile) -> int:
    """Ephemeral storage the GCS FUSE sidecar asks for: the file caches of the mounted models, within the
    node's local SSD."""
    wanted = sum(CACHE_GIB_BY_PRESET.get(model.preset or "", CACHE_GIB_DEFAULT) for model in models)
    return min(wanted, machine.local_ssd_gib * 9 // 10)


def patch_gpu_template(template: dict, settings: WeightsSettings, models: Sequence[ModelSpec],
                       machine: MachineProfile) -> dict:
    """The GPU worker pod template with its group's store-backed models mounted and checked; unchanged when
    the group has none.

    gcsfuse models are mounted for vLLM (file cache, warm-up). runai-streamer models, which vLLM streams from
    gs:// itself, are mounted too, metadata only (no file cache), so that the same manifest check refuses to
    start a pod on a model that is not completely staged.
    """
    fused = gcsfuse_models(settings.config, [model.model_id for model in models])
    streamed = [settings.config.for_model(model.model_id) for model in models
                if settings.config.for_model(model.model_id).source == "runai-streamer"]
    if not fused and not streamed:
        return template
    template = copy.deepcopy(template)
    annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
    annotations.update({
        "gke-gcsfuse/volumes": "true",
        # "0" = no limit: a throttled sidecar is the usual reason a FUSE read crawls.
        "gke-gcsfuse/cpu-limit": "0",
        "gke-gcsfuse/memory-limit": "0",
        "gke-gcsfuse/ephemeral-storage-limit": "0",
    })
    if fused:
        # The file cache (an emptyDir on the local SSD) counts against the pod's ephemeral storage.
        cache_gib = cache_request_gib([m for m in models if settings.config.for_model(m.model_id).source == "gcsfuse"],
                                      machine)
        annotations["gke-gcsfuse/ephemeral-storage-request"] = f"{cache_gib}Gi"
    spec = template["spec"]
    mounts = {}
    for weights in (*fused, *streamed):
        name = _volume_name(weights.model_id)
        options = GCSFUSE_MOUNT_OPTIONS if weights.source == "gcsfuse" else GCSFUSE_METADATA_OPTIONS
        spec.setdefault("volumes", []).append({"name": name, "csi": {
            "driver": GCSFUSE_DRIVER,
            "readOnly": True,
            "volumeAttributes": {
                "bucketName": settings.bucket,
                "mountOptions": ",".join((*options, f"only-dir={weights.prefix.rstrip('/')}")),
            },
        }})
        mounts[weights.model_id] = {"name": name, "mountPath": mount_path(weights.model_id), "readOnly": True}
    containers = spec["containers"]
    ray = next(container for container in containers if container["name"] == RAY_CONTAINER)
    if fused:
        ray["volumeMounts"] = [*ray.get("volumeMounts", []), *(mounts[w.model_id] for w in fused)]
    # Needs GKE >= 1.29.3-gke.1093000 (FUSE volumes in init containers, native sidecar).
    spec["initContainers"] = [*spec.get("initContainers", []), {
        "name": "weights-manifest-check",
        "image": ray["image"],
        "command": ["python3", "-c", manifest_check_script(), *[mount["mountPath"] for mount in mounts.values()]],
        "volumeMounts": list(mounts.values()),
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}},
    }]
    if fused:
        containers.insert(containers.index(ray) + 1, {
            "name": "weights-warmup",
            "image": ray["image"],
            "command": ["/bin/bash", "-c", _warmup_script([mount_path(w.model_id) for w in fused])],
            "volumeMounts": [mounts[w.model_id] for w in fused],
            # dd does little work (the sidecar downloads); keep the request small: the Ray container takes
            # nearly all of the node's allocatable CPU.
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        })
    return template


# The init container's script, run as `python3 -c <text>` in the Ray image (Python 3.12) before the pod's
# containers start; stat-only, no weight bytes are read. The text is part of every GPU worker's pod spec, so the
# file carries no docstring: a change to it rolls every GPU worker.
MANIFEST_CHECK_FILE = Path(__file__).resolve().parents[2] / "staging" / "manifest_check.py"


@functools.cache
def manifest_check_script() -> str:
    return MANIFEST_CHECK_FILE.read_text(encoding="utf-8")


def _warmup_script(roots: Sequence[str]) -> str:
    """Read every file once, 16 at a time, so gcsfuse's parallel downloads fill the local-SSD cache on both
    nodes while vLLM starts; then stay up (a finished container would restart under the pod's policy)."""
    quoted = " ".join(shlex.quote(root) for root in roots)
    return (f"start=$(date +%s); find {quoted} -type f -not -name {shlex.quote(MANIFEST_NAME)} -print0 "
            f"| xargs -0 -P {WARMUP_PARALLEL_FILES} -I{{}} dd if={{}} of=/dev/null bs=16M status=none; "
            f"echo \"weights warm-up done in $(( $(date +%s) - start ))s\"; exec sleep infinity")


# --- the Serve config ----------------------------------------------------------------------------------------


def patch_serve_config(config: dict, settings: WeightsSettings, models: Sequence[ModelSpec]) -> dict:
    """The Serve config with each store-backed model reading the store instead of `source`."""
    config = copy.deepcopy(config)
    specs = {model.model_id: model for model in models}
    for application in config["applications"]:
        for llm in application["args"]["llm_configs"]:
            model_id = llm["model_loading_config"]["model_id"]
            weights = settings.config.for_model(model_id)
            if weights.source == "gcsfuse":
                llm["model_loading_config"]["model_source"] = mount_path(model_id)
            elif weights.source == "runai-streamer":
                from infra.config.sections.weights import runai_extra_config

                llm["model_loading_config"]["model_source"] = {
                    "bucket_uri": f"gs://{settings.bucket}/{weights.prefix.rstrip('/')}"}
                engine = dict(llm["engine_kwargs"])
                engine["load_format"] = RUNAI_LOAD_FORMAT
                engine["model_loader_extra_config"] = runai_extra_config(specs[model_id])
                llm["engine_kwargs"] = dict(sorted(engine.items()))
    return config


# --- identities, staging code and Jobs ----------------------------------------------------------------------


def render_service_account(name: str, namespace: str, email: str) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(PART_OF_LABEL),
                         "annotations": {WORKLOAD_IDENTITY_ANNOTATION: email}}}


STAGING_FILES = ("staging/__init__.py", "staging/__main__.py", "staging/copy.py", "staging/layout.py",
                 "staging/sources.py")
STAGING_REQUIREMENTS = "requirements-staging.txt"
_ROOT = Path(__file__).resolve().parents[2]
STAGING_CODE_MOUNT = "/opt/staging"
WORK_MOUNT = "/work"


@functools.cache
def staging_files() -> dict[str, tuple[str, str]]:
    """ConfigMap key -> (path under the mount, text): the staging package and its pinned requirements."""
    return keyed_files({path: (_ROOT / path).read_text(encoding="utf-8")
                        for path in (*STAGING_FILES, STAGING_REQUIREMENTS)})


def staging_configmap_name(settings: WeightsSettings) -> str:
    return content_name(f"{settings.name}-staging-code", staging_files())


def render_staging_configmap(settings: WeightsSettings) -> dict:
    return files_configmap(staging_configmap_name(settings), settings.namespace, staging_files(), PART_OF_LABEL)


def render_secret(name: str, namespace: str, string_data: dict[str, Any]) -> dict:
    """An Opaque Secret; values may be Pulumi secret outputs, which stay secret."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(PART_OF_LABEL)},
            "stringData": string_data}


def hf_token_secret_name(name: str) -> str:
    """The Secret with the Hugging Face token, read by the GPU workers and the staging Jobs alike."""
    return f"{name}-hf-token"


def render_s3_secret(settings: WeightsSettings) -> dict:
    return render_secret(settings.s3_secret, settings.namespace,
                         {"AWS_ACCESS_KEY_ID": settings.config.s3_access_key_id,
                          "AWS_SECRET_ACCESS_KEY": settings.config.s3_secret_access_key})


STAGING_WORKERS = 4  # files in flight: scratch holds at most 4 R1 shards (~4.3 GB each) at once
STAGING_SCRATCH_GIB = 50


def staging_job_name(settings: WeightsSettings, weights: ModelWeights) -> str:
    """Named after what it stages and the code that stages it: a new revision (or new staging code) is a new
    Job, which `pulumi up` creates and waits for; an unchanged one is left alone."""
    digest = hashlib.sha256(f"{weights.origin}\0{weights.prefix}\0{settings.bucket}\0"
                            f"{staging_configmap_name(settings)}".encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9-]", "-", weights.model_id.lower()).strip("-")[:30].strip("-")
    return f"{settings.name}-stage-{slug}-{digest}"


def render_staging_job(settings: WeightsSettings, weights: ModelWeights) -> dict:
    config = settings.config
    args = ["--source", weights.origin, "--revision", weights.revision, "--bucket", settings.bucket,
            "--model-id", weights.model_id, "--workers", str(STAGING_WORKERS), "--scratch", f"{WORK_MOUNT}/scratch",
            "--project", settings.gcp_project]
    env: list[dict] = [
        {"name": "PYTHONPATH", "value": f"{STAGING_CODE_MOUNT}:{WORK_MOUNT}/deps"},
        {"name": "GOOGLE_CLOUD_PROJECT", "value": settings.gcp_project},
        {"name": "HF_HOME", "value": f"{WORK_MOUNT}/hf"},
        {"name": "HF_XET_HIGH_PERFORMANCE", "value": "1"},
        {"name": "HF_HUB_DISABLE_PROGRESS_BARS", "value": "1"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if weights.origin.startswith("s3://"):
        if config.s3_endpoint_url:
            env.append({"name": "AWS_ENDPOINT_URL", "value": config.s3_endpoint_url})
        if config.s3_credentials:
            env += [{"name": name, "valueFrom": {"secretKeyRef": {"name": settings.s3_secret, "key": name}}}
                    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
    elif settings.hf_token_secret:
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": settings.hf_token_secret,
                                                                        "key": HF_TOKEN_SECRET_KEY}}})
    script = (f"mkdir -p {WORK_MOUNT}/scratch && python -m pip install --quiet --no-cache-dir "
              f"--disable-pip-version-check --target {WORK_MOUNT}/deps -r {STAGING_CODE_MOUNT}/{STAGING_REQUIREMENTS} "
              f"&& exec python -m staging \"$@\"")
    # A label value ends in a letter or digit: a model id may end in '-' or '.', or be cut there.
    model_label = re.sub(r"[^A-Za-z0-9._-]", "_", weights.model_id)[:63].strip("-_.") or "model"
    labels = {**PART_OF_LABEL, "llmserve.dev/staging-model": model_label}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": staging_job_name(settings, weights), "namespace": settings.namespace,
                     "labels": labels},
        "spec": {
            # Each retry resumes where the last attempt stopped (finished objects are skipped).
            "backoffLimit": 3,
            "activeDeadlineSeconds": config.staging_timeout_minutes * 60,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": settings.stager_service_account,
                    "restartPolicy": "Never",
                    "nodeSelector": dict(SYSTEM_POOL_LABELS),
                    "containers": [{
                        "name": "stage",
                        "image": STAGING_IMAGE,
                        "command": ["/bin/sh", "-ec", script, "stage"],
                        "args": args,
                        "env": env,
                        "resources": {
                            "requests": {"cpu": "2", "memory": "8Gi", "ephemeral-storage": f"{STAGING_SCRATCH_GIB - 10}Gi"},
                            "limits": {"memory": "8Gi", "ephemeral-storage": f"{STAGING_SCRATCH_GIB}Gi"},
                        },
                        "volumeMounts": [
                            {"name": "staging-code", "mountPath": STAGING_CODE_MOUNT, "readOnly": True},
                            {"name": "work", "mountPath": WORK_MOUNT},
                        ],
                    }],
                    "volumes": [
                        files_volume("staging-code", staging_configmap_name(settings), staging_files()),
                        {"name": "work", "emptyDir": {"sizeLimit": f"{STAGING_SCRATCH_GIB}Gi"}},
                    ],
                },
            },
        },
    }
