"""What fills the weight store, as plain Kubernetes objects: pure, tested without Pulumi.

The Ray pods' and the stager's Kubernetes service accounts (Workload Identity), the staging code ConfigMap,
the S3 credentials Secret and one staging Job per staged model; `infra/components/weight_staging.py` turns
them into resources. How the GPU workers then read the store is infra/render/weights.py.
"""

from __future__ import annotations

import functools
import hashlib
import re

from infra.catalog import PART_OF_LABEL, STAGING_IMAGE, SYSTEM_POOL_LABELS
from infra.config.settings import ModelWeights
from infra.config.stackfiles import PROJECT_ROOT
from infra.render.files import content_name, files_configmap, files_volume, keyed_files
from infra.render.secrets import HF_TOKEN_SECRET_KEY, render_secret
from infra.render.weights import WeightsSettings

WORKLOAD_IDENTITY_ANNOTATION = "iam.gke.io/gcp-service-account"
STAGING_FILES = (
    "staging/__init__.py",
    "staging/__main__.py",
    "staging/copy.py",
    "staging/layout.py",
    "staging/sources.py",
)
# The hashed lock (scripts/lock_requirements.py compiles it for CPython 3.11 on x86-64 Linux, the image's),
# shipped in the staging ConfigMap: pip refuses any file whose hash it does not list.
STAGING_REQUIREMENTS = "requirements/staging.txt"
STAGING_CODE_MOUNT = "/opt/staging"
WORK_MOUNT = "/work"
STAGING_WORKERS = 4  # files in flight: scratch holds at most 4 R1 shards (~4.3 GB each) at once
STAGING_SCRATCH_GIB = 50
# The Job starts right after its bucket grant and Workload Identity binding are created; IAM changes take
# "typically 2 minutes, but could potentially take 7 minutes or longer" to propagate
# (https://cloud.google.com/iam/docs/access-change-propagation): the staging tool retries a refused (403) first
# access this long before it gives up.
STAGING_ACCESS_WAIT_SECONDS = 600
# `pulumi up` waits this much longer than the Job's own deadline (activeDeadlineSeconds, counted from the
# Job's start), so that it is always the Job that gives up first and `pulumi up` reports the Job's failure:
# were Pulumi to stop waiting on a Job that still runs, the next `pulumi up` would replace that running Job.
STAGING_PULUMI_MARGIN_MINUTES = 10
# A uid and gid with no entry in the image: nothing in python:3.11-slim runs as them or owns a file.
STAGING_UID = 65532
# Without it the Kubernetes provider keeps waiting on a Failed Job at the next `pulumi up` instead of replacing
# it, and since the Job's name is a content hash, one failed staging run would block every later deploy
# (pulumi-kubernetes provider/pkg/provider/provider.go, Diff: a Job that is not Complete is replaced, delete
# before create as its name is the same). A completed Job is ready and left alone.
REPLACE_UNREADY_ANNOTATION = "pulumi.com/replaceUnready"
# The Job's command: the hashed lock into the work volume (wheels only, every hash checked), then the staging
# package from its ConfigMap.
_STAGE_SCRIPT = (
    f"mkdir -p {WORK_MOUNT}/scratch && python -m pip install --quiet --no-cache-dir "
    f"--disable-pip-version-check --require-hashes --only-binary=:all: --target {WORK_MOUNT}/deps "
    f'-r {STAGING_CODE_MOUNT}/{STAGING_REQUIREMENTS} && exec python -m staging "$@"'
)


def render_service_account(name: str, namespace: str, email: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(PART_OF_LABEL),
            "annotations": {WORKLOAD_IDENTITY_ANNOTATION: email},
        },
    }


@functools.cache
def staging_files() -> dict[str, tuple[str, str]]:
    """ConfigMap key -> (path under the mount, text): the staging package and its pinned requirements."""
    return keyed_files(
        {path: (PROJECT_ROOT / path).read_text(encoding="utf-8") for path in (*STAGING_FILES, STAGING_REQUIREMENTS)}
    )


def staging_configmap_name(settings: WeightsSettings) -> str:
    return content_name(f"{settings.name}-staging-code", staging_files())


def render_staging_configmap(settings: WeightsSettings) -> dict:
    return files_configmap(staging_configmap_name(settings), settings.namespace, staging_files(), PART_OF_LABEL)


def render_s3_secret(settings: WeightsSettings) -> dict:
    return render_secret(
        settings.s3_secret,
        settings.namespace,
        {
            "AWS_ACCESS_KEY_ID": settings.config.s3_access_key_id,
            "AWS_SECRET_ACCESS_KEY": settings.config.s3_secret_access_key,
        },
    )


