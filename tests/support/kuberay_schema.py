"""A hand-written subset of the KubeRay v1.7.0 ``RayService`` CRD (ray.io/v1) plus the operator's own
validation rules, for tests only.

What it is
    ``RAYSERVICE_SCHEMA`` is a JSON Schema (draft 2020-12) for exactly the RayService fields this project
    renders. ``validate_rayservice(obj)`` checks a rendered RayService dict against that schema *and*
    against the rules the KubeRay operator enforces in Go (which no CRD schema can express), and raises
    ``AssertionError`` listing every violation as ``<path>: <message>``. ``rayservice_violations(obj)``
    returns the same findings as a list, for tests that want to inspect them.

How it was derived
    * Types, enums, ``required`` lists, ``minimum``s and the int-or-string / quantity conventions were read
      from the v1.7.0 CRD (``helm-chart/kuberay-operator/crds/ray.io_rayservices.yaml``, tag v1.7.0,
      commit 59d663ae; sha256 0a8fc325...), version ``v1``, ``schema.openAPIV3Schema``. Comments below name
      the CRD path of each non-obvious rule, written ``spec.rayClusterConfig.headGroupSpec.template`` for
      ``openAPIV3Schema.properties.spec.properties.rayClusterConfig...``.
    * The CRD declares no ``additionalProperties``: the API server *prunes* unknown fields (or rejects them
      under ``kubectl --validate=strict`` / server-side field validation). Here every modelled object is
      closed with ``additionalProperties: false`` so that a misspelt field fails a test instead of being
      silently dropped on the cluster.
    * ``format: int32`` becomes an explicit int32 range (the API server rejects values outside it).
    * The CRD's only CEL rules (``x-kubernetes-validations``) are on ``spec.managedBy``,
      ``spec.rayClusterConfig.managedBy`` (value in {ray.io/kuberay-operator, kueue.x-k8s.io/multikueue};
      immutable) and ``spec.rayClusterConfig.gcsFaultToleranceOptions.backend`` (immutable). The managedBy
      fields are not in this subset, so they are rejected as unknown fields; the ``self == oldSelf`` rules need
      the previous object and cannot be checked on a single render anyway. There is no CEL rule on
      min/max/replicas or group names in the CRD: those are operator rules, implemented below.
    * Operator rules come from ``ray-operator/controllers/ray/utils/validation.go`` (``ValidateRayServiceMetadata``,
      ``ValidateRayServiceSpec``, ``ValidateRayClusterSpec``, ``ValidateClusterUpgradeOptions``,
      ``ValidateRayClusterUpgradeOptions``, ``validateRayGroupResources``, ``validateRayGroupLabels``,
      ``validateWorkerGroupIdleTimeout``, ``validateInitializingTimeout``) and the RayCluster webhook
      (``ray-operator/pkg/webhooks/v1/raycluster_webhook.go``, ``validateWorkerGroups``), read from the
      revision whose fields match the v1.7.0 CRD (it validates ``workerGroupSpecs[].priority``,
      ``networkPolicy``, ``tlsOptions``, ``historyServerOptions``). Each Python check cites its Go function.
      The operator stops at the first error; this module reports them all.
    * Feature gates are taken at their ``kuberay-operator`` chart 1.7.0 defaults: ``RayJobDeletionPolicy``
      and ``RayServiceIncrementalUpgrade`` on.

Deliberately not modelled
    * Pod templates (``headGroupSpec.template``, ``workerGroupSpecs[].template``): only the PodTemplateSpec
      envelope is checked here (``metadata`` exactly as the CRD has it, ``spec`` an object with the CRD's
      ``required: [containers]``). The pod ``spec`` stays open: tests validate it against Kubernetes' own
      OpenAPI with ``kubernetes-validate``. A few operator rules look inside it (container count, the Ray
      container's env, ``restartPolicy``) and are implemented in Python.
    * Operator rules left out, and why: ``priority``, ``networkPolicy``,
      ``tlsOptions``, ``historyServerOptions`` checks (fields not in the subset, so rejected as unknown);
      the ``RayJobDeletionPolicy`` gate on ``suspend`` (on by default); ``enableK8sTokenAuth`` version and
      ``secretName`` checks (``ValidateRayServiceSpec`` rejects ``enableK8sTokenAuth: true`` outright for a
      RayService, which is implemented). ``replicas`` outside ``[minReplicas, maxReplicas]`` is *not* an
      error in KubeRay (``GetWorkerGroupDesiredReplicas`` clamps it), so it is not one here either.

How to extend it when the project renders a new field
    1. Find the field in the v1.7.0 CRD (``spec.versions[?name==v1].schema.openAPIV3Schema``) and copy its
       ``type``, ``enum``, ``required``, ``minimum``, ``format: int32`` (→ ``$ref: #/$defs/int32``),
       quantity (→ ``#/$defs/quantity``) or int-or-string (→ ``#/$defs/intOrString``) facts into the
       schema below, with ``additionalProperties: false`` on any object the CRD describes with
       ``properties`` (and a ``{"type": ...}`` ``additionalProperties`` for the CRD's map types).
    2. Add a comment naming the CRD path when the rule is not obvious.
    3. Check ``validation.go`` for rules on that field; add them to ``_operator_violations``, citing the Go
       function.
    4. Add the field to the "full" valid example and a broken case to ``tests/render/test_kuberay_schema.py``.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import jsonschema

__all__ = ["RAYSERVICE_SCHEMA", "Violation", "rayservice_violations", "validate_rayservice"]

# CRD: every `resources.limits/requests` value (and `divisor`) is an int-or-string quantity with this pattern.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

# The operator accepts only these (ValidateRayServiceSpec); the CRD types spec.upgradeStrategy.type as a plain string.
RAYSERVICE_UPGRADE_TYPES = ["NewCluster", "NewClusterWithIncrementalUpgrade", "None"]

RAYSERVICE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:llmserve:tests:kuberay-v1.7.0:rayservice-subset",
    "title": "RayService (ray.io/v1, KubeRay v1.7.0), subset rendered by this project",
    "type": "object",
    # The CRD root has no `required`; apiVersion/kind/metadata are required by the API server, and a
    # RayService without spec is meaningless (spec.required: [rayClusterConfig] only applies once spec exists).
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,  # `status` is written by the operator, never rendered
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},  # v1 is the served + storage version; v1alpha1 is legacy
        "kind": {"const": "RayService"},
        # CRD: `metadata: {type: object}` (ObjectMeta is validated by the API server, not the CRD).
        # Closed here to the ObjectMeta fields the project sets; add others (e.g. finalizers) when rendered.
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "labels": {"$ref": "#/$defs/stringMap"},
                "annotations": {"$ref": "#/$defs/stringMap"},
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["rayClusterConfig"],  # CRD: spec.required
            "properties": {
                # CRD: spec.serveConfigV2 is an opaque string (a YAML document); its content is not validated.
                "serveConfigV2": {"type": "string"},
                "upgradeStrategy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        # CRD: spec.upgradeStrategy.type is `type: string` with no enum; the enum is the
                        # operator's (ValidateRayServiceSpec), enforced here so a typo fails offline.
                        "type": {"type": "string", "enum": RAYSERVICE_UPGRADE_TYPES},
                        # CRD: spec.upgradeStrategy.clusterUpgradeOptions.required
                        "clusterUpgradeOptions": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["gatewayClassName", "intervalSeconds", "stepSizePercent"],
                            "properties": {
                                "gatewayClassName": {"type": "string"},
                                "intervalSeconds": {"$ref": "#/$defs/int32"},
                                "maxSurgePercent": {"$ref": "#/$defs/int32"},  # CRD default: 100
                                "stepSizePercent": {"$ref": "#/$defs/int32"},
                            },
                        },
                    },
                },
                # CRD: spec.rayClusterDeletionDelaySeconds {format: int32, minimum: 0}
                "rayClusterDeletionDelaySeconds": {"$ref": "#/$defs/int32", "minimum": 0},
                "excludeHeadPodFromServeSvc": {"type": "boolean"},
                "serveService": {"$ref": "#/$defs/service"},  # CRD: a corev1.Service
                "rayClusterConfig": {"$ref": "#/$defs/rayClusterSpec"},
            },
        },
    },
    "$defs": {
        # CRD `format: int32`
        "int32": {"type": "integer", "minimum": -2147483648, "maximum": 2147483647},
        # CRD maps: `{type: object, additionalProperties: {type: string}}`
        "stringMap": {"type": "object", "additionalProperties": {"type": "string"}},
        # CRD `x-kubernetes-int-or-string: true` (e.g. Service ports[].targetPort)
        "intOrString": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True},
        # CRD resource.Quantity: int-or-string, strings must match the quantity pattern
        "quantity": {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        },
        "rayClusterSpec": {
            # CRD: spec.rayClusterConfig (RayClusterSpec)
            "type": "object",
            "additionalProperties": False,
            "required": ["headGroupSpec"],  # CRD: spec.rayClusterConfig.required
            "properties": {
                "rayVersion": {"type": "string"},
                "enableInTreeAutoscaling": {"type": "boolean"},
                "autoscalerOptions": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "version": {"type": "string", "enum": ["v1", "v2"]},  # CRD enum
                        "upscalingMode": {"type": "string", "enum": ["Default", "Aggressive", "Conservative"]},
                        "idleTimeoutSeconds": {"$ref": "#/$defs/int32"},
                        "resources": {"$ref": "#/$defs/resourceRequirements"},
                        "env": {"type": "array", "items": {"$ref": "#/$defs/envVar"}},
                        "image": {"type": "string"},
                        "imagePullPolicy": {"type": "string"},  # CRD: plain string (no enum)
                    },
                },
                "authOptions": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "mode": {"type": "string", "enum": ["disabled", "token"]},  # CRD enum
                        "secretName": {"type": "string"},
                        "enableK8sTokenAuth": {"type": "boolean"},
                    },
                },
                "headGroupSpec": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["template"],  # CRD: spec.rayClusterConfig.headGroupSpec.required
                    "properties": {
                        "template": {"$ref": "#/$defs/podTemplate"},
                        "rayStartParams": {"$ref": "#/$defs/stringMap"},  # map[string]string: "0", not 0
                        "serviceType": {"type": "string"},  # CRD: plain string
                        "resources": {"$ref": "#/$defs/stringMap"},  # Ray resources, map[string]string
                        "labels": {"$ref": "#/$defs/stringMap"},  # Ray node labels
                        "enableIngress": {"type": "boolean"},
                        # Modelled only so the operator rule "no headService.metadata.name under a
                        # RayService" gets a precise message. Same corev1.Service schema as serveService.
                        "headService": {"$ref": "#/$defs/service"},
                    },
                },
                "workerGroupSpecs": {"type": "array", "items": {"$ref": "#/$defs/workerGroupSpec"}},
                # CRD: spec.rayClusterConfig.gcsFaultToleranceOptions (GcsFaultToleranceOptions). Its `storage`
                # (the rocksdb backend's volume) is not modelled: rejected as an unknown field.
                "gcsFaultToleranceOptions": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "backend": {"type": "string", "enum": ["redis", "rocksdb"]},  # CRD enum; immutable (CEL)
                        "externalStorageNamespace": {"type": "string"},
                        "redisAddress": {"type": "string"},
                        "redisPassword": {"$ref": "#/$defs/redisCredential"},
                        "redisUsername": {"$ref": "#/$defs/redisCredential"},
                    },
                },
                # CRD: spec.rayClusterConfig.upgradeStrategy.type enum [Recreate, None]. Modelled only so the
                # operator rule (ValidateRayClusterUpgradeOptions: rejected when the RayCluster is created
                # by a RayService) gets a precise message instead of "unknown field".
                "upgradeStrategy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"type": {"type": "string", "enum": ["Recreate", "None"]}},
                },
            },
        },
        "workerGroupSpec": {
            # CRD: spec.rayClusterConfig.workerGroupSpecs.items
            "type": "object",
            "additionalProperties": False,
            # CRD: workerGroupSpecs.items.required. The API server would default minReplicas (0) and
            # maxReplicas (2147483647) before this check; a strict offline validator does not, and neither
            # do we: always render them.
            "required": ["groupName", "maxReplicas", "minReplicas", "template"],
            "properties": {
                "groupName": {"type": "string"},
                "replicas": {"$ref": "#/$defs/int32"},  # CRD default 0
                "minReplicas": {"$ref": "#/$defs/int32"},  # CRD default 0
                "maxReplicas": {"$ref": "#/$defs/int32"},  # CRD default 2147483647
                "numOfHosts": {"$ref": "#/$defs/int32"},  # CRD default 1
                "idleTimeoutSeconds": {"$ref": "#/$defs/int32"},
                "rayStartParams": {"$ref": "#/$defs/stringMap"},
                "resources": {"$ref": "#/$defs/stringMap"},
                "labels": {"$ref": "#/$defs/stringMap"},
                "suspend": {"type": "boolean"},
                "template": {"$ref": "#/$defs/podTemplate"},
            },
        },
        "podTemplate": {
            # CRD: headGroupSpec.template / workerGroupSpecs.items.template (PodTemplateSpec).
            "type": "object",
            "additionalProperties": False,
            "properties": {
                # CRD: template.metadata is the embedded-object subset of ObjectMeta, exactly these five.
                "metadata": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "namespace": {"type": "string"},
                        "labels": {"$ref": "#/$defs/stringMap"},
                        "annotations": {"$ref": "#/$defs/stringMap"},
                        "finalizers": {"type": "array", "items": {"type": "string"}},
                    },
                },
                # CRD: template.spec is a full PodSpec with required: [containers]. Left open on purpose:
                # tests validate pod specs against Kubernetes' OpenAPI with kubernetes-validate.
                "spec": {
                    "type": "object",
                    "required": ["containers"],
                    "properties": {"containers": {"type": "array", "items": {"type": "object"}}},
                },
            },
        },
        "service": {
            # CRD: spec.serveService and headGroupSpec.headService (identical corev1.Service schemas).
            # Kept to the fields the project sets; the CRD also has apiVersion, kind, status and many
            # more spec fields.
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "metadata": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "labels": {"$ref": "#/$defs/stringMap"},
                        "annotations": {"$ref": "#/$defs/stringMap"},
                    },
                },
                "spec": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        # CRD: plain string. Project restriction: the three types that front pods
                        # (core/v1 also allows ExternalName, which has no endpoints).
                        "type": {"type": "string", "enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                        # CRD: x-kubernetes-list-type: map, list-map-keys [port, protocol]; the key
                        # uniqueness is checked in Python (_service_port_violations).
                        "ports": {"type": "array", "items": {"$ref": "#/$defs/servicePort"}},
                        "loadBalancerSourceRanges": {"type": "array", "items": {"type": "string"}},
                        # CRD: plain string. Project restriction: core/v1's two values.
                        "externalTrafficPolicy": {"type": "string", "enum": ["Cluster", "Local"]},
                    },
                },
            },
        },
        "servicePort": {
            "type": "object",
            "additionalProperties": False,
            "required": ["port"],  # CRD: ports.items.required
            "properties": {
                "name": {"type": "string"},
                "port": {"$ref": "#/$defs/int32"},
                "targetPort": {"$ref": "#/$defs/intOrString"},
                "protocol": {"type": "string"},  # CRD: plain string, default TCP
            },
        },
        "resourceRequirements": {
            # CRD: autoscalerOptions.resources (corev1.ResourceRequirements); `claims` not modelled.
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "limits": {"type": "object", "additionalProperties": {"$ref": "#/$defs/quantity"}},
                "requests": {"type": "object", "additionalProperties": {"$ref": "#/$defs/quantity"}},
            },
        },
        # CRD: gcsFaultToleranceOptions.redisPassword / redisUsername (RedisCredential: value or valueFrom, the
        # latter a corev1.EnvVarSource, as in an env var)
        "redisCredential": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"value": {"type": "string"}, "valueFrom": {"$ref": "#/$defs/envVar/properties/valueFrom"}},
        },
        "envVar": {
            # CRD: autoscalerOptions.env.items (corev1.EnvVar)
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "value": {"type": "string"},
                "valueFrom": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "configMapKeyRef": {"$ref": "#/$defs/keySelector"},
                        "secretKeyRef": {"$ref": "#/$defs/keySelector"},
                        "fieldRef": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["fieldPath"],
                            "properties": {"apiVersion": {"type": "string"}, "fieldPath": {"type": "string"}},
                        },
                        "resourceFieldRef": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["resource"],
                            "properties": {
                                "containerName": {"type": "string"},
                                "divisor": {"$ref": "#/$defs/quantity"},
                                "resource": {"type": "string"},
                            },
                        },
                        "fileKeyRef": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["key", "path", "volumeName"],
                            "properties": {
                                "key": {"type": "string"},
                                "optional": {"type": "boolean"},
                                "path": {"type": "string"},
                                "volumeName": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
        "keySelector": {
            # CRD: env.items.valueFrom.{configMapKeyRef,secretKeyRef}
            "type": "object",
            "additionalProperties": False,
            "required": ["key"],
            "properties": {"key": {"type": "string"}, "name": {"type": "string"}, "optional": {"type": "boolean"}},
        },
    },
}

_VALIDATOR = jsonschema.Draft202012Validator(RAYSERVICE_SCHEMA)

# --- Constants from KubeRay (ray-operator/controllers/ray/utils/constant.go) ---------------------------
# MaxRayServiceNameLength = MaxRayClusterNameLength (53, so "<name>-serve-svc" fits 63) - 6 (cluster suffix).
MAX_RAYSERVICE_NAME_LENGTH = 47
INITIALIZING_TIMEOUT_ANNOTATION = "ray.io/initializing-timeout"
FT_ENABLED_ANNOTATION = "ray.io/ft-enabled"
EXTERNAL_STORAGE_NS_ANNOTATION = "ray.io/external-storage-namespace"
RAY_CONTAINER_INDEX = 0  # RayContainerIndex: KubeRay treats the first container as the Ray container
RAY_ENABLE_AUTOSCALER_V2 = "RAY_enable_autoscaler_v2"
KUBERAY_GEN_AUTOSCALER_START_CMD = "KUBERAY_GEN_AUTOSCALER_START_CMD"
MIN_RAY_VERSION_FOR_TOKEN_AUTH = (2, 52, 0)
# validateRayGroupResources: these rayStartParams conflict with the group `resources` map.
RAY_START_RESOURCE_PARAMS = ("num-cpus", "num-gpus", "memory", "resources")

# --- k8s.io/apimachinery/pkg/util/validation equivalents ----------------------------------------------
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Go time.ParseDuration: "0", or one or more <number><unit> with an optional sign.
_GO_DURATION = re.compile(r"^[-+]?(0|((\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$")
# util/version.ParseGeneric: at least two dot-separated numeric components, optional leading "v".
_GENERIC_VERSION = re.compile(r"^\s*v?(\d+(?:\.\d+)+)")


class Violation(NamedTuple):
    """One problem: where (``spec.rayClusterConfig.workerGroupSpecs[0].minReplicas``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def validate_rayservice(obj: dict) -> None:
    """Assert that ``obj`` is a RayService KubeRay v1.7.0 would accept, within this project's field subset.

    Checks ``RAYSERVICE_SCHEMA`` (CRD types, enums, required fields, unknown fields) and the operator's Go
    validation rules. Raises ``AssertionError`` listing every violation, one ``path: message`` per line::

        validate_rayservice(render_rayservice(settings))
    """
    violations = rayservice_violations(obj)
    if violations:
        name = _get(obj, "metadata", "name") if isinstance(obj, dict) else None
        lines = "\n".join(f"  - {v}" for v in violations)
        raise AssertionError(
            f"RayService {name!r} is not valid for KubeRay v1.7.0 ({len(violations)} violation(s)):\n{lines}"
        )


def rayservice_violations(obj: Any) -> list[Violation]:
    """Every schema and operator-rule violation in ``obj``; an empty list means valid."""
    return _schema_violations(obj) + _operator_violations(obj)


# --- JSON Schema part ---------------------------------------------------------------------------------


def _fmt_path(parts) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{str(part)!r}]"
    return out or "<root>"


