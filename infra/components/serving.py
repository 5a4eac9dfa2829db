"""The served models on the cluster: namespace, secrets, the serve_app ConfigMap, the RayService, metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_random as random

from infra.components.resources import KubernetesObject
from infra.render import rayservice as render
from infra.render.rayservice import API_KEY_SECRET_KEY, RayServiceSettings
from infra.render.secrets import HF_TOKEN_SECRET_KEY, render_secret


@dataclass(frozen=True)
class LlmServiceArgs:
    settings: RayServiceSettings
    ready_timeout_minutes: int
    api_key: pulumi.Input[str] | None = None  # None: generate one
    hf_token: pulumi.Input[str] | None = None
    # Objects that must exist in the namespace before the Ray pods start: NetworkPolicies, the HTTPS Gateway.
    guard_objects: Sequence[Mapping[str, Any]] = ()
    # Creates what the RayService needs inside the namespace before it starts (the weight staging objects,
    # infra/components/weight_staging.py); called with options that place it in the namespace.
    prerequisites: Callable[[pulumi.ResourceOptions], pulumi.Resource] | None = None


class LlmService(pulumi.ComponentResource):
    """A RayService that serves `settings.models` behind an OpenAI-compatible, API-key-checked endpoint.

    `pulumi up` returns only once KubeRay reports the RayService Ready (the Serve applications run), or fails
    after `ready_timeout_minutes`. With `upgrade="Recreate"` a change under `rayClusterConfig` makes Pulumi
    delete and recreate the RayService, because KubeRay's own `None` strategy would ignore the change.
    Pass the cluster's Kubernetes provider (and a dependency on the KubeRay operator) through `opts`.
    """

    api_key: pulumi.Output[str]

    def __init__(self, name: str, args: LlmServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmserve:k8s:LlmService", name, None, opts)
        # Whether the workers read an HF token follows from whether one is given, not from a second flag.
        settings = dataclasses.replace(args.settings, hf_token=args.hf_token is not None)
        child = pulumi.ResourceOptions(parent=self)
        # Children do not inherit a component's depends_on; the operator's CRDs, the GPU pool and the GPU
        # network objects must exist before the namespace (and so everything in it) is created.
        upstream = as_dependency_list(opts.depends_on if opts else None)

        namespace = KubernetesObject(
            f"{name}-namespace",
            render.render_namespace(settings.namespace),
            pulumi.ResourceOptions(parent=self, depends_on=upstream),
        )
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[namespace])

        if args.api_key is not None:
            self.api_key = pulumi.Output.secret(args.api_key)
        else:
            generated = random.RandomPassword(f"{name}-api-key", length=48, special=False, opts=child)
            self.api_key = pulumi.Output.secret(generated.result)
        mounted: list[pulumi.Resource] = [
            KubernetesObject(
                f"{name}-api-key",
                render_secret(settings.api_key_secret, settings.namespace, {API_KEY_SECRET_KEY: self.api_key}),
                in_namespace,
            ),
            KubernetesObject(f"{name}-serve-app", render.render_serve_app_configmap(settings), in_namespace),
        ]
        if args.hf_token is not None:
            mounted.append(
                KubernetesObject(
                    f"{name}-hf-token",
                    render_secret(
                        settings.hf_token_secret,
                        settings.namespace,
                        {HF_TOKEN_SECRET_KEY: pulumi.Output.secret(args.hf_token)},
                    ),
                    in_namespace,
                )
            )

        mounted += [
            KubernetesObject(f"{name}-{obj['kind'].lower()}-{obj['metadata']['name']}", obj, in_namespace)
            for obj in args.guard_objects
        ]
        if args.prerequisites is not None:
            mounted.append(args.prerequisites(pulumi.ResourceOptions(parent=self, depends_on=[namespace, *mounted])))

        timeout = f"{args.ready_timeout_minutes}m"
        rollout: dict[str, Any] = {}
        if settings.upgrade == "Recreate":
            rollout = {"replace_on_changes": ["spec.rayClusterConfig"], "delete_before_replace": True}
        self.rayservice = KubernetesObject(
            f"{name}-rayservice",
            render.render_rayservice(settings),
            pulumi.ResourceOptions(
                parent=self,
                depends_on=[namespace, *upstream, *mounted],
                custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout),
                **rollout,
            ),
        )
        for monitoring in render.render_pod_monitorings(settings):
            KubernetesObject(f"{name}-{monitoring['metadata']['name']}-podmonitoring", monitoring, in_namespace)
        self.register_outputs({"api_key": self.api_key})


def as_dependency_list(depends_on: Any) -> list:
    if depends_on is None:
        return []
    return list(depends_on) if isinstance(depends_on, (list, tuple)) else [depends_on]
