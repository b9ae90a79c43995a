"""OpenAI Responses for clients: create, retrieve, delete and list input items.

Routes: ``POST /v1/responses``, ``GET``/``DELETE /v1/responses/{id}`` and
``GET /v1/responses/{id}/input_items``.

Requests are always translated (never relayed), so the gateway itself keeps the conversation state:
a stored turn holds the full input it was answered from and the response sent, and
``previous_response_id`` prepends both (the earlier input, then the earlier output items) to the new
input. ``store: false`` keeps nothing. Responses are visible only to the key that created them.

Tool calls are answered in the shapes the request declared its tools in (namespace members, custom tools:
``wire/openai_responses/tools.py``), in the answer sent and in the stored response alike.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from polyroute.api.inference import InferenceEndpoint
from polyroute.api.pipeline import Exchange, Pipeline
from polyroute.core.messages import ChatRequest, ChatResponse
from polyroute.errors import InvalidRequestError, NotFoundError
from polyroute.storage.base import ResponseStore, StoredResponse
from polyroute.types import JSONObject, JSONValue
from polyroute.wire import WireFormat, openai_responses
from polyroute.wire.openai_responses import StreamRenderer, ToolShapes, tool_shapes
from polyroute.wire.registry import TranslatorVariant

_GATEWAY_FIELDS = ("previous_response_id", "store")


def new_response_id() -> str:
    """A fresh ``resp_`` id (192 random bits)."""
    return "resp_" + secrets.token_hex(24)


def _owner(scope: Scope) -> str | None:
    state = scope.get("state") or {}
    key_id = state.get("key_id")
    return key_id if isinstance(key_id, str) else None


def _as_items(value: JSONValue) -> list[JSONValue]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        return value
    raise InvalidRequestError("'input' must be a string or an array of input items", param="input")


class _ShapedClient(TranslatorVariant):
    """The Responses translator, answering tool calls in the shapes one request declared its tools in."""

    def __init__(self, shapes: ToolShapes) -> None:
        super().__init__(openai_responses)
        self.shapes = shapes

    def render_response(self, response: ChatResponse, *, now_s: int) -> JSONObject:
        return openai_responses.render_response(response, now_s=now_s, tool_shapes=self.shapes)

    def stream_renderer(self, *, now_s: int) -> StreamRenderer:
        return openai_responses.stream_renderer(now_s=now_s, tool_shapes=self.shapes)


class ResponsesEndpoint(InferenceEndpoint):
    """``POST /v1/responses``."""

    relay_same_format = False

    def __init__(self, pipeline: Pipeline, store: ResponseStore) -> None:
        super().__init__(pipeline, WireFormat.RESPONSES)
        self.store = store

    async def parse(self, scope: Scope, payload: dict[str, Any]) -> ChatRequest:
        previous = payload.get("previous_response_id")
        if not isinstance(payload.get("store", True), bool):
            raise InvalidRequestError("'store' must be a boolean", param="store")
        items = _as_items(payload.get("input", []))
        if previous is not None:
            if not isinstance(previous, str):
                raise InvalidRequestError("'previous_response_id' must be a string", param="previous_response_id")
            stored = await self.store.get(previous, key_id=_owner(scope))
            if stored is None:
                raise InvalidRequestError(
                    f"Previous response with id '{previous}' not found.", param="previous_response_id"
                )
            earlier = orjson.loads(stored.response).get("output", [])
            items = [*orjson.loads(stored.input_items), *earlier, *items]
        payload["input"] = items
        # Both are the gateway's to act on; neither goes upstream.
        return self.translator.parse_request({k: v for k, v in payload.items() if k not in _GATEWAY_FIELDS})

    async def serve(self, exchange: Exchange, payload: dict[str, Any]) -> None:
        exchange.response_id = new_response_id()
        shapes = tool_shapes(payload)
        if shapes:
            exchange.client = _ShapedClient(shapes)
        if not payload.get("store", True):
            await self.pipeline.serve(exchange)
            return
        input_items = orjson.dumps(payload["input"])

        async def keep(done: Exchange, response: ChatResponse) -> None:
            now = time.time()
            rendered = done.client.render_response(response, now_s=int(now))
            await self.store.save(
                StoredResponse(
                    id=response.id,
                    created_at=now,
                    key_id=_owner(done.scope),
                    model=done.request.model,
                    input_items=input_items,
                    response=orjson.dumps(rendered),
                )
            )

        await self.pipeline.serve(exchange, keep)


class StoredResponses:
    """``GET``/``DELETE /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items``."""

    def __init__(self, store: ResponseStore) -> None:
        self._store = store

    async def _find(self, request: Request) -> StoredResponse:
        response_id = request.path_params["response_id"]
        found = await self._store.get(response_id, key_id=_owner(request.scope))
        if found is None:
            raise NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")
        return found

    async def get(self, request: Request) -> Response:
        found = await self._find(request)
        return Response(found.response, media_type="application/json")

    async def delete(self, request: Request) -> Response:
        response_id = request.path_params["response_id"]
        if not await self._store.delete(response_id, key_id=_owner(request.scope)):
            raise NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")
        body = {"id": response_id, "object": "response", "deleted": True}
        return Response(orjson.dumps(body), media_type="application/json")

    async def input_items(self, request: Request) -> Response:
        found = await self._find(request)
        items = orjson.loads(found.input_items)
        data = [
            {"id": f"item_{index}", **item} if isinstance(item, dict) and "id" not in item else item
            for index, item in enumerate(items)
        ]
        ids = [item.get("id") for item in data if isinstance(item, dict)]
        body = {
            "object": "list",
            "data": data,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
            "has_more": False,
        }
        return Response(orjson.dumps(body), media_type="application/json")
