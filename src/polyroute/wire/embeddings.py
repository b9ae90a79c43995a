"""Embeddings: OpenAI's ``POST /v1/embeddings`` and the embedding APIs behind it, as pure translation.

Client side: https://platform.openai.com/docs/api-reference/embeddings/create. Upstreams, by media API:
OpenAI-compatible ``POST /embeddings`` (the same reference); Gemini ``:batchEmbedContents``
(https://ai.google.dev/api/embeddings#method:-models.batchembedcontents); Ollama ``POST /api/embed``
(https://docs.ollama.com/api/embed); Cohere ``POST /v2/embed`` (https://docs.cohere.com/reference/embed).
Choices and limits are in docs/embeddings.md.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, TypeAlias
from urllib.parse import quote

import orjson

from polyroute.core.estimate import TokenCounter, count_by_bytes
from polyroute.errors import UpstreamProtocolError
from polyroute.types import JSONObject, JSONValue
from polyroute.wire import MediaApi
from polyroute.wire.fields import fail

MAX_INPUTS: Final = 2048
"""Most inputs one request may carry (OpenAI's limit on the ``input`` array)."""
MAX_TOKEN_ID: Final = 2**32 - 1
_FLOAT32_MAX: Final = 3.4028234663852886e38
_KNOWN_FIELDS: Final = frozenset({"model", "input", "encoding_format", "dimensions", "user"})


class EncodingFormat(StrEnum):
    """How vectors are written in the answer."""

    FLOAT = "float"
    """JSON arrays of numbers."""
    BASE64 = "base64"
    """Base64 of the vector as little-endian float32 values, as OpenAI sends it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddingRequest:
    """An embeddings request, validated; exactly one of ``texts`` and ``tokens`` is non-empty."""

    model: str
    """The client's requested name."""
    texts: tuple[str, ...] = ()
    tokens: tuple[tuple[int, ...], ...] = ()
    """Inputs given as token ids, one tuple per input."""
    is_single: bool = False
    """``input`` was one string or one flat token array, not a list of them (kept for relaying as sent)."""
    encoding_format: EncodingFormat | None = None
    """As the client sent it; None means it sent none (float)."""
    dimensions: int | None = None
    user: str | None = None
    extra: Mapping[str, JSONValue] = field(default_factory=dict)
    """Fields this module does not know; relayed to OpenAI-compatible upstreams only."""

    @property
    def count(self) -> int:
        """How many inputs (and so vectors) there are."""
        return len(self.tokens) if self.tokens else len(self.texts)

    @property
    def wanted_encoding(self) -> EncodingFormat:
        """The encoding the answer must use."""
        return self.encoding_format or EncodingFormat.FLOAT


Vector: TypeAlias = list[float] | str
"""One embedding: floats, or base64 of little-endian float32 values."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddingBatch:
    """One upstream answer: the vectors in input order and what the upstream reported."""

    vectors: list[Vector]
    input_tokens: int | None = None
    """Input tokens as the upstream counted them; None when it reported none."""
    model: str | None = None
    """The model the upstream says answered, when it says."""


def parse_request(body: JSONObject) -> EmbeddingRequest:
    """An OpenAI embeddings request body → ``EmbeddingRequest``.

    Raises:
        InvalidRequestError: a field is missing, of the wrong type or out of range (``param`` names it).
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        fail("model", "is required (a non-empty string)")
    texts, tokens, is_single = _parse_input(body.get("input"))
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        fail("encoding_format", "must be 'float' or 'base64'")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1):
        fail("dimensions", "must be a positive integer")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        fail("user", "must be a string")
    return EmbeddingRequest(
        model=model,
        texts=texts,
        tokens=tokens,
        is_single=is_single,
        encoding_format=EncodingFormat(encoding) if encoding is not None else None,
        dimensions=dimensions,
        user=user,
        extra={k: v for k, v in body.items() if k not in _KNOWN_FIELDS},
    )


_INPUT_KINDS = "a string, an array of strings, an array of token ids or an array of token-id arrays"


def _parse_input(value: JSONValue) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...], bool]:
    if value is None:
        fail("input", f"is required ({_INPUT_KINDS})")
    if isinstance(value, str):
        if not value:
            fail("input", "must not be an empty string")
        return (value,), (), True
    if not isinstance(value, list):
        fail("input", f"must be {_INPUT_KINDS}")
    if not value:
        fail("input", "must not be an empty array")
    first = value[0]
    if isinstance(first, int) and not isinstance(first, bool):
        return (), (_token_ids(value, "input"),), True
    if len(value) > MAX_INPUTS:
        fail("input", f"has {len(value)} items; at most {MAX_INPUTS} inputs are allowed in one request")
    if isinstance(first, str):
        return tuple(_text(item, f"input[{i}]") for i, item in enumerate(value)), (), False
    if isinstance(first, list):
        return (), tuple(_token_ids(item, f"input[{i}]") for i, item in enumerate(value)), False
    fail("input[0]", "must be a string, a token id or an array of token ids")


