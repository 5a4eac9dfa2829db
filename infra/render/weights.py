"""How the GPU workers read the weight store, as plain Kubernetes and Serve-config data: pure, tested without Pulumi.

- `patch_gpu_template`: for `gcsfuse` models, the GPU worker pod gains the GCS FUSE sidecar annotations, one
  read-only CSI ephemeral volume per model (the model's store folder, `only-dir`), an init container that
  refuses to start the pod when the folder has no staging manifest, and a warm-up container (after the Ray
  container: KubeRay wants Ray first) that reads every shard in parallel so both nodes fill their file cache
  at once while vLLM starts.
- `patch_serve_config`: `model_source` becomes the mount path (gcsfuse) or the store URI with vLLM's
  `runai_streamer` load format (runai-streamer), and such a model runs with `HF_HUB_OFFLINE=1`: it never
  reaches the Hub (models that load from the Hub keep it).

What fills the store (the service accounts, the staging code and the staging Jobs) is rendered by
infra/render/weight_staging.py. Mount options and annotations follow the GCS FUSE CSI driver
(GoogleCloudPlatform/gcs-fuse-csi-driver: pkg/webhook/mutatingwebhook.go for the annotations,
docs/releases.md and docs/known-issues.md for the GKE versions) and gcsfuse (GoogleCloudPlatform/gcsfuse
cfg/params.yaml).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from infra.catalog import MachineProfile
from infra.config.sections.weights import RUNAI_LOAD_FORMAT, runai_extra_config
from infra.config.settings import ModelWeights, WeightsConfig
from infra.config.stackfiles import PROJECT_ROOT
from serve_app.builder import model_llm_configs, stamp_serve_config
from serve_app.spec import ModelSpec
from staging.layout import MANIFEST_NAME

MODEL_MOUNT_ROOT = "/mnt/models"
GCSFUSE_DRIVER = "gcsfuse.csi.storage.gke.io"
RAY_CONTAINER = "ray-worker"
# Every worker reads the whole checkpoint (vLLM's loader skips nothing under PP), so the file cache on the
# nodes' local SSD must hold it: 690 GB for R1 and a margin; smaller models get a smaller reservation.
CACHE_GIB_BY_PRESET = {"deepseek-r1": 750}
CACHE_GIB_DEFAULT = 100
# gcsfuse options for an immutable, read-mostly model folder (gcsfuse cfg/params.yaml; GKE needs a non-zero
# file-cache size to turn the file cache on at all). The file cache lives in the sidecar's default cache
# volume, an emptyDir on node ephemeral storage = the local-SSD RAID on A3 and G2 pools. Only current option
# names: since gcsfuse v3.8.0 the type cache is deprecated and `metadata-cache:type-cache-max-size-mb` is
# ignored with a warning in favour of the one `metadata-cache:stat-cache-max-size-mb` (GoogleCloudPlatform/
# gcsfuse cfg/params.yaml, cmd/legacy_main.go "Type cache is deprecated"), which already carries the value -1.
GCSFUSE_MOUNT_OPTIONS = (
    "implicit-dirs",
    "metadata-cache:ttl-secs:-1",
    "metadata-cache:stat-cache-max-size-mb:-1",
    "metadata-cache:negative-ttl-secs:0",
    "file-system:kernel-list-cache-ttl-secs:-1",
    "file-cache:max-size-mb:-1",
    "file-cache:cache-file-for-range-read:true",
    "file-cache:enable-parallel-downloads:true",
    "file-cache:parallel-downloads-per-file:16",
)
# For the manifest check of models vLLM streams itself: listings and stats only, nothing cached on disk.
GCSFUSE_METADATA_OPTIONS = ("implicit-dirs", "metadata-cache:ttl-secs:-1", "metadata-cache:negative-ttl-secs:0")
# A model served from the store never reaches the Hub: huggingface_hub refuses every call under
# HF_HUB_OFFLINE=1, and vLLM 0.29 then resolves the model locally (vllm/engine/arg_utils.py,
# create_engine_config: "HF_HUB_OFFLINE is True, replace model_id", gs:// URIs skipped for runai_streamer). The
# Hub download settings a preset may carry mean nothing there and are left out, as is the Hub token when no
# model of a GPU group loads from the Hub.
HUB_OFFLINE_ENV = "HF_HUB_OFFLINE"
HUB_DOWNLOAD_ENV = ("HF_XET_HIGH_PERFORMANCE", "HF_HUB_ENABLE_HF_TRANSFER")
HUB_TOKEN_ENV = "HF_TOKEN"
# The warm-up container reads WARMUP_PARALLEL_FILES files at once with `dd bs=<WARMUP_BLOCK_MIB>M`. On cgroup
# v2 the kubelet sets memory.oom.group, so one OOM kills the whole container (kubernetes/kubernetes#117793,
# Kubernetes 1.28), which then restarts forever: the limit must hold every dd at once. A dd holds its block
# plus ~1.6 MiB, and bash, find, xargs and sleep ~3 MiB each, measured with GNU coreutils 9.1
# (`/usr/bin/time -f %M dd if=<100 MiB file> of=/dev/null bs=<N>M`: 2.6 MiB at bs=1M, 5.6 MiB at 4M, 17.7 MiB
# at 16M). 16 x 16 MiB blocks (~283 MiB) broke the old 256 Mi limit; 1 MiB blocks need ~16 x 2.6 + 12 = ~54
# MiB, a 4x margin. The block is only dd's copy buffer: gcsfuse's parallel download job fetches the whole
# object in download-chunk-size-mb pieces whatever the reader asks for (gcsfuse internal/cache/file/
# downloader/parallel_downloads_job.go, parallelDownloadObjectToFile), so a bigger block buys nothing.
WARMUP_PARALLEL_FILES = 16
WARMUP_BLOCK_MIB = 1
WARMUP_MEMORY_LIMIT_MIB = 256


@dataclass(frozen=True)
class WeightsSettings:
    """What the rendered objects need about the weights, resolved by the wiring from the stack config."""

    config: WeightsConfig
    namespace: str
    gcp_project: str
    bucket: str | None  # None when no model reads the store
    ray_service_account: str  # KSA of every Ray pod when the store exists
    reader_email: str
    stager_service_account: str
    stager_email: str
    hf_token_secret: str | None = None  # the HF token Secret, when the stack has a token
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
    return [
        model for model in (weights.for_model(model_id) for model_id in sorted(model_ids)) if model.source == "gcsfuse"
    ]


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


def patch_gpu_template(
    template: dict, settings: WeightsSettings, models: Sequence[ModelSpec], machine: MachineProfile
) -> dict:
    """The GPU worker pod template with its group's store-backed models mounted and checked; unchanged when
    the group has none.

    gcsfuse models are mounted for vLLM (file cache, warm-up). runai-streamer models, which vLLM streams from
    gs:// itself, are mounted too, metadata only (no file cache), so that the same manifest check refuses to
    start a pod on a model that is not completely staged.
    """
    fused = gcsfuse_models(settings.config, [model.model_id for model in models])
    streamed = [
        weights
        for weights in (settings.config.for_model(model.model_id) for model in models)
        if weights.source == "runai-streamer"
    ]
    if not fused and not streamed:
        return template
    template = copy.deepcopy(template)
    if all(settings.config.for_model(model.model_id).uses_store for model in models):
        _drop_env(template["spec"]["containers"], HUB_TOKEN_ENV)
    cache_gib = (
        cache_request_gib([m for m in models if settings.config.for_model(m.model_id).source == "gcsfuse"], machine)
        if fused
        else None
    )
    template.setdefault("metadata", {}).setdefault("annotations", {}).update(_sidecar_annotations(cache_gib))
    spec = template["spec"]
    spec.setdefault("volumes", []).extend(_store_volume(weights, settings.bucket) for weights in (*fused, *streamed))
    mounts = {weights.model_id: _store_mount(weights) for weights in (*fused, *streamed)}
    containers = spec["containers"]
    ray = next(container for container in containers if container["name"] == RAY_CONTAINER)
    if fused:
        ray["volumeMounts"] = [*ray.get("volumeMounts", []), *(mounts[w.model_id] for w in fused)]
    # Needs GKE >= 1.29.3-gke.1093000 (FUSE volumes in init containers, native sidecar).
    spec["initContainers"] = [
        *spec.get("initContainers", []),
        _manifest_check_container(ray["image"], list(mounts.values())),
    ]
    if fused:
        containers.insert(
            containers.index(ray) + 1, _warmup_container(ray["image"], [mounts[w.model_id] for w in fused])
        )
    return template


def _drop_env(containers: list[dict], name: str) -> None:
    for container in containers:
        if "env" in container:
            container["env"] = [item for item in container["env"] if item["name"] != name]


def _sidecar_annotations(cache_gib: int | None) -> dict[str, str]:
    """The GCS FUSE sidecar's annotations; `cache_gib` is the file cache's request, None without a file cache."""
    annotations = {
        "gke-gcsfuse/volumes": "true",
        # "0" = no limit: a throttled sidecar is the usual reason a FUSE read crawls.
        "gke-gcsfuse/cpu-limit": "0",
        "gke-gcsfuse/memory-limit": "0",
        "gke-gcsfuse/ephemeral-storage-limit": "0",
    }
    if cache_gib is not None:
        # The file cache (an emptyDir on the local SSD) counts against the pod's ephemeral storage.
        annotations["gke-gcsfuse/ephemeral-storage-request"] = f"{cache_gib}Gi"
    return annotations


def _store_volume(weights: ModelWeights, bucket: str | None) -> dict:
    """The model's store folder as a read-only CSI ephemeral volume: cached for gcsfuse, metadata only else."""
    options = GCSFUSE_MOUNT_OPTIONS if weights.source == "gcsfuse" else GCSFUSE_METADATA_OPTIONS
    return {
        "name": _volume_name(weights.model_id),
        "csi": {
            "driver": GCSFUSE_DRIVER,
            "readOnly": True,
            "volumeAttributes": {
                "bucketName": bucket,
                "mountOptions": ",".join((*options, f"only-dir={weights.prefix.rstrip('/')}")),
            },
        },
    }


