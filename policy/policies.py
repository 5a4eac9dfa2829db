"""The pulumi-policy objects: each pure rule of rules.py as a ResourceValidationPolicy or StackValidationPolicy.

Importing this module creates no PolicyPack (whose constructor starts a gRPC server and blocks), so the tests
import it freely; `__main__.py` builds the pack.
"""

from __future__ import annotations

import rules
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

DESCRIPTIONS = {
    "gpu-pool-secure-boot": "GPU node pools boot with secure boot.",
    "a3-pool-compact-gvnic-gpu-networks": "A3 node pools use compact placement (except flex-start, which GKE "
    "never places compactly), gVNIC and the machine's number of GPU networks.",
    "gpu-pool-gpu-taint": "GPU node pools carry the nvidia.com/gpu NoSchedule taint.",
    "control-plane-not-open": "The GKE control plane is never open to 0.0.0.0/0.",
    "no-public-buckets": "Buckets use uniform bucket-level access and enforce public access prevention.",
    "no-plain-http-exposure": "Nothing is exposed outside the cluster over plain HTTP.",
    "images-pinned": "Container images are pinned by tag or digest, never :latest or untagged.",
    "endpoint-key-check": "Every Serve application runs behind the API key check.",
    "network-policies-present": "Every RayService namespace has NetworkPolicies that fence its Ray pods.",
}


def _resource_policy(name: str, rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule(args.resource_type, args.props):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=name, description=DESCRIPTIONS[name], validate=validate, enforcement_level=EnforcementLevel.MANDATORY
    )


def _stack_policy(name: str, rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule([(resource.resource_type, resource.props) for resource in args.resources]):
            report_violation(message, None)

    return StackValidationPolicy(
        name=name, description=DESCRIPTIONS[name], validate=validate, enforcement_level=EnforcementLevel.MANDATORY
    )


RESOURCE_POLICIES = [_resource_policy(name, rule) for name, rule in rules.RESOURCE_RULES.items()]
STACK_POLICIES = [_stack_policy(name, rule) for name, rule in rules.STACK_RULES.items()]
ALL = [*RESOURCE_POLICIES, *STACK_POLICIES]
