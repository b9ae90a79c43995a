"""The format matrix's edges: thinking blocks, same-format relay, mid-stream failures, the request log,
strict mode and images given by URL.

Runs on the gateway and fake providers of ``test_format_matrix.py`` (one gateway for the session).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

import anthropic
import httpx
import httpx2
import openai
import pytest

from tests.fake_providers import (
    FORMATS,
    Format,
    golden_bytes,
    golden_reply,
    split_events,
    text_reply,
)
from tests.fakes import Reply, wait_for_log_row
from tests.gateway_fixtures import ADMIN_KEY, RunningGateway, start_gateway
from tests.integration import test_format_matrix as base
from tests.integration.test_format_matrix import (
    ANSWER,
    CLIENTS,
    PROMPT,
    UPSTREAM_MODELS,
    Clients,
    Matrix,
    matrix_routing,
    routed,
    text_of,
)

# The shared session gateway, its clients, and the per-test reset of the fakes.
matrix = base.matrix
sdks = base.sdks
fresh_fakes = base.fresh_fakes

AUTH: Final[dict[str, dict[str, str]]] = {
    "openai": {"Authorization": f"Bearer {ADMIN_KEY}"},
    "responses": {"Authorization": f"Bearer {ADMIN_KEY}"},
    "anthropic": {"x-api-key": ADMIN_KEY, "anthropic-version": "2023-06-01"},
    "gemini": {"x-goog-api-key": ADMIN_KEY},
    "ollama": {"Authorization": f"Bearer {ADMIN_KEY}"},
}
"""Each client API's own way of presenting the gateway key."""
USER_TURN: Final = [{"role": "user", "content": PROMPT}]


@pytest.fixture
def plain_http(matrix: Matrix) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=matrix.gateway.url, timeout=15) as http:
        yield http


# --- Anthropic extended thinking -------------------------------------------------------------------------------------

GOLDEN_SIGNATURE: Final = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."
GOLDEN_THINKING: Final = (
    "I need to find the GCD of 1071 and 462 using the Euclidean algorithm.\n\n1071 = 2 × 462 + 147"
    "\n462 = 3 × 147 + 21\n147 = 7 × 21 + 0\nThe remainder is 0, so GCD(1071, 462) = 21."
)
GOLDEN_TEXT: Final = "The greatest common divisor of 1071 and 462 is **21**."
HISTORY_SIGNATURE: Final = "ErUBCkYIBRgCIkDs0RmaAsigNaTuReFrOmAnThRoPiC0123456789abcdef"


def with_usage(events: list[bytes], input_tokens: int, output_tokens: int) -> list[bytes]:
    """Anthropic SSE events with the ``usage`` the API puts on message_start and message_delta.

    The documented thinking transcript leaves both out; the API always sends them, and the SDK reads them.
    """
    out = []
    for event in events:
        head, _, data = event.decode().partition("data: ")
        payload = json.loads(data)
        if payload["type"] == "message_start":
            payload["message"]["usage"] = {"input_tokens": input_tokens, "output_tokens": 1}
        elif payload["type"] == "message_delta":
            payload["usage"] = {"output_tokens": output_tokens}
        out.append(f"{head}data: {json.dumps(payload)}\n\n".encode())
    return out


def test_anthropic_thinking_stream_keeps_block_and_signature(matrix: Matrix, sdks: Clients) -> None:
    fake = matrix.fakes["anthropic"]
    golden = golden_reply("anthropic", "stream_thinking.sse")
    fake.push(Reply(events=with_usage(golden.events or [], 48, 131), content_type=golden.content_type))
    with sdks.anthropic.messages.stream(
        model=routed("anthropic"),
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "What is the GCD of 1071 and 462?"}],
    ) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]
    thinking, text = final.content
    assert thinking.type == "thinking" and text.type == "text"
    assert (thinking.thinking, thinking.signature) == (GOLDEN_THINKING, GOLDEN_SIGNATURE)
    assert text.text == GOLDEN_TEXT
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (48, 131)
    sent = fake.received[-1].json()
    assert (sent["model"], sent["stream"]) == ("claude-opus-4-6", True)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}