def _schema_violations(obj: Any) -> list[Violation]:
    found: list[Violation] = []
    for error in _VALIDATOR.iter_errors(obj):
        parts = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            for key in sorted(k for k in error.instance if k not in known):
                found.append(
                    Violation(
                        _fmt_path([*parts, key]),
                        f"unknown field (allowed here: {', '.join(sorted(known))}); a misspelling, or a field "
                        "missing from tests/support/kuberay_schema.py",
                    )
                )
        elif error.validator == "required":
            match = re.fullmatch(r"'(.+)' is a required property", error.message)
            missing = match.group(1) if match else None
            found.append(Violation(_fmt_path([*parts, missing] if missing else parts), "required field is missing"))
        else:
            found.append(Violation(_fmt_path(parts), error.message))
    return sorted(set(found), key=lambda v: (v.path, v.message))


# --- Operator rules (Go) ------------------------------------------------------------------------------


def _get(node: Any, *keys: Any) -> Any:
    """``node[k1][k2]...`` or None when a step is missing or of the wrong type (schema errors report that)."""
    for key in keys:
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                return None
        elif not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _dict(node: Any) -> dict:
    return node if isinstance(node, dict) else {}


def _list(node: Any) -> list:
    return node if isinstance(node, list) else []


def _ray_container_env(template: Any) -> dict[str, Any]:
    """Env of the Ray container (containers[RayContainerIndex]) as name -> value ("" for valueFrom)."""
    env = _list(_get(template, "spec", "containers", RAY_CONTAINER_INDEX, "env"))
    return {e["name"]: e.get("value", "") for e in env if isinstance(e, dict) and isinstance(e.get("name"), str)}


