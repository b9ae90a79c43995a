"""FakeImageApis: one aiohttp server on 127.0.0.1 speaking three image APIs, each provider under its own prefix.

- ``POST /{name}/v1/images/generations``: OpenAI's images API (``url`` answers point at ``/files/...``);
- ``GET /{name}/image/{prompt}``: Pollinations, answering with PNG bytes;
- ``POST /{name}/v1beta/models/{model}:generateContent``: Gemini image output (``inlineData``);
- ``GET /files/{file}``: the images the OpenAI fake hands out by URL.

Shapes follow each API's reference (OpenAI images/create, enter.pollinations.ai/api/docs, Gemini
generateContent). Every request is recorded with its raw path and query; ``push(name, ...)`` scripts
the next answers of one provider, otherwise each answers with a real PNG made here.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
from aiohttp import web

from tests.fakes import LoopbackServer, Reply
from tests.gateway_fixtures import ADMIN_KEY, UPSTREAM_KEY, RunningGateway, start_gateway

CREATED = 1_713_833_628
REVISED = "A fluffy orange cat sitting on a windowsill, watercolour"
_GEMINI_PATH = re.compile(r"/v1beta/models/([^/:]+):generateContent")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (255, 128, 0)) -> bytes:
    """A valid RGB PNG of one colour (signature, IHDR, IDAT, IEND)."""
    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(row * height)) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


PNG = make_png()
PNG_B64 = base64.b64encode(PNG).decode()


@dataclass
class ImageCall:
    """A request the fake saw."""

    provider: str
    method: str
    path: str
    """The path after the provider prefix, as sent (percent-encoding kept)."""
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


class FakeImageApis(LoopbackServer):
    """The server; ``url(name)`` is the root of one provider's routes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[ImageCall] = []
        self.scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self.files_served = 0

    def url(self, name: str) -> str:
        return f"{self.root}/{name}"

    def reset(self) -> None:
        self.calls.clear()
        self.scripts.clear()
        self.files_served = 0

    def push(self, name: str, *replies: Reply) -> None:
        self.scripts[name].extend(replies)

    def calls_to(self, name: str) -> list[ImageCall]:
        return [call for call in self.calls if call.provider == name]

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle)  # prompts may hold newlines
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.raw_path.partition("?")[0]
        _, provider, rest = raw_path.split("/", 2) if raw_path.count("/") >= 2 else ("", "", "")
        if provider == "files":
            self.files_served += 1
            return web.Response(body=PNG, content_type="image/png")
        call = ImageCall(
            provider=provider,
            method=request.method,
            path="/" + rest,
            query=dict(parse_qsl(request.query_string)),
            headers=dict(request.headers),
            body=await request.read(),
        )
        self.calls.append(call)
        script = self.scripts.get(provider)
        if script:
            return _scripted(script.popleft())
        if call.path == "/v1/images/generations" and call.method == "POST":
            return self._openai(call)
        if call.path.startswith("/image/") and call.method == "GET":
            return web.Response(body=PNG, content_type="image/png")
        if _GEMINI_PATH.fullmatch(call.path) and call.method == "POST":
            return web.json_response(gemini_answer())
        return web.json_response({"error": {"message": f"no route {call.path}"}}, status=404)

    def _openai(self, call: ImageCall) -> web.Response:
        body = call.json()
        count = body.get("n") or 1
        if body.get("response_format") == "b64_json":
            data = [{"b64_json": PNG_B64, "revised_prompt": REVISED} for _ in range(count)]
        else:
            data = [{"url": f"{self.root}/files/image-{i}.png", "revised_prompt": REVISED} for i in range(count)]
        return web.json_response({"created": CREATED, "data": data})


def _scripted(reply: Reply) -> web.Response:
    body = reply.raw_body if reply.raw_body is not None else json.dumps(reply.json_body).encode()
    return web.Response(status=reply.status, body=body, content_type=reply.content_type, headers=reply.headers)


def gemini_answer(*, data: str = PNG_B64, text: str = "Here is your cat.", with_image: bool = True) -> dict[str, Any]:
    """A generateContent answer with a text part and an inline PNG, as Gemini's image models answer."""
    parts: list[dict[str, Any]] = [{"text": text}]
    if with_image:
        parts.append({"inlineData": {"mimeType": "image/png", "data": data}})
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 1290, "totalTokenCount": 1297},
        "modelVersion": "gemini-2.5-flash-image",
        "responseId": "mXbnaKmBK8TJz7IP0Ya9wAs",
    }


def gpt_image_answer(count: int = 1) -> dict[str, Any]:
    """A GPT image model's answer: base64 only, with usage and the output format."""
    return {
        "created": CREATED,
        "background": "opaque",
        "data": [{"b64_json": PNG_B64} for _ in range(count)],
        "output_format": "png",
        "quality": "low",
        "size": "1024x1024",
        "usage": {
            "input_tokens": 12,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": 12},
            "output_tokens": 272,
            "total_tokens": 284,
        },
    }


POLLINATIONS_KEY = "sk_pollinations-secret-0123456789"
GEMINI_KEY = "AIzaSy-fake-gemini-key-0123456789"


def image_routing(fake: FakeImageApis) -> dict[str, Any]:
    """Image providers on the fake: two OpenAI-compatible, Pollinations, Gemini, and one that cannot draw."""

    def openai_provider(name: str, models: list[Any]) -> dict[str, Any]:
        return {
            "name": name,
            "format": "openai",
            "base_url": f"{fake.url(name)}/v1",
            "api_key": UPSTREAM_KEY,
            "models": models,
        }

    image = [{"id": "dall-e-3", "type": "image"}, {"id": "gpt-image-1", "type": "image"}]
    return {
        "providers": [
            openai_provider("oai", [*image, "gpt-4o"]),
            openai_provider("oai2", [{"id": "dall-e-3", "type": "image"}]),
            {
                "name": "polli",
                "format": "openai",
                "base_url": f"{fake.url('polli')}/v1",
                "api_key": POLLINATIONS_KEY,
                "media_api": "pollinations",
                "models": [{"id": "flux", "type": "image"}],
            },
            {
                "name": "gem",
                "format": "gemini",
                "base_url": fake.url("gem"),
                "api_key": GEMINI_KEY,
                "models": [{"id": "gemini-2.5-flash-image", "type": "image"}],
            },
            # A provider whose API draws no images (Anthropic's has no media API).
            {
                "name": "anth",
                "format": "anthropic",
                "base_url": fake.url("anth"),
                "api_key": UPSTREAM_KEY,
                "models": [{"id": "claude-canvas", "type": "image"}],
            },
        ],
        "aliases": {"painter": "polli/flux"},
        "fallbacks": {"polli/flux": ["gem/gemini-2.5-flash-image"]},
    }


def image_gateway(apis: FakeImageApis, data_dir: Path) -> RunningGateway:
    """A gateway in front of the fake (which hands out loopback URLs: fetching them needs private addresses)."""
    return start_gateway(image_routing(apis), data_dir, image_fetch_private=True)


def reset_for_test(apis: FakeImageApis, gateway: RunningGateway) -> FakeImageApis:
    """Forget earlier calls, and close any breaker an earlier test opened."""
    apis.reset()
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        assert admin.post("/api/resilience/reset", json={}).status_code == 200
    return apis
