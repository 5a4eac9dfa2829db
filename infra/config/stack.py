"""Stack configuration: read once, at the edge, into typed frozen objects, validated before any resource exists.

`parse_stack_config` is pure: it takes the raw values (strings, as the Pulumi engine hands them over) and returns
a `StackConfig` (`infra/config/settings.py`) or raises `ConfigError` listing every problem at once.
`config_from_map` does the same for a whole config map as the engine holds it, and `load_stack_config` is the
only function that touches `pulumi.Config`.

The keys are declared in `infra/config/keys.py`; the keys themselves are checked first (`key_checks.py`), then one
reader per section (`sections/`) turns its keys into its settings, each key on its own before the rules between
them, so that every problem is reported once, by the key that holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from infra.config.errors import ConfigError
from infra.config.key_checks import check_keys
from infra.config.keys import CONFIG_KEYS_BY_NAME, SECRET_KEY_NAMES
from infra.config.sections.alerts import read_alerts
from infra.config.sections.cluster import read_cluster
from infra.config.sections.gcp import read_gcp
from infra.config.sections.gcs_ft import read_gcs_redis
from infra.config.sections.gpu_pool import read_gpu_pool, read_machine, read_zones
from infra.config.sections.network import read_network, read_ranges
from infra.config.sections.pipelines import with_pipelines
from infra.config.sections.secure import read_secure_settings, secure_warnings
from infra.config.sections.serving import read_serving
from infra.config.sections.tenants import read_tenants
from infra.config.sections.weights import read_weight_keys, resolve_weights
from infra.config.settings import (
    ClusterConfig,
    GpuPoolConfig,
    SecureSettings,
    ServingConfig,
    StackConfig,
    WeightsConfig,
)
from infra.config.stackfiles import PROJECT
from infra.config.stackfiles import SECRET as OFFLINE_SECRET
from infra.config.values import ValueReader, clean

if TYPE_CHECKING:  # the secrets' type only: the config is read where Pulumi may not be installed (local_run)
    import pulumi


def _warn_on_secure_settings(read: ValueReader, secure: SecureSettings | None, pool: GpuPoolConfig | None) -> None:
    """The hardening settings' warnings, which depend on the GPU machine and how it is bought."""
    if secure is not None and pool is not None:
        read.warnings.extend(
            secure_warnings(
                secure,
                machine_type=pool.machine.machine_type,
                on_demand=not (pool.reservation or pool.spot or pool.flex_start),
            )
        )


def parse_stack_config(
    stack: str,
    values: Mapping[str, Any],
    gcp_values: Mapping[str, Any],
    secrets: Mapping[str, pulumi.Input[str]] | None = None,
    plain_secrets: Mapping[str, str] | None = None,
    other_keys: Mapping[str, bool] | None = None,
    encrypted: Iterable[str] = (),
) -> StackConfig:
    """Build the typed `StackConfig` from raw config values, or raise `ConfigError` listing every problem.

    `values` holds the project's keys without their `llmserve:` prefix; `gcp_values` the `gcp:` provider keys
    (`project`, `region`). Values may be strings (as the engine passes them) or already-typed JSON values. A
    secret key found in `values` was stored in plain text and is refused. `secrets` maps the secret keys that
    are set to their (opaque) values, which are passed through unread; `plain_secrets` holds the same values
    in plain text for checks only (never stored, never printed). `other_keys` maps every key the stack sets
    outside the project's namespace (`gcp:project`, a misspelt `llmserv:gpuNodeCount`, a bare `gpuNodeCount`)
    to whether it is stored encrypted. `encrypted` names the project keys that are not secrets but are stored
    encrypted (an encrypted part inside `models` would reach the plain-text serve config).
    """
    read = ValueReader(values, CONFIG_KEYS_BY_NAME)
    check_keys(read, values, dict(other_keys or {}), set(encrypted))

    gcp_project, region = read_gcp(read, gcp_values)
    zones = read_zones(read, region)
    machine = read_machine(read)
    pool = read_gpu_pool(read, machine, zones)
    ranges = read_ranges(read)
    network = read_network(region, ranges, pool)
    cluster = read_cluster(read, region, zones, ranges["masterCidr"])
    secure = read_secure_settings(read)
    serving = read_serving(read, machine, pool, secure, secrets or {}, plain_secrets or {})
    serving = with_pipelines(read, serving)
    alerts = read_alerts(read)
    gcs_redis = read_gcs_redis(read)
    tenants = read_tenants(read, secrets or {}, plain_secrets or {})
    weights = _read_weights(read, stack, gcp_project, region, cluster, serving, secrets or {})
    _warn_on_secure_settings(read, secure, pool)

    if read.problems:
        raise ConfigError(read.problems)
    return StackConfig(
        stack=stack,
        gcp_project=clean(gcp_project),
        region=clean(region),
        network=clean(network),
        cluster=clean(cluster),
        gpu_pool=clean(pool),
        serving=clean(serving),
        warnings=tuple(read.warnings),
        secure=clean(secure),
        weights=clean(weights),
        alerts=clean(alerts),
        gcs_redis=gcs_redis,
        tenants=clean(tenants),
    )