def _parse_version(text: Any) -> tuple[int, ...] | None:
    match = _GENERIC_VERSION.match(text) if isinstance(text, str) else None
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _qualified_name_errors(key: str) -> list[str]:
    """k8s IsQualifiedName: [prefix/]name, prefix a DNS-1123 subdomain (<=253), name <=63 alphanumeric-ish."""
    prefix, slash, name = key.rpartition("/")
    errors = []
    if "/" in prefix:
        errors.append("a qualified name must have at most one '/'")
    prefix_is_subdomain = bool(prefix) and len(prefix) <= 253 and _DNS1123_SUBDOMAIN.match(prefix) is not None
    if slash and not prefix_is_subdomain:
        errors.append("prefix must be a DNS-1123 subdomain (lowercase, at most 253 characters)")
    if not name or len(name) > 63 or not _QUALIFIED_NAME_PART.match(name):
        errors.append("name part must be at most 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends")
    return errors


def _initializing_timeout_error(value: str) -> str | None:
    """validateInitializingTimeout: a positive Go duration ("30m", "2h") or positive integer seconds."""
    if _GO_DURATION.match(value):
        positive = not value.startswith("-") and any(c in "123456789" for c in value)
        return None if positive else f"must be a positive duration, got {value!r}"
    if re.fullmatch(r"[-+]?\d+", value):
        return None if int(value) > 0 else f"must be a positive integer (seconds), got {value!r}"
    return f"has invalid format {value!r}: expected a Go duration (e.g. '5m', '1h') or positive integer seconds"


