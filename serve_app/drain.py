"""The Ray pods' preStop hook: drain this Ray node, then wait until Serve has moved off it, so that the streams it
carries finish before the container is stopped.

``python -m serve_app.drain --deadline-s N`` (the pod's ``terminationGracePeriodSeconds`` is a little longer,
infra/render/rayservice.py). Without it, the kubelet's SIGTERM stops ``ray start --block`` at once and every
replica and proxy on the node dies mid-stream. What it does, read from the Ray 2.60.0 source:

1. asks the GCS to drain this node, reason preemption, with the deadline: ``ray drain-node`` (ray/scripts/
   scripts.py ``drain_node``: ``GcsClient.drain_node``, the call Ray's autoscaler makes too; it exits non-zero
   when the GCS refuses);
2. Serve's controller sees the draining node: it starts replacements of the replicas there elsewhere when it
   can and stops the old ones gracefully, each waiting up to its ``graceful_shutdown_timeout_s`` for its
   in-flight requests (ray/serve/_private/deployment_state.py ``migrate_replicas_on_draining_nodes``,
   ray/serve/_private/replica.py ``_perform_graceful_shutdown``), and drains the node's HTTP proxy, which
   stops taking new connections and reports DRAINED once idle (ray/serve/_private/proxy_state.py);
3. meanwhile the pod is terminating, so Kubernetes has taken it out of the Service's ready endpoints and the
   load balancer drains its connections (GCPBackendPolicy ``connectionDraining``, infra/render/exposure.py);
4. this hook returns at once when the GCS refuses the drain (the head node), else once no Serve replica is
   left on the node and its proxy is drained or gone, or at the deadline, whichever is first; then the
   container stops.

Exit status 0 always: a preStop hook that fails only makes the kubelet log it, and the pod stops either way.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable

POLL_S = 2.0
# Consecutive failed looks after which the hook gives up: Ray or Serve is gone (the head pod is going too, as
# when a whole cluster is deleted), so nothing can be drained and waiting would only hold the pod.
MAX_FAILED_LOOKS = 3
DRAIN_REASON = "DRAIN_NODE_REASON_PREEMPTION"
REPLICA_CLASS_PREFIX = "ServeReplica:"  # the class name Serve gives its replica actors
# ray/serve/schema.py ProxyStatus: DRAINED is momentary (the proxy is removed next), UNHEALTHY serves nothing.
DRAINED_PROXY_STATES = frozenset({"DRAINED", "UNHEALTHY"})


def wait_until_drained(
    busy: Callable[[], list[str]],
    deadline_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
) -> bool:
    """Poll `busy` (what still runs on the node) until it is empty (True), or until `deadline_s` passed or it
    failed `MAX_FAILED_LOOKS` times in a row (False)."""
    deadline, failed = clock() + deadline_s, 0
    while True:
        try:
            left, failed = busy(), 0
        except Exception as error:
            failed += 1
            left = [f"unknown ({error!r})"]
            if failed >= MAX_FAILED_LOOKS:
                log(f"llmserve drain: giving up, Ray cannot be asked: {error!r}")
                return False
        if not left:
            log("llmserve drain: nothing left on this node")
            return True
        if clock() >= deadline:
            log(f"llmserve drain: deadline reached with {left} still on this node")
            return False
        log(f"llmserve drain: waiting for {left}")
        sleep(POLL_S)


def busy_on_node(node_id: str, actors: list[dict], proxy_status: str | None) -> list[str]:
    """The Serve replicas still alive on `node_id`, and its proxy unless drained."""
    left = sorted(
        str(actor.get("class_name"))
        for actor in actors
        if actor.get("node_id") == node_id
        and actor.get("state") == "ALIVE"
        and str(actor.get("class_name", "")).startswith(REPLICA_CLASS_PREFIX)
    )
    if proxy_status is not None and proxy_status not in DRAINED_PROXY_STATES:
        left.append(f"proxy {proxy_status}")
    return left


def _ray_busy(node_id: str) -> list[str]:
    from ray import serve
    from ray.util.state import list_actors

    actors = [
        {"node_id": actor.node_id, "state": actor.state, "class_name": actor.class_name}
        for actor in list_actors(filters=[("node_id", "=", node_id), ("state", "=", "ALIVE")], limit=10_000)
    ]
    proxy = serve.status().proxies.get(node_id)
    return busy_on_node(node_id, actors, None if proxy is None else str(getattr(proxy, "value", proxy)))


def _drain_this_node(deadline_s: int) -> str | None:
    """This node's id once the GCS accepted to drain it; None when it refused (the head node, which the GCS
    never drains: there is nothing that could take its place, so nothing to wait for)."""
    import logging

    import ray

    ray.init(address="auto", logging_level=logging.ERROR, log_to_driver=False)
    node_id = str(ray.get_runtime_context().get_node_id())
    command = ["ray", "drain-node", "--node-id", node_id, "--reason", DRAIN_REASON]
    command += ["--reason-message", "pod terminating (preStop)", "--deadline-remaining-seconds", str(deadline_s)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    accepted = result.returncode == 0
    print(f"llmserve drain: node {node_id}: {'drain accepted' if accepted else result.stderr.strip()[-500:]}")
    return node_id if accepted else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app.drain", description=__doc__.splitlines()[0])
    parser.add_argument("--deadline-s", type=int, required=True, help="seconds until the pod is stopped anyway")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        node_id = _drain_this_node(args.deadline_s)
    except Exception as error:  # no Ray here (the head going, a worker that never joined): nothing to drain
        print(f"llmserve drain: could not drain this node: {error!r}")
        return 0
    if node_id is None:
        return 0
    wait_until_drained(lambda: _ray_busy(node_id), args.deadline_s - (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
