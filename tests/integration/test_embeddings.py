"""``/v1/embeddings`` end to end: the official SDK against fake OpenAI, Gemini, Ollama and Cohere upstreams.

One gateway for the module, in front of one fake per embedding API (and a second OpenAI-compatible one,
``compat``, that answers floats even when asked for base64). Every expected vector is worked out here
from ``vector_for``; every expected cost from the price in the routing document below.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from polyroute.core.estimate import default_counter
from tests.embedding_fakes import EMBEDDER_KEY, FakeEmbedder, as_base64, tokens_of, vector_for
from tests.fakes import FakeUpstream, Reply, error_body, wait_for_log_row
from tests.gateway_fixtures import ADMIN_KEY, UPSTREAM_KEY, RunningGateway, start_gateway

SMALL = "oai/text-embedding-3-small"
PRICE_PER_MILLION = Decimal("20")
"""The routing document's input price of text-embedding-3-small (no output price: embeddings have none)."""


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeEmbedder]]:
    started = {
        "oai": FakeEmbedder("openai").start(),
        "compat": FakeEmbedder("openai", honours_base64=False).start(),
        "gem": FakeEmbedder("gemini").start(),
        "oll": FakeEmbedder("ollama", api_key=None).start(),
        "co": FakeEmbedder("cohere").start(),
    }
    yield started
    for fake in started.values():
        fake.stop()


@pytest.fixture(scope="module")
def chat_upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream(models=("gpt-4o-mini",)).start()
    yield fake
    fake.stop()


def routing(fakes: dict[str, FakeEmbedder], chat_upstream: FakeUpstream) -> dict[str, Any]:
    def provider(name: str, fmt: str, models: list[Any], **extra: Any) -> dict[str, Any]:
        fake = fakes[name]
        key = {"api_key": EMBEDDER_KEY} if fake.api_key else {}
        return {"name": name, "format": fmt, "base_url": fake.base_url, "models": models, **key, **extra}

    return {
        "providers": [
            provider("oai", "openai", ["text-embedding-3-small", "text-embedding-3-large"]),
            provider("compat", "openai", ["bge-m3"]),
            provider("gem", "gemini", ["gemini-embedding-001"]),
            provider("oll", "ollama", ["nomic-embed-text"]),
            provider("co", "openai", ["embed-english-v3.0"], media_api="cohere"),
            {
                "name": "chat",
                "format": "openai",
                "base_url": chat_upstream.base_url,
                "api_key": UPSTREAM_KEY,
                "models": ["gpt-4o-mini"],
            },
        ],
        "aliases": {"docs-embedder": "gem/gemini-embedding-001"},
        "prices": {"text-embedding-3-small": {"input": str(PRICE_PER_MILLION)}},
    }


@pytest.fixture(scope="module")
def gateway(
    fakes: dict[str, FakeEmbedder], chat_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    running = start_gateway(routing(fakes, chat_upstream), tmp_path_factory.mktemp("embeddings"))
    yield running
    running.stop()


@pytest.fixture
def upstreams(fakes: dict[str, FakeEmbedder]) -> dict[str, FakeEmbedder]:
    for fake in fakes.values():
        fake.reset()
    return fakes


@pytest.fixture
def sdk(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=15) as client:
        yield client


@pytest.fixture
def http(gateway: RunningGateway) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=15) as client:
        yield client


def embed(http: httpx.Client, body: dict[str, Any], path: str = "/v1/embeddings") -> httpx.Response:
    return http.post(path, json=body)


def error_of(answer: httpx.Response) -> tuple[int, str | None, str | None]:
    error = answer.json()["error"]
    return answer.status_code, error.get("code"), error.get("param")


def usage_of(tokens: int) -> dict[str, int]:
    return {"prompt_tokens": tokens, "total_tokens": tokens}


# The OpenAI-compatible upstream, through the official SDK


def test_sdk_float_string_input_relays_the_vector_usage_and_names_what_answered(
    gateway: RunningGateway, sdk: openai.OpenAI, upstreams: dict[str, FakeEmbedder]
) -> None:
    raw = sdk.embeddings.with_raw_response.create(model=SMALL, input="hello world", encoding_format="float")
    answer = raw.parse()
    assert answer.object == "list"
    assert answer.model == "text-embedding-3-small"
    assert [(d.object, d.index, d.embedding) for d in answer.data] == [("embedding", 0, vector_for("hello world"))]
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (3, 3)
    assert raw.headers["x-polyroute-provider"] == "oai"
    assert raw.headers["x-polyroute-model"] == "text-embedding-3-small"
    assert raw.headers["x-polyroute-tokens-in"] == "3"
    assert raw.headers["x-polyroute-tokens-out"] == "0"
    [sent] = upstreams["oai"].received
    assert (sent.path, sent.headers["Authorization"]) == ("/v1/embeddings", f"Bearer {EMBEDDER_KEY}")
    assert sent.json() == {"model": "text-embedding-3-small", "input": "hello world", "encoding_format": "float"}