def _group_violations(path: str, group: dict, group_label: str) -> list[Violation]:
    """Rules ValidateRayClusterSpec applies to the head group and to every worker group alike."""
    found = []
    containers = _get(group, "template", "spec", "containers")
    if isinstance(containers, list) and not containers:
        # ValidateRayClusterSpec: "headGroupSpec/workerGroupSpec should have at least one container"
        found.append(
            Violation(f"{path}.template.spec.containers", "must have at least one container (the Ray container)")
        )

    params = _dict(group.get("rayStartParams"))
    resources = _dict(group.get("resources"))
    # validateRayGroupResources: the `resources` map and rayStartParams resource flags are mutually exclusive.
    clashing = [p for p in RAY_START_RESOURCE_PARAMS if params.get(p)]
    if clashing and resources:
        found.append(
            Violation(
                f"{path}.resources",
                f"cannot be combined with rayStartParams {', '.join(clashing)} in the {group_label} group; "
                "use only one way to declare Ray resources (validateRayGroupResources)",
            )
        )
    # validateRayGroupLabels: no rayStartParams['labels']; labels must be valid Kubernetes labels.
    if "labels" in params:
        found.append(
            Violation(
                f"{path}.rayStartParams.labels",
                f"rayStartParams['labels'] is not supported for the {group_label} group; use {path}.labels",
            )
        )
    for key, value in _dict(group.get("labels")).items():
        for err in _qualified_name_errors(key):
            found.append(Violation(f"{path}.labels[{key!r}]", f"invalid label key: {err}"))
        if isinstance(value, str) and (len(value) > 63 or not _LABEL_VALUE.match(value)):
            found.append(
                Violation(
                    f"{path}.labels[{key!r}]",
                    f"invalid label value {value!r}: "
                    "at most 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends",
                )
            )
    return found


