"""The files the cluster needs to build the Serve applications, for a ConfigMap on PYTHONPATH.

The infrastructure mounts the result of `cluster_sources()` as a directory on every Ray container's
PYTHONPATH (head and workers: Serve builds the applications in a task on any node and runs ingress replicas
on any node), preserving the relative paths, so that ``import serve_app.apps`` works there.

Only the application builders, the ingress and what they import are shipped: they must not depend on Pulumi
or on the deploy-time modules (spec, builder), and a test checks that the shipped set is closed under imports.
"""

from __future__ import annotations

from pathlib import Path

# Relative to the directory that goes on PYTHONPATH. Keep in step with the imports of `apps.py` and `ingress.py`,
# and the Ray pods' preStop hook (`drain.py`, run as `python -m serve_app.drain`).
CLUSTER_FILES: tuple[str, ...] = (
    "serve_app/__init__.py",
    "serve_app/admission.py",
    "serve_app/apps.py",
    "serve_app/auth.py",
    "serve_app/contract.py",
    "serve_app/drain.py",
    "serve_app/engine_health.py",
    "serve_app/engine_replica.py",
    "serve_app/engine_watch.py",
    "serve_app/ingress.py",
    "serve_app/pipeline_ingress.py",
    "serve_app/pipeline_spec.py",
    "serve_app/pipelines.py",
    "serve_app/tenant_metrics.py",
    "serve_app/tenants.py",
    "serve_app/usage.py",
)

_ROOT = Path(__file__).resolve().parent.parent


def cluster_sources() -> dict[str, str]:
    """Relative file path -> file text, for exactly the files the cluster needs (sorted by path).

    ConfigMap keys cannot contain "/", so the infrastructure maps each path to a key (for example
    ``serve_app__ingress.py``) and back with `items: [{key, path}]` in the volume.
    """
    return {path: (_ROOT / path).read_text(encoding="utf-8") for path in sorted(CLUSTER_FILES)}
