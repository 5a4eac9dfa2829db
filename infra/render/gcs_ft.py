"""GCS fault tolerance as plain data: the Secret with the Redis password and CA, and what the RayService gains.

Pure: `render_gcs_redis_secret` and `with_gcs_fault_tolerance` take plain values (or Pulumi outputs, passed
through unread) and return dicts; the `LlmService` component (infra/components/serving.py) registers them, the
`GcsRedis` component (infra/components/gcs_redis.py) creates the Memorystore instance they point at.

What KubeRay v1.7.0 does with `spec.rayClusterConfig.gcsFaultToleranceOptions` (ray-operator/, tag v1.7.0):
- fields `redisAddress`, `redisPassword` / `redisUsername` (`value` or `valueFrom`), `externalStorageNamespace`,
  `backend` (apis/ray/v1/raycluster_types.go:151-179, `RedisCredential` :266-271);
- on the head pod: the annotation `ray.io/ft-enabled: "true"` (controllers/ray/common/pod.go:85-87), and in
  the Ray container `RAY_REDIS_ADDRESS`, `REDIS_PASSWORD` from `redisPassword` with `redis-password:
  $REDIS_PASSWORD` in its rayStartParams, and `RAY_external_storage_namespace` (pod.go:117-172); on every
  worker that does not set it, `RAY_gcs_rpc_server_reconnect_timeout_s=600` (pod.go:92-102,
  utils/constant.go:302: Ray's default of 60 s would make workers exit while a new head starts);
- refuses `REDIS_PASSWORD` or `RAY_REDIS_ADDRESS` in the head's env and `redis-password` in its
  rayStartParams when the options are set (utils/validation.go:167-181);
- adds the finalizer `ray.io/gcs-ft-redis-cleanup-finalizer` to the RayCluster and, when the cluster is
  deleted, runs a `<cluster>-redis-cleanup` Job built from the head pod (its env and volumes, so the CA file
  below too) that deletes the cluster's keys, over TLS when the address is `rediss://`
  (raycluster_controller.go:248-351, buildRedisCleanupJob :1807-1898; the Job has 300 s), and drops the
  finalizer after 300 s if the cleanup is stuck (constant.go:259).

`externalStorageNamespace` is left unset on purpose: the operator then uses the RayCluster's UID
(pod.go:119). A RayService copies `rayClusterConfig` as is into every RayCluster it creates
(rayservice_controller.go:1504-1545), so a fixed namespace would have the old and the pending cluster of a
NewCluster upgrade write to the same keys, and the old cluster's cleanup Job delete the new one's.

What Ray 2.60 does with it: `rediss://host:port` turns TLS on for the GCS's Redis client
(ray/_private/services.py `get_address`, line 1504, passing `--redis_enable_ssl` to gcs_server), which trusts
the CA file named by `RAY_REDIS_CA_CERT` (RayConfig `REDIS_CA_CERT`, ray/includes/ray_config.pxd:52; the
shipped gcs_server reads `RAY_REDIS_CA_CERT`; src/ray/gcs/store_client/redis_context.cc hands it to hiredis's
`redisCreateSSLContext`), and sends the password with AUTH. Memorystore's in-transit encryption
(SERVER_AUTHENTICATION) signs the server certificate with a per-instance CA: that CA goes into the Secret and
is mounted on the head.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Mapping
from typing import Any

from infra.render.secrets import render_secret

PASSWORD_KEY = "password"
CA_KEY = "ca.crt"
CA_VOLUME = "gcs-redis-ca"
CA_DIR = "/etc/llmserve/gcs-redis"
CA_FILE = posixpath.join(CA_DIR, CA_KEY)
RAY_REDIS_CA_CERT = "RAY_REDIS_CA_CERT"  # Ray's RayConfig REDIS_CA_CERT, read from the env by gcs_server
GCS_RECONNECT_TIMEOUT_ENV = "RAY_gcs_rpc_server_reconnect_timeout_s"
# KubeRay's DefaultWorkerRayGcsReconnectTimeoutS (utils/constant.go:302), written out so that the plan shows it
# and it does not depend on the operator's default: how long a worker's raylet waits for a new GCS before it
# exits. A head restart (new pod, image already on the node, `ray start`, GCS reload) fits in it.
GCS_RECONNECT_TIMEOUT_S = "600"


def gcs_redis_secret_name(rayservice_name: str) -> str:
    return f"{rayservice_name}-gcs-redis"


def redis_address(host: str, port: int) -> str:
    """The TLS address Ray reads: `rediss://` makes the GCS encrypt its Redis connection."""
    return f"rediss://{host}:{port}"


def ca_bundle(certs: Any) -> str:
    """Every CA certificate the instance lists (`server_ca_certs[].cert`), as one PEM file: while Memorystore
    rotates its CA both are listed, and a client that trusts both keeps connecting."""
    return "\n".join(cert["cert"].strip() for cert in certs or ()) + "\n"


def render_gcs_redis_secret(name: str, namespace: str, password: Any, ca_certificates: Any) -> dict:
    """The Redis AUTH string (read by KubeRay into the head's REDIS_PASSWORD) and the CA bundle (mounted on the
    head); values may be Pulumi outputs."""
    return render_secret(name, namespace, {PASSWORD_KEY: password, CA_KEY: ca_certificates})


def gcs_fault_tolerance_options(address: Any, secret_name: str) -> dict:
    """`spec.rayClusterConfig.gcsFaultToleranceOptions`: the address, and the password from the Secret (never
    a literal in the spec)."""
    return {
        "redisAddress": address,
        "redisPassword": {"valueFrom": {"secretKeyRef": {"name": secret_name, "key": PASSWORD_KEY}}},
    }


def with_gcs_fault_tolerance(rayservice: Mapping[str, Any], address: Any, secret_name: str) -> dict:
    """A copy of a rendered RayService with GCS fault tolerance on: the options, the CA on the head, the GCS
    reconnect timeout on every worker, and the head out of the serve Service.

    `excludeHeadPodFromServeSvc`: KubeRay then keeps the head pod's `ray.io/serve` label false
    (rayservice_controller.go:2074-2115), so clients reach the Serve proxies on the workers only, which keep
    serving while the head restarts; no request is routed through the pod that goes away.
    """
    rendered = copy.deepcopy(dict(rayservice))
    spec = rendered["spec"]
    cluster = spec["rayClusterConfig"]
    cluster["gcsFaultToleranceOptions"] = gcs_fault_tolerance_options(address, secret_name)
    spec["excludeHeadPodFromServeSvc"] = True
    _mount_ca(cluster["headGroupSpec"]["template"]["spec"], secret_name)
    for group in cluster.get("workerGroupSpecs", []):
        container = group["template"]["spec"]["containers"][0]
        env = [var for var in container.get("env", []) if var["name"] != GCS_RECONNECT_TIMEOUT_ENV]
        container["env"] = [*env, {"name": GCS_RECONNECT_TIMEOUT_ENV, "value": GCS_RECONNECT_TIMEOUT_S}]
    return rendered


def _mount_ca(pod_spec: dict, secret_name: str) -> None:
    """The CA bundle as a read-only file in the head's Ray container (the first: KubeRay's RayContainerIndex),
    and RAY_REDIS_CA_CERT pointing at it."""
    pod_spec["volumes"] = [
        *pod_spec.get("volumes", []),
        {
            "name": CA_VOLUME,
            "secret": {"secretName": secret_name, "defaultMode": 0o444, "items": [{"key": CA_KEY, "path": CA_KEY}]},
        },
    ]
    container = pod_spec["containers"][0]
    container["volumeMounts"] = [
        *container.get("volumeMounts", []),
        {"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True},
    ]
    container["env"] = [*container.get("env", []), {"name": RAY_REDIS_CA_CERT, "value": CA_FILE}]