def _service_port_violations(path: str, service: Any) -> list[Violation]:
    """CRD ports: x-kubernetes-list-type map keyed by (port, protocol), so keys must be unique (protocol defaults
    to TCP)."""
    seen: dict[tuple, int] = {}
    found = []
    for i, port in enumerate(_list(_get(service, "spec", "ports"))):
        if not isinstance(port, dict) or "port" not in port:
            continue
        key = (port["port"], port.get("protocol", "TCP"))
        if key in seen:
            found.append(
                Violation(
                    f"{path}.spec.ports[{i}]",
                    f"duplicate (port, protocol) {key} also at ports[{seen[key]}]; the CRD list-map key must be unique",
                )
            )
        seen.setdefault(key, i)
    return found


def _gcs_fault_tolerance_violations(
    rc: str, metadata: dict, cluster: dict, head: dict, head_env: dict[str, Any]
) -> list[Violation]:
    """ValidateRayClusterSpec's rules on gcsFaultToleranceOptions (utils/validation.go:153-190 at v1.7.0) and
    validateGcsFaultToleranceBackend's for the redis backend (:333-375): with the options set, the password,
    the address and the storage namespace come from them only. The rocksdb backend needs a feature gate that
    the chart leaves off, so it is refused here."""
    options = cluster.get("gcsFaultToleranceOptions")
    annotations = _dict(metadata.get("annotations"))
    if options is None:
        return []
    found = []
    path = f"{rc}.gcsFaultToleranceOptions"
    env_path = f"{rc}.headGroupSpec.template.spec.containers[0].env"
    if annotations.get(FT_ENABLED_ANNOTATION):
        found.append(Violation(f"metadata.annotations[{FT_ENABLED_ANNOTATION!r}]", f"and {path} are both set"))
    if _dict(head.get("rayStartParams")).get("redis-password"):
        found.append(Violation(f"{rc}.headGroupSpec.rayStartParams", "redis-password: use redisPassword instead"))
    for env, field in (("REDIS_PASSWORD", "redisPassword"), ("RAY_REDIS_ADDRESS", "redisAddress")):
        if env in head_env:
            found.append(Violation(env_path, f"{env} must not be set with {path}: use {field} instead"))
    if annotations.get(EXTERNAL_STORAGE_NS_ANNOTATION):
        found.append(
            Violation(
                f"metadata.annotations[{EXTERNAL_STORAGE_NS_ANNOTATION!r}]",
                f"must not be set with {path}: use externalStorageNamespace instead",
            )
        )
    if _dict(options).get("backend") == "rocksdb":
        found.append(Violation(f"{path}.backend", "rocksdb needs the GCSFaultToleranceEmbeddedStorage feature gate"))
    return found