def test_sdk_default_base64_round_trips_the_exact_float32_values(
    sdk: openai.OpenAI, upstreams: dict[str, FakeEmbedder]
) -> None:
    answer = sdk.embeddings.create(model=SMALL, input=["alpha", "beta gamma"])  # the SDK asks base64 and decodes it
    assert [d.embedding for d in answer.data] == [vector_for("alpha"), vector_for("beta gamma")]
    assert [d.index for d in answer.data] == [0, 1]
    assert upstreams["oai"].bodies() == [
        {"model": "text-embedding-3-small", "input": ["alpha", "beta gamma"], "encoding_format": "base64"}
    ]


def test_base64_is_encoded_by_the_gateway_when_the_upstream_answers_floats(
    sdk: openai.OpenAI, http: httpx.Client, upstreams: dict[str, FakeEmbedder]
) -> None:
    answer = sdk.embeddings.create(model="compat/bge-m3", input="seven")
    assert answer.data[0].embedding == vector_for("seven")
    raw = embed(http, {"model": "compat/bge-m3", "input": ["seven", "eight"], "encoding_format": "base64"})
    assert raw.status_code == 200
    assert [d["embedding"] for d in raw.json()["data"]] == [
        as_base64(vector_for("seven")),
        as_base64(vector_for("eight")),
    ]
    decoded = struct.unpack("<4f", base64.b64decode(raw.json()["data"][1]["embedding"]))
    assert list(decoded) == vector_for("eight")
    assert [b["encoding_format"] for b in upstreams["compat"].bodies()] == ["base64", "base64"]


def test_float_is_decoded_by_the_gateway_when_the_upstream_answers_base64(
    http: httpx.Client, upstreams: dict[str, FakeEmbedder]
) -> None:
    vector = vector_for("x")
    body = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": as_base64(vector)}]}
    upstreams["oai"].push(Reply(json_body={**body, "model": "text-embedding-3-small", "usage": usage_of(1)}))
    answer = embed(http, {"model": SMALL, "input": "x"})
    assert answer.json()["data"] == [{"object": "embedding", "index": 0, "embedding": vector}]


def test_answers_out_of_index_order_are_put_back_in_input_order(
    http: httpx.Client, upstreams: dict[str, FakeEmbedder]
) -> None:
    data = [{"object": "embedding", "index": i, "embedding": [float(i)]} for i in (2, 0, 1)]
    body = {"object": "list", "data": data, "model": "text-embedding-3-small", "usage": usage_of(3)}
    upstreams["oai"].push(Reply(json_body=body))
    answer = embed(http, {"model": SMALL, "input": ["a", "b", "c"]})
    assert [(d["index"], d["embedding"]) for d in answer.json()["data"]] == [(0, [0.0]), (1, [1.0]), (2, [2.0])]


@pytest.mark.parametrize("given", [[15339, 1917], [[15339, 1917], [9906]]], ids=["one-token-array", "token-arrays"])
def test_sdk_token_input_is_relayed_as_given(
    sdk: openai.OpenAI, upstreams: dict[str, FakeEmbedder], given: list[Any]
) -> None:
    answer = sdk.embeddings.create(model=SMALL, input=given, encoding_format="float")
    items = given if isinstance(given[0], list) else [given]
    assert [d.embedding for d in answer.data] == [vector_for(ids) for ids in items]
    assert answer.usage.prompt_tokens == sum(len(ids) for ids in items)
    assert upstreams["oai"].bodies()[0]["input"] == given


def test_sdk_dimensions_and_user_are_passed_on(sdk: openai.OpenAI, upstreams: dict[str, FakeEmbedder]) -> None:
    answer = sdk.embeddings.create(model="oai/text-embedding-3-large", input="short", dimensions=8, user="u-42")
    assert answer.data[0].embedding == vector_for("short", 8)
    assert upstreams["oai"].bodies() == [
        {
            "model": "text-embedding-3-large",
            "input": "short",
            "user": "u-42",
            "dimensions": 8,
            "encoding_format": "base64",
        }
    ]


def test_upstream_refusal_is_returned_to_the_client(sdk: openai.OpenAI, upstreams: dict[str, FakeEmbedder]) -> None:
    refusal = error_body("This model does not support specifying dimensions.", code="invalid_value")
    upstreams["oai"].push(Reply(status=400, json_body=refusal))
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model="oai/text-embedding-3-small", input="x", dimensions=3)
    assert caught.value.status_code == 400
    assert "does not support specifying dimensions" in caught.value.message
    assert len(upstreams["oai"].received) == 1


