"""Fixtures: a FakeUpstream and a real gateway (uvicorn on 127.0.0.1) in background threads."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn

from polyroute.app import create_app
from polyroute.routing.config import parse_routing_config
from polyroute.settings import Settings
from tests.fakes import FakeUpstream

ADMIN_KEY = "pr-test-admin-key-0123456789abcdef"
UPSTREAM_KEY = "sk-fake-upstream-secret-key-42"


@dataclass
class RunningGateway:
    """A gateway serving on loopback."""

    url: str
    data_dir: Path
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def database(self) -> Path:
        return self.data_dir / "polyroute.db"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gateway(
    routing: Mapping[str, Any],
    data_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
    **settings: Any,
) -> RunningGateway:
    """Start a gateway for ``routing`` in a thread; returns once it answers /health."""
    port = free_port()
    options: dict[str, Any] = {"admin_key": ADMIN_KEY, "pollinations": False, "log_flush_interval_s": 0.2}
    options.update(settings)
    config = Settings(host="127.0.0.1", port=port, data_dir=data_dir, **options)
    app = create_app(config, parse_routing_config(dict(routing), environ or {}), environ or {})
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, http="httptools", lifespan="on", log_config=None, access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("gateway did not start")
        time.sleep(0.01)
    return RunningGateway(url=f"http://127.0.0.1:{port}", data_dir=data_dir, server=server, thread=thread)


def mock_routing(fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    """A routing document with one provider ``mock`` in front of ``fake``."""
    routing: dict[str, Any] = {
        "providers": [
            {
                "name": "mock",
                "format": "openai",
                "base_url": fake.base_url,
                "api_key": UPSTREAM_KEY,
                "models": ["gpt-4o", "gpt-4o-mini"],
            }
        ],
        "aliases": {"fast": "mock/gpt-4o-mini"},
    }
    routing.update(extra)
    return routing


@pytest.fixture(scope="session")
def fake_upstream_server() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_upstream(fake_upstream_server: FakeUpstream) -> FakeUpstream:
    fake_upstream_server.reset()
    return fake_upstream_server


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    """The official OpenAI SDK pointed at the shared gateway."""
    with openai.OpenAI(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=15) as sdk:
        yield sdk


@pytest.fixture
def raw(gateway: RunningGateway) -> Iterator[httpx.Client]:
    """A plain HTTP client for what the SDK cannot send, authenticated with the admin key."""
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=15) as http:
        yield http


@pytest.fixture(scope="session")
def gateway(fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(mock_routing(fake_upstream_server), tmp_path_factory.mktemp("gateway-data"))
    yield running
    running.stop()