def _operator_violations(obj: Any) -> list[Violation]:
    if not isinstance(obj, dict):
        return []
    found: list[Violation] = []
    metadata = _dict(obj.get("metadata"))
    spec = _dict(obj.get("spec"))
    cluster = _dict(spec.get("rayClusterConfig"))
    head = _dict(cluster.get("headGroupSpec"))
    workers = _list(cluster.get("workerGroupSpecs"))
    rc = "spec.rayClusterConfig"

    # ValidateRayServiceMetadata: the name becomes "<name>-raycluster-xxxxx" and "<name>-serve-svc".
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        found.append(Violation("metadata.name", "required: a RayService needs a name"))
    else:
        if len(name) > MAX_RAYSERVICE_NAME_LENGTH:
            found.append(
                Violation(
                    "metadata.name",
                    f"{name!r} is {len(name)} characters; KubeRay allows at most {MAX_RAYSERVICE_NAME_LENGTH}",
                )
            )
        if not _DNS1035_LABEL.match(name):
            found.append(
                Violation(
                    "metadata.name",
                    f"{name!r} must be a DNS-1035 label (lowercase letters, digits, '-', starting with a letter)",
                )
            )
    timeout = _dict(metadata.get("annotations")).get(INITIALIZING_TIMEOUT_ANNOTATION)
    # validateInitializingTimeout
    if isinstance(timeout, str) and timeout and (err := _initializing_timeout_error(timeout)):
        found.append(Violation(f"metadata.annotations[{INITIALIZING_TIMEOUT_ANNOTATION!r}]", err))

    # ValidateRayServiceSpec: K8s token auth is not supported for a RayService.
    if _get(cluster, "authOptions", "enableK8sTokenAuth") is True:
        found.append(
            Violation(f"{rc}.authOptions.enableK8sTokenAuth", "K8s token auth is not supported for a RayService")
        )
    # ValidateRayServiceSpec: the operator names the head Service itself under a RayService.
    if _get(head, "headService", "metadata", "name"):
        found.append(
            Violation(
                f"{rc}.headGroupSpec.headService.metadata.name",
                "must not be set under a RayService (the operator names the head Service)",
            )
        )
    # ValidateRayClusterUpgradeOptions: rejected when the RayCluster is created by a RayService (when .type is
    # set); rejected here whenever present, as it has no other effect under a RayService.
    if "upgradeStrategy" in cluster:
        found.append(
            Violation(
                f"{rc}.upgradeStrategy",
                "must not be set under a RayService (KubeRay rejects it); use spec.upgradeStrategy instead",
            )
        )

    autoscaling = cluster.get("enableInTreeAutoscaling") is True  # IsAutoscalingEnabled
    autoscaler = _dict(cluster.get("autoscalerOptions"))
    autoscaler_v2 = autoscaler.get("version") == "v2"  # IsAutoscalingV2Enabled (explicit version only)
    head_env = _ray_container_env(head.get("template"))
    env_v2 = head_env.get(RAY_ENABLE_AUTOSCALER_V2) in ("1", "true")

    # ValidateRayServiceSpec -> ValidateClusterUpgradeOptions (gate RayServiceIncrementalUpgrade, on in 1.7.0).
    if _get(spec, "upgradeStrategy", "type") == "NewClusterWithIncrementalUpgrade":
        opts_path = "spec.upgradeStrategy.clusterUpgradeOptions"
        opts = _get(spec, "upgradeStrategy", "clusterUpgradeOptions")
        if not autoscaling:
            found.append(
                Violation(
                    f"{rc}.enableInTreeAutoscaling",
                    "must be true: NewClusterWithIncrementalUpgrade requires the Ray autoscaler",
                )
            )
        if not isinstance(opts, dict):
            found.append(Violation(opts_path, "required for NewClusterWithIncrementalUpgrade"))
        else:
            surge = opts.get("maxSurgePercent", 100)  # the CRD default applies before the operator sees it
            step, interval = opts.get("stepSizePercent"), opts.get("intervalSeconds")
            if _is_int(surge) and not 0 <= surge <= 100:
                found.append(Violation(f"{opts_path}.maxSurgePercent", f"must be between 0 and 100, got {surge}"))
            if _is_int(step) and not 0 <= step <= 100:
                found.append(Violation(f"{opts_path}.stepSizePercent", f"must be between 0 and 100, got {step}"))
            if _is_int(step) and _is_int(surge) and step > surge:
                found.append(
                    Violation(f"{opts_path}.stepSizePercent", f"must be <= maxSurgePercent ({surge}), got {step}")
                )
            if _is_int(interval) and interval <= 0:
                found.append(Violation(f"{opts_path}.intervalSeconds", f"must be greater than 0, got {interval}"))
            if opts.get("gatewayClassName") == "":
                found.append(Violation(f"{opts_path}.gatewayClassName", "must not be empty"))

    # ValidateRayClusterSpec: rules shared by head and worker groups.
    found += _group_violations(f"{rc}.headGroupSpec", head, "head")

    # ValidateRayClusterSpec: redis username must come from GcsFaultToleranceOptions (not in this subset).
    if _dict(head.get("rayStartParams")).get("redis-username") or "REDIS_USERNAME" in head_env:
        found.append(
            Violation(
                f"{rc}.headGroupSpec",
                "must not set a redis username (rayStartParams redis-username or env REDIS_USERNAME)",
            )
        )
    found += _gcs_fault_tolerance_violations(rc, metadata, cluster, head, head_env)
    # ValidateRayClusterSpec: RAY_REDIS_ADDRESS implicitly enables GCS FT, which then needs GcsFaultToleranceOptions.
    ft_annotation = str(_dict(metadata.get("annotations")).get(FT_ENABLED_ANNOTATION, "")).lower() == "true"
    ft_enabled = ft_annotation or "gcsFaultToleranceOptions" in cluster  # IsGCSFaultToleranceEnabled
    if "RAY_REDIS_ADDRESS" in head_env and not ft_enabled:
        found.append(
            Violation(
                f"{rc}.headGroupSpec.template.spec.containers[0].env",
                "RAY_REDIS_ADDRESS enables GCS fault tolerance; configure gcsFaultToleranceOptions instead",
            )
        )
    # ValidateRayClusterSpec: RAY_enable_autoscaler_v2 vs enableInTreeAutoscaling / autoscalerOptions.version.
    if env_v2 and not autoscaling:
        found.append(
            Violation(
                f"{rc}.headGroupSpec.template.spec.containers[0].env",
                f"{RAY_ENABLE_AUTOSCALER_V2}={head_env[RAY_ENABLE_AUTOSCALER_V2]} needs enableInTreeAutoscaling: true",
            )
        )
    if autoscaling and "version" in autoscaler and RAY_ENABLE_AUTOSCALER_V2 in head_env:
        found.append(
            Violation(
                f"{rc}.headGroupSpec.template.spec.containers[0].env",
                f"{RAY_ENABLE_AUTOSCALER_V2} and autoscalerOptions.version are both set; "
                "use only autoscalerOptions.version",
            )
        )
    # ValidateRayClusterSpec: autoscaler v2 needs restartPolicy Never (or unset) on head and workers.
    if autoscaling and autoscaler_v2:
        for path, template in [(f"{rc}.headGroupSpec", head.get("template"))] + [
            (f"{rc}.workerGroupSpecs[{i}]", _get(w, "template")) for i, w in enumerate(workers)
        ]:
            policy = _get(template, "spec", "restartPolicy")
            if policy not in (None, "", "Never"):
                found.append(
                    Violation(
                        f"{path}.template.spec.restartPolicy",
                        f"must be Never or unset with autoscaler v2, got {policy!r}",
                    )
                )
    # ValidateRayClusterSpec: autoscalerOptions checks.
    idle = autoscaler.get("idleTimeoutSeconds")
    if _is_int(idle) and idle < 0:
        found.append(Violation(f"{rc}.autoscalerOptions.idleTimeoutSeconds", f"must be non-negative, got {idle}"))
    autoscaler_env = _list(autoscaler.get("env"))
    if any(isinstance(e, dict) and e.get("name") == KUBERAY_GEN_AUTOSCALER_START_CMD for e in autoscaler_env):
        found.append(
            Violation(
                f"{rc}.autoscalerOptions.env",
                f"must not contain {KUBERAY_GEN_AUTOSCALER_START_CMD} (managed by KubeRay)",
            )
        )
    # ValidateRayClusterSpec (IsAuthEnabled): token auth needs rayVersion >= 2.52.0.
    if _get(cluster, "authOptions", "mode") == "token":
        version = _parse_version(cluster.get("rayVersion"))
        if version is None:
            found.append(
                Violation(f"{rc}.rayVersion", "authOptions.mode 'token' needs a parseable rayVersion (Ray >= 2.52.0)")
            )
        elif version < MIN_RAY_VERSION_FOR_TOKEN_AUTH:
            found.append(
                Violation(
                    f"{rc}.rayVersion", f"authOptions.mode 'token' needs Ray >= 2.52.0, got {cluster['rayVersion']!r}"
                )
            )

    # Worker groups.
    first_index: dict[str, int] = {}
    for i, group in enumerate(workers):
        if not isinstance(group, dict):
            continue
        path = f"{rc}.workerGroupSpecs[{i}]"
        group_name = group.get("groupName")
        label = f"{group_name!r}" if isinstance(group_name, str) else f"#{i}"
        # RayClusterWebhook.validateWorkerGroups: worker group names must be unique.
        if isinstance(group_name, str):
            if group_name in first_index:
                found.append(
                    Violation(
                        f"{path}.groupName",
                        f"duplicate worker group name {group_name!r} "
                        f"(also workerGroupSpecs[{first_index[group_name]}])",
                    )
                )
            first_index.setdefault(group_name, i)
        # ValidateRayClusterSpec: minReplicas/maxReplicas non-negative and min <= max.
        lo, hi = group.get("minReplicas"), group.get("maxReplicas")
        for field, value in (("minReplicas", lo), ("maxReplicas", hi)):
            if _is_int(value) and value < 0:
                found.append(Violation(f"{path}.{field}", f"must be non-negative, got {value}"))
        if _is_int(lo) and _is_int(hi) and lo > hi:
            found.append(
                Violation(
                    f"{path}.minReplicas", f"minReplicas {lo} is greater than maxReplicas {hi} in worker group {label}"
                )
            )
        found += _group_violations(path, group, f"worker {label}")
        # validateWorkerGroupIdleTimeout: non-negative, and only with autoscaler v2.
        idle = group.get("idleTimeoutSeconds")
        if _is_int(idle):
            if idle < 0:
                found.append(Violation(f"{path}.idleTimeoutSeconds", f"must be non-negative, got {idle}"))
            elif not (autoscaler_v2 or env_v2):
                found.append(
                    Violation(
                        f"{path}.idleTimeoutSeconds",
                        "is only supported with autoscaler v2: set rayClusterConfig.autoscalerOptions.version: v2",
                    )
                )
        # ValidateRayClusterSpec: a worker group cannot be suspended while the autoscaler is enabled.
        if group.get("suspend") is True and autoscaling:
            found.append(Violation(f"{path}.suspend", "cannot suspend a worker group with the autoscaler enabled"))

    found += _service_port_violations("spec.serveService", spec.get("serveService"))
    found += _service_port_violations(f"{rc}.headGroupSpec.headService", head.get("headService"))
    return found
