"""API keys: the three types and their defaults, per-key settings, secrets and their digests.

A key's secret is ``pr_<type>_<43 URL-safe base64 characters>`` (256 random bits); only its SHA-256
digest is stored, and lookups go by digest. Times are Unix seconds, given by the caller (no clock
here). The type's defaults apply when a key is created; every setting can be overridden per key.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from polyroute.types import JSONObject

SECRET_BYTES: Final = 32
"""Random bytes in a key's secret (256 bits)."""
PREFIX: Final = "pr_"
DISPLAY_CHARS: Final = 12
"""How much of a secret is kept in clear for display (``pr_test_AbCd``): the prefix and 4 random characters."""


class KeyType(StrEnum):
    """What a key may do: ``test`` and ``full`` call inference only, ``admin`` also manages the gateway."""

    TEST = "test"
    FULL = "full"
    ADMIN = "admin"


class KeyStatus(StrEnum):
    """A revoked key stays stored (for the audit trail and usage history) but is refused."""

    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Request, token and concurrency limits; None means unlimited. Windows are rolling."""

    requests_per_minute: int | None = None
    requests_per_hour: int | None = None
    requests_per_day: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    max_concurrent: int | None = None

    @property
    def is_unlimited(self) -> bool:
        """Whether no limit is set (the limiter can then skip the key entirely)."""
        return self == _NO_LIMITS


_NO_LIMITS: Final = Limits()


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """Spending limits in USD per UTC calendar day, ISO week, calendar month, and in total; None means none."""

    daily_usd: float | None = None
    weekly_usd: float | None = None
    monthly_usd: float | None = None
    total_usd: float | None = None
    warn_fraction: float = 0.8
    """Spend fraction at which responses carry a warning header."""

    @property
    def is_unlimited(self) -> bool:
        """Whether no spending limit is set."""
        return all(limit is None for limit in (self.daily_usd, self.weekly_usd, self.monthly_usd, self.total_usd))


@dataclass(frozen=True, slots=True)
class TypeDefaults:
    """What a new key of a type gets unless the request says otherwise."""

    limits: Limits
    lifetime_s: float | None
    """Seconds from creation to expiry; None never expires."""
    may_manage: bool


DEFAULTS: Final[Mapping[KeyType, TypeDefaults]] = {
    KeyType.TEST: TypeDefaults(Limits(requests_per_hour=30), 3600.0, may_manage=False),
    KeyType.FULL: TypeDefaults(Limits(), 30 * 86400.0, may_manage=False),
    KeyType.ADMIN: TypeDefaults(Limits(), None, may_manage=True),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    """A stored key: everything but its secret."""

    id: str
    type: KeyType
    digest: str
    """SHA-256 of the secret, hex."""
    display: str
    """The first characters of the secret, for recognising it in lists (``pr_test_AbCd``)."""
    name: str | None = None
    owner: str | None = None
    metadata: JSONObject = field(default_factory=dict)
    models: tuple[str, ...] = ()
    """Glob patterns over ``provider/model`` names, aliases and combos; empty allows every model."""
    limits: Limits = _NO_LIMITS
    budget: Budget = field(default_factory=Budget)
    ips: tuple[str, ...] = ()
    """Allowed client networks (CIDR); empty allows any address."""
    no_log: bool = False
    """Keep counts, not contents, in the request log."""
    fallback_scope: str | None = None
    """How far automatic fallback may wander for this key's requests (``same_model``, ``configured``, ``any``);
    None: the alias's or the gateway's setting."""
    status: KeyStatus = KeyStatus.ACTIVE
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    rotated_from: str | None = None
    """The id of the key this one replaced by rotation."""

    @property
    def may_manage(self) -> bool:
        """Whether the key may call management routes (admin keys only)."""
        return DEFAULTS[self.type].may_manage

    def is_expired(self, now: float) -> bool:
        """Whether the key's lifetime is over at ``now``."""
        return self.expires_at is not None and now >= self.expires_at

    def allows_model(self, *names: str) -> bool:
        """Whether any of ``names`` (the requested name, its ``provider/model``) matches the allowed patterns."""
        if not self.models:
            return True
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.models for name in names)

    def allows_ip(self, address: str | None) -> bool:
        """Whether a client at ``address`` may use the key (any, when no networks are set)."""
        if not self.ips:
            return True
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(network, strict=False) for network in self.ips)


def new_secret(key_type: KeyType) -> str:
    """A fresh secret of ``key_type``: ``pr_<type>_`` and 256 random bits, URL-safe base64."""
    return f"{PREFIX}{key_type.value}_{secrets.token_urlsafe(SECRET_BYTES)}"


def digest(secret: str | bytes) -> str:
    """The SHA-256 digest a secret is stored and looked up as (hex)."""
    data = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(data).hexdigest()


def display_of(secret: str) -> str:
    """The part of a secret kept in clear: ``pr_<type>_`` and four random characters."""
    head, _, rest = secret.partition("_")
    kind, sep, random = rest.partition("_")
    if f"{head}_" == PREFIX and sep:
        return f"{PREFIX}{kind}_{random[:4]}"
    return secret[:DISPLAY_CHARS]


def new_key_id() -> str:
    """A key's public id (not secret: it names the key in URLs and logs)."""
    return "key_" + secrets.token_hex(8)
