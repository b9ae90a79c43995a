"""``/v1/models``, ``/v1/models/{id}``, ``/v1/models/list`` and ``/v1/providers``, and model discovery at start."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes import FakeUpstream
from tests.gateway_fixtures import (
    ADMIN_KEY,
    UPSTREAM_KEY,
    free_port,
    mock_routing,
    start_gateway,
)

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
PROVIDER_FIELDS = {"name", "format", "models", "model_count", "model_counts", "registered_because", "status"}


def get_json(http: httpx.Client, path: str, status: int = 200) -> Any:
    response = http.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def ids(listing: dict[str, Any]) -> list[str]:
    return [entry["id"] for entry in listing["data"]]


# --- /v1/models -----------------------------------------------------------------------------------


def test_models_list_has_qualified_models_and_aliases(client: openai.OpenAI) -> None:
    models = {m.id: m.model_dump() for m in client.models.list()}

    assert set(models) == {"mock/gpt-4o", "mock/gpt-4o-mini", "fast"}
    for entry in models.values():
        assert entry["object"] == "model"
        assert entry["provider"] == "mock"
        assert entry["type"] == "text"
        assert isinstance(entry["created"], int)
    assert models["mock/gpt-4o"]["owned_by"] == "mock"
    assert models["fast"]["alias_for"] == "mock/gpt-4o-mini"
    assert models["fast"]["owned_by"] == "polyroute"
    assert "alias_for" not in models["mock/gpt-4o"]


def test_models_list_filters_by_provider(raw: httpx.Client) -> None:
    assert ids(get_json(raw, "/v1/models?provider=mock")) == ["mock/gpt-4o", "mock/gpt-4o-mini", "fast"]
    assert get_json(raw, "/v1/models?provider=nobody") == {"object": "list", "data": []}


@pytest.mark.parametrize(
    ("requested", "expected"),
    [("mock/gpt-4o", "mock/gpt-4o"), ("fast", "fast"), ("gpt-4o-mini", "mock/gpt-4o-mini")],
    ids=["qualified", "alias", "bare"],
)
def test_models_retrieve_finds_model(client: openai.OpenAI, requested: str, expected: str) -> None:
    model = client.models.retrieve(requested)

    assert model.id == expected
    assert model.model_dump()["provider"] == "mock"


@pytest.mark.parametrize("requested", ["nope", "mock/gpt-9", "other/gpt-4o"])
def test_models_retrieve_unknown_model_is_not_found(client: openai.OpenAI, requested: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve(requested)

    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"


def test_models_by_type_lists_text_models_with_total(raw: httpx.Client) -> None:
    listing = get_json(raw, "/v1/models/list?type=text")

    assert ids(listing) == ["mock/gpt-4o", "mock/gpt-4o-mini", "fast"]
    assert listing["total"] == 3
    assert get_json(raw, "/v1/models/list?type=image") == {"object": "list", "data": [], "total": 0}
    assert get_json(raw, "/v1/models/list?type=text&provider=nobody")["total"] == 0


@pytest.mark.parametrize("path", ["/v1/models/list?type=bogus", "/v1/models?type=TEXT"])
def test_models_by_unknown_type_is_rejected(raw: httpx.Client, path: str) -> None:
    error = get_json(raw, path, 400)["error"]

    assert error["param"] == "type"
    assert "text" in error["message"] and "embedding" in error["message"]


# --- /v1/providers --------------------------------------------------------------------------------


def test_providers_describe_each_provider_without_secrets(raw: httpx.Client, fake_upstream: FakeUpstream) -> None:
    response = raw.get("/v1/providers")
    listing = response.json()

    assert response.status_code == 200
    assert listing["object"] == "list"
    (mock,) = listing["data"]
    assert set(mock) >= PROVIDER_FIELDS
    assert mock["name"] == "mock"
    assert mock["format"] == "openai"
    assert mock["models"] == ["gpt-4o", "gpt-4o-mini"]
    assert (mock["model_count"], mock["model_counts"]) == (2, {"text": 2})
    assert mock["registered_because"] == "config file"
    assert mock["status"] == "configured"
    assert mock["base_url"] == fake_upstream.base_url
    assert UPSTREAM_KEY not in response.text
    assert ADMIN_KEY not in response.text


def test_providers_filter_by_name(raw: httpx.Client) -> None:
    assert [p["name"] for p in get_json(raw, "/v1/providers?name=mock")["data"]] == ["mock"]
    assert get_json(raw, "/v1/providers?name=nobody") == {"object": "list", "data": []}


# --- discovery at start ---------------------------------------------------------------------------


def test_provider_without_model_list_gets_it_from_upstream_at_start(
    fake_upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake_upstream, "models", ["o3-mini", "text-embedding-3-small", "dall-e-3"])
    provider = {"name": "found", "format": "openai", "base_url": fake_upstream.base_url, "api_key": UPSTREAM_KEY}
    running = start_gateway({"providers": [provider]}, tmp_path)
    try:
        with httpx.Client(base_url=running.url, headers=AUTH, timeout=15) as http:
            (found,) = get_json(http, "/v1/providers?name=found")["data"]
            listing = get_json(http, "/v1/models")
            embeddings = get_json(http, "/v1/models/list?type=embedding")
        with openai.OpenAI(base_url=running.base_url, api_key=ADMIN_KEY, max_retries=0) as sdk:
            answer = sdk.chat.completions.create(model="found/o3-mini", messages=HELLO)
            with pytest.raises(openai.NotFoundError):
                sdk.chat.completions.create(model="found/gpt-4o", messages=HELLO)
    finally:
        running.stop()

    lists = [r for r in fake_upstream.received if r.path == "/v1/models"]
    assert lists and lists[0].method == "GET"
    assert {k.lower(): v for k, v in lists[0].headers.items()}["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert found["status"] == "ok"
    assert found["models"] == ["o3-mini", "text-embedding-3-small", "dall-e-3"]
    assert found["model_counts"] == {"text": 1, "embedding": 1, "image": 1}
    assert ids(listing) == ["found/o3-mini", "found/text-embedding-3-small", "found/dall-e-3"]
    assert ids(embeddings) == ["found/text-embedding-3-small"]
    assert answer.choices[0].message.content
    assert fake_upstream.received[-1].json()["model"] == "o3-mini"


def test_provider_on_dead_port_is_unreachable_and_gateway_still_serves(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    routing = mock_routing(fake_upstream)
    dead = {"name": "dead", "format": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "api_key": "sk-x"}
    routing["providers"].append(dead)

    started = time.monotonic()
    running = start_gateway(routing, tmp_path)
    startup_s = time.monotonic() - started
    try:
        with httpx.Client(base_url=running.url, headers=AUTH, timeout=15) as http:
            (state,) = get_json(http, "/v1/providers?name=dead")["data"]
            listing = get_json(http, "/v1/models")
            ready = http.get("/ready")
        with openai.OpenAI(base_url=running.base_url, api_key=ADMIN_KEY, max_retries=0) as sdk:
            answer = sdk.chat.completions.create(model="mock/gpt-4o", messages=HELLO)
    finally:
        running.stop()

    assert startup_s < 3
    assert state["status"] == "unreachable"
    assert state["models"] is None
    assert state["model_count"] == 0
    assert "sk-x" not in str(state)
    assert ids(listing) == ["mock/gpt-4o", "mock/gpt-4o-mini", "fast"]
    assert ready.status_code == 200
    assert answer.choices[0].message.content
