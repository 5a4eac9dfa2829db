"""Tenants' API keys: their text format, and the file the ingress re-reads (standard library only; shipped).

The keys of each tenant live in a second file of the API-key Secret (``tenant-keys``, next to ``keys``), one
tenant per line or ``;``-separated, its keys comma-separated, so that a tenant's key rotates as the plain key
does ("OLD,NEW", later "NEW")::

    team-a=KEY1,KEY2
    team-b=KEY3

The keys of the plain file (``keys``) stay accepted as the tenant `DEFAULT_TENANT` with no limits, so a stack
without tenants answers exactly as before. Messages never quote a key, only its tenant and position.
Re-reads follow the plain file's rules (`serve_app.auth`): a file read but unusable drops every tenant key at
once (those requests get 401), a file that cannot be read keeps the last good keys for `max_stale_s`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping

from serve_app.admission import DEFAULT_TENANT

TENANT_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
MIN_KEY_LENGTH = 16  # as serve_app.auth.MIN_API_KEY_LENGTH (not imported: auth imports this module)
_ENTRY_SEPARATORS = re.compile(r"[;\n]+")
_KEY_SEPARATORS = re.compile(r"[,\s]+")
log = logging.getLogger("ray.serve")


class TenantKeyError(ValueError):
    """A tenant-key text that cannot be used; the message names tenants and positions, never a key."""


def parse_tenant_keys(text: str) -> dict[str, tuple[str, ...]]:
    """Tenant -> its keys, from ``tenant=KEY,KEY`` entries; `TenantKeyError` for a malformed entry, a bad or
    repeated tenant name, a short key, or a key given to two tenants."""
    tenants: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    for position, entry in enumerate((part.strip() for part in _ENTRY_SEPARATORS.split(text)), start=1):
        if not entry:
            continue
        name, sep, keys_text = entry.partition("=")
        name = name.strip()
        if not sep:
            raise TenantKeyError(f"entry {position} is not `tenant=KEY[,KEY...]`")
        if TENANT_NAME.fullmatch(name) is None or name == DEFAULT_TENANT:
            raise TenantKeyError(
                f"entry {position}: tenant name {name!r} is not allowed; allowed: 1 to 63 "
                f"lowercase letters, digits and '-', not {DEFAULT_TENANT!r}"
            )
        if name in tenants:
            raise TenantKeyError(f"tenant {name!r} is listed twice; put all its keys in one entry")
        keys = tuple(key for key in _KEY_SEPARATORS.split(keys_text) if key)
        if not keys:
            raise TenantKeyError(f"tenant {name!r} has no key")
        for index, key in enumerate(keys, start=1):
            if len(key) < MIN_KEY_LENGTH:
                raise TenantKeyError(f"tenant {name!r}: key number {index} is shorter than {MIN_KEY_LENGTH} characters")
            if owner.get(key, name) != name:
                raise TenantKeyError(
                    f"tenant {name!r}: key number {index} is also a key of tenant "
                    f"{owner[key]!r}; a key identifies one tenant"
                )
            owner[key] = name
        tenants[name] = keys
    return tenants


def format_tenant_keys(tenants: Mapping[str, tuple[str, ...] | list[str]]) -> str:
    """The file text for `tenants` (the inverse of `parse_tenant_keys`), one tenant per line, sorted."""
    return "".join(f"{name}={','.join(keys)}\n" for name, keys in sorted(tenants.items()))


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class TenantKeyFile:
    """The tenant keys of a file, re-read at most every `reload_interval_s` seconds (see the module docstring).

    At construction, a missing or bad file raises `TenantKeyError` (the replica must not start half-configured).
    """

    def __init__(
        self,
        path: str,
        reload_interval_s: float = 10.0,
        max_stale_s: float = 60.0,
        clock: Callable[[], float] | None = None,
    ):
        self.path = path
        self.reload_interval_s = float(reload_interval_s)
        self.max_stale_s = float(max_stale_s)
        self._clock = clock if clock is not None else time.monotonic
        try:
            self._entries = self._read()
        except OSError as error:
            raise TenantKeyError(f"tenant-key file {path} cannot be read ({error.strerror or error})") from None
        now = self._clock()
        self._checked_at = self._last_good_at = now

    def _read(self) -> tuple[tuple[bytes, str], ...]:
        with open(self.path, encoding="utf-8") as handle:
            try:
                tenants = parse_tenant_keys(handle.read())
            except UnicodeDecodeError:
                raise TenantKeyError(f"tenant-key file {self.path} is not UTF-8 text") from None
        return tuple((digest(key), name) for name, keys in sorted(tenants.items()) for key in keys)

    def entries(self) -> tuple[tuple[bytes, str], ...]:
        """(SHA-256 of a key, its tenant) for every accepted tenant key."""
        now = self._clock()
        if now - self._checked_at >= self.reload_interval_s:
            self._reload(now)
        return self._entries

    def _reload(self, now: float) -> None:
        self._checked_at = now
        try:
            entries = self._read()
        except TenantKeyError as error:
            if self._entries:
                log.error("tenant keys revoked: %s in %s; tenant keys are refused until it is fixed", error, self.path)
            self._entries = ()
        except OSError as error:
            if now - self._last_good_at > self.max_stale_s:
                if self._entries:
                    log.error(
                        "tenant-key file %s unreadable (%s); refusing tenant keys", self.path, error.strerror or error
                    )
                self._entries = ()
        else:
            if entries != self._entries:
                log.info("tenant keys reloaded from %s: %d tenant(s)", self.path, len({t for _, t in entries}))
            self._entries = entries
            self._last_good_at = now
