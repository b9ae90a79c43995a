"""OpenAI Chat Completions: the relay's stream tap, usage, upstream error parsing and error rendering."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyroute import errors
from polyroute.core.messages import Usage
from polyroute.errors import (
    GatewayError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamRateLimitError,
    UpstreamServerError,
)
from polyroute.wire.openai_chat.errors import parse_error, render_error, render_stream_error
from polyroute.wire.openai_chat.relay import MAX_INSPECTED_LINE_BYTES, StreamTap, drop_usage_chunk, parse_usage
from polyroute.wire.upstream_errors import MAX_ERROR_MESSAGE_CHARS

MODEL = "gpt-4o-2024-08-06"
USAGE: dict[str, Any] = {
    "prompt_tokens": 19,
    "completion_tokens": 9,
    "total_tokens": 28,
    "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 2, "audio_tokens": 0},
}
EXPECTED_USAGE = Usage(input_tokens=19, output_tokens=9, cache_read_tokens=4, reasoning_tokens=2)


def chunk(delta: dict[str, Any], finish: str | None = None, *, model: str = MODEL, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion.chunk",
        "created": 1731000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


EVENTS = [
    chunk({"role": "assistant", "content": "", "refusal": None}, usage=None),
    chunk({"content": "Héllo ✓ — "}, usage=None, model="ignored-later-model"),
    chunk({"content": '"usage":{ not a key'}, usage=None),
    chunk({}, "stop", usage=None),
    {**chunk({}), "choices": [], "usage": USAGE},
]


def sse(events: list[Any], *, spaced: bool = False, done: bool = True, prelude: bytes = b"") -> bytes:
    """An SSE body; ``spaced`` serialises like Python's json (``"key": value``), as several servers do."""

    def dump(event: Any) -> bytes:
        return json.dumps(event, ensure_ascii=False).encode() if spaced else orjson.dumps(event)

    body = prelude + b"".join(b"data: " + dump(event) + b"\n\n" for event in events)
    return body + (b"data: [DONE]\n\n" if done else b"")


STREAMS = {
    "compact": sse(EVENTS),
    "spaced": sse(EVENTS, spaced=True),
    "crlf": sse(EVENTS).replace(b"\n", b"\r\n"),
    "comments": sse(EVENTS, prelude=b": OPENROUTER PROCESSING\n\n: ping\n\n"),
}


def tapped(*pieces: bytes) -> tuple[str | None, Usage | None, bool, bool]:
    tap = StreamTap()
    for piece in pieces:
        tap.feed(piece)
    return tap.model, tap.usage, tap.is_done, tap.is_finished


# StreamTap


@pytest.mark.parametrize("name", list(STREAMS))
def test_stream_tap_whole_stream_reads_model_usage_and_end(name: str) -> None:
    assert tapped(STREAMS[name]) == (MODEL, EXPECTED_USAGE, True, True)


@pytest.mark.parametrize("name", list(STREAMS))
def test_stream_tap_split_at_every_byte_matches_whole(name: str) -> None:
    stream = STREAMS[name]
    whole = tapped(stream)

    for at in range(len(stream) + 1):
        assert tapped(stream[:at], stream[at:]) == whole, at


@pytest.mark.parametrize("name", list(STREAMS))
def test_stream_tap_one_byte_at_a_time_matches_whole(name: str) -> None:
    stream = STREAMS[name]

    assert tapped(*(stream[i : i + 1] for i in range(len(stream)))) == tapped(stream)


def _pieces(stream: bytes, cuts: list[int]) -> Iterator[bytes]:
    edges = [0, *sorted(cuts), len(stream)]
    return (stream[a:b] for a, b in zip(edges, edges[1:], strict=False))


@given(name=st.sampled_from(sorted(STREAMS)), data=st.data())
def test_stream_tap_random_rechunking_matches_whole(name: str, data: st.DataObject) -> None:
    stream = STREAMS[name]
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=40))

    assert tapped(*_pieces(stream, cuts)) == tapped(stream)


@given(
    events=st.lists(
        st.sampled_from(
            [
                chunk({"content": "a\u00e9\u4e2d\U0001f600"}, usage=None),
                chunk({}, "length"),
                {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}},
                {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
                "not json",
            ]
        ),
        max_size=8,
    ),
    spaced=st.booleans(),
    crlf=st.booleans(),
    done=st.booleans(),
    data=st.data(),
)
def test_stream_tap_random_streams_rechunked_match_whole(
    events: list[Any], spaced: bool, crlf: bool, done: bool, data: st.DataObject
) -> None:
    stream = sse(events, spaced=spaced, done=done)
    if crlf:
        stream = stream.replace(b"\n", b"\r\n")
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30))

    assert tapped(*_pieces(stream, cuts)) == tapped(stream)