def sent_turns(fmt: Format, body: dict[str, Any]) -> list[tuple[str, str]]:
    """``(role, text)`` of each turn of a ``fmt`` request body, in the format's own role names."""
    if fmt == "gemini":
        return [(content["role"], text_of(content)) for content in body["contents"]]
    return [(message["role"], text_of(message["content"])) for message in body["messages"]]


@pytest.mark.parametrize(
    ("upstream", "assistant"), [("openai", "assistant"), ("gemini", "model"), ("ollama", "assistant")]
)
def test_anthropic_thinking_history_is_dropped_not_forged(
    upstream: Format, assistant: str, matrix: Matrix, sdks: Clients
) -> None:
    fake = matrix.fakes[upstream]
    fake.push(text_reply(upstream, "6.", input_tokens=40, output_tokens=2))
    thinking: Any = {"type": "thinking", "thinking": "Euclid: 1071 = 2 x 462 + 147 ...", "signature": HISTORY_SIGNATURE}
    raw = sdks.anthropic.messages.with_raw_response.create(
        model=routed(upstream),
        max_tokens=256,
        messages=[
            {"role": "user", "content": "GCD of 1071 and 462?"},
            {"role": "assistant", "content": [thinking, {"type": "text", "text": "21."}]},
            {"role": "user", "content": "And of 12 and 18?"},
        ],
    )
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == "6."
    assert (message.usage.input_tokens, message.usage.output_tokens) == (40, 2)
    received = fake.received[-1]
    assert sent_turns(upstream, received.json()) == [
        ("user", "GCD of 1071 and 462?"),
        (assistant, "21."),
        ("user", "And of 12 and 18?"),
    ]
    assert HISTORY_SIGNATURE.encode() not in received.body and b"Euclid" not in received.body
    assert b"thought" not in received.body and b"thinking" not in received.body
    row = wait_for_log_row(matrix.gateway.database, raw.headers["x-request-id"])
    assert (row["client_format"], row["upstream_format"], row["dropped_fields"]) == ("anthropic", upstream, "reasoning")


# --- same-format relay -----------------------------------------------------------------------------------------------


def test_anthropic_relay_forwards_body_and_answer_bytes_unchanged(matrix: Matrix) -> None:
    fake = matrix.fakes["anthropic"]
    sent: list[bytes] = []
    http = httpx2.Client(event_hooks={"request": [lambda request: sent.append(request.read())]}, timeout=15)
    with anthropic.Anthropic(base_url=matrix.gateway.url, api_key=ADMIN_KEY, max_retries=0, http_client=http) as sdk:
        fake.push(golden_reply("anthropic", "response_text.json"))
        raw = sdk.messages.with_raw_response.create(
            model=routed("anthropic"),
            max_tokens=128,
            system="Be brief.",
            messages=[{"role": "user", "content": PROMPT}],
            metadata={"user_id": "u1"},
            extra_body={"service_tier": "auto", "x_trace": {"span": "abc", "sampled": [1, 0]}},
        )
    golden = golden_bytes("anthropic", "response_text.json")
    assert raw.http_response.content == golden
    client_body = json.loads(sent[-1])
    received = fake.received[-1].json()
    assert received == {**client_body, "model": "claude-opus-4-6"}
    assert received["metadata"] == {"user_id": "u1"}
    assert (received["service_tier"], received["x_trace"]) == ("auto", {"span": "abc", "sampled": [1, 0]})
    row = wait_for_log_row(matrix.gateway.database, raw.headers["x-request-id"])
    assert (row["client_format"], row["upstream_format"], row["dropped_fields"]) == ("anthropic", "anthropic", None)
    usage = json.loads(golden)["usage"]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage["input_tokens"], usage["output_tokens"])