def _store_mount(weights: ModelWeights) -> dict:
    return {"name": _volume_name(weights.model_id), "mountPath": mount_path(weights.model_id), "readOnly": True}


def _manifest_check_container(image: str, mounts: Sequence[dict]) -> dict:
    """The init container that refuses to start the pod until every mounted model is completely staged."""
    return {
        "name": "weights-manifest-check",
        "image": image,
        "command": ["python3", "-c", manifest_check_script(), *[mount["mountPath"] for mount in mounts]],
        "volumeMounts": list(mounts),
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}},
    }


def _warmup_container(image: str, mounts: Sequence[dict]) -> dict:
    return {
        "name": "weights-warmup",
        "image": image,
        "command": ["/bin/bash", "-c", _warmup_script([mount["mountPath"] for mount in mounts])],
        "volumeMounts": list(mounts),
        # dd does little work (the sidecar downloads); keep the request small: the Ray container takes
        # nearly all of the node's allocatable CPU. The limit leaves the measured peak a 4x margin (above).
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": f"{WARMUP_MEMORY_LIMIT_MIB}Mi"},
        },
    }


# The init container's script, run as `python3 -c <text>` in the Ray image (Python 3.12) before the pod's
# containers start; stat-only, no weight bytes are read. The text is part of every GPU worker's pod spec, so the
# file carries no docstring: a change to it rolls every GPU worker.
MANIFEST_CHECK_FILE = PROJECT_ROOT / "staging" / "manifest_check.py"