def test_stream_tap_model_comes_from_the_first_event_only() -> None:
    assert tapped(sse([chunk({}, model="first")]), sse([chunk({}, model="second")])) == ("first", None, True, False)


def test_stream_tap_first_event_without_model_gives_empty_model() -> None:
    assert tapped(b'data: {"choices":[]}\n\n', sse([chunk({})]))[0] == ""


def test_stream_tap_first_event_not_json_gives_empty_model() -> None:
    assert tapped(b"data: {broken\n\n", sse([chunk({})]))[0] == ""


def test_stream_tap_model_waits_for_a_data_line() -> None:
    tap = StreamTap()
    tap.feed(b": keep-alive\n\nevent: ping\n")
    assert tap.model is None

    tap.feed(sse([chunk({})]))

    assert tap.model == MODEL


def test_stream_tap_incomplete_line_is_not_inspected() -> None:
    stream = sse(EVENTS, done=False) + b"data: [DONE]"

    assert tapped(stream)[2] is False
    assert tapped(stream, b"\n")[2] is True


def test_stream_tap_nothing_fed_has_nothing() -> None:
    assert tapped() == (None, None, False, False)
    assert tapped(b"") == (None, None, False, False)


def test_stream_tap_null_usage_chunks_are_ignored() -> None:
    assert tapped(sse(EVENTS[:4]))[1] is None


def test_stream_tap_null_usage_after_usage_keeps_usage() -> None:
    assert tapped(sse([*EVENTS, chunk({}, usage=None)]))[1] == EXPECTED_USAGE


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
def test_stream_tap_last_usage_wins(spaced: bool) -> None:
    first = {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    last = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}}

    assert tapped(sse([first, last], spaced=spaced))[1] == Usage(input_tokens=5, output_tokens=7)
    assert tapped(sse([first], spaced=spaced), sse([last], spaced=spaced))[1] == Usage(input_tokens=5, output_tokens=7)