def test_anthropic_relay_stream_bytes_unchanged(matrix: Matrix, plain_http: httpx.Client) -> None:
    fake = matrix.fakes["anthropic"]
    fake.push(golden_reply("anthropic", "stream_tool_use.sse"))
    body = {
        "model": routed("anthropic"),
        "max_tokens": 128,
        "stream": True,
        "messages": [{"role": "user", "content": PROMPT}],
        "metadata": {"user_id": "u1"},
        "service_tier": "auto",
    }
    with plain_http.stream("POST", "/v1/messages", headers=AUTH["anthropic"], json=body) as answer:
        data = b"".join(answer.iter_raw())
    assert answer.status_code == 200
    assert data == golden_bytes("anthropic", "stream_tool_use.sse")
    assert fake.received[-1].json() == {**body, "model": "claude-opus-4-6"}


# --- mid-stream failures ---------------------------------------------------------------------------------------------

CUT_AFTER: Final[dict[Format, int]] = {"openai": 2, "anthropic": 4, "gemini": 1, "ollama": 1}
"""Events to send before dropping the connection: each format's first text delta, and no more."""
FIRST_PIECE: Final = "Sunny and "
"""The text of that first delta (``text_reply`` cuts ``ANSWER`` into three pieces)."""


def midstream_openai(sdks: Clients, url: str, model: str) -> tuple[str, dict[str, Any]]:
    del url
    text = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in sdks.openai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPT}], stream=True
        ):
            text += "".join(choice.delta.content or "" for choice in chunk.choices)
    # In-band: a plain APIError from a `data: {"error": ...}` event, not a status error from an HTTP answer.
    assert not isinstance(caught.value, openai.APIStatusError), caught.value
    assert isinstance(caught.value.body, dict)
    return text, caught.value.body


def midstream_anthropic(sdks: Clients, url: str, model: str) -> tuple[str, dict[str, Any]]:
    del url
    text = ""
    with pytest.raises(anthropic.APIStatusError) as caught:
        messages: Any = [{"role": "user", "content": PROMPT}]
        with sdks.anthropic.messages.stream(model=model, max_tokens=64, messages=messages) as stream:
            for piece in stream.text_stream:
                text += piece
    assert caught.value.status_code == 200  # an `event: error` inside the stream, not an HTTP error answer
    assert isinstance(caught.value.body, dict)
    return text, caught.value.body


def midstream_responses(sdks: Clients, url: str, model: str) -> tuple[str, dict[str, Any]]:
    del url
    events = list(sdks.openai.responses.create(model=model, input=PROMPT, stream=True))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    last = events[-1]
    assert last.type == "response.failed"
    assert last.response.status == "failed" and last.response.error is not None
    return text, last.response.error.model_dump(exclude_none=True)


def midstream_gemini(sdks: Clients, url: str, model: str) -> tuple[str, dict[str, Any]]:
    del sdks
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
    endpoint = f"{url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
    with httpx.stream("POST", endpoint, headers=AUTH["gemini"], json=body, timeout=15) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[5:]) for line in answer.iter_lines() if line.startswith("data:")]
    text = "".join(
        part.get("text", "")
        for event in events
        for cand in event.get("candidates", [])
        for part in cand["content"]["parts"]
    )
    assert all("error" not in event for event in events[:-1])
    return text, events[-1]


def midstream_ollama(sdks: Clients, url: str, model: str) -> tuple[str, dict[str, Any]]:
    del sdks
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    with httpx.stream("POST", f"{url}/api/chat", headers=AUTH["ollama"], json=body, timeout=15) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in answer.iter_lines() if line]
    assert all(line["done"] is False for line in lines[:-1])
    return "".join(line["message"]["content"] for line in lines[:-1]), lines[-1]


MIDSTREAM: Final[dict[str, Callable[[Clients, str, str], tuple[str, dict[str, Any]]]]] = {
    "openai": midstream_openai,
    "anthropic": midstream_anthropic,
    "responses": midstream_responses,
    "gemini": midstream_gemini,
    "ollama": midstream_ollama,
}


