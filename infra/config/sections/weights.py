"""Where each model's weights come from, decided once from the stack config, validated before anything exists.

Three weight sources (a model's `weightSource`, defaulting to the stack's `weightSource`):

- ``gcsfuse``: the weights are staged once into the stack's model store bucket
  (``gs://<bucket>/<model id>/<revision>/``, by the in-cluster staging Job) and mounted read-only on every GPU
  worker through the GCS FUSE CSI driver, with the file cache on the nodes' local SSD; vLLM's default loader
  reads the mount. The default for the 690 GB class (models with the deepseek-r1 preset).
- ``runai-streamer``: staged the same way; vLLM's RunAI Model Streamer streams ``gs://`` straight into GPU
  memory. Opt-in: the image must contain ``runai-model-streamer[gcs]`` (the pinned Ray image is not known to).
- ``huggingface``: each node downloads ``source`` at every start (today's behaviour). Small models and dev.

A model's staging origin is its ``source``: a Hugging Face id (``revision`` = the 40-character commit), an
``s3://bucket/prefix`` (``revision`` = a label), or ``gs://<the model store>/<id>/<revision>`` for weights
staged by hand with ``python -m staging`` (no Job). Pure: no Pulumi, no cloud libraries.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from configkit import shown
from infra.catalog import PINNED_HUB_REVISIONS, RAY_LLM_IMAGE
from infra.config.settings import ModelStoreConfig, ModelWeights, WeightsConfig
from infra.config.stackfiles import PROJECT
from infra.config.values import ValueReader, read_cleanly
from serve_app.spec import ModelSpec
from staging.layout import HF_COMMIT, REVISION_LABEL, model_prefix, split_uri

if TYPE_CHECKING:  # the secrets' type only: the config is read where Pulumi may not be installed (local_run)
    import pulumi

LARGE_MODEL_PRESETS = frozenset({"deepseek-r1"})  # "auto" mounts these from the store
RUNAI_LOAD_FORMAT = "runai_streamer"
# vLLM 0.29 runai_streamer_loader: any other key raises "Unexpected extra config keys for runai_streamer".
RUNAI_EXTRA_CONFIG_KEYS = ("distributed", "concurrency", "memory_limit")
RUNAI_EXTRA_CONFIG_DEFAULTS = {"distributed": True, "concurrency": 16, "memory_limit": 100_000_000_000}
# Why runai_streamer_sharded is refused, whatever the topology (vLLM 0.29 sharded_state_loader.py).
SHARDED_REFUSAL = (
    "vLLM 0.29's runai_streamer_sharded cannot list gs:// checkpoints (it globs only s3://) and "
    "keys shards by tensor-parallel rank only, so pipeline stages collide"
)
# Cloud Storage's soft-delete retention: 0 (off) or 7 to 90 days (`softDeletePolicy.retentionDurationSeconds`).
MIN_SOFT_DELETE_DAYS = 7
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class WeightKeys:
    """The stack's weight keys, each read on its own (stage 1); `resolve_weights` applies the rules between them."""

    default_source: str  # a model's weightSource when it sets none: "auto" or one of the sources
    store_bucket: str  # "" derives <gcp project>-<stack>-models
    store_location: str  # "" takes gcp:region
    store_force_destroy: bool
    store_soft_delete_days: int
    image_has_runai_streamer: bool
    staging_timeout_minutes: int
    s3_endpoint_url: str


def default_bucket_name(gcp_project: str, stack: str) -> str:
    """`<project>-<stack>-models`, made a valid bucket name; long names keep a hash of the full one."""
    slug = re.sub(r"[^a-z0-9-]", "-", f"{gcp_project}-{stack}".lower()).strip("-")
    name = f"{slug}-models"
    if len(name) > 63 or name.startswith("goog"):
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"llm-{slug[:40].strip('-')}-{digest}-models"
    return name


def read_weight_keys(read: ValueReader) -> WeightKeys | None:
    """This section's keys (type and choice problems are recorded by the reader); None when any of them is bad."""
    keys = WeightKeys(
        default_source=read.get("weightSource"),
        store_bucket=read.get("modelStoreBucket"),
        store_location=read.get("modelStoreLocation"),
        store_force_destroy=read.get("modelStoreForceDestroy"),
        store_soft_delete_days=read.get("modelStoreSoftDeleteDays"),
        image_has_runai_streamer=read.get("rayImageHasRunaiStreamer"),
        staging_timeout_minutes=read.get("stagingTimeoutMinutes"),
        s3_endpoint_url=read.get("s3EndpointUrl"),
    )
    return keys if read_cleanly(*vars(keys).values()) else None