def test_stream_tap_unparseable_usage_line_keeps_earlier_usage() -> None:
    good = sse([{"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}], done=False)

    usage = tapped(good + b'data: {"usage":{"prompt_tokens": 9\n\n')[1]

    assert usage == Usage(input_tokens=1, output_tokens=2)


def test_stream_tap_usage_outside_data_lines_is_ignored() -> None:
    assert tapped(b': {"usage":{"prompt_tokens":1}}\n\n')[1] is None


def test_stream_tap_usage_inside_content_text_is_ignored() -> None:
    assert tapped(sse([chunk({"content": '{"usage":{"prompt_tokens":1}}'})]))[1] is None


def test_stream_tap_null_finish_reason_is_not_finished() -> None:
    assert tapped(sse([chunk({"content": "hi"})], done=False))[3] is False


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
@pytest.mark.parametrize("reason", ["stop", "length", "tool_calls", "content_filter"])
def test_stream_tap_finish_reason_marks_finished(reason: str, spaced: bool) -> None:
    assert tapped(sse([chunk({}, reason)], spaced=spaced, done=False))[2:] == (False, True)


def test_stream_tap_done_text_inside_content_is_not_done() -> None:
    assert (
        tapped(sse([chunk({"content": "data: [DONE]"}), chunk({"content": "x\ndata: [DONE]"})], done=False))[2] is False
    )


def test_stream_tap_done_without_finish_reason() -> None:
    assert tapped(b"data: [DONE]\n\n")[2:] == (True, False)


# parse_usage


def test_parse_usage_reads_counts_and_details() -> None:
    assert parse_usage({"usage": USAGE}) == EXPECTED_USAGE


@pytest.mark.parametrize("body", [{}, {"usage": None}, {"usage": []}, {"usage": 28}], ids=repr)
def test_parse_usage_absent_gives_none(body: dict[str, Any]) -> None:
    assert parse_usage(body) is None


def test_parse_usage_without_details_leaves_them_none() -> None:
    assert parse_usage({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}) == Usage(
        input_tokens=3, output_tokens=4
    )


def test_parse_usage_details_not_objects_are_ignored() -> None:
    usage: dict[str, Any] = {"prompt_tokens": 3, "prompt_tokens_details": None, "completion_tokens_details": [1]}

    assert parse_usage({"usage": usage}) == Usage(input_tokens=3)


@pytest.mark.parametrize("value", [True, False, "19", 19.0, None, [19]], ids=repr)
def test_parse_usage_non_integer_counts_are_not_counted(value: Any) -> None:
    usage = {
        "prompt_tokens": value,
        "completion_tokens": value,
        "prompt_tokens_details": {"cached_tokens": value},
        "completion_tokens_details": {"reasoning_tokens": value},
    }

    assert parse_usage({"usage": usage}) == Usage()


def test_parse_usage_zero_is_counted() -> None:
    assert parse_usage({"usage": {"prompt_tokens": 0, "completion_tokens": 0}}) == Usage(
        input_tokens=0, output_tokens=0
    )


# parse_error: status classes

OPENAI_BODY = orjson.dumps(
    {
        "error": {
            "message": "This model's maximum context length is 128000 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
)


@pytest.mark.parametrize("status", [400, 404, 409, 413, 422])
def test_parse_error_client_status_is_bad_request_keeping_details(status: int) -> None:
    error = parse_error(status, OPENAI_BODY, {}, provider="openai")

    assert type(error) is UpstreamBadRequestError
    assert (error.status_code, error.upstream_status) == (status, status)
    assert (error.upstream_type, error.code, error.param) == (
        "invalid_request_error",
        "context_length_exceeded",
        "messages",
    )
    assert error.message == f"openai returned {status}: This model's maximum context length is 128000 tokens."
    assert error.provider == "openai"
    assert error.retryable is False


@pytest.mark.parametrize("status", [401, 403])
def test_parse_error_auth_status_is_auth_error_rendered_502(status: int) -> None:
    body = b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}'

    error = parse_error(status, body, {}, provider="groq")

    assert type(error) is UpstreamAuthError
    assert (error.status_code, error.upstream_status) == (502, status)
    assert error.code == "upstream_auth_failed"
    assert error.upstream_type == "invalid_request_error"
    assert error.retryable is True
    assert render_error(error)[0] == 502


@pytest.mark.parametrize(
    ("headers", "seconds", "header"),
    [
        ({"Retry-After": "7"}, 7.0, "7"),
        ({"retry-after": "1.5"}, 1.5, "2"),
        ({"Retry-After": "0"}, 0.0, "1"),
        ({"Retry-After": "-3"}, 0.0, "1"),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None, None),
        ({"Retry-After": "soon"}, None, None),
        ({"Retry-After": ""}, None, None),
        ({}, None, None),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else None,
)
def test_parse_error_429_is_rate_limit_with_retry_after(
    headers: dict[str, str], seconds: float | None, header: str | None
) -> None:
    body = b'{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}'

    error = parse_error(429, body, headers, provider="openai")

    assert type(error) is UpstreamRateLimitError
    assert (error.status_code, error.upstream_status, error.retryable) == (429, 429, True)
    assert (error.code, error.upstream_type) == ("rate_limit_exceeded", "requests")
    assert error.retry_after_s == seconds
    assert dict(error.headers) == ({"Retry-After": header} if header else {})


def test_parse_error_429_without_code_uses_default_code() -> None:
    assert parse_error(429, b"slow down", {}, provider="p").code == "upstream_rate_limited"


@pytest.mark.parametrize("value", ["inf", "1e400"])
def test_parse_error_429_non_finite_retry_after_is_ignored(value: str) -> None:
    error = parse_error(429, b"{}", {"Retry-After": value}, provider="p")

    assert isinstance(error, UpstreamRateLimitError)
    assert error.retry_after_s is None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
def test_parse_error_server_status_is_server_error_rendered_502(status: int) -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'

    error = parse_error(status, body, {}, provider="anthropic")

    assert type(error) is UpstreamServerError
    assert (error.status_code, error.upstream_status, error.retryable) == (502, status, True)
    assert error.upstream_type == "overloaded_error"
    assert error.message == f"anthropic returned {status}: Overloaded"


# parse_error: body shapes


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error":"model not found"}', "model not found"),
        (b'{"message":"bad temperature"}', "bad temperature"),
        (b'{"detail":"Not Found"}', "Not Found"),
        (b'{"error":{"msg":"short form"}}', "short form"),
        (b'{"error":{"detail":"detail form"}}', "detail form"),
        (b'{"detail":[{"loc":["body","model"],"msg":"field required"}]}', '{"detail":[{"loc":["body","model"],'),
        (b'{"error":{"message":5,"type":"x"}}', '{"message":5,"type":"x"}'),
        (b'{"error":null}', '{"error":null}'),
        (b'["a","b"]', '["a","b"]'),
        (b'"just a string"', "just a string"),
        (b"42", "42"),
        (b"  Upstream exploded\n", "Upstream exploded"),
        (b"<html><body>502 Bad Gateway</body></html>", "<html><body>502 Bad Gateway</body></html>"),
        (b" \r\n ", "(empty body)"),
        (b"caf\xe9 \xff\xfe", "caf\ufffd \ufffd\ufffd"),
        (b'{"error":"caf\xe9"}', '{"error":"caf\ufffd"}'),
    ],
    ids=lambda value: value[:24].decode("latin-1") if isinstance(value, bytes) else None,
)
def test_parse_error_body_shapes_give_a_readable_message(body: bytes, message: str) -> None:
    error = parse_error(400, body, {}, provider="p")

    assert error.message.startswith(f"p returned 400: {message}")


def test_parse_error_empty_body_says_empty_body() -> None:
    assert parse_error(502, b"", {}, provider="p").message == "p returned 502: (empty body)"


def test_parse_error_gemini_shape_integer_code_becomes_text() -> None:
    body = b'{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}'

    error = parse_error(400, body, {}, provider="gemini")

    assert (error.code, error.message) == ("400", "gemini returned 400: API key not valid.")


def test_parse_error_non_text_type_and_code_are_dropped() -> None:
    body = b'{"error":{"message":"m","type":["x"],"code":true,"param":{"a":1}}}'

    error = parse_error(400, body, {}, provider="p")

    assert (error.upstream_type, error.code, error.param) == (None, None, None)


@pytest.mark.parametrize(
    "body",
    [b"x" * 100_000, orjson.dumps({"error": {"message": "y" * 100_000}}), "\u00e9".encode() * 50_000],
    ids=["text", "json", "utf8"],
)
def test_parse_error_huge_body_message_is_capped(body: bytes) -> None:
    error = parse_error(500, body, {}, provider="p")

    assert len(error.message) == MAX_ERROR_MESSAGE_CHARS
    assert error.message.startswith("p returned 500: ")


# render_error and render_stream_error, for every GatewayError subclass


@dataclass(frozen=True)
class Rendered:
    """How one error must render: its status, type, code, param and headers."""

    error: GatewayError
    status: int
    type: str
    code: str | None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


UP, BAD = "upstream_error", "invalid_request_error"
RENDER_CASES: dict[type[GatewayError], Rendered] = {
    type(case.error): case
    for case in [
        Rendered(errors.GatewayError("boom"), 500, "api_error", None),
        Rendered(errors.RequestError("bad"), 400, BAD, None),
        Rendered(errors.InvalidRequestError("empty", param="messages"), 400, BAD, "invalid_request", "messages"),
        Rendered(errors.UnsupportedFeatureError("no top_k", param="top_k"), 400, BAD, "unsupported_feature", "top_k"),
        Rendered(errors.AuthenticationError("no key"), 401, "authentication_error", "invalid_api_key"),
        Rendered(errors.PermissionDeniedError("no"), 403, "permission_error", "permission_denied"),
        Rendered(errors.NotFoundError("no route"), 404, "not_found_error", "not_found"),
        Rendered(errors.ModelNotFoundError("no model", param="model"), 404, BAD, "model_not_found", "model"),
        Rendered(errors.MethodNotAllowedError("GET"), 405, BAD, "method_not_allowed"),
        Rendered(errors.PayloadTooLargeError("big"), 413, BAD, "payload_too_large"),
        Rendered(
            errors.RateLimitedError("slow down", retry_after_s=2.6),
            429,
            "rate_limit_error",
            "rate_limit_exceeded",
            headers={"Retry-After": "3"},
        ),
        Rendered(errors.UpstreamError("x", provider="p"), 502, UP, UP),
        Rendered(errors.UpstreamStatusError("x", provider="p", upstream_status=418), 502, UP, UP),
        Rendered(
            errors.UpstreamBadRequestError(
                "x", provider="p", upstream_status=422, code="bad_param", param="temperature", upstream_type="schema"
            ),
            422,
            "schema",
            "bad_param",
            "temperature",
        ),
        Rendered(errors.UpstreamAuthError("x", provider="p", upstream_status=401), 502, UP, "upstream_auth_failed"),
        Rendered(
            errors.UpstreamRateLimitError("x", provider="p", retry_after_s=0.2),
            429,
            "rate_limit_error",
            "upstream_rate_limited",
            headers={"Retry-After": "1"},
        ),
        Rendered(errors.UpstreamServerError("x", provider="p", upstream_status=503), 502, UP, UP),
        Rendered(errors.UpstreamTimeoutError("x", provider="p"), 504, UP, "upstream_timeout"),
        Rendered(errors.UpstreamConnectionError("x", provider="p"), 502, UP, "upstream_unreachable"),
        Rendered(errors.UpstreamProtocolError("x", provider="p"), 502, UP, "upstream_protocol_error"),
        Rendered(errors.UpstreamEmptyAnswerError("x", provider="p"), 502, UP, "empty_answer"),
        Rendered(
            errors.NoDeploymentAvailableError("all failed"), 503, "service_unavailable_error", "all_models_failed"
        ),
        Rendered(errors.LimiterUnavailableError("redis down"), 503, "service_unavailable_error", "limiter_unavailable"),
    ]
}


def test_render_cases_cover_every_gateway_error_class() -> None:
    defined = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, GatewayError) and cls.__module__ == errors.__name__
    }

    assert defined == set(RENDER_CASES)


