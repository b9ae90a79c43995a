"""wire/embeddings.py: request validation, each embedding API's request and answer, encodings, batching."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from polyroute.errors import InvalidRequestError, UpstreamProtocolError
from polyroute.wire import MediaApi
from polyroute.wire.embeddings import (
    EMBEDDING_APIS,
    MAX_INPUTS,
    EmbeddingBatch,
    EmbeddingRequest,
    EncodingFormat,
    batches,
    decode_float32,
    dropped_fields,
    encode_float32,
    estimate_input_tokens,
    parse_request,
    render_response,
)

OPENAI, GEMINI, OLLAMA, COHERE = (
    EMBEDDING_APIS[api] for api in (MediaApi.OPENAI, MediaApi.GEMINI, MediaApi.OLLAMA, MediaApi.COHERE)
)
THIRD = struct.unpack("<f", struct.pack("<f", 1 / 3))[0]
"""1/3 as the nearest float32: survives base64 exactly."""


def b64(*values: float) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


# parse_request


def test_parse_request_reads_every_field_and_keeps_unknown_ones() -> None:
    request = parse_request(
        {
            "model": "m",
            "input": ["a", "b"],
            "encoding_format": "base64",
            "dimensions": 256,
            "user": "u",
            "input_type": "query",
        }
    )
    assert request == EmbeddingRequest(
        model="m",
        texts=("a", "b"),
        encoding_format=EncodingFormat.BASE64,
        dimensions=256,
        user="u",
        extra={"input_type": "query"},
    )
    assert (request.count, request.wanted_encoding) == (2, EncodingFormat.BASE64)


@pytest.mark.parametrize(
    ("given", "texts", "tokens", "is_single"),
    [
        ("hello", ("hello",), (), True),
        (["a", "b"], ("a", "b"), (), False),
        ([1, 0, 4294967295], (), ((1, 0, 4294967295),), True),
        ([[1, 2], [3]], (), ((1, 2), (3,)), False),
        ([[1]] * MAX_INPUTS, (), ((1,),) * MAX_INPUTS, False),
    ],
    ids=["string", "strings", "token-array", "token-arrays", "at-the-limit"],
)
def test_parse_request_accepts_every_input_shape(
    given: Any, texts: tuple[str, ...], tokens: tuple[tuple[int, ...], ...], is_single: bool
) -> None:
    request = parse_request({"model": "m", "input": given})
    assert (request.texts, request.tokens, request.is_single) == (texts, tokens, is_single)
    assert (request.encoding_format, request.wanted_encoding, request.dimensions, request.user) == (
        None,
        EncodingFormat.FLOAT,
        None,
        None,
    )
    assert request.count == len(texts or tokens)


def test_a_flat_token_array_is_one_input_however_long() -> None:
    assert parse_request({"model": "m", "input": [7] * (MAX_INPUTS + 1)}).count == 1


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"input": "x"}, "model", "is required (a non-empty string)"),
        ({"model": "", "input": "x"}, "model", "is required (a non-empty string)"),
        ({"model": 3, "input": "x"}, "model", "is required (a non-empty string)"),
        ({"model": "m"}, "input", "is required"),
        ({"model": "m", "input": ""}, "input", "must not be an empty string"),
        ({"model": "m", "input": 5}, "input", "must be a string, an array of strings"),
        ({"model": "m", "input": {"a": 1}}, "input", "must be a string, an array of strings"),
        ({"model": "m", "input": []}, "input", "must not be an empty array"),
        ({"model": "m", "input": ["x"] * (MAX_INPUTS + 1)}, "input", "has 2049 items; at most 2048 inputs"),
        ({"model": "m", "input": ["a", ""]}, "input[1]", "must not be an empty string"),
        ({"model": "m", "input": ["a", [1]]}, "input[1]", "must be a string, as the first item is"),
        ({"model": "m", "input": [True]}, "input[0]", "must be a string, a token id or an array of token ids"),
        ({"model": "m", "input": [1.5]}, "input[0]", "must be a string, a token id or an array of token ids"),
        ({"model": "m", "input": [None]}, "input[0]", "must be a string, a token id or an array of token ids"),
        ({"model": "m", "input": [1, True]}, "input[1]", "must be a token id"),
        ({"model": "m", "input": [1, -1]}, "input[1]", "must be a token id"),
        ({"model": "m", "input": [1, 2**32]}, "input[1]", "must be a token id"),
        ({"model": "m", "input": [1, "a"]}, "input[1]", "must be a token id"),
        ({"model": "m", "input": [[1], "a"]}, "input[1]", "must be an array of token ids, as the first item is"),
        ({"model": "m", "input": [[1], []]}, "input[1]", "must not be an empty array"),
        ({"model": "m", "input": [[]]}, "input[0]", "must not be an empty array"),
        ({"model": "m", "input": [[1], [2, 2.0]]}, "input[1][1]", "must be a token id"),
        ({"model": "m", "input": "x", "encoding_format": "int8"}, "encoding_format", "must be 'float' or 'base64'"),
        ({"model": "m", "input": "x", "encoding_format": 1}, "encoding_format", "must be 'float' or 'base64'"),
        ({"model": "m", "input": "x", "dimensions": 0}, "dimensions", "must be a positive integer"),
        ({"model": "m", "input": "x", "dimensions": -3}, "dimensions", "must be a positive integer"),
        ({"model": "m", "input": "x", "dimensions": True}, "dimensions", "must be a positive integer"),
        ({"model": "m", "input": "x", "dimensions": 1.0}, "dimensions", "must be a positive integer"),
        ({"model": "m", "input": "x", "user": ["u"]}, "user", "must be a string"),
    ],
)
def test_parse_request_refuses_bad_fields_naming_them(body: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_request(body)
    assert caught.value.param == param
    assert caught.value.message.startswith(f"{param}: {message}")


def test_null_optional_fields_are_absent() -> None:
    request = parse_request({"model": "m", "input": "x", "encoding_format": None, "dimensions": None, "user": None})
    assert (request.encoding_format, request.dimensions, request.user, request.extra) == (None, None, None, {})


def test_estimate_counts_token_ids_and_estimates_text_at_four_bytes_a_token() -> None:
    assert estimate_input_tokens(EmbeddingRequest(model="m", tokens=((1, 2, 3), (4,)))) == 4
    assert estimate_input_tokens(EmbeddingRequest(model="m", texts=("abcde", "é"))) == 2 + 1
    assert estimate_input_tokens(EmbeddingRequest(model="m", texts=("abc",)), counter=lambda text: 10) == 10


# Upstream requests


def test_openai_request_relays_the_input_as_given_and_every_field() -> None:
    request = EmbeddingRequest(
        model="alias",
        texts=("hi",),
        is_single=True,
        encoding_format=EncodingFormat.BASE64,
        dimensions=64,
        user="u",
        extra={"input_type": "query", "model": "not this one"},
    )
    assert OPENAI.render(request, "up-model", slice(0, 1)) == {
        "input_type": "query",
        "model": "up-model",
        "input": "hi",
        "encoding_format": "base64",
        "dimensions": 64,
        "user": "u",
    }


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (EmbeddingRequest(model="a", texts=("x", "y")), ["x", "y"]),
        (EmbeddingRequest(model="a", tokens=((1, 2),), is_single=True), [1, 2]),
        (EmbeddingRequest(model="a", tokens=((1, 2), (3,))), [[1, 2], [3]]),
    ],
    ids=["strings", "token-array", "token-arrays"],
)
def test_openai_request_inputs(request_: EmbeddingRequest, expected: Any) -> None:
    assert OPENAI.render(request_, "m", slice(0, request_.count)) == {"model": "m", "input": expected}


def test_gemini_request_is_one_embed_request_per_text_of_the_batch() -> None:
    request = EmbeddingRequest(model="a", texts=("x", "y", "z"), dimensions=768)
    assert GEMINI.render(request, "models/gemini-embedding-001", slice(1, 3)) == {
        "requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}, "outputDimensionality": 768}
            for t in ("y", "z")
        ]
    }
    plain = GEMINI.render(EmbeddingRequest(model="a", texts=("x",)), "text-embedding-004", slice(0, 1))
    assert plain == {"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "x"}]}}]}


def test_ollama_and_cohere_requests() -> None:
    request = EmbeddingRequest(model="a", texts=("x", "y"), dimensions=512)
    assert OLLAMA.render(request, "nomic", slice(0, 2)) == {"model": "nomic", "input": ["x", "y"], "dimensions": 512}
    assert COHERE.render(request, "embed-v4.0", slice(0, 2)) == {
        "model": "embed-v4.0",
        "texts": ["x", "y"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "output_dimension": 512,
    }
    bare = EmbeddingRequest(model="a", texts=("x",))
    assert OLLAMA.render(bare, "nomic", slice(0, 1)) == {"model": "nomic", "input": ["x"]}
    assert "output_dimension" not in COHERE.render(bare, "embed", slice(0, 1))


def test_paths_of_each_api() -> None:
    assert OPENAI.path("text-embedding-3-small") == "/embeddings"
    assert GEMINI.path("models/gemini embedding") == "/v1beta/models/gemini%20embedding:batchEmbedContents"
    assert OLLAMA.path("nomic-embed-text:latest") == "/api/embed"
    assert COHERE.path("embed-english-v3.0") == "/v2/embed"


def test_batches_follow_each_apis_limit() -> None:
    request = EmbeddingRequest(model="m", texts=tuple(str(i) for i in range(250)))
    assert batches(request, OPENAI) == [slice(0, 250)]
    assert batches(request, GEMINI) == [slice(0, 100), slice(100, 200), slice(200, 300)]
    assert batches(request, COHERE) == [slice(0, 96), slice(96, 192), slice(192, 288)]


def test_dropped_fields_are_what_the_api_cannot_carry() -> None:
    request = EmbeddingRequest(model="m", texts=("x",), dimensions=3, user="u", extra={"b": 1, "a": 2})
    assert dropped_fields(request, OPENAI) == []
    assert dropped_fields(request, GEMINI) == ["user", "a", "b"]
    assert dropped_fields(EmbeddingRequest(model="m", texts=("x",)), COHERE) == []


# Upstream answers


def test_openai_answer_in_index_order_with_usage_and_model() -> None:
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": b64(THIRD)},
            {"object": "embedding", "index": 0, "embedding": [1, -0.5]},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 5, "total_tokens": 5},
    }
    assert OPENAI.parse(dumps(body), 2, "p") == EmbeddingBatch(
        vectors=[[1.0, -0.5], b64(THIRD)], input_tokens=5, model="text-embedding-3-small"
    )


@pytest.mark.parametrize(
    "body", [{"data": [{"index": 0, "embedding": [1]}]}, {"data": [{"index": 0, "embedding": [1]}], "usage": 3}]
)
def test_openai_answer_without_usage_or_model(body: dict[str, Any]) -> None:
    assert OPENAI.parse(dumps({**body, "model": ""}), 1, "p") == EmbeddingBatch(vectors=[[1.0]])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "p sent an embeddings answer that is not a JSON object"),
        (b"[1]", "p sent an embeddings answer that is not a JSON object"),
        (dumps({"data": None}), "p sent 0 embeddings for 2 inputs"),
        (dumps({"data": [{"index": 0, "embedding": [1]}]}), "p sent 1 embeddings for 2 inputs"),
        (dumps({"data": [{"index": 0, "embedding": [1]}, {"index": 0, "embedding": [2]}]}), "indexes do not match"),
        (dumps({"data": [{"index": 0, "embedding": [1]}, {"index": 2, "embedding": [2]}]}), "indexes do not match"),
        (dumps({"data": [{"index": 0, "embedding": [1]}, {"index": "1", "embedding": [2]}]}), "indexes do not match"),
        (dumps({"data": [{"index": 0, "embedding": [1]}, [1]]}), "indexes do not match"),
        (dumps({"data": [{"index": 0, "embedding": [1]}, {"index": 1}]}), "not a non-empty array of numbers"),
        (dumps({"data": [{"index": 0, "embedding": [1]}, {"index": 1, "embedding": []}]}), "non-empty array"),
        (dumps({"data": [{"index": 0, "embedding": [1]}, {"index": 1, "embedding": [True]}]}), "not a number"),
        (dumps({"data": [{"index": 0, "embedding": [1]}, {"index": 1, "embedding": ["1"]}]}), "not a number"),
        (dumps({"data": [{"index": 0, "embedding": [1]}, {"index": 1, "embedding": "!!"}]}), "not base64"),
        (dumps({"data": [{"index": 0, "embedding": [1]}, {"index": 1, "embedding": ""}]}), "not base64"),
        (dumps({"data": [{"index": 0, "embedding": [1]}, {"index": 1, "embedding": "AAAA"}]}), "not base64"),
    ],
)
def test_openai_answer_that_breaks_the_format_is_a_protocol_error(body: bytes, message: str) -> None:
    with pytest.raises(UpstreamProtocolError) as caught:
        OPENAI.parse(body, 2, "p")
    assert message in caught.value.message
    assert caught.value.provider == "p"


def test_gemini_answer_has_no_usage() -> None:
    body = {"embeddings": [{"values": [0.25, 1]}, {"values": [-2.0]}]}
    assert GEMINI.parse(dumps(body), 2, "g") == EmbeddingBatch(vectors=[[0.25, 1.0], [-2.0]])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "without its list of embeddings"),
        ({"embeddings": {"values": [1]}}, "without its list of embeddings"),
        ({"embeddings": [{"values": [1]}]}, "1 embeddings for 2 inputs"),
        ({"embeddings": [{"values": [1]}, "x"]}, "not a non-empty array of numbers"),
    ],
)
def test_gemini_answer_errors(body: dict[str, Any], message: str) -> None:
    with pytest.raises(UpstreamProtocolError, match=message):
        GEMINI.parse(dumps(body), 2, "g")


def test_ollama_answer_takes_prompt_eval_count_as_usage() -> None:
    body = {"model": "nomic-embed-text", "embeddings": [[0.5]], "total_duration": 1, "prompt_eval_count": 8}
    assert OLLAMA.parse(dumps(body), 1, "o") == EmbeddingBatch(
        vectors=[[0.5]], input_tokens=8, model="nomic-embed-text"
    )
    assert OLLAMA.parse(dumps({"embeddings": [[0.5]]}), 1, "o") == EmbeddingBatch(vectors=[[0.5]])


@pytest.mark.parametrize(
    ("meta", "tokens"),
    [
        ({"billed_units": {"input_tokens": 7}}, 7),
        ({"billed_units": {"input_tokens": 7.0}}, 7),
        ({"billed_units": {"input_tokens": 7.5}}, None),
        ({"billed_units": {"input_tokens": -1}}, None),
        ({"billed_units": {"input_tokens": True}}, None),
        ({"billed_units": {}}, None),
        ({"billed_units": 7}, None),
        ({}, None),
        (None, None),
    ],
)
def test_cohere_answer_takes_billed_input_tokens(meta: Any, tokens: int | None) -> None:
    body = {"id": "x", "embeddings": {"float": [[0.5]]}, "texts": ["a"], "meta": meta}
    assert COHERE.parse(dumps(body), 1, "c") == EmbeddingBatch(vectors=[[0.5]], input_tokens=tokens)


def test_cohere_answer_without_float_embeddings_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError, match="without its list of embeddings"):
        COHERE.parse(dumps({"embeddings": [[0.5]]}), 1, "c")


# Encodings and the client's answer


def test_float32_base64_round_trip_is_little_endian_and_exact() -> None:
    encoded = encode_float32([1.0, THIRD])
    assert base64.b64decode(encoded) == b"\x00\x00\x80\x3f" + struct.pack("<f", THIRD)
    assert decode_float32(encoded) == [1.0, THIRD]


def test_render_response_in_the_requested_encoding_whatever_the_upstream_sent() -> None:
    vectors: list[list[float] | str] = [[1.0, THIRD], b64(0.5)]
    as_float = render_response(vectors, encoding=EncodingFormat.FLOAT, model="m", input_tokens=3, provider="p")
    assert as_float == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [1.0, THIRD]},
            {"object": "embedding", "index": 1, "embedding": [0.5]},
        ],
        "model": "m",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    as_base64 = render_response(vectors, encoding=EncodingFormat.BASE64, model="m", input_tokens=3, provider="p")
    assert [item["embedding"] for item in as_base64["data"]] == [b64(1.0, THIRD), b64(0.5)]  # type: ignore[attr-defined]


def test_base64_of_a_value_beyond_float32_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError, match="beyond the float32 range"):
        render_response([[1e39]], encoding=EncodingFormat.BASE64, model="m", input_tokens=1, provider="p")
    floats = render_response([[1e39]], encoding=EncodingFormat.FLOAT, model="m", input_tokens=1, provider="p")
    assert floats["data"] == [{"object": "embedding", "index": 0, "embedding": [1e39]}]