def client_error(client: str, message: str, code: str) -> dict[str, Any]:
    """The in-band error a translated stream ends with, in each client format (``code`` in OpenAI's vocabulary)."""
    if client == "openai":
        return {"message": message, "type": "upstream_error", "code": code, "param": None}
    if client == "anthropic":
        return {"type": "error", "error": {"type": "api_error", "message": message}}
    if client == "responses":
        return {"code": "server_error", "message": message}
    if client == "gemini":
        return {"error": {"code": 502, "message": message, "status": "UNAVAILABLE"}}
    return {"error": message}


@pytest.mark.parametrize("upstream", FORMATS)
@pytest.mark.parametrize("client", CLIENTS)
def test_midstream_disconnect_is_an_in_band_error(client: str, upstream: Format, matrix: Matrix, sdks: Clients) -> None:
    fake = matrix.fakes[upstream]
    reply = text_reply(upstream, ANSWER, stream=True, model=UPSTREAM_MODELS[upstream])
    reply.cut_after = CUT_AFTER[upstream]
    fake.push(reply)
    text, error = MIDSTREAM[client](sdks, matrix.gateway.url, routed(upstream))
    assert text == FIRST_PIECE
    assert error == client_error(client, f"{upstream}-fake sent a truncated answer", "upstream_unreachable")


def test_midstream_failure_is_logged(matrix: Matrix, plain_http: httpx.Client) -> None:
    reply = text_reply("gemini", ANSWER, stream=True, input_tokens=25, output_tokens=7)
    reply.cut_after = CUT_AFTER["gemini"]
    matrix.fakes["gemini"].push(reply)
    body = {"model": routed("gemini"), "max_tokens": 64, "stream": True, "messages": USER_TURN}
    answer = plain_http.post("/v1/messages", headers=AUTH["anthropic"], json=body)
    assert answer.status_code == 200
    assert answer.text.endswith(
        'event: error\ndata: {"type":"error","error":{"type":"api_error",'
        '"message":"gemini-fake sent a truncated answer"}}\n\n'
    )
    row = wait_for_log_row(matrix.gateway.database, answer.headers["x-request-id"])
    assert {key: row[key] for key in ("client_format", "upstream_format", "status", "error_code", "is_stream")} == {
        "client_format": "anthropic",
        "upstream_format": "gemini",
        "status": 502,
        "error_code": "upstream_unreachable",
        "is_stream": 1,
    }


OPENAI_STREAM_ERROR: Final = {
    "message": "The server had an error while processing your request. Sorry about that!",
    "type": "server_error",
    "param": None,
    "code": None,
}
UPSTREAM_ERROR_MESSAGES: Final[dict[Format, str]] = {
    "openai": f"openai-fake returned 500: {OPENAI_STREAM_ERROR['message']}",
    "anthropic": "anthropic-fake returned 529: Overloaded",
    "ollama": "ollama-fake stream error: an error was encountered while running the model",
}
"""How the gateway words each upstream's in-band error (Anthropic's ``overloaded_error`` is its HTTP 529)."""
RELAYED_ERRORS: Final[dict[str, dict[str, Any]]] = {
    "openai": OPENAI_STREAM_ERROR,
    "anthropic": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    "ollama": {"error": "an error was encountered while running the model"},
}
"""Same-format relays pass the upstream's own error event through."""


def in_band_error_events(upstream: Format) -> tuple[list[bytes], str]:
    """Stream events with some text, then the format's own in-band error event; the text sent before it."""
    if upstream == "ollama":
        return split_events("ollama", golden_bytes("ollama", "stream_error.ndjson")), "Once upon"
    events = text_reply(upstream, ANSWER, stream=True, model=UPSTREAM_MODELS[upstream]).events or []
    if upstream == "anthropic":
        error_event = split_events("anthropic", golden_bytes("anthropic", "stream_error.sse"))[-1]
    else:
        error_event = b"data: " + json.dumps({"error": OPENAI_STREAM_ERROR}).encode() + b"\n\n"
    return [*events[: CUT_AFTER[upstream]], error_event], FIRST_PIECE


