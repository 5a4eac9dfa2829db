"""The served models on the cluster: namespace, secrets, the serve_app ConfigMap, the RayService, metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_random as random

from infra.components.gcs_redis import GcsRedisConnection
from infra.components.resources import KubernetesObject
from infra.render import rayservice as render
from infra.render.disruption import render_disruption_budgets
from infra.render.gcs_ft import gcs_redis_secret_name, render_gcs_redis_secret, with_gcs_fault_tolerance
from infra.render.rayservice import API_KEY_SECRET_KEY, TENANT_KEYS_SECRET_KEY, RayServiceSettings
from infra.render.secrets import HF_TOKEN_SECRET_KEY, current_api_key, render_secret
from infra.render.tenants import current_tenant_keys, tenant_keys_text


@dataclass(frozen=True)
class LlmServiceArgs:
    settings: RayServiceSettings
    ready_timeout_minutes: int
    api_key: pulumi.Input[str] | None = None  # None: generate one
    hf_token: pulumi.Input[str] | None = None
    tenant_keys: pulumi.Input[str] | None = None  # llmserve:tenantKeys; a declared tenant it omits gets a random key
    # Objects that must exist in the namespace before the Ray pods start: NetworkPolicies, the HTTPS Gateway.
    guard_objects: Sequence[Mapping[str, Any]] = ()
    # Creates what the RayService needs inside the namespace before it starts (the weight staging objects,
    # infra/components/weight_staging.py); called with options that place it in the namespace.
    prerequisites: Callable[[pulumi.ResourceOptions], pulumi.Resource] | None = None
    # GCS fault tolerance: the Memorystore instance to keep the Ray cluster's metadata in (None: off).
    gcs_redis: GcsRedisConnection | None = None


class LlmService(pulumi.ComponentResource):
    """A RayService that serves `settings.models` behind an OpenAI-compatible, API-key-checked endpoint.

    `pulumi up` returns only once KubeRay reports the RayService Ready with every Serve application of the config
    just applied RUNNING (its `config-<hash>` marker included; see `wait_for_conditions` in
    infra/render/rayservice.py), or fails after `ready_timeout_minutes`. With `upgrade="Recreate"` a change
    under `rayClusterConfig` makes Pulumi delete and recreate the RayService, because KubeRay's own `None`
    strategy would ignore the change. Pass the cluster's Kubernetes provider (and a dependency on the KubeRay
    operator) through `opts`.
    """

    api_key: pulumi.Output[str]  # every accepted key ("OLD,NEW" during a rotation), as the Secret holds them
    current_api_key: pulumi.Output[str]  # the one key clients send: the last one listed
    tenant_keys: pulumi.Output[dict] | None  # tenant -> the key its clients send; None without tenants

    def __init__(self, name: str, args: LlmServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmserve:k8s:LlmService", name, None, opts)
        # Whether the workers read an HF token follows from whether one is given, not from a second flag.
        settings = dataclasses.replace(args.settings, hf_token=args.hf_token is not None)
        # Children do not inherit a component's depends_on; the operator's CRDs, the GPU pool and the GPU
        # network objects must exist before the namespace (and so everything in it) is created.
        upstream = as_dependency_list(opts.depends_on if opts else None)
        namespace = KubernetesObject(
            f"{name}-namespace",
            render.render_namespace(settings.namespace),
            pulumi.ResourceOptions(parent=self, depends_on=upstream),
        )
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        self.api_key = self._api_key(name, args.api_key)
        self.current_api_key = self.api_key.apply(lambda keys: current_api_key(keys) or "")
        self._tenant_key_file = self._tenant_keys(name, settings, args.tenant_keys)
        self.tenant_keys = None if self._tenant_key_file is None else self._tenant_key_file.apply(current_tenant_keys)
        mounted = self._mounted_objects(name, settings, args.hf_token, in_namespace)
        if args.gcs_redis is not None:
            mounted.append(self._gcs_redis_secret(name, settings, args.gcs_redis, in_namespace))
        mounted += self._guards_and_prerequisites(name, args, namespace, mounted, in_namespace)
        self.rayservice = self._rayservice(
            name, settings, args.ready_timeout_minutes, [namespace, *upstream, *mounted], args.gcs_redis
        )
        for monitoring in render.render_pod_monitorings(settings):
            KubernetesObject(f"{name}-{monitoring['metadata']['name']}-podmonitoring", monitoring, in_namespace)
        for budget in render_disruption_budgets(settings):
            KubernetesObject(f"{name}-{budget['metadata']['name']}-pdb", budget, in_namespace)
        self.register_outputs({"api_key": self.api_key, "current_api_key": self.current_api_key})

    def _api_key(self, name: str, given: pulumi.Input[str] | None) -> pulumi.Output[str]:
        """The given API key, or a generated one; a secret either way."""
        if given is not None:
            return pulumi.Output.secret(given)
        generated = random.RandomPassword(
            f"{name}-api-key", length=48, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        return pulumi.Output.secret(generated.result)

    def _api_key_secret_data(self) -> dict[str, pulumi.Output[str]]:
        data = {API_KEY_SECRET_KEY: self.api_key}
        if self._tenant_key_file is not None:
            data[TENANT_KEYS_SECRET_KEY] = self._tenant_key_file
        return data

    def _tenant_keys(
        self, name: str, settings: RayServiceSettings, given: pulumi.Input[str] | None
    ) -> pulumi.Output[str] | None:
        """The tenant-key file's text (a secret): the given keys, and a generated one per tenant they omit."""
        tenants = sorted(settings.admission.tenants)
        if settings.tenant_key_file is None:
            return None
        generated = [
            random.RandomPassword(
                f"{name}-tenant-key-{tenant}", length=48, special=False, opts=pulumi.ResourceOptions(parent=self)
            ).result
            for tenant in tenants
        ]
        text = pulumi.Output.all(given, *generated).apply(
            lambda values: tenant_keys_text(values[0], tenants, dict(zip(tenants, values[1:], strict=True)))
        )
        return pulumi.Output.secret(text)

    def _mounted_objects(
        self,
        name: str,
        settings: RayServiceSettings,
        hf_token: pulumi.Input[str] | None,
        in_namespace: pulumi.ResourceOptions,
    ) -> list[pulumi.Resource]:
        """What the Ray pods mount: the API key Secret, the serve_app ConfigMap and, when given, the HF token."""
        mounted: list[pulumi.Resource] = [
            KubernetesObject(
                f"{name}-api-key",
                render_secret(settings.api_key_secret, settings.namespace, self._api_key_secret_data()),
                in_namespace,
            ),
            KubernetesObject(f"{name}-serve-app", render.render_serve_app_configmap(settings), in_namespace),
        ]
        if hf_token is not None:
            mounted.append(
                KubernetesObject(
                    f"{name}-hf-token",
                    render_secret(
                        settings.hf_token_secret,
                        settings.namespace,
                        {HF_TOKEN_SECRET_KEY: pulumi.Output.secret(hf_token)},
                    ),
                    in_namespace,
                )
            )
        return mounted

    @staticmethod
    def _gcs_redis_secret(
        name: str, settings: RayServiceSettings, redis: GcsRedisConnection, in_namespace: pulumi.ResourceOptions
    ) -> pulumi.Resource:
        """The Redis AUTH string and CA bundle that the RayService's GCS fault tolerance reads."""
        secret = render_gcs_redis_secret(
            gcs_redis_secret_name(settings.name), settings.namespace, redis.password, redis.ca_certificates
        )
        return KubernetesObject(f"{name}-gcs-redis", secret, in_namespace)

    def _guards_and_prerequisites(
        self,
        name: str,
        args: LlmServiceArgs,
        namespace: pulumi.Resource,
        mounted: list[pulumi.Resource],
        in_namespace: pulumi.ResourceOptions,
    ) -> list[pulumi.Resource]:
        """The guard objects (NetworkPolicies, the Gateway), then the prerequisites, created once everything
        else in the namespace exists."""
        guards: list[pulumi.Resource] = [
            KubernetesObject(f"{name}-{obj['kind'].lower()}-{obj['metadata']['name']}", obj, in_namespace)
            for obj in args.guard_objects
        ]
        if args.prerequisites is not None:
            guards.append(
                args.prerequisites(pulumi.ResourceOptions(parent=self, depends_on=[namespace, *mounted, *guards]))
            )
        return guards

    def _rayservice(
        self,
        name: str,
        settings: RayServiceSettings,
        ready_timeout_minutes: int,
        depends_on: list[pulumi.Resource],
        gcs_redis: GcsRedisConnection | None,
    ) -> KubernetesObject:
        """The RayService, after everything it mounts or needs, with GCS fault tolerance when `gcs_redis` is
        given. Pulumi waits for its waitFor conditions up to the timeout."""
        timeout = f"{ready_timeout_minutes}m"
        rollout: dict[str, Any] = {}
        if settings.upgrade == "Recreate":
            rollout = {"replace_on_changes": ["spec.rayClusterConfig"], "delete_before_replace": True}
        rayservice = render.render_rayservice(settings)
        if gcs_redis is not None:
            rayservice = with_gcs_fault_tolerance(rayservice, gcs_redis.address, gcs_redis_secret_name(settings.name))
        return KubernetesObject(
            f"{name}-rayservice",
            rayservice,
            pulumi.ResourceOptions(
                parent=self,
                depends_on=depends_on,
                custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout),
                **rollout,
            ),
        )


def as_dependency_list(depends_on: Any) -> list:
    if depends_on is None:
        return []
    return list(depends_on) if isinstance(depends_on, (list, tuple)) else [depends_on]