@pytest.mark.parametrize("cls", list(RENDER_CASES), ids=lambda cls: cls.__name__)
def test_render_error_gives_status_and_openai_error_body(cls: type[GatewayError]) -> None:
    case = RENDER_CASES[cls]
    error = case.error

    status, body = render_error(error)

    assert status == case.status
    assert body == {"error": {"message": error.message, "type": case.type, "code": case.code, "param": case.param}}
    assert dict(error.headers) == case.headers


@pytest.mark.parametrize("cls", list(RENDER_CASES), ids=lambda cls: cls.__name__)
def test_render_stream_error_is_one_sse_data_event(cls: type[GatewayError]) -> None:
    error = RENDER_CASES[cls].error

    event = render_stream_error(error)

    assert event.startswith(b"data: ")
    assert event.endswith(b"\n\n")
    assert event.count(b"\n") == 2
    assert orjson.loads(event[len(b"data: ") :]) == render_error(error)[1]


def test_render_stream_error_escapes_newlines_in_message() -> None:
    event = render_stream_error(errors.UpstreamProtocolError("line one\nline two\r\n\ndata: [DONE]", provider="p"))

    assert event.count(b"\n") == 2
    assert orjson.loads(event[6:])["error"]["message"] == "line one\nline two\r\n\ndata: [DONE]"