@pytest.mark.parametrize("upstream", ["openai", "anthropic", "ollama"])
@pytest.mark.parametrize("client", CLIENTS)
def test_upstream_in_band_error_reaches_client_in_its_format(
    client: str, upstream: Format, matrix: Matrix, sdks: Clients
) -> None:
    events, before = in_band_error_events(upstream)
    # One event per read: what the client sees must not depend on how the upstream's bytes were packed.
    matrix.fakes[upstream].push(Reply(events=events, event_delay_s=0.05))
    text, error = MIDSTREAM[client](sdks, matrix.gateway.url, routed(upstream))
    assert text == before
    if client == upstream:
        assert error == RELAYED_ERRORS[client]
    else:
        assert error == client_error(client, UPSTREAM_ERROR_MESSAGES[upstream], "upstream_error")


@pytest.mark.parametrize(
    ("client", "upstream"), [("openai", "anthropic"), ("openai", "ollama"), ("anthropic", "openai")]
)
def test_text_before_in_band_error_in_the_same_read_is_kept(
    client: str, upstream: Format, matrix: Matrix, sdks: Clients
) -> None:
    events, before = in_band_error_events(upstream)
    matrix.fakes[upstream].push(Reply(events=[b"".join(events)]))
    text, error = MIDSTREAM[client](sdks, matrix.gateway.url, routed(upstream))
    assert text == before
    assert error == client_error(client, UPSTREAM_ERROR_MESSAGES[upstream], "upstream_error")


# --- the request log and strict mode ---------------------------------------------------------------------------------

DROPPING: Final[dict[str, tuple[str, Format, dict[str, Any], str]]] = {
    "openai": (
        "/v1/chat/completions",
        "anthropic",
        {"model": routed("anthropic"), "messages": USER_TURN, "response_format": {"type": "json_object"}},
        "response_format.json_object",
    ),
    "responses": (
        "/v1/responses",
        "anthropic",
        {"model": routed("anthropic"), "input": PROMPT, "text": {"format": {"type": "json_object"}}},
        "response_format.json_object",
    ),
    "anthropic": (
        "/v1/messages",
        "openai",
        {"model": routed("openai"), "max_tokens": 64, "top_k": 5, "messages": USER_TURN},
        "top_k",
    ),
    "gemini": (
        f"/v1beta/models/{routed('openai')}:generateContent",
        "openai",
        {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}], "generationConfig": {"topK": 5}},
        "top_k",
    ),
    "ollama": (
        "/api/chat",
        "openai",
        {"model": routed("openai"), "messages": USER_TURN, "stream": False, "options": {"top_k": 5}},
        "top_k",
    ),
}
"""Per client: a request using something the chosen upstream format cannot carry, and that thing's name."""


@pytest.mark.parametrize("client", CLIENTS)
def test_log_row_records_formats_and_dropped_fields(client: str, matrix: Matrix, plain_http: httpx.Client) -> None:
    path, upstream, body, dropped = DROPPING[client]
    fake = matrix.fakes[upstream]
    fake.push(text_reply(upstream, ANSWER, input_tokens=25, output_tokens=7))
    answer = plain_http.post(path, headers=AUTH[client], json=body)
    assert answer.status_code == 200
    assert ANSWER in answer.text
    sent = fake.received[-1].body
    assert b"top_k" not in sent and b"topK" not in sent and b"json_object" not in sent
    row = wait_for_log_row(matrix.gateway.database, answer.headers["x-request-id"])
    assert {key: row[key] for key in ("client_format", "upstream_format", "dropped_fields", "status")} == {
        "client_format": client,
        "upstream_format": upstream,
        "dropped_fields": dropped,
        "status": 200,
    }
    assert (row["provider"], row["prompt_tokens"], row["completion_tokens"]) == (f"{upstream}-fake", 25, 7)


def strict_error(client: str, message: str, param: str) -> dict[str, Any]:
    """A 400 for strict mode in each client's own error shape."""
    if client in ("openai", "responses"):
        return {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": "unsupported_feature",
            }
        }
    if client == "anthropic":
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    if client == "gemini":
        return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
    return {"error": message}