# --- the Jobs --------------------------------------------------------------------------------------------------


def staging_deadline_seconds(settings: WeightsSettings) -> int:
    """The Job's activeDeadlineSeconds: `stagingTimeoutMinutes`, retries included."""
    return settings.config.staging_timeout_minutes * 60


def pulumi_wait_minutes(settings: WeightsSettings) -> int:
    """How long `pulumi up` waits for a staging Job: its deadline and then some, so that the Job ends first."""
    return settings.config.staging_timeout_minutes + STAGING_PULUMI_MARGIN_MINUTES


def staging_job_name(settings: WeightsSettings, weights: ModelWeights) -> str:
    """Named after what it stages and the code that stages it: a new revision (or new staging code) is a new
    Job, which `pulumi up` creates and waits for; an unchanged one is left alone."""
    digest = hashlib.sha256(
        f"{weights.origin}\0{weights.prefix}\0{settings.bucket}\0{staging_configmap_name(settings)}".encode()
    ).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9-]", "-", weights.model_id.lower()).strip("-")[:30].strip("-")
    return f"{settings.name}-stage-{slug}-{digest}"


def render_staging_job(settings: WeightsSettings, weights: ModelWeights) -> dict:
    """The Job that stages one model into the store, on the system pool, as the stager's service account."""
    # A label value ends in a letter or digit: a model id may end in '-' or '.', or be cut there.
    model_label = re.sub(r"[^A-Za-z0-9._-]", "_", weights.model_id)[:63].strip("-_.") or "model"
    labels = {**PART_OF_LABEL, "llmserve.dev/staging-model": model_label}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": staging_job_name(settings, weights),
            "namespace": settings.namespace,
            "labels": labels,
            # A Failed Job is replaced by the next `pulumi up`, which resumes the copy.
            "annotations": {REPLACE_UNREADY_ANNOTATION: "true"},
        },
        "spec": {
            # Each retry resumes where the last attempt stopped (finished objects are skipped).
            "backoffLimit": 3,
            "activeDeadlineSeconds": staging_deadline_seconds(settings),
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": settings.stager_service_account,
                    "restartPolicy": "Never",
                    "nodeSelector": dict(SYSTEM_POOL_LABELS),
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": STAGING_UID,
                        "runAsGroup": STAGING_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [_stage_container(settings, weights)],
                    "volumes": [
                        files_volume("staging-code", staging_configmap_name(settings), staging_files()),
                        {"name": "work", "emptyDir": {"sizeLimit": f"{STAGING_SCRATCH_GIB}Gi"}},
                    ],
                },
            },
        },
    }


def _stage_container(settings: WeightsSettings, weights: ModelWeights) -> dict:
    args = [
        "--source",
        weights.origin,
        "--revision",
        weights.revision,
        "--bucket",
        settings.bucket,
        "--model-id",
        weights.model_id,
        "--workers",
        str(STAGING_WORKERS),
        "--scratch",
        f"{WORK_MOUNT}/scratch",
        "--project",
        settings.gcp_project,
        "--access-wait-seconds",
        str(STAGING_ACCESS_WAIT_SECONDS),
    ]
    return {
        "name": "stage",
        "image": STAGING_IMAGE,
        "command": ["/bin/sh", "-ec", _STAGE_SCRIPT, "stage"],
        "args": args,
        "env": _stage_env(settings, weights),
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "resources": {
            "requests": {"cpu": "2", "memory": "8Gi", "ephemeral-storage": f"{STAGING_SCRATCH_GIB - 10}Gi"},
            "limits": {"memory": "8Gi", "ephemeral-storage": f"{STAGING_SCRATCH_GIB}Gi"},
        },
        "volumeMounts": [
            {"name": "staging-code", "mountPath": STAGING_CODE_MOUNT, "readOnly": True},
            {"name": "work", "mountPath": WORK_MOUNT},
        ],
    }


def _stage_env(settings: WeightsSettings, weights: ModelWeights) -> list[dict]:
    """The staging tool's environment, and the credentials of where the weights come from."""
    config = settings.config
    env: list[dict] = [
        {"name": "PYTHONPATH", "value": f"{STAGING_CODE_MOUNT}:{WORK_MOUNT}/deps"},
        {"name": "HOME", "value": WORK_MOUNT},  # the uid has no home in the image; the work volume is writable
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
            env += [
                {"name": name, "valueFrom": {"secretKeyRef": {"name": settings.s3_secret, "key": name}}}
                for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            ]
    elif settings.hf_token_secret:
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": settings.hf_token_secret, "key": HF_TOKEN_SECRET_KEY}},
            }
        )
    return env