def test_render_error_bad_request_without_upstream_type_uses_class_type() -> None:
    error = UpstreamBadRequestError("x", provider="p", upstream_status=400)

    assert render_error(error) == (
        400,
        {"error": {"message": "x", "type": "invalid_request_error", "code": None, "param": None}},
    )


def test_render_error_parsed_upstream_error_keeps_upstream_fields() -> None:
    status, body = render_error(parse_error(400, OPENAI_BODY, {}, provider="openai"))

    assert status == 400
    assert body["error"] == {
        "message": "openai returned 400: This model's maximum context length is 128000 tokens.",
        "type": "invalid_request_error",
        "code": "context_length_exceeded",
        "param": "messages",
    }


def test_stream_tap_unfinished_line_over_the_cap_is_dropped_not_hoarded() -> None:
    tap = StreamTap()
    for _ in range(3):
        tap.feed(b"x" * (MAX_INSPECTED_LINE_BYTES // 2))
    assert len(tap._partial) <= MAX_INSPECTED_LINE_BYTES
    tap.feed(b'\ndata: {"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}\n\n')
    assert tap.usage is not None
    assert (tap.usage.input_tokens, tap.usage.output_tokens) == (3, 4)


def test_drop_usage_chunk_removes_only_whole_usage_only_events() -> None:
    text = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    usage = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'
    done = b"data: [DONE]\n\n"
    assert drop_usage_chunk(text + usage + done) == text + done
    assert drop_usage_chunk(usage.replace(b"\n\n", b"\r\n\r\n") + done) == done
    spaced = b'data: {"choices": [], "usage": {"prompt_tokens": 3}}\n\n'
    assert drop_usage_chunk(spaced) == b""
    null_usage = b'data: {"choices":[],"usage":null}\n\n'
    assert drop_usage_chunk(null_usage) == null_usage
    cut = usage[:30]
    assert drop_usage_chunk(text + cut) == text + cut
