"""Process settings, read once from ``POLYROUTE_*`` environment variables.

This is the only module that reads the environment. Everything else receives values from
``app.py``/``cli.py``; the routing file's ``${VAR}`` references are resolved against
:func:`environment`, which is passed down explicitly.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 8340
"""The port ``polyroute serve`` listens on unless told otherwise."""

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "polyroute"


class Settings(BaseSettings):
    """Everything a process needs to know before it reads the routing file."""

    model_config = SettingsConfigDict(env_prefix="POLYROUTE_", frozen=True, extra="ignore")

    config: Path | None = None
    """Routing file; unset means ``./polyroute.yaml`` if it exists, else the zero-config catalog."""
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    """SQLAlchemy URL; ``postgresql://`` and ``sqlite:///`` are accepted and given an async driver."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    admin_key: SecretStr | None = None
    """The bootstrap admin key; without one (and no key stored yet) an admin key is generated and printed once."""
    require_api_key: bool = True
    """``false`` serves without keys; allowed only on a loopback host."""
    redis_url: str | None = None
    """Shared state for limits, concurrency and budgets across workers and instances (``redis://...``)."""
    initial_password: SecretStr | None = None
    """The dashboard login password set on first start (stored hashed; changeable through the API)."""
    log_retention_days: float = Field(default=30.0, ge=0)
    """Request-log rows older than this are deleted in the background; 0 keeps them forever."""
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    first_byte_timeout_s: float = Field(default=600.0, gt=0)
    """How long a non-streaming call may wait for the upstream's answer to begin."""
    stream_idle_timeout_s: float = Field(default=300.0, gt=0)
    """Longest gap allowed between two pieces of a streamed answer (and before its headers)."""
    request_timeout_s: float = Field(default=600.0, gt=0)
    """Total time for one upstream call unless a provider sets its own ``timeout_s``."""
    shutdown_timeout_s: float = Field(default=30.0, ge=0)
    discovery_timeout_s: float = Field(default=1.0, gt=0)
    """How long start-up waits for upstream model lists before serving (the rest continue in background)."""
    rediscover_interval_s: float = Field(default=60.0, gt=0)
    pollinations: bool = True
    """Register keyless Pollinations text models in zero-config mode."""
    ollama_url: str = "http://127.0.0.1:11434"
    """Where zero-config mode looks for a local Ollama."""
    log_flush_interval_s: float = Field(default=1.0, gt=0)
    image_fetch_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    """Largest image fetched from a URL for a provider that takes images only as data (Gemini, Ollama)."""
    image_fetch_timeout_s: float = Field(default=15.0, gt=0)
    image_fetch_private: bool = False
    """Allow fetching images from loopback, private and link-local addresses (off: a request could
    otherwise make the gateway read from its own network)."""
    audio_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    """Largest audio file ``POST /v1/audio/transcriptions|translations`` accepts (413 past it)."""

    @property
    def resolved_database_url(self) -> str:
        """The database URL with an async driver, defaulting to SQLite in the data dir."""
        url = self.database_url or f"sqlite:///{self.data_dir / 'polyroute.db'}"
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url

    @property
    def config_path(self) -> Path | None:
        """The routing file to load, or None for zero-config mode."""
        if self.config is not None:
            return self.config
        default = Path("polyroute.yaml")
        return default if default.is_file() else None

    @property
    def is_loopback(self) -> bool:
        """Whether the listen address is reachable only from this machine.

        Only loopback IP addresses and ``localhost`` count: a host name such as ``127.example.com``
        may resolve to any address, so it must not unlock open access.
        """
        if self.host.lower() in LOOPBACK_HOSTS:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def environment() -> Mapping[str, str]:
    """A snapshot of the process environment, for ``${VAR}`` references and the provider catalog."""
    return dict(os.environ)


def export(settings: Settings) -> None:
    """Write explicitly given settings back to the environment so worker processes see them."""
    for name, value in settings.model_dump(exclude_unset=True).items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        os.environ[f"POLYROUTE_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
