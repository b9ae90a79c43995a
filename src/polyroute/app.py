"""The composition root: builds every object from settings and the routing file, and wires the routes.

Outermost is ``InferenceDispatcher``: the chat inference paths (``/v1/chat/completions``, ``/v1/messages``,
``/v1/responses``, ``/api/chat``) are served there directly
(request id, authentication and error rendering in one frame; see ``api/dispatch.py`` for the
measurement behind it). Every other request goes to Starlette, whose middleware order is,
outermost first (Starlette adds ServerErrorMiddleware outside and ExceptionMiddleware inside):
1. RequestIdMiddleware: every response, errors included, carries ``x-request-id``.
2. AuthenticationMiddleware: no key, no entry (except ``/health`` and ``/ready``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp

from polyroute import settings as settings_module
from polyroute.api.anthropic import CountTokensEndpoint, messages_endpoint
from polyroute.api.dispatch import InferenceDispatcher
from polyroute.api.gemini import GeminiModels, GenerateContentEndpoint
from polyroute.api.health import Readiness, health
from polyroute.api.models import ModelListing
from polyroute.api.ollama import GenerateEndpoint, OllamaModels, chat_endpoint
from polyroute.api.openai import ChatCompletionsEndpoint
from polyroute.api.openai_responses import ResponsesEndpoint, StoredResponses
from polyroute.api.pipeline import Pipeline
from polyroute.api.responses import gateway_error_handler, http_exception_handler, unexpected_error_handler
from polyroute.api.services import Services
from polyroute.errors import ConfigError, GatewayError
from polyroute.middleware.authentication import AuthenticationMiddleware, Authenticator, hash_key
from polyroute.middleware.request_id import RequestIdMiddleware, RequestIds
from polyroute.observability.logging import configure_logging
from polyroute.routing.catalog import zero_config_providers
from polyroute.routing.config import RoutingConfig, load_routing_config
from polyroute.routing.discovery import DiscoveryOptions, ModelDiscovery, initial_table
from polyroute.routing.table import LiveRoutingTable
from polyroute.settings import Settings
from polyroute.storage.batch import BatchingRequestLog
from polyroute.storage.migrate import upgrade
from polyroute.storage.responses import SqlResponseStore
from polyroute.storage.sql import SqlRequestLogSink, create_engine, ping
from polyroute.upstream.client import Timeouts, UpstreamClient
from polyroute.upstream.images import ImageFetcher

logger = logging.getLogger(__name__)

PUBLIC_PATHS = ("/health", "/ready")


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
    hot: Mapping[str, ASGIApp]
    """The inference endpoints by path, served by the dispatcher's fast path (Starlette routes the same
    instances, so other methods get a 405 and pinned variants share them)."""


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
    services = Services(
        routing=live,
        upstream=upstream,
        images=images,
        request_log=request_log,
        max_body_bytes=settings.max_body_bytes,
    )
    pipeline = Pipeline(services)
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
        hot=hot,
    )


def _lifespan(parts: _Components, *, run_migrations: bool) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if run_migrations:
            await upgrade(parts.settings.resolved_database_url)
        await parts.upstream.start()
        await parts.request_log.start()
        await parts.discovery.start()
        if parts.settings.admin_key is None:
            logger.warning(
                "POLYROUTE_ADMIN_KEY is not set: accepting unauthenticated requests, "
                "because the server listens on loopback (%s) only",
                parts.settings.host,
            )
        try:
            yield
        finally:
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
    gemini_generate = GenerateContentEndpoint(parts.pipeline)
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


def create_app(
    settings: Settings,
    routing: RoutingConfig | None,
    environ: Mapping[str, str],
    *,
    run_migrations: bool = True,
) -> ASGIApp:
    """Build the ASGI application.

    Raises:
        ConfigError: the settings are unsafe (no admin key on a non-loopback listener).
    """
    if settings.admin_key is None and not settings.is_loopback:
        raise ConfigError(
            [
                f"POLYROUTE_ADMIN_KEY is not set and the server would listen on {settings.host}: "
                "set a key, or listen on 127.0.0.1"
            ]
        )
    parts = _components(settings, routing, environ)
    ids = RequestIds()
    authenticator = Authenticator(
        key_hashes=[hash_key(settings.admin_key.get_secret_value())] if settings.admin_key else [],
        open_access=settings.admin_key is None,
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