def resolve_weights(
    keys: WeightKeys,
    models: tuple[ModelSpec, ...],
    *,
    stack: str,
    gcp_project: str,
    region: str,
    deletion_protection: bool,
    ray_image: str,
    secrets: Mapping[str, pulumi.Input[str]],
) -> tuple[WeightsConfig, list[str], list[str]]:
    """Stage 2: every model's weight source, the model store, and the rules between them.
    Returns the config, the problems (each naming its key) and warnings."""
    bucket = keys.store_bucket or default_bucket_name(gcp_project, stack)
    location = (keys.store_location or region).lower()
    problems = _store_problems(keys, bucket, location, region, deletion_protection)
    warnings: list[str] = []
    access_key, secret_key = secrets.get("s3AccessKeyId"), secrets.get("s3SecretAccessKey")
    if (access_key is None) != (secret_key is None):
        problems.append(
            f"{PROJECT}:s3AccessKeyId/{PROJECT}:s3SecretAccessKey: set both or neither; found only "
            f"{'s3AccessKeyId' if access_key is not None else 's3SecretAccessKey'}"
        )
    resolved: list[ModelWeights] = []
    for index, model in enumerate(models):
        weights, model_problems, model_warnings = _resolve_model(
            f"{PROJECT}:models[{index}]", model, keys, bucket, ray_image, s3_credentials=access_key is not None
        )
        problems += model_problems
        warnings += model_warnings
        if weights is not None:
            resolved.append(weights)
            warnings += _revision_warnings(f"{PROJECT}:models[{index}]", weights, resolved[:-1])

    uses_store = any(weights.uses_store for weights in resolved)
    return (
        WeightsConfig(
            models=tuple(resolved),
            store=(
                ModelStoreConfig(bucket, location, keys.store_force_destroy, keys.store_soft_delete_days)
                if uses_store
                else None
            ),
            staging_timeout_minutes=keys.staging_timeout_minutes,  # its range (1 or more) is checked when it is read
            s3_endpoint_url=keys.s3_endpoint_url or "",
            s3_access_key_id=access_key,
            s3_secret_access_key=secret_key,
        ),
        problems,
        warnings,
    )


def _revision_warnings(where: str, weights: ModelWeights, earlier: list[ModelWeights]) -> list[str]:
    """A Hub commit belongs to one repository: a model staged from the Hub whose `revision` is a commit of another
    repository (one the shipped stacks pin, or another model's of this stack) plans fine and then fails in the
    staging Job. Typically `source` was changed and `revision` was not."""
    origin = weights.origin
    if not weights.staged_by_job or not origin or origin.startswith("s3://"):
        return []
    owners = [PINNED_HUB_REVISIONS.get(weights.revision, origin)]
    owners += [other.origin for other in earlier if other.revision == weights.revision and other.origin]
    others = sorted({owner.lower(): owner for owner in owners if owner.lower() != origin.lower()}.values())
    if not others:
        return []
    return [
        f"{where}.revision: {weights.revision} is a commit of {' and '.join(others)}, but source is {origin!r} "
        f"(changed source, same revision?); act before `pulumi up`: set revision to {origin}'s commit "
        f"(`python -c \"from huggingface_hub import HfApi; print(HfApi().model_info('{origin}').sha)\"`), or the "
        f"staging Job fails when it looks the commit up in {origin}"
    ]


def _store_problems(keys: WeightKeys, bucket: str, location: str, region: str, deletion_protection: bool) -> list[str]:
    """The model store's name, place and deletion rule."""
    problems = []
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or bucket.startswith("goog"):
        problems.append(
            f"{PROJECT}:modelStoreBucket: not a valid bucket name; found {bucket!r}; allowed: 3-63 "
            f"lowercase letters, digits, '-', '_', '.', starting and ending with a letter or digit"
        )
    if location != region.lower():
        problems.append(
            f"{PROJECT}:modelStoreLocation: the model store must be in the GPU pool's region so both "
            f"nodes read it without cross-region egress; found {keys.store_location!r}; "
            f"allowed: {region!r} (gcp:region) or empty"
        )
    if keys.store_force_destroy and deletion_protection:
        problems.append(
            f"{PROJECT}:modelStoreForceDestroy: true would let `pulumi destroy` delete every staged "
            f"model of a protected stack; found true with {PROJECT}:deletionProtection=true; allowed: "
            f"false, or turn deletionProtection off first (throwaway stacks only)"
        )
    if 0 < keys.store_soft_delete_days < MIN_SOFT_DELETE_DAYS:
        problems.append(
            f"{PROJECT}:modelStoreSoftDeleteDays: Cloud Storage keeps soft-deleted objects 7 to 90 days or not at "
            f"all; found {keys.store_soft_delete_days}; allowed: 0 (off) or 7 to 90"
        )
    return problems