# Gemini, Ollama and Cohere


def test_gemini_batch_embed_contents_with_output_dimensionality_and_estimated_usage(
    gateway: RunningGateway, http: httpx.Client, upstreams: dict[str, FakeEmbedder]
) -> None:
    texts = ["What is the meaning of life?", "How does the brain work?"]
    answer = embed(http, {"model": "gem/gemini-embedding-001", "input": texts, "dimensions": 6})
    assert answer.status_code == 200
    estimate = sum(default_counter()(text) for text in texts)
    assert answer.json() == {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": vector_for(t, 6)} for i, t in enumerate(texts)],
        "model": "gemini-embedding-001",
        "usage": usage_of(estimate),
    }
    [sent] = upstreams["gem"].received
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.headers["x-goog-api-key"] == EMBEDDER_KEY
    assert sent.json() == {
        "requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}, "outputDimensionality": 6}
            for t in texts
        ]
    }
    row = wait_for_log_row(gateway.database, answer.headers["x-request-id"])
    assert (row["prompt_tokens"], row["completion_tokens"], row["estimated"]) == (estimate, 0, 1)
    assert (row["provider"], row["upstream_model"]) == ("gem", "gemini-embedding-001")
    assert row["cost_usd"] == pytest.approx(estimate * 0.15 / 1_000_000)  # the built-in price, input only


def test_gemini_takes_at_most_100_inputs_per_call_so_larger_requests_are_split(
    sdk: openai.OpenAI, upstreams: dict[str, FakeEmbedder]
) -> None:
    texts = [f"text number {i}" for i in range(150)]
    answer = sdk.embeddings.create(model="docs-embedder", input=texts)
    assert [d.embedding for d in answer.data] == [vector_for(t) for t in texts]
    assert [len(body["requests"]) for body in upstreams["gem"].bodies()] == [100, 50]
    assert upstreams["gem"].bodies()[1]["requests"][0]["content"]["parts"][0]["text"] == "text number 100"


def test_gemini_refuses_token_input_naming_the_limitation(
    http: httpx.Client, upstreams: dict[str, FakeEmbedder]
) -> None:
    answer = embed(http, {"model": "gem/gemini-embedding-001", "input": [[1, 2, 3]]})
    assert error_of(answer) == (400, "unsupported_input", "input")
    assert "takes text only" in answer.json()["error"]["message"]
    assert "token ids" in answer.json()["error"]["message"]
    assert upstreams["gem"].received == []


def test_ollama_api_embed_with_prompt_eval_count_as_usage(
    gateway: RunningGateway, sdk: openai.OpenAI, upstreams: dict[str, FakeEmbedder]
) -> None:
    raw = sdk.embeddings.with_raw_response.create(
        model="oll/nomic-embed-text", input=["why is the sky blue", "grass"], dimensions=5, encoding_format="float"
    )
    answer = raw.parse()
    assert [d.embedding for d in answer.data] == [vector_for("why is the sky blue", 5), vector_for("grass", 5)]
    assert (answer.model, answer.usage.prompt_tokens) == ("nomic-embed-text", 8)
    [sent] = upstreams["oll"].received
    assert sent.path == "/api/embed"
    assert "Authorization" not in sent.headers
    assert sent.json() == {"model": "nomic-embed-text", "input": ["why is the sky blue", "grass"], "dimensions": 5}
    row = wait_for_log_row(gateway.database, raw.headers["x-request-id"])
    assert (row["prompt_tokens"], row["estimated"], row["endpoint"]) == (8, 0, "/v1/embeddings")


