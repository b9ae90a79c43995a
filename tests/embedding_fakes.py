"""FakeEmbedder: a real aiohttp server on 127.0.0.1 speaking one embedding API, with scripted replies.

``FakeEmbedder("openai" | "gemini" | "ollama" | "cohere")`` serves that API's embedding route, checks the
credential the way the real service does, records every request, and answers from a script of
:class:`~tests.fakes.Reply` objects, else with vectors worked out from each input (``vector_for``). Shapes
follow each API's reference: OpenAI ``POST /v1/embeddings`` (base64 answers are little-endian float32),
Gemini ``:batchEmbedContents`` (no usage), Ollama ``POST /api/embed`` (``prompt_eval_count``), Cohere
``POST /v2/embed`` (``embeddings.float``, ``meta.billed_units``).
"""

from __future__ import annotations

import base64
import json
import struct
from collections import deque
from typing import Any, Final, Literal

from aiohttp import web

from tests.fakes import LoopbackServer, Received, Reply

Api = Literal["openai", "gemini", "ollama", "cohere"]
EMBEDDER_KEY: Final = "sk-fake-embedder-key-0123456789"
DEFAULT_DIMENSIONS: Final = 4


def float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (so it survives a float32 round trip exactly)."""
    rounded: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return rounded


def vector_for(item: str | list[int], dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The fake's embedding of one input: float32 values that are not short decimals (1/7ths)."""
    seed = sum(item.encode()) if isinstance(item, str) else sum(item) + 1
    return [float32((seed + k) / 7 * (-1) ** k) for k in range(dimensions)]


def as_base64(vector: list[float]) -> str:
    """A vector as OpenAI's base64: little-endian float32 bytes."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def tokens_of(item: str | list[int]) -> int:
    """The fake's token count of one input (words + 1, or the number of token ids)."""
    return len(item.split()) + 1 if isinstance(item, str) else len(item)


class FakeEmbedder(LoopbackServer):
    """One embedding API on 127.0.0.1, in its own thread and event loop."""

    def __init__(self, api: Api, *, api_key: str | None = EMBEDDER_KEY, honours_base64: bool = True) -> None:
        super().__init__()
        self.api = api
        self.api_key = api_key
        self.honours_base64 = honours_base64
        """OpenAI API: answer base64 when asked (False: floats always, as some compatible servers do)."""
        self.script: deque[Reply] = deque()
        self.received: list[Received] = []

    @property
    def base_url(self) -> str:
        """The provider ``base_url``: OpenAI paths are under ``/v1``, the others at the root."""
        return self.root + "/v1" if self.api == "openai" else self.root

    def reset(self) -> None:
        self.script.clear()
        self.received.clear()

    def push(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def bodies(self) -> list[Any]:
        return [r.json() for r in self.received]

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        path = {
            "openai": "/v1/embeddings",
            "gemini": "/v1beta/models/{action}",
            "ollama": "/api/embed",
            "cohere": "/v2/embed",
        }[self.api]
        app.router.add_post(path, self._embed)
        return app

    async def _embed(self, request: web.Request) -> web.Response:
        received = Received(request.method, request.path_qs, dict(request.headers), await request.read())
        self.received.append(received)
        refused = self._refused(request)
        if refused is not None:
            return refused
        reply = self.script.popleft() if self.script else self._default(received)
        body = reply.raw_body if reply.raw_body is not None else json.dumps(reply.json_body).encode()
        return web.Response(status=reply.status, body=body, content_type=reply.content_type, headers=reply.headers)

    def _refused(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        if self.api == "gemini":
            if request.headers.get("x-goog-api-key") == self.api_key:
                return None
            error = {
                "code": 403,
                "message": "Method doesn't allow unregistered callers.",
                "status": "PERMISSION_DENIED",
            }
            return web.json_response({"error": error}, status=403)
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        if self.api == "cohere":
            return web.json_response({"id": "e2c7c2b5", "message": "invalid api token"}, status=401)
        error = {"message": "Incorrect API key provided.", "type": "invalid_request_error", "param": None}
        return web.json_response({"error": {**error, "code": "invalid_api_key"}}, status=401)

    def _default(self, received: Received) -> Reply:
        body = received.json()
        return Reply(json_body=getattr(self, f"_{self.api}")(body, received))

    def _openai(self, body: dict[str, Any], received: Received) -> dict[str, Any]:
        raw = body["input"]
        inputs = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else raw
        dims = body.get("dimensions", DEFAULT_DIMENSIONS)
        encode = body.get("encoding_format") == "base64" and self.honours_base64
        data = [
            {"object": "embedding", "index": i, "embedding": as_base64(v) if encode else v}
            for i, v in enumerate(vector_for(item, dims) for item in inputs)
        ]
        tokens = sum(tokens_of(item) for item in inputs)
        return {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _gemini(self, body: dict[str, Any], received: Received) -> dict[str, Any]:
        embeddings = []
        for item in body["requests"]:
            text = item["content"]["parts"][0]["text"]
            embeddings.append({"values": vector_for(text, item.get("outputDimensionality", DEFAULT_DIMENSIONS))})
        return {"embeddings": embeddings}

    def _ollama(self, body: dict[str, Any], received: Received) -> dict[str, Any]:
        inputs = [body["input"]] if isinstance(body["input"], str) else body["input"]
        dims = body.get("dimensions", DEFAULT_DIMENSIONS)
        return {
            "model": body["model"],
            "embeddings": [vector_for(text, dims) for text in inputs],
            "total_duration": 14143917,
            "load_duration": 1019500,
            "prompt_eval_count": sum(tokens_of(text) for text in inputs),
        }

    def _cohere(self, body: dict[str, Any], received: Received) -> dict[str, Any]:
        texts = body["texts"]
        dims = body.get("output_dimension", DEFAULT_DIMENSIONS)
        return {
            "id": "da6e531f-54c6-4a73-bf92-f60566d8d753",
            "embeddings": {"float": [vector_for(text, dims) for text in texts]},
            "texts": texts,
            "meta": {
                "api_version": {"version": "2"},
                "billed_units": {"input_tokens": sum(tokens_of(text) for text in texts)},
            },
            "response_type": "embeddings_by_type",
        }
