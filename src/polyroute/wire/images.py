"""Image generation: OpenAI's ``POST /v1/images/generations`` and the image APIs behind it, as pure translation.

Client side and OpenAI-compatible upstreams: https://platform.openai.com/docs/api-reference/images/create.
Pollinations: ``GET /image/{prompt}`` answering with the image's bytes (https://enter.pollinations.ai/api/docs).
Gemini: ``:generateContent`` with image output (https://ai.google.dev/gemini-api/docs/image-generation).
Images through chat completions (Markdown or an image content part) are rendered here too; see docs/images.md.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import orjson

from polyroute.core.messages import Usage
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.fields import fail, opt_bool, opt_int, opt_str, req_str
from polyroute.wire.gemini import request_path
from polyroute.wire.openai_chat.response import render_usage

MAX_IMAGES: Final = 10
"""The most images one request may ask for (OpenAI's own limit for ``n``)."""
MAX_SIDE_PX: Final = 8192
"""The largest width or height accepted in ``size``."""
ASPECT_RATIOS: Final = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
"""The aspect ratios Gemini's ``imageConfig.aspectRatio`` takes (https://ai.google.dev/api/generate-content#ImageConfig)."""
IMAGE_FORMAT_HEADER: Final = "x-polyroute-image-format"
"""The chat request header asking for the image as a content part instead of Markdown."""

_CARRIED_ELSEWHERE: Final = frozenset({"model", "prompt", "n", "size", "response_format", "stream"})
_SIZE = re.compile(r"(\d{1,5})x(\d{1,5})")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_MARKDOWN_SPECIAL = re.compile(r"([\\\[\]])")
_WHITESPACE = re.compile(r"\s+")
_DATA_URL = re.compile(r"data:(image/[\w.+-]+);base64,([A-Za-z0-9+/=]+)")
# Leading bytes of the formats image APIs answer with, for base64 that comes without a media type.
_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
)


class ImageFormat(StrEnum):
    """How the client wants each image: OpenAI's ``response_format``."""

    URL = "url"
    B64_JSON = "b64_json"