def _read_weights(
    read: ValueReader,
    stack: str,
    gcp_project: str | None,
    region: str | None,
    cluster: ClusterConfig | None,
    serving: ServingConfig | None,
    secrets: Mapping[str, pulumi.Input[str]],
) -> WeightsConfig | None:
    """The weights keys, then every model's weight source, which depends on four other sections: resolved only
    when those read cleanly, so that a problem in one of them is reported once, by its own key."""
    weight_keys = read_weight_keys(read)
    if weight_keys is None or serving is None or cluster is None or gcp_project is None or region is None:
        return None
    weights, problems, warnings = resolve_weights(
        weight_keys,
        serving.models,
        stack=stack,
        gcp_project=gcp_project,
        region=region,
        deletion_protection=cluster.deletion_protection,
        ray_image=serving.ray_image,
        secrets=secrets,
    )
    read.problems.extend(problems)
    read.warnings.extend(warnings)
    return weights


def load_stack_config() -> StackConfig:
    """Read the current stack's config through `pulumi.Config`, once. The only place that does."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    # `pulumi.Config` cannot list keys; the runtime's config map can (set by the engine or `set_all_config`),
    # so that a misspelt key or namespace is reported instead of silently ignored.
    everything = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    encrypted = set(runtime_config.get_config_secret_keys_env()) | {
        name for name in everything if runtime_config.is_config_secret(name)
    }
    project_config = pulumi.Config(PROJECT)
    return config_from_map(pulumi.get_stack(), everything, encrypted, project_config.get_secret)


def config_from_map(
    stack: str,
    config: Mapping[str, Any],
    encrypted: Iterable[str],
    secret: Callable[[str], pulumi.Output[str] | None] = lambda name: None,
) -> StackConfig:
    """`parse_stack_config` for a whole config map as the engine holds it, `{"namespace:key": "text"}`, with the
    keys stored encrypted. `secret(name)` wraps a secret key's value (a `pulumi.Output` under the engine); its
    text is used for checks only. Pure: the property tests call it with stack files read by infra/stackfiles."""
    prefix = f"{PROJECT}:"
    encrypted = set(encrypted)
    project_keys = {name[len(prefix) :] for name in config if name.startswith(prefix)}
    # A secret key stored in plain text goes with the ordinary values, where parse_stack_config refuses it.
    plain_text = {name for name in SECRET_KEY_NAMES & project_keys if f"{prefix}{name}" not in encrypted}
    stored_secrets = (SECRET_KEY_NAMES & project_keys) - plain_text
    values = {name: config[f"{prefix}{name}"] for name in sorted(project_keys - stored_secrets)}
    values = {name: value for name, value in values.items() if value is not None}
    secrets = {name: secret(name) or config[f"{prefix}{name}"] for name in sorted(stored_secrets)}
    # The offline plan cannot decrypt secrets and passes a placeholder, which is not checked.
    plain = {name: config[f"{prefix}{name}"] for name in stored_secrets}
    gcp_values = {"project": config.get("gcp:project"), "region": config.get("gcp:region")}
    other_keys = {name: name in encrypted for name in config if not name.startswith(prefix)}
    return parse_stack_config(
        stack,
        values,
        gcp_values,
        secrets,
        {name: value for name, value in plain.items() if isinstance(value, str) and value != OFFLINE_SECRET},
        other_keys=other_keys,
        encrypted={name[len(prefix) :] for name in encrypted if name.startswith(prefix)},
    )
