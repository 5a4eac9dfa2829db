"""The dashboard's and alerts' settings from config: thresholds with their ranges, and the notification channel.

Read by infra/config/stack.py from the `alert*` keys; rendered by infra/render/monitoring.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AlertThresholds:
    """Validated alert thresholds (infra/config/stack.py reads them from the `alert*` keys)."""

    not_ready_minutes: int = 10
    ttft_p95_seconds: int = 10
    kv_cache_percent: int = 95
    kv_cache_minutes: int = 10
    wedged_minutes: int = 5
    notification_channel: str = ""


# (config key, AlertThresholds field, lowest, highest)
THRESHOLD_RANGES: tuple[tuple[str, str, int, int], ...] = (
    ("alertNotReadyMinutes", "not_ready_minutes", 1, 1440),
    ("alertTtftP95Seconds", "ttft_p95_seconds", 1, 3600),
    ("alertKvCacheUsagePercent", "kv_cache_percent", 50, 100),
    ("alertKvCacheMinutes", "kv_cache_minutes", 1, 1440),
    ("alertWedgedMinutes", "wedged_minutes", 1, 1440),
)
NOTIFICATION_CHANNEL_KEY = "alertNotificationChannel"
# projects/<project id>/notificationChannels/<numeric id>; a project id is 6-30 lowercase letters, digits and
# hyphens starting with a letter (legacy domain-scoped ids add "domain:").
NOTIFICATION_CHANNEL = re.compile(
    r"projects/(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]/notificationChannels/[0-9]+")


def alert_thresholds(values: dict[str, Any], prefix: str) -> tuple[AlertThresholds, list[str]]:
    """Thresholds from already-typed config values (key -> int / str); problems name the key, the value found
    and what is allowed. Missing keys keep the defaults."""
    problems: list[str] = []
    fields: dict[str, Any] = {}
    for key, field_name, lowest, highest in THRESHOLD_RANGES:
        value = values.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
            problems.append(f"{prefix}{key}: out of range; found {value!r}; allowed: an integer from {lowest} to "
                            f"{highest}")
            continue
        fields[field_name] = value
    channel = values.get(NOTIFICATION_CHANNEL_KEY) or ""
    if channel and not NOTIFICATION_CHANNEL.fullmatch(channel):
        problems.append(f"{prefix}{NOTIFICATION_CHANNEL_KEY}: not a notification channel resource name; found "
                        f"{channel!r}; allowed: projects/<project-id>/notificationChannels/<numeric-id> (`gcloud "
                        f"beta monitoring channels list --format='value(name)'`), or empty for none")
    else:
        fields["notification_channel"] = channel
    return AlertThresholds(**fields), problems