@pytest.mark.parametrize("client", CLIENTS)
def test_strict_mode_refuses_in_the_client_format(client: str, matrix: Matrix, plain_http: httpx.Client) -> None:
    path, upstream, body, dropped = DROPPING[client]
    answer = plain_http.post(path, headers={**AUTH[client], "X-Polyroute-Strict": "true"}, json=body)
    assert answer.status_code == 400
    message = f"the {upstream} format of {upstream}-fake cannot carry: {dropped}"
    assert answer.json() == strict_error(client, message, dropped)
    assert matrix.fakes[upstream].received == []
    row = wait_for_log_row(matrix.gateway.database, answer.headers["x-request-id"])
    assert (row["client_format"], row["status"], row["error_code"]) == (client, 400, "unsupported_feature")


# --- images given by URL ---------------------------------------------------------------------------------------------

PNG_B64: Final = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
"""A 1×1 PNG."""
LOOK: Final = "What is in this picture?"


class ImageServer:
    """A loopback HTTP server answering ``GET /pixel.png`` with a PNG, counting the fetches."""

    def __init__(self) -> None:
        self.fetches: list[str] = []
        png, fetches = base64.b64decode(PNG_B64), self.fetches

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fetches.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self.wfile.write(png)

            def log_message(self, *args: Any) -> None:
                del args

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/pixel.png"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def image_server() -> Iterator[ImageServer]:
    server = ImageServer()
    yield server
    server.stop()


@pytest.fixture
def image(image_server: ImageServer) -> ImageServer:
    image_server.fetches.clear()
    return image_server


def image_question(url: str) -> Any:
    return [
        {"role": "user", "content": [{"type": "text", "text": LOOK}, {"type": "image_url", "image_url": {"url": url}}]}
    ]


def sent_image_turn(fmt: Format, body: dict[str, Any]) -> Any:
    return body["contents"] if fmt == "gemini" else body["messages"]


@pytest.mark.parametrize(
    ("upstream", "fetches", "expected"),
    [
        (
            "gemini",
            1,
            [{"role": "user", "parts": [{"text": LOOK}, {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]}],
        ),
        ("ollama", 1, [{"role": "user", "content": LOOK, "images": [PNG_B64]}]),
        ("anthropic", 0, "url"),
    ],
)
def test_openai_image_url_per_upstream(
    upstream: Format, fetches: int, expected: Any, matrix: Matrix, sdks: Clients, image: ImageServer
) -> None:
    matrix.fakes[upstream].push(text_reply(upstream, "A single pixel."))
    completion = sdks.openai.chat.completions.create(model=routed(upstream), messages=image_question(image.url))
    assert completion.choices[0].message.content == "A single pixel."
    if expected == "url":
        blocks = [{"type": "text", "text": LOOK}, {"type": "image", "source": {"type": "url", "url": image.url}}]
        expected = [{"role": "user", "content": blocks}]
    assert sent_image_turn(upstream, matrix.fakes[upstream].received[-1].json()) == expected
    assert image.fetches == ["/pixel.png"] * fetches


@pytest.fixture(scope="module")
def default_gateway(matrix: Matrix, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A second gateway on the same fakes with default settings (no image fetches from private addresses)."""
    running = start_gateway(matrix_routing(matrix.fakes), tmp_path_factory.mktemp("default-gateway"))
    yield running
    running.stop()


def test_loopback_image_url_is_refused_by_default(
    default_gateway: RunningGateway, matrix: Matrix, image: ImageServer
) -> None:
    body = {"model": routed("gemini"), "messages": image_question(image.url)}
    answer = httpx.post(f"{default_gateway.url}/v1/chat/completions", headers=AUTH["openai"], json=body, timeout=15)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": {
            "message": "images may not be fetched from the address 127.0.0.1",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request",
        }
    }
    assert matrix.fakes["gemini"].received == []
    assert image.fetches == []
