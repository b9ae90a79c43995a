"""OpenAI Chat Completions relay helpers: what the byte-for-byte relay needs to know about an answer.

Pure translation: no I/O. Spec: https://platform.openai.com/docs/api-reference/chat
Same-format traffic is relayed as bytes; this module supplies what the relay needs to know about it
(usage, the answering model, whether the stream finished) without re-serialising anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import orjson

from polyroute.core.messages import Usage
from polyroute.types import JSONObject, JSONValue

MAX_INSPECTED_LINE_BYTES = 1024 * 1024
"""An unfinished SSE line longer than this is dropped from inspection (the bytes still reach the client)."""

_DONE = b"data: [DONE]"
_LINE_DONE = b"\n" + _DONE
# A non-null finish_reason, as compact and as spaced JSON writes it (two `in` tests per piece, no generator).
_FINISH_COMPACT = b'"finish_reason":"'
_FINISH_SPACED = b'"finish_reason": "'
_USAGE_KEY = b'"usage":'
# Something of the answer itself: a non-empty content, reasoning or refusal string, or a tool call. Quotes inside
# JSON strings are escaped, so the pattern cannot match text that merely quotes these keys.
_CONTENT = re.compile(rb'"(?:content|reasoning_content|reasoning|refusal)"\s*:\s*"[^"]|"tool_calls"\s*:\s*\[\s*\{')


def has_content(answer: Mapping[str, JSONValue]) -> bool:
    """Whether a non-streamed completion says anything: text, reasoning, a refusal or a tool call."""
    choices = answer.get("choices")
    if not isinstance(choices, list):
        return False
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        if message.get("tool_calls") or message.get("function_call"):
            return True
        for key in ("content", "reasoning_content", "reasoning", "refusal"):
            value = message.get(key)
            if value and isinstance(value, str | list):
                return True
    return False


def parse_usage(body: Mapping[str, JSONValue]) -> Usage | None:
    """Read the ``usage`` object of a completion or chunk; None when absent."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else None
    if cached is None:
        cached = _int(usage.get("prompt_cache_hit_tokens"))  # DeepSeek's name for the same count
    return Usage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        cache_read_tokens=cached,
        reasoning_tokens=(
            _int(completion_details.get("reasoning_tokens")) if isinstance(completion_details, dict) else None
        ),
    )


def _int(value: JSONValue | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class StreamTap:
    """Watches an OpenAI SSE byte stream as it is relayed, without parsing every event.

    Only complete lines are inspected; an event split across reads is seen once it is whole. The
    first event is parsed once (for the answering model), and the line holding a non-null
    ``usage`` object is parsed when it appears.
    """

    __slots__ = ("_partial", "has_content", "is_done", "is_finished", "model", "usage")

    def __init__(self) -> None:
        self._partial = b""
        self.model: str | None = None
        self.usage: Usage | None = None
        self.is_done = False
        """``data: [DONE]`` was seen."""
        self.is_finished = False
        """A choice carried a non-null ``finish_reason``."""
        self.has_content = False
        """Text, reasoning, a refusal or a tool call has been seen (the answer is not empty)."""

    def feed(self, data: bytes) -> None:
        """Inspect one piece of the stream as it passes."""
        buf = self._partial + data if self._partial else data
        cut = buf.rfind(b"\n") + 1
        # A line longer than this is relayed but not inspected: no upstream can make the tap hoard memory.
        self._partial = buf[cut:] if len(buf) - cut <= MAX_INSPECTED_LINE_BYTES else b""
        if not cut:
            return
        lines = buf[:cut] if cut < len(buf) else buf
        if self.model is None:
            self._read_model(lines)
        if not self.has_content:
            self.has_content = _CONTENT.search(lines) is not None
        if not self.is_finished:
            self.is_finished = _FINISH_COMPACT in lines or _FINISH_SPACED in lines
        if _USAGE_KEY in lines:
            self._read_usage(lines)
        # Only at the start of a line: inside a JSON string the same text is content, not the marker.
        if lines.startswith(_DONE) or _LINE_DONE in lines:
            self.is_done = True

    def _read_model(self, lines: bytes) -> None:
        start = lines.find(b"data:")
        if start < 0:
            return
        end = lines.find(b"\n", start)
        event = _load_event(lines[start + 5 : end])
        model = event.get("model") if event else None
        self.model = model if isinstance(model, str) else ""

    def _read_usage(self, lines: bytes) -> None:
        at = lines.rfind(_USAGE_KEY)
        while at >= 0:
            value_at = at + len(_USAGE_KEY)
            if lines[value_at : value_at + 2].lstrip()[:1] == b"{":
                start = lines.rfind(b"\n", 0, at) + 1
                end = lines.find(b"\n", at)
                line = lines[start:end]
                if line.startswith(b"data:"):
                    event = _load_event(line[5:])
                    usage = parse_usage(event) if event else None
                    if usage is not None:
                        self.usage = usage
                        return
            at = lines.rfind(_USAGE_KEY, 0, at)


def _load_event(data: bytes) -> JSONObject | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


_EVENT_END = re.compile(rb"(\r?\n\r?\n)")
_EMPTY_CHOICES = (b'"choices":[]', b'"choices": []')
_USAGE_OBJECT = (b'"usage":{', b'"usage": {')


def _is_usage_only(event: bytes) -> bool:
    return (
        event.startswith(b"data:")
        and any(marker in event for marker in _EMPTY_CHOICES)
        and any(marker in event for marker in _USAGE_OBJECT)
    )


def drop_usage_chunk(chunk: bytes) -> bytes:
    """``chunk`` without the complete usage-only events in it (``"choices": []`` and a ``usage`` object).

    For a client that did not ask for usage while the gateway did: the rest of the bytes pass unchanged.
    An event split across reads is left alone (the client then sees one extra, valid chunk).
    """
    pieces = _EVENT_END.split(chunk)
    kept: list[bytes] = []
    for i in range(0, len(pieces) - 1, 2):
        if not _is_usage_only(pieces[i]):
            kept += (pieces[i], pieces[i + 1])
    kept.append(pieces[-1])
    return b"".join(kept)
