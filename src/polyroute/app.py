"""The composition root: builds every object from settings and the routing file, and wires the routes.

Outermost is ``InferenceDispatcher``: the chat inference paths (``/v1/chat/completions``, ``/v1/messages``,
``/v1/responses``, ``/api/chat``) are served there directly
(request id, authentication and error rendering in one frame; see ``api/dispatch.py`` for the
measurement behind it). Every other request goes to Starlette, whose middleware order is,
outermost first (Starlette adds ServerErrorMiddleware outside and ExceptionMiddleware inside):
1. RequestIdMiddleware: every response, errors included, carries ``x-request-id``.
2. AuthenticationMiddleware: the IP filter, then no key, no entry (a login session will do on management
   routes); ``/health`` and ``/ready`` skip both, login and logout skip the key check.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp

from polyroute import settings as settings_module
from polyroute.api.access import Gate, KeyRing
from polyroute.api.admin import KeysApi, MonitorApi
from polyroute.api.anthropic import CountTokensEndpoint, messages_endpoint
from polyroute.api.auth import OPEN_PATHS, LoginApi, LoginThrottle, Passwords
from polyroute.api.combos import ComboRegistry
from polyroute.api.dispatch import InferenceDispatcher
from polyroute.api.gemini import GeminiModels, GenerateContentEndpoint
from polyroute.api.health import Readiness, health
from polyroute.api.ip_filter import IpFilter, IpFilterApi
from polyroute.api.key_service import KeyService
from polyroute.api.media_routes import media_routes
from polyroute.api.models import ModelListing
from polyroute.api.ollama import GenerateEndpoint, OllamaModels, chat_endpoint
from polyroute.api.openai import ChatCompletionsEndpoint
from polyroute.api.openai_responses import ResponsesEndpoint, StoredResponses
from polyroute.api.pipeline import Pipeline
from polyroute.api.pricing import Prices, PricingApi
from polyroute.api.resilience import ResilienceApi, load_profile
from polyroute.api.responses import gateway_error_handler, http_exception_handler, unexpected_error_handler
from polyroute.api.services import Services
from polyroute.api.sessions import Sessions
from polyroute.api.telemetry import TelemetryApi
from polyroute.api.usage import Retention, UsageApi
from polyroute.core.passwords import password_problem
from polyroute.errors import ConfigError, GatewayError
from polyroute.health import Health, InProcessHealth
from polyroute.limits.base import Limiter
from polyroute.limits.memory import InProcessLimiter
from polyroute.middleware.authentication import AuthenticationMiddleware, Authenticator
from polyroute.middleware.request_id import RequestIdMiddleware, RequestIds
from polyroute.observability.logging import configure_logging
from polyroute.routing.catalog import zero_config_providers
from polyroute.routing.combos import ComboOrder
from polyroute.routing.config import RoutingConfig, load_routing_config
from polyroute.routing.credentials import CredentialRotation
from polyroute.routing.discovery import DiscoveryOptions, ModelDiscovery, initial_table
from polyroute.routing.planner import Planner
from polyroute.routing.pricing import PriceTable
from polyroute.routing.table import LiveRoutingTable
from polyroute.routing.telemetry import Telemetry
from polyroute.settings import Settings
from polyroute.storage.audit import SqlAuditLog
from polyroute.storage.batch import BatchingRequestLog
from polyroute.storage.keys import SqlKeyStore
from polyroute.storage.migrate import upgrade
from polyroute.storage.responses import SqlResponseStore
from polyroute.storage.settings_store import SqlSettingsStore
from polyroute.storage.sql import SqlRequestLogSink, create_engine, ping
from polyroute.storage.usage import SqlUsageQueries
from polyroute.upstream.client import Timeouts, UpstreamClient
from polyroute.upstream.images import ImageFetcher

logger = logging.getLogger(__name__)

PUBLIC_PATHS = ("/health", "/ready")


def check_settings(settings: Settings) -> None:
    """Refuse settings that would be unsafe or wrong.

    Raises:
        ConfigError: keys switched off on a non-loopback listener, or several workers with no shared
            limit state.
    """
    problems = []
    if not settings.require_api_key and not settings.is_loopback:
        problems.append(
            f"POLYROUTE_REQUIRE_API_KEY=false is allowed only on a loopback host, and the server would listen "
            f"on {settings.host}: require keys, or listen on 127.0.0.1"
        )
    if settings.workers > 1 and not settings.redis_url:
        problems.append(
            f"{settings.workers} workers need shared state for rate limits, concurrency and budgets: "
            "set POLYROUTE_REDIS_URL (e.g. redis://127.0.0.1:6379/0), or run one worker"
        )
    if settings.initial_password and (problem := password_problem(settings.initial_password.get_secret_value())):
        problems.append(f"POLYROUTE_INITIAL_PASSWORD {problem}")
    if problems:
        raise ConfigError(problems)


def make_health(settings: Settings) -> Health:
    """Deployment health shared through Redis when ``POLYROUTE_REDIS_URL`` is set, else in-process."""
    if settings.redis_url:
        from polyroute.health.redis import RedisHealth

        return RedisHealth(settings.redis_url)
    return InProcessHealth()


def make_limiter(settings: Settings) -> Limiter:
    """Redis-backed when ``POLYROUTE_REDIS_URL`` is set (any number of workers), else in-process."""
    if settings.redis_url:
        from polyroute.limits.redis import RedisLimiter

        return RedisLimiter(settings.redis_url)
    return InProcessLimiter()


async def bootstrap_admin_key(keys: KeyService, settings: Settings) -> None:
    """Store ``POLYROUTE_ADMIN_KEY`` as an admin key; with none and no key stored yet, make one and print it once.

    The generated secret goes to standard error directly, not through logging (whose handlers may
    ship records elsewhere): it is the only time it can be seen.
    """
    if not settings.require_api_key:
        return
    admin = settings.admin_key.get_secret_value() if settings.admin_key else None
    generated = await keys.ensure_bootstrap(admin, now=time.time())
    if generated is not None:
        sys.stderr.write(f"polyroute: generated the first admin key (shown only now, stored as a hash): {generated}\n")
        sys.stderr.flush()


def bootstrap_sync(settings: Settings) -> None:
    """``bootstrap_admin_key`` once, before worker processes start (the parent process calls it)."""

    async def run() -> None:
        engine = create_engine(settings.resolved_database_url)
        try:
            await bootstrap_admin_key(KeyService(SqlKeyStore(engine), SqlAuditLog(engine)), settings)
        finally:
            await engine.dispose()

    asyncio.run(run())


def load_routing(settings: Settings, environ: Mapping[str, str]) -> RoutingConfig | None:
    """The routing file named by settings, or None for zero-config mode.

    Raises:
        ConfigError: the file is missing or invalid.
    """
    path = settings.config_path
    if path is None:
        return None
    if not path.is_file():
        raise ConfigError([f"{path}: no such file"])
    return load_routing_config(path, environ)


def secrets_of(settings: Settings, routing: RoutingConfig | None, environ: Mapping[str, str]) -> list[str]:
    """Every secret the process knows (the admin key and every provider credential), for log redaction."""
    found = [settings.admin_key.get_secret_value()] if settings.admin_key else []
    if settings.initial_password:
        found.append(settings.initial_password.get_secret_value())
    if settings.redis_url and (password := urlsplit(settings.redis_url).password):
        found.append(password)
    if routing is not None:
        providers = routing.providers
    else:
        providers = [p for p, _ in zero_config_providers(environ, include_keyless=settings.pollinations)]
    for provider in providers:
        found.extend(provider.credentials)
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class _Components:
    """Everything one worker runs, built before the event loop starts and opened in the lifespan."""

    settings: Settings
    live: LiveRoutingTable
    upstream: UpstreamClient
    engine: AsyncEngine
    request_log: BatchingRequestLog
    discovery: ModelDiscovery
    pipeline: Pipeline
    responses: SqlResponseStore
    keys: KeyService
    ring: KeyRing | None
    """None when the gateway serves without keys (loopback only)."""
    limiter: Limiter
    usage: SqlUsageQueries
    settings_store: SqlSettingsStore
    passwords: Passwords
    sessions: Sessions
    ip_filter: IpFilter
    retention: Retention
    health: Health
    combos: ComboRegistry
    hot: Mapping[str, ASGIApp]
    """The inference endpoints by path, served by the dispatcher's fast path (Starlette routes the same
    instances, so other methods get a 405 and pinned variants share them)."""


def _services(  # noqa: PLR0913  (the composition root hands each collaborator over by name)
    settings: Settings,
    live: LiveRoutingTable,
    upstream: UpstreamClient,
    *,
    images: ImageFetcher,
    request_log: BatchingRequestLog,
    limiter: Limiter,
    prices: Prices,
    health: Health,
) -> Services:
    telemetry = Telemetry()
    return Services(
        routing=live,
        upstream=upstream,
        images=images,
        request_log=request_log,
        gate=Gate(limiter),
        prices=prices,
        planner=Planner(live, telemetry, lambda: prices.table, ComboOrder()),
        health=health,
        telemetry=telemetry,
        rotation=CredentialRotation(),
        max_body_bytes=settings.max_body_bytes,
    )


def _components(settings: Settings, routing: RoutingConfig | None, environ: Mapping[str, str]) -> _Components:
    timeouts = Timeouts(
        connect_s=settings.connect_timeout_s,
        first_byte_s=settings.first_byte_timeout_s,
        stream_idle_s=settings.stream_idle_timeout_s,
        total_s=settings.request_timeout_s,
    )
    live = LiveRoutingTable(initial_table(routing, environ, timeouts=timeouts, include_keyless=settings.pollinations))
    upstream = UpstreamClient(connect_timeout_s=settings.connect_timeout_s)
    engine = create_engine(settings.resolved_database_url)
    options = DiscoveryOptions(
        timeouts=timeouts,
        startup_wait_s=settings.discovery_timeout_s,
        interval_s=settings.rediscover_interval_s,
        ollama_url=settings.ollama_url if routing is None else None,
    )
    request_log = BatchingRequestLog(SqlRequestLogSink(engine), interval_s=settings.log_flush_interval_s)
    images = ImageFetcher(
        upstream,
        max_bytes=settings.image_fetch_max_bytes,
        timeout_s=settings.image_fetch_timeout_s,
        allow_private=settings.image_fetch_private,
    )
    limiter = make_limiter(settings)
    usage = SqlUsageQueries(engine)
    prices = Prices(
        PriceTable.load(
            overrides=routing.prices if routing is not None else None,
            provider_names=[p.name for p in live.current.providers],
        )
    )
    key_store = SqlKeyStore(engine)
    ring = KeyRing(key_store) if settings.require_api_key else None
    keys = KeyService(key_store, SqlAuditLog(engine), on_change=ring.forget_key if ring is not None else None)
    health = make_health(settings)
    settings_store = SqlSettingsStore(engine)
    pipeline = Pipeline(
        _services(
            settings,
            live,
            upstream,
            images=images,
            request_log=request_log,
            limiter=limiter,
            prices=prices,
            health=health,
        )
    )
    responses = SqlResponseStore(engine)
    ollama_chat = chat_endpoint(pipeline)
    hot: dict[str, ASGIApp] = {
        "/v1/chat/completions": ChatCompletionsEndpoint(pipeline),
        "/v1/messages": messages_endpoint(pipeline),
        "/v1/responses": ResponsesEndpoint(pipeline, responses),
        "/api/chat": ollama_chat,
        "/v1/api/chat": ollama_chat,
    }
    return _Components(
        settings=settings,
        live=live,
        upstream=upstream,
        engine=engine,
        request_log=request_log,
        discovery=ModelDiscovery(live, upstream, options),
        pipeline=pipeline,
        responses=responses,
        keys=keys,
        ring=ring,
        limiter=limiter,
        usage=usage,
        settings_store=settings_store,
        passwords=Passwords(settings_store),
        sessions=Sessions(settings_store),
        ip_filter=IpFilter(settings_store),
        retention=Retention(usage, days=settings.log_retention_days),
        health=health,
        combos=ComboRegistry(live, settings_store, health.bus, keys.audit),
        hot=hot,
    )


def _lifespan(parts: _Components, *, run_migrations: bool) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if run_migrations:
            await upgrade(parts.settings.resolved_database_url)
            await bootstrap_admin_key(parts.keys, parts.settings)
        await parts.pipeline.services.prices.load_overrides(parts.settings_store)
        await parts.health.start()
        await load_profile(parts.health, parts.settings_store)
        await parts.combos.load()
        initial = parts.settings.initial_password
        await parts.passwords.bootstrap(initial.get_secret_value() if initial else None)
        await parts.ip_filter.load()
        parts.ip_filter.start()
        await parts.upstream.start()
        await parts.request_log.start()
        await parts.discovery.start()
        parts.retention.start()
        # Start-up leaves ~130k long-lived objects (routing tables, translators, SQLAlchemy, pydantic) that
        # every full collection walked again: 66-68 ms pauses that were the gateway's p99 at load. Frozen,
        # they are never scanned; the benchmark's p99 at 16 connections went from ~70 ms to ~10 ms.
        gc.collect()
        gc.freeze()
        if parts.ring is None:
            logger.warning(
                "POLYROUTE_REQUIRE_API_KEY=false: accepting requests without a key, "
                "because the server listens on loopback (%s) only",
                parts.settings.host,
            )
        try:
            yield
        finally:
            gc.unfreeze()  # what start-up froze may be collected again once this app is gone
            await parts.ip_filter.aclose()
            await parts.retention.aclose()
            await parts.limiter.aclose()
            await parts.health.aclose()
            await parts.discovery.aclose()
            await parts.request_log.aclose()
            await parts.upstream.aclose()
            await parts.engine.dispose()

    return lifespan


def _routes(parts: _Components) -> list[Route]:
    started = int(time.time())
    listing = ModelListing(parts.live, created=started)
    engine = parts.engine

    async def storage_ok() -> bool:
        return await ping(engine)

    hot = parts.hot
    gemini_models = GeminiModels(listing)
    ollama_models = OllamaModels(listing, created=started)
    stored = StoredResponses(parts.responses)
    keys_api = KeysApi(parts.keys)
    monitor = MonitorApi(parts.keys, parts.limiter, parts.keys.audit)
    usage = UsageApi(parts.usage, parts.keys, parts.limiter)
    pricing = PricingApi(parts.pipeline.services.prices, parts.settings_store, parts.keys.audit)
    gemini_generate = GenerateContentEndpoint(parts.pipeline)
    login = LoginApi(
        parts.passwords, parts.sessions, store=parts.settings_store, audit=parts.keys.audit, throttle=LoginThrottle()
    )
    ip_filter = IpFilterApi(parts.ip_filter, parts.settings_store, parts.keys.audit)
    return [
        *(Route(path, endpoint, methods=["POST"]) for path, endpoint in hot.items()),
        Route("/v1/providers/{provider}/chat/completions", hot["/v1/chat/completions"], methods=["POST"]),
        Route("/v1/messages/count_tokens", CountTokensEndpoint(parts.pipeline), methods=["POST"]),
        Route("/v1/responses/{response_id}", stored.get, methods=["GET"]),
        Route("/v1/responses/{response_id}", stored.delete, methods=["DELETE"]),
        Route("/v1/responses/{response_id}/input_items", stored.input_items, methods=["GET"]),
        Route("/v1beta/models", gemini_models.list_models, methods=["GET"]),
        Route("/v1beta/models/{target:path}", gemini_generate, methods=["POST"]),
        Route("/v1/models/{target:path}", gemini_generate, methods=["POST"]),
        Route("/v1beta/models/{target:path}", gemini_models.get_model, methods=["GET"]),
        Route("/api/generate", GenerateEndpoint(parts.pipeline), methods=["POST"]),
        Route("/api/tags", ollama_models.tags, methods=["GET"]),
        Route("/api/show", ollama_models.show, methods=["POST"]),
        Route("/api/version", ollama_models.version, methods=["GET"]),
        Route("/api/keys", keys_api.create, methods=["POST"]),
        Route("/api/keys", keys_api.list, methods=["GET"]),
        Route("/api/keys/{key_id}", keys_api.show, methods=["GET"]),
        Route("/api/keys/{key_id}", keys_api.update, methods=["PATCH"]),
        Route("/api/keys/{key_id}", keys_api.revoke, methods=["DELETE"]),
        Route("/api/keys/{key_id}/rotate", keys_api.rotate, methods=["POST"]),
        Route("/api/rate-limits", monitor.rate_limits, methods=["GET"]),
        Route("/api/usage/history", usage.history, methods=["GET"]),
        Route("/api/usage/logs", usage.logs, methods=["GET"]),
        Route("/api/usage/request-logs", usage.logs, methods=["GET"]),
        Route("/api/usage/budget", usage.budget, methods=["GET"]),
        Route("/api/usage/budget", usage.set_budget, methods=["POST"]),
        Route("/api/pricing", pricing.show, methods=["GET"]),
        Route("/api/pricing", pricing.replace, methods=["PUT"]),
        Route("/api/compliance/audit-log", monitor.audit_log, methods=["GET"]),
        *_resilience_routes(parts),
        *media_routes(parts.pipeline.services, audio_max_bytes=parts.settings.audio_max_bytes),
        Route("/api/auth/login", login.login, methods=["POST"]),
        Route("/api/auth/logout", login.logout, methods=["POST"]),
        Route("/api/auth/password", login.change_password, methods=["PUT"]),
        Route("/api/settings/require-login", login.require_login, methods=["GET"]),
        Route("/api/settings/require-login", login.set_require_login, methods=["PUT"]),
        Route("/api/settings/ip-filter", ip_filter.show, methods=["GET"]),
        Route("/api/settings/ip-filter", ip_filter.replace, methods=["PUT"]),
        Route("/v1/models", gemini_models.or_openai(listing.list_models, gemini_models.list_models), methods=["GET"]),
        Route("/v1/models/list", listing.list_models_by_type, methods=["GET"]),
        Route(
            "/v1/models/{target:path}",
            gemini_models.or_openai(listing.get_model, gemini_models.get_model),
            methods=["GET"],
        ),
        Route("/v1/providers", listing.list_providers, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", Readiness(parts.live, storage_ok).check, methods=["GET"]),
    ]


def _resilience_routes(parts: _Components) -> list[Route]:
    resilience = ResilienceApi(
        parts.health,
        parts.live,
        parts.pipeline.services.telemetry,
        parts.settings_store,
        parts.keys.audit,
        shared=bool(parts.settings.redis_url),
    )
    telemetry = TelemetryApi(parts.usage)
    combos = parts.combos
    return [
        Route("/api/resilience", resilience.show, methods=["GET"]),
        Route("/api/resilience", resilience.replace, methods=["PUT"]),
        Route("/api/resilience/reset", resilience.reset, methods=["POST"]),
        Route("/api/models/availability", resilience.availability, methods=["GET"]),
        Route("/api/models/availability", resilience.clear, methods=["POST"]),
        Route("/api/monitoring/health", resilience.overview, methods=["GET"]),
        Route("/api/telemetry/summary", telemetry.summary, methods=["GET"]),
        Route("/api/combos", combos.list, methods=["GET"]),
        Route("/api/combos/{name:path}", combos.put, methods=["PUT"]),
        Route("/api/combos/{name:path}", combos.delete, methods=["DELETE"]),
    ]


def create_app(
    settings: Settings,
    routing: RoutingConfig | None,
    environ: Mapping[str, str],
    *,
    run_migrations: bool = True,
) -> ASGIApp:
    """Build the ASGI application.

    Raises:
        ConfigError: the settings are unsafe or inconsistent (see ``check_settings``).
    """
    check_settings(settings)
    parts = _components(settings, routing, environ)
    ids = RequestIds()
    authenticator = Authenticator(
        keys=parts.ring, sessions=parts.sessions, ip_filter=parts.ip_filter, open_paths=OPEN_PATHS
    )
    middleware = [
        Middleware(RequestIdMiddleware, ids=ids),
        Middleware(AuthenticationMiddleware, authenticator=authenticator, public_paths=PUBLIC_PATHS),
    ]
    starlette = Starlette(
        routes=_routes(parts),
        middleware=middleware,
        lifespan=_lifespan(parts, run_migrations=run_migrations),
        exception_handlers={
            GatewayError: gateway_error_handler,
            HTTPException: http_exception_handler,
            Exception: unexpected_error_handler,
        },
    )
    hot_paths = {("POST", path): endpoint for path, endpoint in parts.hot.items()}
    return InferenceDispatcher(starlette, hot_paths, ids=ids, authenticator=authenticator)


def app_from_environment() -> ASGIApp:
    """Factory for worker processes: everything from ``POLYROUTE_*``; migrations already ran in the parent."""
    settings = Settings()
    environ = settings_module.environment()
    routing = load_routing(settings, environ)
    configure_logging(settings.log_level, secrets_of(settings, routing, environ))
    return create_app(settings, routing, environ, run_migrations=False)