def _resolve_model(
    where: str, model: ModelSpec, keys: WeightKeys, bucket: str, ray_image: str, *, s3_credentials: bool
) -> tuple[ModelWeights | None, list[str], list[str]]:
    """One model's weights (None when they cannot be resolved), its problems and warnings."""
    chosen = model.weight_source or keys.default_source
    if chosen == "auto":
        chosen = "gcsfuse" if model.preset in LARGE_MODEL_PRESETS else "huggingface"
    weights, problems = _model_weights(where, model, chosen, bucket)
    warnings: list[str] = []
    if weights is None:
        return None, problems, warnings
    if weights.source == "runai-streamer":
        problems += _runai_problems(where, model, keys.image_has_runai_streamer, ray_image)
        if model.pipeline_parallel_size > 1:
            warnings.append(
                f"{where}.weightSource: runai-streamer with pipelineParallelSize="
                f"{model.pipeline_parallel_size} is accepted by vLLM 0.29 but distributed "
                f"streaming across pipeline stages on two nodes is unverified; try it on a "
                f"non-production stack first"
            )
    else:
        problems += _load_format_problems(where, model, weights.source)
    if weights.origin.startswith("s3://") and not s3_credentials:
        warnings.append(
            f"{where}.source: {weights.origin} is staged without credentials "
            f"({PROJECT}:s3AccessKeyId/{PROJECT}:s3SecretAccessKey unset); only a public bucket "
            f"works"
        )
    return weights, problems, warnings


def _model_weights(where: str, model: ModelSpec, chosen: str, bucket: str) -> tuple[ModelWeights | None, list[str]]:
    source, revision = model.model_source, model.weights_revision
    if chosen == "huggingface":
        if revision is not None:
            return None, [
                f"{where}.revision: only used with weightSource gcsfuse or runai-streamer (it names the "
                f"model store folder); found {revision!r} with weightSource huggingface; allowed: "
                f"remove it (pin a Hub commit with engineKwargs.revision)"
            ]
        return ModelWeights(model.model_id, chosen), []

    allowed = (
        f"a Hugging Face id with revision: <40-character commit>, s3://<bucket>/<prefix> with revision: "
        f"<label>, or gs://{bucket}/<id>/<revision> staged by hand with `python -m staging`"
    )
    if source.startswith("gs://"):
        try:
            source_bucket, path = split_uri(source, "gs")
        except ValueError:
            return None, [f"{where}.source: gs:// URI without a valid bucket; found {source!r}; allowed: {allowed}"]
        parts = path.strip("/").rsplit("/", 1)
        if source_bucket != bucket or len(parts) != 2 or parts[0] != model.model_id:
            return None, [
                f"{where}.source: weightSource {chosen} reads the stack's model store, at "
                f"gs://{bucket}/{model.model_id}/<revision>; found {source!r}; allowed: {allowed}"
            ]
        if revision is not None and revision != parts[1]:
            return None, [
                f"{where}.revision: {revision!r} disagrees with the revision in source {source!r}; "
                f"allowed: leave it unset"
            ]
        return _store_weights(where, model, chosen, "", parts[1])
    if source.startswith("s3://"):
        try:
            split_uri(source, "s3")
        except ValueError:
            return None, [
                f"{where}.source: s3:// URI without a valid bucket; found {source!r}; allowed: "
                f"s3://<bucket>/<prefix of the snapshot>"
            ]
        if revision is None or not REVISION_LABEL.fullmatch(revision):
            return None, [
                f"{where}.revision: an s3:// source needs a label naming its store folder; found "
                f"{revision!r}; allowed: letters, digits, '.', '_', '-' (e.g. v1 or 2026-11)"
            ]
        return _store_weights(where, model, chosen, source, revision)
    if "://" in source or source.startswith("/"):
        return None, [
            f"{where}.source: weightSource {chosen} cannot stage {source!r} from the cluster; allowed: {allowed}"
        ]
    if revision is None or not HF_COMMIT.fullmatch(revision):
        return None, [
            f"{where}.revision: weightSource {chosen} stages {source} at one Hub commit; found "
            f"{revision!r}; allowed: the 40-character commit id (HfApi().model_info({source!r}).sha)"
        ]
    return _store_weights(where, model, chosen, source, revision)


