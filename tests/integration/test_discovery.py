"""Model discovery against real loopback servers: lists at start, a local Ollama, late-arriving upstreams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from polyroute.routing.config import parse_routing_config
from polyroute.routing.discovery import DiscoveryOptions, ModelDiscovery, initial_table
from polyroute.routing.table import LiveRoutingTable
from polyroute.upstream.client import Timeouts, UpstreamClient
from tests.gateway_fixtures import free_port

TIMEOUTS = Timeouts(connect_s=1, first_byte_s=2, stream_idle_s=2, total_s=5)

OLLAMA_TAGS = {
    "models": [
        {
            "name": "llama3.2:latest",
            "model": "llama3.2:latest",
            "modified_at": "2025-05-04T17:37:44.706015396-07:00",
            "size": 2019393189,
            "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B", "quantization_level": "Q4_K_M"},
        },
        {"name": "nomic-embed-text:latest", "model": "nomic-embed-text:latest", "size": 274302450},
    ]
}


async def _serve(app: web.Application, port: int = 0) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    upstream = UpstreamClient(connect_timeout_s=1)
    await upstream.start()
    yield upstream
    await upstream.aclose()


def _openai_models_app(models: list[str]) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 1, "owned_by": "x"} for m in models]
        return web.json_response({"object": "list", "data": data})

    app = web.Application()
    app.router.add_get("/v1/models", handler)
    return app


async def test_discovery_zero_config_finds_a_local_ollama(client):
    app = web.Application()

    async def tags(request: web.Request) -> web.Response:
        return web.json_response(OLLAMA_TAGS)

    app.router.add_get("/api/tags", tags)
    runner, port = await _serve(app)
    try:
        live = LiveRoutingTable(initial_table(None, {}, timeouts=TIMEOUTS, include_keyless=False))
        options = DiscoveryOptions(timeouts=TIMEOUTS, startup_wait_s=2, ollama_url=f"http://127.0.0.1:{port}")
        discovery = ModelDiscovery(live, client, options)
        await discovery.start()
        await discovery.aclose()
    finally:
        await runner.cleanup()
    state = live.current.provider("ollama")
    assert state is not None
    assert state.config.base_url == f"http://127.0.0.1:{port}/v1"
    assert "Ollama" in state.source
    assert [(m.id, m.type.value) for m in state.models or ()] == [
        ("llama3.2:latest", "text"),
        ("nomic-embed-text:latest", "embedding"),
    ]
    assert live.current.resolve("llama3.2:latest").label == "ollama/llama3.2:latest"


async def test_discovery_lists_models_for_providers_without_a_list(client):
    runner, port = await _serve(_openai_models_app(["m-1", "m-2"]))
    try:
        config = parse_routing_config(
            {"providers": [{"name": "up", "format": "openai", "base_url": f"http://127.0.0.1:{port}/v1"}]}, {}
        )
        live = LiveRoutingTable(initial_table(config, {}, timeouts=TIMEOUTS, include_keyless=False))
        assert live.current.provider("up").status == "pending"  # type: ignore[union-attr]
        discovery = ModelDiscovery(live, client, DiscoveryOptions(timeouts=TIMEOUTS, startup_wait_s=2))
        await discovery.start()
        await discovery.aclose()
    finally:
        await runner.cleanup()
    state = live.current.provider("up")
    assert state is not None and state.status == "ok"
    assert [m.id for m in state.models or ()] == ["m-1", "m-2"]


async def test_discovery_retries_an_unreachable_provider_in_the_background(client):
    port = free_port()
    config = parse_routing_config(
        {"providers": [{"name": "late", "format": "openai", "base_url": f"http://127.0.0.1:{port}/v1"}]}, {}
    )
    live = LiveRoutingTable(initial_table(config, {}, timeouts=TIMEOUTS, include_keyless=False))
    discovery = ModelDiscovery(live, client, DiscoveryOptions(timeouts=TIMEOUTS, startup_wait_s=2, interval_s=0.1))
    await discovery.start()
    try:
        state = live.current.provider("late")
        assert state is not None and state.status == "unreachable"
        assert "unreachable" in (state.detail or "")
        # A provider whose list is unknown still routes: the upstream decides.
        assert live.current.resolve("late/anything").model == "anything"
        runner, _ = await _serve(_openai_models_app(["arrived"]), port)
        try:
            for _ in range(100):
                if live.current.provider("late").status == "ok":  # type: ignore[union-attr]
                    break
                await asyncio.sleep(0.05)
        finally:
            await runner.cleanup()
    finally:
        await discovery.aclose()
    state = live.current.provider("late")
    assert state is not None and state.status == "ok"
    assert [m.id for m in state.models or ()] == ["arrived"]


async def test_discovery_start_returns_after_the_startup_wait_even_if_lists_hang(client):
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_get("/v1/models", slow)
    runner, port = await _serve(app)
    try:
        config = parse_routing_config(
            {"providers": [{"name": "slow", "format": "openai", "base_url": f"http://127.0.0.1:{port}/v1"}]}, {}
        )
        live = LiveRoutingTable(initial_table(config, {}, timeouts=TIMEOUTS, include_keyless=False))
        discovery = ModelDiscovery(live, client, DiscoveryOptions(timeouts=TIMEOUTS, startup_wait_s=0.2))
        loop = asyncio.get_running_loop()
        started = loop.time()
        await discovery.start()
        waited = loop.time() - started
        await discovery.aclose()
    finally:
        release.set()
        await runner.cleanup()
    assert waited < 2.0
    assert live.current.provider("slow").status == "pending"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("image_list", "expected_images"),
    [
        ([{"name": "flux", "description": "Flux"}, {"name": "turbo"}], ["flux", "turbo"]),
        (["kontext"], ["kontext"]),
        (None, []),  # no image list: the text models alone
    ],
)
async def test_pollinations_image_models_are_listed_apart_and_typed_image(client, image_list, expected_images):
    app = _openai_models_app(["openai", "mistral"])
    seen: list[str] = []

    async def image_models(request: web.Request) -> web.Response:
        seen.append(request.path)
        if image_list is None:
            return web.Response(status=404, text="not here")
        return web.json_response(image_list)

    app.router.add_get("/image/models", image_models)
    runner, port = await _serve(app)
    try:
        provider = {
            "name": "pollinations",
            "format": "openai",
            "base_url": f"http://127.0.0.1:{port}/v1",
            "media_api": "pollinations",
        }
        config = parse_routing_config({"providers": [provider]}, {})
        live = LiveRoutingTable(initial_table(config, {}, timeouts=TIMEOUTS, include_keyless=False))
        discovery = ModelDiscovery(live, client, DiscoveryOptions(timeouts=TIMEOUTS, startup_wait_s=2))
        await discovery.start()
        await discovery.aclose()
    finally:
        await runner.cleanup()
    state = live.current.provider("pollinations")
    assert state is not None and state.status == "ok"
    assert seen == ["/image/models"]
    typed = [(m.id, m.type.value) for m in state.models or ()]
    assert typed == [("openai", "text"), ("mistral", "text"), *((name, "image") for name in expected_images)]
