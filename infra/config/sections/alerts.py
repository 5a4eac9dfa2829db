"""The dashboard's alerts: thresholds (their ranges are declared on the keys) and the notification channel.

Rendered by infra/render/monitoring.py from the `AlertThresholds` read here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from configkit import shown
from infra.config.keys import ALERT_KEYS, CONFIG_KEYS_BY_NAME
from infra.config.settings import AlertThresholds
from infra.config.stackfiles import PROJECT
from infra.config.values import ValueReader, read_cleanly

# config key -> AlertThresholds field
THRESHOLD_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "alertNotReadyMinutes": "not_ready_minutes",
        "alertTtftP95Seconds": "ttft_p95_seconds",
        "alertKvCacheUsagePercent": "kv_cache_percent",
        "alertKvCacheMinutes": "kv_cache_minutes",
        "alertWedgedMinutes": "wedged_minutes",
    }
)
NOTIFICATION_CHANNEL_KEY = "alertNotificationChannel"
# projects/<project id>/notificationChannels/<numeric id>; a project id is 6-30 lowercase letters, digits and
# hyphens starting with a letter (legacy domain-scoped ids add "domain:").
NOTIFICATION_CHANNEL = re.compile(r"projects/(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]/notificationChannels/[0-9]+")


def read_alerts(read: ValueReader) -> AlertThresholds | None:
    """The alert thresholds and notification channel; None when any is bad."""
    raw = {key.name: read.get(key.name) for key in ALERT_KEYS}
    if not read_cleanly(*raw.values()):
        return None
    alerts, problems = alert_thresholds(raw, f"{PROJECT}:")
    read.problems.extend(problems)
    return None if problems else alerts


def alert_thresholds(values: Mapping[str, Any], prefix: str) -> tuple[AlertThresholds, list[str]]:
    """Thresholds from already-typed config values (key -> int / str); problems name the key, the value found
    and what is allowed. Missing keys keep the defaults."""
    problems: list[str] = []
    fields: dict[str, Any] = {}
    for key, field_name in THRESHOLD_FIELDS.items():
        value = values.get(key)
        if value is None:
            continue
        bounds = CONFIG_KEYS_BY_NAME[key].range
        assert bounds is not None, f"{key} declares no range"  # every threshold key does (infra/config/keys.py)
        if isinstance(value, bool) or not isinstance(value, int) or value not in bounds:
            problems.append(
                f"{prefix}{key}: out of range; found {shown(value)}; allowed: an integer from {bounds.words()}"
            )
            continue
        fields[field_name] = value
    channel = values.get(NOTIFICATION_CHANNEL_KEY) or ""
    if channel and not NOTIFICATION_CHANNEL.fullmatch(channel):
        problems.append(
            f"{prefix}{NOTIFICATION_CHANNEL_KEY}: not a notification channel resource name; found "
            f"{channel!r}; allowed: projects/<project-id>/notificationChannels/<numeric-id> (`gcloud "
            f"beta monitoring channels list --format='value(name)'`), or empty for none"
        )
    else:
        fields["notification_channel"] = channel
    return AlertThresholds(**fields), problems
