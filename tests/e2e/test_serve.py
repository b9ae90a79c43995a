"""The real ``polyroute serve`` process: start-up, shutdown, the request log's durability, workers."""

from __future__ import annotations

import re
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.e2e.process import ServerProcess
from tests.fakes import FakeUpstream, Reply, text_stream
from tests.gateway_fixtures import ADMIN_KEY, UPSTREAM_KEY, mock_routing

pytestmark = pytest.mark.e2e

# uvicorn finishes its graceful shutdown, then re-raises the signal it caught (exit by SIGTERM).
STOPPED_BY_SIGTERM = (0, -signal.SIGTERM)


def _config(tmp_path: Path, fake: FakeUpstream) -> Path:
    path = tmp_path / "polyroute.yaml"
    routing = mock_routing(fake)
    routing["providers"][0]["api_key"] = "${MOCK_KEY}"
    path.write_text(yaml.safe_dump(routing))
    return path


def _env(**extra: str) -> dict[str, str]:
    return {"POLYROUTE_ADMIN_KEY": ADMIN_KEY, "MOCK_KEY": UPSTREAM_KEY, "POLYROUTE_LOG_LEVEL": "debug", **extra}


def _rows(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        return int(conn.execute("select count(*) from request_log").fetchone()[0])


def _chat(client: openai.OpenAI, n: int) -> None:
    for _ in range(n):
        client.chat.completions.create(model="mock/gpt-4o", messages=[{"role": "user", "content": "hi"}])


@pytest.fixture
def server_factory(tmp_path: Path):
    started: list[ServerProcess] = []

    def start(args: list[str], env: dict[str, str], name: str = "data") -> ServerProcess:
        server = ServerProcess(args, env, tmp_path / name)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def test_serve_sigterm_flushes_every_request_log_row(tmp_path, fake_upstream, server_factory):
    # A flush interval far beyond the test's length: only the shutdown flush can write the rows.
    server = server_factory(
        ["--config", str(_config(tmp_path, fake_upstream))], _env(POLYROUTE_LOG_FLUSH_INTERVAL_S="300")
    )
    server.wait_ready()
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=ADMIN_KEY, max_retries=0) as client:
        _chat(client, 7)
    server.signal(signal.SIGTERM)
    assert server.wait() in STOPPED_BY_SIGTERM
    assert _rows(server.data_dir / "polyroute.db") == 7


def test_serve_crash_loses_at_most_the_last_second(tmp_path, fake_upstream, server_factory):
    server = server_factory(
        ["--config", str(_config(tmp_path, fake_upstream))], _env(POLYROUTE_LOG_FLUSH_INTERVAL_S="1")
    )
    server.wait_ready()
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=ADMIN_KEY, max_retries=0) as client:
        _chat(client, 5)
        time.sleep(2.5)  # more than one flush interval has passed since these requests
        _chat(client, 3)
    server.signal(signal.SIGKILL)
    server.wait()
    assert 5 <= _rows(server.data_dir / "polyroute.db") <= 8


def test_serve_sigterm_lets_a_running_stream_finish(tmp_path, fake_upstream, server_factory):
    server = server_factory(["--config", str(_config(tmp_path, fake_upstream))], _env())
    server.wait_ready()
    fake_upstream.push(Reply(events=text_stream(pieces=[f"p{i} " for i in range(8)]), event_delay_s=0.25))
    received: list[str] = []
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=ADMIN_KEY, max_retries=0) as client:
        stream = client.chat.completions.create(
            model="mock/gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        first = next(iter(stream))
        threading.Timer(0.1, server.signal, args=(signal.SIGTERM,)).start()
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert first.choices[0].delta.role == "assistant"
    assert "".join(received) == "".join(f"p{i} " for i in range(8))
    assert server.wait() in STOPPED_BY_SIGTERM
    assert not fake_upstream.stream_aborted.is_set(), "aborted"
    assert fake_upstream.stream_completed.wait(5)


def test_serve_two_workers_need_redis(tmp_path, fake_upstream, server_factory):
    server = server_factory(["--config", str(_config(tmp_path, fake_upstream)), "--workers", "2"], _env())
    assert server.wait(30) == 1
    assert "set POLYROUTE_REDIS_URL" in server.output()


def test_serve_two_workers_answer_and_stop(tmp_path, fake_upstream, server_factory, redis_url):
    env = _env(POLYROUTE_REDIS_URL=redis_url)
    server = server_factory(["--config", str(_config(tmp_path, fake_upstream)), "--workers", "2"], env)
    server.wait_ready(30)
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=ADMIN_KEY, max_retries=0) as client:
        _chat(client, 6)
    server.signal(signal.SIGTERM)
    assert server.wait() in STOPPED_BY_SIGTERM
    assert _rows(server.data_dir / "polyroute.db") == 6