def test_cohere_v2_embed_in_batches_of_96_with_billed_units_summed(
    gateway: RunningGateway, http: httpx.Client, upstreams: dict[str, FakeEmbedder]
) -> None:
    texts = [f"doc {i}" for i in range(100)]
    answer = embed(http, {"model": "co/embed-english-v3.0", "input": texts, "user": "u-1"})
    assert answer.status_code == 200
    assert [d["embedding"] for d in answer.json()["data"]] == [vector_for(t) for t in texts]
    assert answer.json()["usage"] == usage_of(sum(tokens_of(t) for t in texts))
    first, second = upstreams["co"].received
    assert (first.path, first.headers["Authorization"]) == ("/v2/embed", f"Bearer {EMBEDDER_KEY}")
    assert first.json() == {
        "model": "embed-english-v3.0",
        "texts": texts[:96],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    assert second.json()["texts"] == texts[96:]
    row = wait_for_log_row(gateway.database, answer.headers["x-request-id"])
    assert (row["dropped_fields"], row["estimated"]) == ("user", 0)


# Accounting


def test_usage_is_logged_and_charged_to_the_key_at_the_input_price(
    gateway: RunningGateway, http: httpx.Client, upstreams: dict[str, FakeEmbedder]
) -> None:
    tokens = tokens_of("one two three") + tokens_of("four")
    cost = tokens * PRICE_PER_MILLION / Decimal(1_000_000)
    created = http.post("/api/keys", json={"type": "full", "budget": {"total_usd": float(cost) / 2}})
    assert created.status_code == 201, created.text
    secret, key_id = created.json()["key"], created.json()["id"]
    with openai.OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0, timeout=15) as client:
        raw = client.embeddings.with_raw_response.create(model=SMALL, input=["one two three", "four"])
        assert Decimal(raw.headers["x-polyroute-cost-usd"]) == cost
        row = wait_for_log_row(gateway.database, raw.headers["x-request-id"])
        assert (row["key_id"], row["prompt_tokens"], row["completion_tokens"]) == (key_id, tokens, 0)
        assert (row["cost_usd"], row["estimated"], row["status"]) == (float(cost), 0, 200)
        assert (row["requested_model"], row["provider"], row["client_format"]) == (SMALL, "oai", "openai")
        spend = http.get("/api/usage/budget", params={"key_id": key_id}).json()["spend_usd"]
        assert spend["total"] == float(cost)
        with pytest.raises(openai.RateLimitError) as refused:
            client.embeddings.create(model=SMALL, input="again")
    assert refused.value.code == "budget_exceeded"
    assert len(upstreams["oai"].received) == 1


# Validation and endpoints


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": SMALL}, "input"),
        ({"model": SMALL, "input": ""}, "input"),
        ({"model": SMALL, "input": []}, "input"),
        ({"model": SMALL, "input": ["a", ""]}, "input[1]"),
        ({"model": SMALL, "input": ["a", 3]}, "input[1]"),
        ({"model": SMALL, "input": [[1], [2, -1]]}, "input[1][1]"),
        ({"model": SMALL, "input": ["x"] * 2049}, "input"),
        ({"model": SMALL, "input": {"text": "x"}}, "input"),
        ({"model": SMALL, "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": SMALL, "input": "x", "dimensions": "256"}, "dimensions"),
        ({"model": SMALL, "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": SMALL, "input": "x", "user": 7}, "user"),
    ],
    ids=[
        "no-model",
        "no-input",
        "empty-string",
        "empty-array",
        "empty-item",
        "mixed-types",
        "negative-token",
        "too-many",
        "object",
        "zero-dimensions",
        "string-dimensions",
        "unknown-encoding",
        "user-not-string",
    ],
)
def test_invalid_bodies_are_400_naming_the_field(
    http: httpx.Client, upstreams: dict[str, FakeEmbedder], body: dict[str, Any], param: str
) -> None:
    answer = embed(http, body)
    assert error_of(answer) == (400, "invalid_request", param)
    assert answer.json()["error"]["message"].startswith(f"{param}: ")
    assert upstreams["oai"].received == []


def test_a_chat_model_sent_here_is_400_naming_chat_completions(http: httpx.Client) -> None:
    answer = embed(http, {"model": "chat/gpt-4o-mini", "input": "x"})
    assert error_of(answer) == (400, "wrong_endpoint", "model")
    assert "use POST /v1/chat/completions" in answer.json()["error"]["message"]


def test_an_embedding_model_sent_to_chat_is_400_naming_embeddings(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=SMALL, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "wrong_endpoint"
    assert "use POST /v1/embeddings" in caught.value.message


def test_get_lists_only_embedding_models_in_openai_list_shape(http: httpx.Client) -> None:
    answer = http.get("/v1/embeddings")
    assert answer.status_code == 200
    listed = answer.json()
    assert listed["object"] == "list"
    assert [(m["id"], m["type"], m["object"]) for m in listed["data"]] == [
        ("oai/text-embedding-3-small", "embedding", "model"),
        ("oai/text-embedding-3-large", "embedding", "model"),
        ("compat/bge-m3", "embedding", "model"),
        ("gem/gemini-embedding-001", "embedding", "model"),
        ("oll/nomic-embed-text", "embedding", "model"),
        ("co/embed-english-v3.0", "embedding", "model"),
        ("docs-embedder", "embedding", "model"),
    ]
    assert http.get("/v1/embeddings", params={"provider": "gem"}).json()["data"][0]["id"] == "gem/gemini-embedding-001"


def test_a_key_is_required(gateway: RunningGateway) -> None:
    answer = httpx.post(gateway.url + "/v1/embeddings", json={"model": SMALL, "input": "x"}, timeout=15)
    assert answer.status_code == 401
