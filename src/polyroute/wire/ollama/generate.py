"""Ollama's ``POST /api/generate`` (a prompt, not a conversation) on top of the ``/api/chat`` translator.

The request becomes a one-turn chat (``system`` then a user turn with ``prompt`` and ``images``); the
answer is the chat answer reshaped: ``message.content`` becomes ``response`` and ``message.thinking``
becomes ``thinking``. ``context`` (token ids of an earlier answer), ``template``, ``raw`` and ``suffix``
have no canonical meaning and travel as extensions (so only an Ollama upstream would see them).
Spec: https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-completion
"""

from __future__ import annotations

import orjson

from polyroute.core.events import StreamEvent
from polyroute.core.messages import ChatRequest, ChatResponse
from polyroute.errors import GatewayError
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.fields import fail
from polyroute.wire.ndjson import encode_line
from polyroute.wire.ollama.request import parse_request
from polyroute.wire.ollama.response import render_response
from polyroute.wire.ollama.stream import StreamRenderer

_CHAT_ONLY = ("messages", "tools")


def parse_generate_request(body: JSONObject, *, model: str | None = None) -> ChatRequest:
    """``/api/generate`` body → canonical request.

    Raises:
        InvalidRequestError: naming the offending field.
    """
    for key in _CHAT_ONLY:
        if key in body:
            fail(key, "belongs to /api/chat, not /api/generate")
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        fail("prompt", "must be a string")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        fail("system", "must be a string")
    turn: JSONObject = {"role": "user", "content": prompt}
    if "images" in body:
        turn["images"] = body["images"]
    messages: list[JSONValue] = [{"role": "system", "content": system}] if system else []
    messages.append(turn)
    chat = {key: value for key, value in body.items() if key not in ("prompt", "system", "images")}
    chat["messages"] = messages
    return parse_request(chat, model=model)


def generate_answer(chat: JSONObject) -> JSONObject:
    """A ``/api/chat`` answer or stream line reshaped as ``/api/generate`` gives it."""
    out: JSONObject = {key: value for key, value in chat.items() if key != "message"}
    message = chat.get("message")
    text = ""
    if isinstance(message, dict):
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        thinking = message.get("thinking")
        if isinstance(thinking, str) and thinking:
            out["thinking"] = thinking
    out["response"] = text
    return out


def render_generate_response(response: ChatResponse, *, now_s: int = 0) -> JSONObject:
    """Canonical response → ``/api/generate`` answer."""
    return generate_answer(render_response(response, now_s=now_s))


class GenerateStreamRenderer:
    """Canonical events → ``/api/generate`` NDJSON lines (the chat lines, reshaped)."""

    __slots__ = ("_inner",)

    def __init__(self, *, now_s: int = 0) -> None:
        self._inner = StreamRenderer(now_s=now_s)

    @staticmethod
    def _reshape(lines: list[bytes]) -> list[bytes]:
        return [encode_line(generate_answer(orjson.loads(line))) for line in lines]

    def feed(self, event: StreamEvent) -> list[bytes]:
        """Translate one event into zero or more NDJSON lines."""
        return self._reshape(self._inner.feed(event))

    def finish(self) -> list[bytes]:
        """End of the event stream."""
        return self._reshape(self._inner.finish())

    def error(self, err: GatewayError) -> bytes:
        """An in-band ``{"error": ...}`` line."""
        return self._inner.error(err)
