"""Building the routing table at start, and keeping model lists fresh in the background.

Start-up never waits on the network for longer than a short timeout: providers whose list has not
arrived by then stay ``pending`` (or ``unreachable``) and are asked again every interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson
from yarl import URL

from polyroute.errors import UpstreamError
from polyroute.routing.catalog import zero_config_providers
from polyroute.routing.combos import Combo
from polyroute.routing.config import CredentialStrategy, ProviderConfig, RoutingConfig
from polyroute.routing.table import (
    DEFAULT_POLICY,
    LiveRoutingTable,
    ProviderState,
    RoutingPolicy,
    RoutingTable,
    configured_models,
)
from polyroute.upstream.client import Endpoint, Timeouts, UpstreamClient, UpstreamTarget
from polyroute.wire import MediaApi, WireFormat

logger = logging.getLogger(__name__)

OLLAMA_PROVIDER = "ollama"


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveryOptions:
    """What discovery needs to know from settings."""

    timeouts: Timeouts
    list_timeout_s: float = 5.0
    startup_wait_s: float = 1.0
    interval_s: float = 60.0
    ollama_url: str | None = None
    """Probe a local Ollama here (zero-config mode only); None disables the probe."""


def make_target(
    config: ProviderConfig, timeouts: Timeouts, *, rotation: CredentialStrategy = CredentialStrategy.FILL_FIRST
) -> UpstreamTarget:
    """The upstream layer's view of a configured provider."""
    if config.timeout_s is not None:
        timeouts = Timeouts(
            connect_s=timeouts.connect_s,
            first_byte_s=min(timeouts.first_byte_s, config.timeout_s),
            stream_idle_s=min(timeouts.stream_idle_s, config.timeout_s),
            total_s=config.timeout_s,
        )
    endpoint = Endpoint(
        name=config.name, wire_format=config.format, base_url=config.base_url, models_url=config.models_url
    )
    return UpstreamTarget(
        endpoint,
        credentials=config.credentials,
        headers=config.headers,
        timeouts=timeouts,
        stream_usage=config.stream_usage,
        round_robin=(config.credential_strategy or rotation) is CredentialStrategy.ROUND_ROBIN,
        media_api=config.effective_media_api,
    )


def initial_table(
    config: RoutingConfig | None, environ: Mapping[str, str], *, timeouts: Timeouts, include_keyless: bool
) -> RoutingTable:
    """The table before any model list has been fetched: from the file, or from the catalog."""
    if config is not None:
        sources: Sequence[tuple[ProviderConfig, str]] = [(p, "config file") for p in config.providers]
        aliases: Mapping[str, str] = config.aliases
        fallbacks: Mapping[str, list[str]] = config.fallbacks
        policy = policy_of(config)
    else:
        sources, aliases = zero_config_providers(environ, include_keyless=include_keyless), {}
        fallbacks, policy = {}, DEFAULT_POLICY
    states = []
    for provider, source in sources:
        models = configured_models(provider)
        states.append(
            ProviderState(
                config=provider,
                target=make_target(provider, timeouts, rotation=policy.options.credential_strategy),
                source=source,
                models=models,
                status="configured" if models is not None else "pending",
            )
        )
    return RoutingTable(states, aliases, fallbacks, policy)


def policy_of(config: RoutingConfig) -> RoutingPolicy:
    """The routing file's combos and options, ready for the planner."""
    return RoutingPolicy(
        combos={name: Combo.from_config(name, combo) for name, combo in config.combos.items()},
        alias_options=dict(config.alias_options),
        options=config.routing,
    )


class ModelDiscovery:
    """Fetches model lists for providers that did not list theirs, and probes for a local Ollama."""

    def __init__(self, live: LiveRoutingTable, client: UpstreamClient, options: DiscoveryOptions) -> None:
        self._live = live
        self._client = client
        self._options = options
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Run one round, waiting at most ``startup_wait_s``; later rounds run in the background."""
        first = asyncio.create_task(self._safe_round())
        done, _ = await asyncio.wait({first}, timeout=self._options.startup_wait_s)
        if not done:
            logger.info("model lists still loading after %.1fs; serving meanwhile", self._options.startup_wait_s)
        self._tasks = [first, asyncio.create_task(self._loop(first))]

    async def aclose(self) -> None:
        """Stop background discovery, including a first round still under way."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _loop(self, first: asyncio.Task[None]) -> None:
        await asyncio.wait({first})
        while True:
            await asyncio.sleep(self._options.interval_s)
            if self._needs_round():
                await self._safe_round()

    async def _safe_round(self) -> None:
        try:
            await self._round()
        except Exception:  # a background task: log and keep serving
            logger.exception("model discovery round failed")

    def _needs_round(self) -> bool:
        table = self._live.current
        missing_ollama = self._options.ollama_url is not None and table.provider(OLLAMA_PROVIDER) is None
        return missing_ollama or any(p.status in ("pending", "unreachable") for p in table.providers)

    async def _round(self) -> None:
        table = self._live.current
        jobs = [self._refresh(p) for p in table.providers if p.status in ("pending", "unreachable")]
        if self._options.ollama_url is not None and table.provider(OLLAMA_PROVIDER) is None:
            jobs.append(self._probe_ollama(self._options.ollama_url))
        await asyncio.gather(*jobs)

    async def _refresh(self, state: ProviderState) -> None:
        try:
            ids = await self._client.list_models(state.target, timeout_s=self._options.list_timeout_s)
        except UpstreamError as exc:
            if state.status != "unreachable":
                logger.warning("provider %s: model list unavailable (%s); will retry", state.name, exc)
            self._swap(state.unreachable(str(exc)))
            return
        images = await self._image_models(state) if state.target.media_api is MediaApi.POLLINATIONS else []
        logger.info("provider %s: %d models", state.name, len(ids) + len(images))
        self._swap(state.with_models(ids, images=images))

    async def _image_models(self, state: ProviderState) -> list[str]:
        """Pollinations lists its image models apart (``<root>/image/models``); best effort."""
        root = state.target.base_url.removesuffix("/v1")
        try:
            reply = await self._client.request(state.target, "GET", URL(f"{root}/image/models"))
            listed = orjson.loads(reply.body)
        except (UpstreamError, orjson.JSONDecodeError) as exc:
            logger.info("provider %s: image model list unavailable (%s)", state.name, exc)
            return []
        names = (
            [item.get("name") if isinstance(item, dict) else item for item in listed or ()]
            if isinstance(listed, list)
            else []
        )
        return [name for name in names if isinstance(name, str) and name]

    async def _probe_ollama(self, url: str) -> None:
        config = ProviderConfig(name=OLLAMA_PROVIDER, format=WireFormat.OPENAI, base_url=f"{url.rstrip('/')}/v1")
        probe = UpstreamTarget(
            Endpoint(name=OLLAMA_PROVIDER, wire_format=WireFormat.OLLAMA, base_url=url),
            credentials=(),
            headers={},
            timeouts=self._options.timeouts,
        )
        try:
            ids = await self._client.list_models(probe, timeout_s=min(1.0, self._options.list_timeout_s))
        except UpstreamError:
            return
        state = ProviderState(
            config=config,
            target=make_target(config, self._options.timeouts),
            source=f"local Ollama server answered at {url}",
            models=None,
            status="pending",
        )
        logger.info("found a local Ollama at %s with %d models", url, len(ids))
        self._swap(state.with_models(ids))

    def _swap(self, state: ProviderState) -> None:
        self._live.current = self._live.current.replace_provider(state)