def _store_weights(
    where: str, model: ModelSpec, chosen: str, origin: str, revision: str
) -> tuple[ModelWeights | None, list[str]]:
    try:
        prefix = model_prefix(model.model_id, revision)
    except ValueError as error:
        return None, [f"{where}.revision: {error}"]
    return ModelWeights(model.model_id, chosen, origin, revision, prefix), []


def _runai_problems(where: str, model: ModelSpec, image_has_streamer: bool, ray_image: str) -> list[str]:
    problems = []
    if not image_has_streamer or ray_image == RAY_LLM_IMAGE:
        found = (
            f"rayImage={ray_image!r} (the pinned image, not known to contain it)"
            if ray_image == RAY_LLM_IMAGE
            else f"rayImageHasRunaiStreamer=false for rayImage={ray_image!r}"
        )
        problems.append(
            f"{where}.weightSource: runai-streamer needs runai-model-streamer[gcs] in the Ray image "
            f"(ray[llm] does not install it); found {found}; allowed: build an image FROM "
            f"{RAY_LLM_IMAGE} with `pip install runai-model-streamer[gcs]==0.17.1`, set "
            f"{PROJECT}:rayImage to it and {PROJECT}:rayImageHasRunaiStreamer=true, or use gcsfuse"
        )
    load_format = model.engine_kwargs.get("load_format")
    if load_format == "runai_streamer_sharded":
        problems.append(
            f"{where}.engineKwargs.load_format: runai_streamer_sharded is refused: {SHARDED_REFUSAL}; "
            f"found {load_format!r}; allowed: leave it unset (weightSource runai-streamer sets "
            f"{RUNAI_LOAD_FORMAT})"
        )
    elif load_format is not None:
        problems.append(
            f"{where}.engineKwargs.load_format: weightSource runai-streamer sets it to "
            f"{RUNAI_LOAD_FORMAT}; found {load_format!r}; allowed: leave it unset"
        )
    extra = model.engine_kwargs.get("model_loader_extra_config")
    if extra is not None:
        if not isinstance(extra, Mapping) or set(extra) - set(RUNAI_EXTRA_CONFIG_KEYS):
            problems.append(
                f"{where}.engineKwargs.model_loader_extra_config: vLLM 0.29's runai_streamer loader "
                f"accepts only {', '.join(RUNAI_EXTRA_CONFIG_KEYS)}; found {shown(extra)}"
            )
        elif extra.get("distributed") is False and model.tensor_parallel_size > 1:
            problems.append(
                f"{where}.engineKwargs.model_loader_extra_config.distributed: false makes each of "
                f"the {model.tensor_parallel_size} ranks per node stream every byte "
                f"({model.tensor_parallel_size}x the reads); found false; allowed: true or unset"
            )
    return problems


def _load_format_problems(where: str, model: ModelSpec, source: str) -> list[str]:
    load_format = model.engine_kwargs.get("load_format")
    if isinstance(load_format, str) and load_format.startswith("runai_streamer"):
        return [
            f"{where}.engineKwargs.load_format: {load_format} streams from object storage, but weightSource "
            f"is {source}; found {load_format!r}; allowed: weightSource runai-streamer (which sets it), or "
            f"remove load_format"
        ]
    return []


def runai_extra_config(model: ModelSpec) -> dict[str, Any]:
    """`model_loader_extra_config` for the streamer: distributed per node (each rank reads 1/TP and
    broadcasts over NVLink), 16 readers, a 100 GB host buffer (A3 nodes have ~1.8 TB of RAM)."""
    return {**RUNAI_EXTRA_CONFIG_DEFAULTS, **dict(model.engine_kwargs.get("model_loader_extra_config") or {})}


def weights_summary(weights: WeightsConfig) -> list[str]:
    """One line per model for the plan's summary, and the store."""
    lines = []
    for model in weights.models:
        if not model.uses_store:
            lines.append(f"{model.model_id}: {model.source} (each node downloads it at start)")
            continue
        assert weights.store is not None  # resolve_weights makes a store whenever a model uses one
        where = f"gs://{weights.store.bucket}/{model.prefix}"
        how = f"staged by a Job from {model.origin}" if model.staged_by_job else "staged by hand"
        lines.append(f"{model.model_id}: {model.source} from {where} ({how})")
    if weights.store is not None:
        lines.append(
            f"model store: {weights.store.bucket} in {weights.store.location}"
            + (", force-destroy on" if weights.store.force_destroy else "")
            + (
                f", deleted objects kept {weights.store.soft_delete_days} days (soft delete)"
                if weights.store.soft_delete_days
                else ", soft delete off"
            )
        )
    return lines
