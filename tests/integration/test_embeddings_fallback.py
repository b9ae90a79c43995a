"""Embeddings fall back as chat does, and the pinned-provider route never does.

``primary`` and ``backup`` serve the same OpenAI embedding model (the same-model fallback); ``solo`` is an
Ollama server whose configured fallback is a Gemini model (a fallback across embedding APIs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.embedding_fakes import EMBEDDER_KEY, FakeEmbedder, tokens_of, vector_for
from tests.fakes import Reply, error_body, wait_for_log_row
from tests.gateway_fixtures import ADMIN_KEY, RunningGateway, start_gateway

MODEL = "text-embedding-3-small"


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeEmbedder]]:
    started = {
        "primary": FakeEmbedder("openai").start(),
        "backup": FakeEmbedder("openai").start(),
        "solo": FakeEmbedder("ollama", api_key=None).start(),
        "gem": FakeEmbedder("gemini").start(),
    }
    yield started
    for fake in started.values():
        fake.stop()


@pytest.fixture
def upstreams(fakes: dict[str, FakeEmbedder]) -> dict[str, FakeEmbedder]:
    for fake in fakes.values():
        fake.reset()
    return fakes


@pytest.fixture
def gateway(fakes: dict[str, FakeEmbedder], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    def provider(name: str, fmt: str, model: str) -> dict[str, Any]:
        fake = fakes[name]
        key = {"api_key": EMBEDDER_KEY} if fake.api_key else {}
        return {"name": name, "format": fmt, "base_url": fake.base_url, "models": [model], **key}

    routing = {
        "providers": [
            provider("primary", "openai", MODEL),
            provider("backup", "openai", MODEL),
            provider("solo", "ollama", "nomic-embed-text"),
            provider("gem", "gemini", "gemini-embedding-001"),
        ],
        "fallbacks": {"solo/nomic-embed-text": ["gem/gemini-embedding-001"]},
    }
    running = start_gateway(routing, tmp_path_factory.mktemp("embedding-fallback"))
    yield running
    running.stop()


@pytest.fixture
def sdk(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=15) as client:
        yield client


def post(gateway: RunningGateway, path: str, body: dict[str, Any]) -> httpx.Response:
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        return http.post(path, json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"})


@pytest.mark.parametrize(
    "failure",
    [
        Reply(status=500, json_body=error_body("boom", type_="server_error")),
        Reply(status=429, json_body=error_body("slow down", type_="rate_limit_error"), headers={"Retry-After": "30"}),
        Reply(status=401, json_body=error_body("bad key", type_="authentication_error")),
        Reply(status=200, raw_body=b"not json"),
        Reply(status=200, json_body={"object": "list", "data": [], "model": MODEL}),
    ],
    ids=["500", "429", "401", "garbage", "no-embeddings"],
)
def test_a_failing_upstream_falls_back_to_the_same_model_elsewhere(
    gateway: RunningGateway, sdk: openai.OpenAI, upstreams: dict[str, FakeEmbedder], failure: Reply
) -> None:
    upstreams["primary"].push(failure)
    raw = sdk.embeddings.with_raw_response.create(model=f"primary/{MODEL}", input=["a b", "c"])
    answer = raw.parse()
    assert [d.embedding for d in answer.data] == [vector_for("a b"), vector_for("c")]
    assert raw.headers["x-polyroute-provider"] == "backup"
    assert raw.headers["x-polyroute-model"] == MODEL
    assert (raw.headers["x-polyroute-attempts"], raw.headers["x-polyroute-fallback"]) == ("2", "true")
    assert (len(upstreams["primary"].received), len(upstreams["backup"].received)) == (1, 1)
    row = wait_for_log_row(gateway.database, raw.headers["x-request-id"])
    assert (row["provider"], row["attempts"], row["fallback"], row["status"]) == ("backup", 2, 1, 200)
    assert row["prompt_tokens"] == tokens_of("a b") + tokens_of("c")


def test_a_configured_fallback_crosses_embedding_apis(
    gateway: RunningGateway, upstreams: dict[str, FakeEmbedder]
) -> None:
    upstreams["solo"].push(Reply(status=503, json_body={"error": "server busy, please try again"}))
    answer = post(gateway, "/v1/embeddings", {"model": "solo/nomic-embed-text", "input": "hello", "dimensions": 3})
    assert answer.status_code == 200
    assert answer.json()["data"][0]["embedding"] == vector_for("hello", 3)
    assert answer.json()["model"] == "gemini-embedding-001"
    assert answer.headers["x-polyroute-provider"] == "gem"
    assert answer.headers["x-polyroute-model"] == "gemini-embedding-001"
    assert upstreams["gem"].bodies()[0]["requests"][0]["outputDimensionality"] == 3
    row = wait_for_log_row(gateway.database, answer.headers["x-request-id"])
    assert (row["requested_model"], row["provider"], row["fallback"], row["estimated"]) == (
        "solo/nomic-embed-text",
        "gem",
        1,
        1,
    )


def test_when_every_candidate_fails_the_answer_is_503_with_the_history(
    gateway: RunningGateway, upstreams: dict[str, FakeEmbedder]
) -> None:
    upstreams["primary"].push(Reply(status=500, json_body=error_body("primary down", type_="server_error")))
    upstreams["backup"].push(Reply(status=502, json_body=error_body("backup down", type_="server_error")))
    answer = post(gateway, "/v1/embeddings", {"model": MODEL, "input": "x"})
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "all_models_failed"
    assert [(h["model"], h["status"]) for h in error["details"]["error_history"]] == [
        (f"primary/{MODEL}", 500),
        (f"backup/{MODEL}", 502),
    ]


def test_the_pinned_route_answers_from_that_provider_only(
    gateway: RunningGateway, upstreams: dict[str, FakeEmbedder]
) -> None:
    answer = post(gateway, "/v1/providers/backup/embeddings", {"model": MODEL, "input": "pinned"})
    assert answer.status_code == 200
    assert answer.json()["data"][0]["embedding"] == vector_for("pinned")
    assert answer.headers["x-polyroute-provider"] == "backup"
    assert (len(upstreams["primary"].received), len(upstreams["backup"].received)) == (0, 1)
    row = wait_for_log_row(gateway.database, answer.headers["x-request-id"])
    assert (row["endpoint"], row["provider"]) == ("/v1/providers/backup/embeddings", "backup")


def test_the_pinned_route_never_falls_back(gateway: RunningGateway, upstreams: dict[str, FakeEmbedder]) -> None:
    upstreams["primary"].push(Reply(status=500, json_body=error_body("down", type_="server_error")))
    answer = post(gateway, "/v1/providers/primary/embeddings", {"model": MODEL, "input": "x"})
    assert answer.status_code == 502
    assert upstreams["backup"].received == []


def test_the_pinned_route_refuses_a_model_of_another_provider(
    gateway: RunningGateway, upstreams: dict[str, FakeEmbedder]
) -> None:
    answer = post(gateway, "/v1/providers/primary/embeddings", {"model": "gem/gemini-embedding-001", "input": "x"})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "model"
    assert all(fake.received == [] for fake in upstreams.values())
