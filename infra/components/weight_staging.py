"""The Kubernetes side of the model store: the Ray pods' and the stager's service accounts, the staging code,
the S3 credentials, and one staging Job per staged model that `pulumi up` waits for before the RayService.

The Kubernetes provider awaits a Job until it completes (or fails: then `pulumi up` fails and the RayService
is not touched). The Job's own deadline is `stagingTimeoutMinutes`; Pulumi waits ten minutes longer, so that
the Job always ends first. A Job is named after what it stages, so an unchanged model keeps its finished Job
and a new revision gets a new one; a Job that ended Failed is replaced by the next `pulumi up`
(`pulumi.com/replaceUnready`), which resumes the copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi

from infra.components.model_store import ModelStore, ModelStoreArgs, store_emails
from infra.components.resources import KubernetesObject
from infra.components.serving import as_dependency_list
from infra.config.settings import StackConfig
from infra.render import weight_staging as render
from infra.render.secrets import hf_token_secret_name
from infra.render.weights import WeightsSettings


@dataclass(frozen=True)
class WeightStagingArgs:
    settings: WeightsSettings
    store_grants: Sequence[pulumi.Resource] = ()


class WeightStaging(pulumi.ComponentResource):
    """Creates its objects in an existing namespace: pass `depends_on` on it (and the cluster provider)."""

    def __init__(self, name: str, args: WeightStagingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmserve:k8s:WeightStaging", name, None, opts)
        settings = args.settings
        upstream = [*as_dependency_list(opts.depends_on if opts else None), *args.store_grants]
        child = pulumi.ResourceOptions(parent=self, depends_on=upstream)
        KubernetesObject(
            f"{name}-ray-ksa",
            render.render_service_account(settings.ray_service_account, settings.namespace, settings.reader_email),
            child,
        )
        stager = KubernetesObject(
            f"{name}-stager-ksa",
            render.render_service_account(settings.stager_service_account, settings.namespace, settings.stager_email),
            child,
        )
        jobs_need: list[pulumi.Resource] = [stager]
        if settings.config.staged_models:
            jobs_need.append(KubernetesObject(f"{name}-code", render.render_staging_configmap(settings), child))
        if settings.config.s3_credentials and any(m.origin.startswith("s3://") for m in settings.config.staged_models):
            jobs_need.append(KubernetesObject(f"{name}-s3-credentials", render.render_s3_secret(settings), child))
        timeout = f"{render.pulumi_wait_minutes(settings)}m"
        for weights in settings.config.staged_models:
            KubernetesObject(
                f"{name}-job-{weights.model_id.replace('/', '-')}",
                render.render_staging_job(settings, weights),
                pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[*upstream, *jobs_need],
                    custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout),
                ),
            )
        self.register_outputs({})


def model_weights(
    name: str, config: StackConfig, hf_token: bool
) -> tuple[WeightsSettings | None, Callable[[pulumi.ResourceOptions], pulumi.Resource] | None, ModelStore | None]:
    """The wiring for `__main__.py`: the weight settings the RayService renders with, a hook that creates
    the staging objects inside the serving namespace (LlmService calls it), and the model store, if any."""
    weights = config.weights
    if weights is None:
        return None, None, None
    serving = config.serving
    ray_ksa, stager_ksa = f"{name}-ray", f"{name}-weights-stager"
    reader_email, writer_email = store_emails(config.stack, config.gcp_project)
    settings = WeightsSettings(
        config=weights,
        namespace=serving.namespace,
        gcp_project=config.gcp_project,
        bucket=weights.store.bucket if weights.store else None,
        ray_service_account=ray_ksa,
        reader_email=reader_email,
        stager_service_account=stager_ksa,
        stager_email=writer_email,
        hf_token_secret=hf_token_secret_name(name) if hf_token else None,
        name=name,
    )
    if weights.store is None:
        return settings, None, None
    store = ModelStore(
        f"{name}-models",
        ModelStoreArgs(
            store=weights.store,
            gcp_project=config.gcp_project,
            stack=config.stack,
            namespace=serving.namespace,
            ray_service_account=ray_ksa,
            stager_service_account=stager_ksa,
            runai_streamer=weights.uses_runai,
        ),
    )

    def create(opts: pulumi.ResourceOptions) -> pulumi.Resource:
        return WeightStaging(f"{name}-weights", WeightStagingArgs(settings, store.grants), opts)

    return settings, create, store