class ChatImageForm(StrEnum):
    """How an image model answers a chat completion (the ``X-Polyroute-Image-Format`` header)."""

    MARKDOWN = "markdown"
    """No header: Markdown ``[![prompt](url)](url)`` as the message's text."""
    URL = "url"
    """An ``image_url`` content part holding the image's URL (a ``data:`` URL when there is none)."""
    B64_JSON = "b64_json"
    """An ``image_url`` content part holding a ``data:`` URL with the image's bytes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageRequest:
    """A validated image generation request."""

    model: str
    """The model name the client asked for."""
    prompt: str
    n: int = 1
    width: int | None = None
    """From ``size``; None when the client left the size to the model (absent or ``auto``)."""
    height: int | None = None
    response_format: ImageFormat | None = None
    """None when the client did not say (an OpenAI-compatible upstream's answer is then returned as it is)."""
    body: JSONObject = field(default_factory=dict)
    """The client's body, sent to OpenAI-compatible upstreams with only ``model`` replaced."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GeneratedImage:
    """One image an upstream drew, by URL, by base64 bytes, or both."""

    url: str | None = None
    data: str | None = None
    """Base64 of the image's bytes (no ``data:`` prefix)."""
    media_type: str | None = None
    revised_prompt: str | None = None

    def has(self, fmt: ImageFormat) -> bool:
        """Whether the image is already in the form ``fmt`` asks for."""
        return (self.url if fmt is ImageFormat.URL else self.data) is not None


def parse_request(body: JSONObject) -> ImageRequest:
    """An ``images/generations`` body → ``ImageRequest``; unknown fields ride along in ``body``.

    Raises:
        InvalidRequestError: a field the gateway relies on is missing or invalid; ``param`` names it.
    """
    model = req_str(body, "model", "")
    if not model or _CONTROL_CHARACTERS.search(model):
        fail("model", "must be a non-empty string without control characters")
    prompt = req_str(body, "prompt", "")
    if not prompt.strip():
        fail("prompt", "must not be empty")
    n = opt_int(body, "n", "")
    if n is not None and not 1 <= n <= MAX_IMAGES:
        fail("n", f"must be between 1 and {MAX_IMAGES}")
    for key in ("quality", "style", "user"):
        opt_str(body, key, "")
    if opt_bool(body, "stream", ""):
        fail("stream", "streamed image generation is not supported; leave it out or set it to false")
    width, height = parse_size(opt_str(body, "size", ""))
    return ImageRequest(
        model=model,
        prompt=prompt,
        n=n or 1,
        width=width,
        height=height,
        response_format=parse_image_format(body.get("response_format")),
        body=body,
    )


def parse_size(size: str | None) -> tuple[int | None, int | None]:
    """``WIDTHxHEIGHT`` → pixels; ``(None, None)`` for no size or ``auto``.

    Raises:
        InvalidRequestError: not ``WIDTHxHEIGHT`` with each side between 1 and ``MAX_SIDE_PX``.
    """
    if size is None or size == "auto":
        return None, None
    match = _SIZE.fullmatch(size)
    if match is None:
        fail("size", "must be WIDTHxHEIGHT in pixels, such as 1024x1024, or auto")
    width, height = int(match[1]), int(match[2])
    if not (1 <= width <= MAX_SIDE_PX and 1 <= height <= MAX_SIDE_PX):
        fail("size", f"width and height must each be between 1 and {MAX_SIDE_PX} pixels")
    return width, height


def parse_image_format(value: JSONValue) -> ImageFormat | None:
    """``response_format`` → ``ImageFormat`` (None when absent or null).

    Raises:
        InvalidRequestError: any other value.
    """
    if value is None:
        return None
    if isinstance(value, str) and value in ImageFormat.__members__.values():
        return ImageFormat(value)
    fail("response_format", "must be url or b64_json")


def dropped_fields(request: ImageRequest) -> list[str]:
    """The client's fields that Pollinations and Gemini cannot carry (all reach OpenAI-compatible upstreams)."""
    return sorted(key for key in request.body if key not in _CARRIED_ELSEWHERE)


# --- OpenAI-compatible upstreams ------------------------------------------------------------------


def render_openai_request(request: ImageRequest, model: str) -> JSONObject:
    """The body for an OpenAI-compatible ``/images/generations``: the client's own, for the upstream's model."""
    return {**request.body, "model": model}


def parse_openai_response(answer: JSONObject) -> list[GeneratedImage]:
    """An OpenAI ``images/generations`` answer → its images.

    Raises:
        ValueError: ``data`` is not a list of images, each with a ``url`` or ``b64_json`` string.
    """
    items = answer.get("data")
    if not isinstance(items, list):
        raise ValueError("the answer has no data list")
    output_format = answer.get("output_format")
    media_type = f"image/{output_format}" if isinstance(output_format, str) and output_format else None
    images: list[GeneratedImage] = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("an item of data is not an object")
        url, data = item.get("url"), item.get("b64_json")
        if not isinstance(url, str) and not isinstance(data, str):
            raise ValueError("an image in data has neither a url nor b64_json string")
        revised = item.get("revised_prompt")
        images.append(
            GeneratedImage(
                url=url if isinstance(url, str) else None,
                data=data if isinstance(data, str) else None,
                media_type=media_type if isinstance(data, str) else None,
                revised_prompt=revised if isinstance(revised, str) else None,
            )
        )
    return images


def parse_openai_usage(answer: JSONObject) -> Usage | None:
    """The token counts GPT image models report (``usage.input_tokens``/``output_tokens``); None if none."""
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        return None
    found = Usage(input_tokens=_count(usage.get("input_tokens")), output_tokens=_count(usage.get("output_tokens")))
    return found if found != Usage() else None


# --- Pollinations -----------------------------------------------------------------------------------


def pollinations_root(base_url: str) -> str:
    """Where Pollinations' image endpoint lives: ``base_url`` without ``/v1``, credentials or query string."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/").removesuffix("/v1"), "", ""))


def pollinations_url(root: str, prompt: str, *, model: str, seed: int, width: int | None, height: int | None) -> str:
    """``GET {root}/image/{prompt}?width=&height=&seed=&model=&nologo=true`` (the prompt quoted whole, ``/`` too)."""
    params: dict[str, str | int] = {}
    if width is not None and height is not None:
        params.update(width=width, height=height)
    params.update(seed=seed, model=model, nologo="true")
    return f"{root}/image/{quote(prompt, safe='')}?{urlencode(params)}"


# --- Gemini -----------------------------------------------------------------------------------------


def gemini_path(model: str) -> str:
    """The ``:generateContent`` path of a Gemini model."""
    return request_path(model, stream=False)


def aspect_ratio(width: int, height: int) -> str:
    """The Gemini aspect ratio nearest to ``width``:``height`` (compared on a log scale)."""
    wanted = math.log(width / height)

    def distance(ratio: str) -> float:
        w, _, h = ratio.partition(":")
        return abs(math.log(int(w) / int(h)) - wanted)

    return min(ASPECT_RATIOS, key=distance)


def render_gemini_request(request: ImageRequest) -> JSONObject:
    """A ``generateContent`` body asking for text and image output; the size as the nearest aspect ratio."""
    config: JSONObject = {"responseModalities": ["TEXT", "IMAGE"]}
    if request.width is not None and request.height is not None:
        config["imageConfig"] = {"aspectRatio": aspect_ratio(request.width, request.height)}
    return {"contents": [{"role": "user", "parts": [{"text": request.prompt}]}], "generationConfig": config}


def parse_gemini_response(answer: JSONObject) -> list[GeneratedImage]:
    """The images among ``candidates[0].content.parts[].inlineData`` (none when the model drew nothing).

    Raises:
        ValueError: the answer has no candidates list.
    """
    candidates = answer.get("candidates")
    if not isinstance(candidates, list):
        raise ValueError("the answer has no candidates")
    first = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    content = first.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    images: list[GeneratedImage] = []
    for part in parts if isinstance(parts, list) else ():
        # The REST API writes camelCase; snake_case is what the protobuf names look like, also accepted.
        inline = (part.get("inlineData") or part.get("inline_data")) if isinstance(part, dict) else None
        if not isinstance(inline, dict):
            continue
        data = inline.get("data")
        media_type = inline.get("mimeType") or inline.get("mime_type")
        if isinstance(data, str) and data and isinstance(media_type, str) and media_type.startswith("image/"):
            images.append(GeneratedImage(data=data, media_type=media_type))
    return images


def parse_gemini_usage(answer: JSONObject) -> Usage | None:
    """``usageMetadata`` → ``Usage``; None when the answer has none."""
    metadata = answer.get("usageMetadata")
    if not isinstance(metadata, dict):
        return None
    found = Usage(
        input_tokens=_count(metadata.get("promptTokenCount")),
        output_tokens=_count(metadata.get("candidatesTokenCount")),
    )
    return found if found != Usage() else None


# --- The client's answer ----------------------------------------------------------------------------


def sniff_media_type(data: str) -> str:
    """The image type of base64 bytes from their first bytes (PNG when unknown)."""
    try:
        head = base64.b64decode(data[:16], validate=True)
    except (binascii.Error, ValueError):
        return "image/png"
    return next((media_type for magic, media_type in _MAGIC if head.startswith(magic)), "image/png")


def data_url(image: GeneratedImage) -> str:
    """A ``data:`` URL of the image's bytes.

    Raises:
        ValueError: the image has no bytes (fetch it first).
    """
    if image.data is None:
        raise ValueError("the image has no data")
    return f"data:{image.media_type or sniff_media_type(image.data)};base64,{image.data}"


def parse_data_url(url: str) -> GeneratedImage | None:
    """The bytes of a base64 ``data:image/...`` URL; None for any other URL."""
    match = _DATA_URL.fullmatch(url)
    return GeneratedImage(url=url, data=match[2], media_type=match[1]) if match else None


def render_image(image: GeneratedImage, fmt: ImageFormat) -> JSONObject:
    """One ``data[]`` item: ``url`` (a ``data:`` URL when the image has only bytes) or ``b64_json``.

    Raises:
        ValueError: ``b64_json`` for an image that has no bytes.
    """
    item: JSONObject = {}
    if fmt is ImageFormat.URL:
        item["url"] = image.url if image.url is not None else data_url(image)
    elif image.data is not None:
        item["b64_json"] = image.data
    else:
        raise ValueError("the image has no data")
    if image.revised_prompt is not None:
        item["revised_prompt"] = image.revised_prompt
    return item


def render_response(
    created: int, images: Sequence[GeneratedImage], fmt: ImageFormat, *, base: JSONObject | None = None
) -> JSONObject:
    """``{"created", "data"}``, on top of ``base`` (an OpenAI-compatible upstream's other fields, such as usage)."""
    return {**(base or {}), "created": created, "data": [render_image(image, fmt) for image in images]}


def _count(value: JSONValue) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- Images through chat completions ----------------------------------------------------------------


def parse_chat_image_form(value: str | None) -> ChatImageForm:
    """The ``X-Polyroute-Image-Format`` header → ``ChatImageForm`` (Markdown when absent).

    Raises:
        InvalidRequestError: a value other than ``url`` or ``b64_json``.
    """
    if value is None:
        return ChatImageForm.MARKDOWN
    if value in (ChatImageForm.URL.value, ChatImageForm.B64_JSON.value):
        return ChatImageForm(value)
    fail("X-Polyroute-Image-Format", "must be url or b64_json")


def parse_chat_request(payload: JSONObject) -> ImageRequest:
    """A chat completion body (already checked for ``model`` and ``messages``) → one image of its last user text.

    Raises:
        InvalidRequestError: ``n`` other than 1, a JSON ``response_format``, or no user text; ``param`` names it.
    """
    if opt_int(payload, "n", "") not in (None, 1):
        fail("n", "an image model answers a chat completion with one image; use POST /v1/images/generations for more")
    response_format = payload.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else response_format
    if kind not in (None, "text"):
        fail("response_format", "an image model answers with an image, not JSON; leave response_format out")
    model = req_str(payload, "model", "")
    prompt = chat_prompt(payload.get("messages"))
    body: JSONObject = {"model": model, "prompt": prompt, "n": 1}
    user = opt_str(payload, "user", "")
    if user is not None:
        body["user"] = user
    return ImageRequest(model=model, prompt=prompt, body=body)


def chat_prompt(messages: JSONValue) -> str:
    """The text of the last user message (its text parts joined by newlines).

    Raises:
        InvalidRequestError: there is no user message, or it has no text.
    """
    found = messages if isinstance(messages, list) else []
    users = [m for m in found if isinstance(m, dict) and m.get("role") == "user"]
    content = users[-1].get("content") if users else None
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        content = "\n".join(t for t in texts if isinstance(t, str))
    if not isinstance(content, str) or not content.strip():
        fail("messages", "the last user message must have text: the prompt of the image")
    return content


def markdown_image(prompt: str, url: str) -> str:
    """``[![prompt](url)](url)``: the prompt on one line, its backslashes and square brackets escaped."""
    alt = _MARKDOWN_SPECIAL.sub(r"\\\1", _WHITESPACE.sub(" ", prompt).strip())
    target = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return f"[![{alt}]({target})]({target})"


def chat_content(prompt: str, image: GeneratedImage, form: ChatImageForm) -> str | list[JSONValue]:
    """The assistant message's ``content``: Markdown text, or a list holding one ``image_url`` part."""
    if form is ChatImageForm.MARKDOWN:
        return markdown_image(prompt, image.url if image.url is not None else data_url(image))
    url = image.url if form is ChatImageForm.URL and image.url is not None else data_url(image)
    return [{"type": "image_url", "image_url": {"url": url}}]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatImageAnswer:
    """A chat completion carrying an image."""

    completion_id: str
    created: int
    model: str
    """The model that drew the image."""
    content: str | list[JSONValue]
    """From ``chat_content``."""
    usage: Usage | None = None
    """Token counts when the upstream reported them."""


def render_chat_completion(answer: ChatImageAnswer) -> JSONObject:
    """A ``chat.completion`` whose assistant message carries the image; ``usage`` only when reported."""
    message: JSONObject = {"role": "assistant", "content": answer.content, "refusal": None}
    choice: JSONObject = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    body: JSONObject = {**_chat_head(answer, "chat.completion"), "choices": [choice]}
    usage = render_usage(answer.usage or Usage())
    if usage is not None:
        body["usage"] = usage
    return body


def render_chat_stream(answer: ChatImageAnswer, *, include_usage: bool) -> bytes:
    """The same answer as SSE: one chunk with the content, one with ``finish_reason``, usage if asked, ``[DONE]``."""
    head = _chat_head(answer, "chat.completion.chunk")

    def frame(fields: JSONObject) -> bytes:
        return b"data: " + orjson.dumps({**head, **fields}) + b"\n\n"

    def choice(delta: JSONObject, finish_reason: str | None) -> JSONObject:
        return {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

    frames = [frame(choice({"role": "assistant", "content": answer.content}, None)), frame(choice({}, "stop"))]
    usage = render_usage(answer.usage or Usage()) if include_usage else None
    if usage is not None:
        frames.append(frame({"choices": [], "usage": usage}))
    frames.append(b"data: [DONE]\n\n")
    return b"".join(frames)


def _chat_head(answer: ChatImageAnswer, kind: str) -> JSONObject:
    return {"id": answer.completion_id, "object": kind, "created": answer.created, "model": answer.model}
