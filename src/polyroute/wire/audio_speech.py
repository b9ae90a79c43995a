"""OpenAI's text-to-speech request (``POST /v1/audio/speech``): validation, the upstream body, the answer's type.

The answer is the audio itself, relayed as it arrives. See: https://platform.openai.com/docs/api-reference/audio/createSpeech
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import orjson

from polyroute.errors import InvalidRequestError
from polyroute.types import JSONObject
from polyroute.wire.fields import fail, opt_float, opt_str, req_str

SPEECH_PATH: Final = "/audio/speech"

SPEECH_MEDIA_TYPES: Final[Mapping[str, str]] = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
"""``response_format`` → the answer's media type (as OpenAI labels it)."""

_STREAM_FORMATS: Final = ("audio", "sse")
_GENERIC_TYPES: Final = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_MIN_SPEED, _MAX_SPEED = 0.25, 4.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechRequest:
    """A validated speech request; ``body`` is the client's JSON, passed on with the upstream's model id."""

    model: str
    response_format: str
    body: JSONObject


def parse_speech_request(payload: JSONObject) -> SpeechRequest:
    """Validate a speech request body.

    Raises:
        InvalidRequestError: a missing or malformed field; ``param`` names it.
    """
    model = req_str(payload, "model", "").strip()
    if not model:
        fail("model", "is required")
    if not req_str(payload, "input", ""):
        fail("input", "must not be empty")
    _check_voice(payload.get("voice"))
    response_format = opt_str(payload, "response_format", "") or "mp3"
    if response_format not in SPEECH_MEDIA_TYPES:
        fail("response_format", f"{response_format[:32]!r} is not one of {', '.join(SPEECH_MEDIA_TYPES)}")
    speed = opt_float(payload, "speed")
    if speed is not None and not _MIN_SPEED <= speed <= _MAX_SPEED:
        fail("speed", f"expected a number from {_MIN_SPEED} to {_MAX_SPEED}")
    opt_str(payload, "instructions", "")
    stream_format = opt_str(payload, "stream_format", "")
    if stream_format is not None and stream_format not in _STREAM_FORMATS:
        fail("stream_format", f"expected one of {', '.join(_STREAM_FORMATS)}")
    return SpeechRequest(model=model, response_format=response_format, body=payload)


def _check_voice(voice: object) -> None:
    # A built-in voice by name, or a custom voice as {"id": "voice_..."}.
    if isinstance(voice, str) and voice.strip():
        return
    if isinstance(voice, dict) and isinstance(voice.get("id"), str) and voice["id"]:
        return
    if voice is None:
        raise InvalidRequestError("voice: is required", param="voice")
    raise InvalidRequestError("voice: expected a voice name or an object with an id", param="voice")


def render_speech_request(request: SpeechRequest, model: str) -> bytes:
    """The upstream's body: the client's, with the upstream's model id."""
    return orjson.dumps({**request.body, "model": model})


def speech_media_type(upstream_type: str, response_format: str) -> str:
    """The answer's media type: the upstream's, unless it gave only a generic one."""
    if upstream_type.lower() in _GENERIC_TYPES:
        return SPEECH_MEDIA_TYPES[response_format]
    return upstream_type