def _text(value: JSONValue, param: str) -> str:
    if not isinstance(value, str):
        fail(param, "must be a string, as the first item is")
    if not value:
        fail(param, "must not be an empty string")
    return value


def _token_ids(value: JSONValue, param: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        fail(param, "must be an array of token ids, as the first item is")
    if not value:
        fail(param, "must not be an empty array")
    ids: list[int] = []
    for index, item in enumerate(value):
        if not isinstance(item, int) or isinstance(item, bool) or not 0 <= item <= MAX_TOKEN_ID:
            fail(f"{param}[{index}]", f"must be a token id (an integer from 0 to {MAX_TOKEN_ID})")
        ids.append(item)
    return tuple(ids)


def estimate_input_tokens(request: EmbeddingRequest, *, counter: TokenCounter = count_by_bytes) -> int:
    """The input tokens of a request whose upstream reported none: token ids counted, text estimated."""
    if request.tokens:
        return sum(len(ids) for ids in request.tokens)
    return sum(counter(text) for text in request.texts)


# Upstream requests. Each renderer gets the request, the upstream's model id and the inputs of one batch.


def _openai_request(request: EmbeddingRequest, model: str, batch: slice) -> JSONObject:
    inputs: JSONValue
    if request.tokens:
        chosen: list[JSONValue] = [list(ids) for ids in request.tokens[batch]]
        inputs = chosen[0] if request.is_single else chosen
    else:
        inputs = request.texts[0] if request.is_single else list(request.texts[batch])
    body: JSONObject = {**request.extra, "model": model, "input": inputs}
    if request.encoding_format is not None:
        body["encoding_format"] = request.encoding_format.value
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if request.user is not None:
        body["user"] = request.user
    return body


def _gemini_request(request: EmbeddingRequest, model: str, batch: slice) -> JSONObject:
    name = "models/" + model.removeprefix("models/")
    requests: list[JSONValue] = []
    for text in request.texts[batch]:
        item: JSONObject = {"model": name, "content": {"parts": [{"text": text}]}}
        if request.dimensions is not None:
            item["outputDimensionality"] = request.dimensions
        requests.append(item)
    return {"requests": requests}


def _ollama_request(request: EmbeddingRequest, model: str, batch: slice) -> JSONObject:
    body: JSONObject = {"model": model, "input": list(request.texts[batch])}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return body


def _cohere_request(request: EmbeddingRequest, model: str, batch: slice) -> JSONObject:
    body: JSONObject = {
        "model": model,
        "texts": list(request.texts[batch]),
        # Cohere requires input_type for v3+ models; documents is the general-purpose choice.
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    if request.dimensions is not None:
        body["output_dimension"] = request.dimensions
    return body


# Upstream answers.


def _load(body: bytes, provider: str) -> JSONObject:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise _protocol(provider, "an embeddings answer that is not a JSON object")
    return value


def _protocol(provider: str, what: str) -> UpstreamProtocolError:
    return UpstreamProtocolError(f"{provider} sent {what}", provider=provider)


def _vector(value: JSONValue, provider: str) -> Vector:
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if not raw or len(raw) % 4:
            raise _protocol(provider, "an embedding that is not base64 of float32 values")
        return value
    if not isinstance(value, list) or not value:
        raise _protocol(provider, "an embedding that is not a non-empty array of numbers")
    floats: list[float] = []
    for number in value:
        if type(number) is float:
            floats.append(number)
        elif type(number) is int:
            floats.append(float(number))
        else:
            raise _protocol(provider, "an embedding with a value that is not a number")
    return floats


def _vectors(items: JSONValue, count: int, provider: str) -> list[Vector]:
    if not isinstance(items, list):
        raise _protocol(provider, "an embeddings answer without its list of embeddings")
    if len(items) != count:
        raise _protocol(provider, f"{len(items)} embeddings for {count} inputs")
    return [_vector(item, provider) for item in items]


def _count(value: JSONValue) -> int | None:
    """A token count as reported; None when absent or not a count (Cohere's numbers may carry ``.0``)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _openai_answer(body: bytes, count: int, provider: str) -> EmbeddingBatch:
    answer = _load(body, provider)
    data = answer.get("data")
    if not isinstance(data, list) or len(data) != count:
        found = len(data) if isinstance(data, list) else 0
        raise _protocol(provider, f"{found} embeddings for {count} inputs")
    placed: list[JSONValue] = [None] * count
    for item in data:
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < count or placed[index] is not None:
            raise _protocol(provider, "embeddings whose indexes do not match the inputs")
        placed[index] = item.get("embedding") if isinstance(item, dict) else None
    usage = answer.get("usage")
    model = answer.get("model")
    return EmbeddingBatch(
        vectors=[_vector(item, provider) for item in placed],
        input_tokens=_count(usage.get("prompt_tokens")) if isinstance(usage, dict) else None,
        model=model if isinstance(model, str) and model else None,
    )


def _gemini_answer(body: bytes, count: int, provider: str) -> EmbeddingBatch:
    items = _load(body, provider).get("embeddings")
    values = (
        [item.get("values") if isinstance(item, dict) else None for item in items] if isinstance(items, list) else None
    )
    # batchEmbedContents reports no token usage (https://ai.google.dev/api/embeddings#batchembedcontentsresponse).
    return EmbeddingBatch(vectors=_vectors(values, count, provider))


def _ollama_answer(body: bytes, count: int, provider: str) -> EmbeddingBatch:
    answer = _load(body, provider)
    model = answer.get("model")
    return EmbeddingBatch(
        vectors=_vectors(answer.get("embeddings"), count, provider),
        input_tokens=_count(answer.get("prompt_eval_count")),
        model=model if isinstance(model, str) and model else None,
    )


def _cohere_answer(body: bytes, count: int, provider: str) -> EmbeddingBatch:
    answer = _load(body, provider)
    embeddings = answer.get("embeddings")
    meta = answer.get("meta")
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    return EmbeddingBatch(
        vectors=_vectors(embeddings.get("float") if isinstance(embeddings, dict) else None, count, provider),
        input_tokens=_count(billed.get("input_tokens")) if isinstance(billed, dict) else None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddingApi:
    """How one media API embeds: where, in batches of what size, what it carries, and its translators."""

    path: Callable[[str], str]
    """The request path under the provider's ``base_url``, given the upstream model id."""
    render: Callable[[EmbeddingRequest, str, slice], JSONObject]
    parse: Callable[[bytes, int, str], EmbeddingBatch]
    """``(body, inputs in the batch, provider name)``; raises ``UpstreamProtocolError``."""
    batch_size: int | None = None
    """Most inputs per upstream call; None: all in one."""
    takes_tokens: bool = False
    """Whether it accepts inputs given as token ids."""
    carries: frozenset[str] = frozenset({"dimensions"})
    """Optional request fields it carries; the others are dropped (and listed in the request log)."""


EMBEDDING_APIS: Final[Mapping[MediaApi, EmbeddingApi]] = {
    MediaApi.OPENAI: EmbeddingApi(
        path=lambda model: "/embeddings",
        render=_openai_request,
        parse=_openai_answer,
        takes_tokens=True,
        carries=frozenset({"dimensions", "user", "extra"}),
    ),
    # Gemini refuses more than 100 requests in one batch ("at most 100 requests can be in one batch").
    MediaApi.GEMINI: EmbeddingApi(
        path=lambda model: f"/v1beta/models/{quote(model.removeprefix('models/'), safe='-._~@')}:batchEmbedContents",
        render=_gemini_request,
        parse=_gemini_answer,
        batch_size=100,
    ),
    MediaApi.OLLAMA: EmbeddingApi(path=lambda model: "/api/embed", render=_ollama_request, parse=_ollama_answer),
    # Cohere takes at most 96 texts per call (https://docs.cohere.com/reference/embed).
    MediaApi.COHERE: EmbeddingApi(
        path=lambda model: "/v2/embed", render=_cohere_request, parse=_cohere_answer, batch_size=96
    ),
}
"""The media APIs that serve embeddings."""


def batches(request: EmbeddingRequest, api: EmbeddingApi) -> list[slice]:
    """The slices of the inputs sent in one upstream call each."""
    size = api.batch_size or request.count
    return [slice(start, start + size) for start in range(0, request.count, size)]


def dropped_fields(request: EmbeddingRequest, api: EmbeddingApi) -> list[str]:
    """The fields the client sent that ``api`` cannot carry."""
    dropped = [
        name for name in ("dimensions", "user") if getattr(request, name) is not None and name not in api.carries
    ]
    if "extra" not in api.carries:
        dropped.extend(sorted(request.extra))
    return dropped


def encode_float32(values: Sequence[float]) -> str:
    """Base64 of ``values`` as little-endian float32 (each value rounded to the nearest float32).

    Raises:
        OverflowError: a value is beyond float32's range.
    """
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def decode_float32(data: str) -> list[float]:
    """The floats of a base64 string of little-endian float32 values (checked by the answer parsers)."""
    raw = base64.b64decode(data)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def render_response(
    vectors: Sequence[Vector], *, encoding: EncodingFormat, model: str, input_tokens: int, provider: str
) -> dict[str, object]:
    """The OpenAI ``list`` of ``embedding`` objects, every vector in the client's encoding.

    Raises:
        UpstreamProtocolError: a value does not fit float32 and the client asked for base64.
    """
    data = [
        {"object": "embedding", "index": index, "embedding": _encoded(vector, encoding, provider)}
        for index, vector in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens},
    }


def _encoded(vector: Vector, encoding: EncodingFormat, provider: str) -> Vector:
    if encoding is EncodingFormat.FLOAT:
        return decode_float32(vector) if isinstance(vector, str) else vector
    if isinstance(vector, str):
        return vector
    if any(abs(value) > _FLOAT32_MAX for value in vector):
        raise _protocol(provider, "an embedding value beyond the float32 range, which base64 cannot carry")
    return encode_float32(vector)