@functools.cache
def manifest_check_script() -> str:
    return MANIFEST_CHECK_FILE.read_text(encoding="utf-8")


def _warmup_script(roots: Sequence[str]) -> str:
    """Read every file once, 16 at a time, so gcsfuse's parallel downloads fill the local-SSD cache on both
    nodes while vLLM starts; then stay up (a finished container would restart under the pod's policy)."""
    quoted = " ".join(shlex.quote(root) for root in roots)
    return (
        f"start=$(date +%s); find {quoted} -type f -not -name {shlex.quote(MANIFEST_NAME)} -print0 "
        f"| xargs -0 -P {WARMUP_PARALLEL_FILES} -I{{}} dd if={{}} of=/dev/null bs={WARMUP_BLOCK_MIB}M status=none; "
        f'echo "weights warm-up done in $(( $(date +%s) - start ))s"; exec sleep infinity'
    )


# --- the Serve config ----------------------------------------------------------------------------------------


def patch_serve_config(config: dict, settings: WeightsSettings, models: Sequence[ModelSpec]) -> dict:
    """The Serve config with each store-backed model reading the store instead of `source` (stamped again:
    the config's hash follows the edit)."""
    config = copy.deepcopy(config)
    specs = {model.model_id: model for model in models}
    for llm in model_llm_configs(config):
        model_id = llm["model_loading_config"]["model_id"]
        weights = settings.config.for_model(model_id)
        if weights.uses_store:
            _offline(llm)
        if weights.source == "gcsfuse":
            llm["model_loading_config"]["model_source"] = mount_path(model_id)
        elif weights.source == "runai-streamer":
            llm["model_loading_config"]["model_source"] = {
                "bucket_uri": f"gs://{settings.bucket}/{weights.prefix.rstrip('/')}"
            }
            engine = dict(llm["engine_kwargs"])
            engine["load_format"] = RUNAI_LOAD_FORMAT
            engine["model_loader_extra_config"] = runai_extra_config(specs[model_id])
            llm["engine_kwargs"] = dict(sorted(engine.items()))
    return stamp_serve_config(config)


def _offline(llm: dict) -> None:
    """The LLM config runs with the Hub switched off and without Hub download settings."""
    runtime_env = dict(llm.get("runtime_env", {}))
    env_vars = {name: value for name, value in runtime_env.get("env_vars", {}).items() if name not in HUB_DOWNLOAD_ENV}
    env_vars[HUB_OFFLINE_ENV] = "1"
    runtime_env["env_vars"] = dict(sorted(env_vars.items()))
    llm["runtime_env"] = runtime_env