def test_serve_logs_no_secret_even_at_debug(tmp_path, fake_upstream, server_factory):
    fake_upstream.push(Reply(status=401, json_body={"error": {"message": f"bad key {UPSTREAM_KEY}", "type": "x"}}))
    server = server_factory(["--config", str(_config(tmp_path, fake_upstream))], _env())
    server.wait_ready()
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=ADMIN_KEY, max_retries=0) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            _chat(client, 1)
        httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer wrong-key"})
    assert UPSTREAM_KEY not in caught.value.response.text
    server.signal(signal.SIGTERM)
    server.wait()
    output = server.output()
    assert "Uvicorn running" in output or "Application startup complete" in output
    assert UPSTREAM_KEY not in output
    assert ADMIN_KEY not in output


def test_serve_without_admin_key_generates_one_and_prints_it_once(tmp_path, fake_upstream, server_factory):
    server = server_factory(["--config", str(_config(tmp_path, fake_upstream))], {"MOCK_KEY": UPSTREAM_KEY})
    server.wait_ready()
    assert httpx.get(f"{server.url}/v1/models").status_code == 401
    printed = re.search(r"generated the first admin key .*: (pr_admin_\S+)", server.output())
    assert printed is not None
    secret = printed.group(1)
    keys = httpx.get(f"{server.url}/api/keys", headers={"Authorization": f"Bearer {secret}"})
    assert keys.status_code == 200
    assert keys.json()["data"][0]["type"] == "admin"
    server.signal(signal.SIGTERM)
    server.wait()
    assert secret not in (server.data_dir / "polyroute.db").read_bytes().decode("latin-1")


def test_serve_without_keys_only_on_loopback(tmp_path, fake_upstream, server_factory):
    open_env = {"MOCK_KEY": UPSTREAM_KEY, "POLYROUTE_REQUIRE_API_KEY": "false"}
    server = server_factory(["--config", str(_config(tmp_path, fake_upstream))], open_env)
    server.wait_ready()
    assert httpx.get(f"{server.url}/v1/models").status_code == 200
    server.signal(signal.SIGTERM)
    server.wait()
    assert "POLYROUTE_REQUIRE_API_KEY=false" in server.output()
    refused = server_factory(
        ["--config", str(_config(tmp_path, fake_upstream)), "--host", "0.0.0.0"], open_env, name="exposed"
    )
    assert refused.wait(30) == 1
    assert "allowed only on a loopback host" in refused.output()


def test_serve_zero_config_registers_catalog_services_and_starts_fast(tmp_path, server_factory):
    server = server_factory(
        [],
        _env(
            GROQ_API_KEY="gsk-test-not-real",
            POLYROUTE_POLLINATIONS="false",
            POLYROUTE_OLLAMA_URL="http://127.0.0.1:9",
            POLYROUTE_DISCOVERY_TIMEOUT_S="0.5",
        ),
    )
    seconds = server.wait_ready()
    assert seconds < 15  # start-up does not wait on unreachable upstreams
    providers = httpx.get(f"{server.url}/v1/providers", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    names = {p["name"]: p for p in providers["data"]}
    assert set(names) == {"groq"}
    assert "GROQ_API_KEY" in names["groq"]["registered_because"]
    assert names["groq"]["status"] in ("pending", "unreachable")
    assert "gsk-test-not-real" not in str(providers)


def test_serve_with_invalid_config_exits_with_paths(tmp_path, server_factory):
    path = tmp_path / "bad.yaml"
    path.write_text("providers:\n  - name: x\n    format: openai\n    base_url: nope\n")
    server = server_factory(["--config", str(path)], _env())
    assert server.wait(30) == 1
    assert "providers[0].base_url: not a URL" in server.output()


@pytest.mark.postgres
def test_serve_on_postgres_records_requests(tmp_path, fake_upstream, server_factory, postgres_url):
    import asyncio

    import asyncpg

    dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    server = server_factory(
        ["--config", str(_config(tmp_path, fake_upstream))],
        _env(POLYROUTE_DATABASE_URL=dsn, POLYROUTE_LOG_FLUSH_INTERVAL_S="300"),
    )
    server.wait_ready()
    assert httpx.get(f"{server.url}/ready").json()["storage"] == "ok"
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=ADMIN_KEY, max_retries=0) as client:
        _chat(client, 4)
    server.signal(signal.SIGTERM)
    assert server.wait() in STOPPED_BY_SIGTERM

    async def count() -> list[tuple[str, int, int]]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("select provider, prompt_tokens, completion_tokens from request_log")
        finally:
            await conn.close()
        return [tuple(r) for r in rows]

    rows = asyncio.run(count())
    assert rows == [("mock", 19, 9)] * 4
