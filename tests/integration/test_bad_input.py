"""Bad requests, bad credentials and bad upstreams: every failure is an OpenAI-shaped error.

Errors have the shape ``{"error": {"message", "type", "code", "param"}}`` and the SDK raises its own
exception class for the status. Raw ``httpx`` is used only for what the SDK cannot send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes import FakeUpstream, Reply, completion, error_body
from tests.gateway_fixtures import (
    ADMIN_KEY,
    UPSTREAM_KEY,
    RunningGateway,
    free_port,
    mock_routing,
    start_gateway,
)

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]
MAX_BODY = 2048
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def edge(fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway with a small body limit, a provider on a closed port, and one whose model list is unknown."""
    routing = mock_routing(fake_upstream_server)
    dead_url = f"http://127.0.0.1:{free_port()}/v1"
    routing["providers"] += [
        {"name": "dead", "format": "openai", "base_url": dead_url, "api_key": UPSTREAM_KEY, "models": ["m1"]},
        {"name": "open", "format": "openai", "base_url": fake_upstream_server.base_url, "models_url": dead_url},
    ]
    running = start_gateway(routing, tmp_path_factory.mktemp("edge"), max_body_bytes=MAX_BODY)
    yield running
    running.stop()


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The ``error`` object of an OpenAI-shaped error response, after checking its shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert "Traceback" not in response.text and 'File "' not in response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "code", "param"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def sdk_error(caught: pytest.ExceptionInfo[openai.APIStatusError]) -> dict[str, Any]:
    """The error object the SDK parsed, after checking the raw body is clean and OpenAI-shaped."""
    return error_of(caught.value.response, caught.value.status_code)


def post(http: httpx.Client, body: bytes) -> httpx.Response:
    return http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})


# --- malformed bodies -----------------------------------------------------------------------------


def test_chat_malformed_json_is_rejected_naming_the_problem(raw: httpx.Client, fake_upstream: FakeUpstream) -> None:
    error = error_of(post(raw, b'{"model": "mock/gpt-4o", "messages": [}'), 400)

    assert error["message"].startswith("request body is not valid JSON")
    assert "column" in error["message"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_request")
    assert fake_upstream.received == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'[{"model": "mock/gpt-4o"}]', "must be a JSON object, not list"),
        (b'"just a string"', "must be a JSON object, not str"),
        (b"", "request body is empty"),
        (b'{"model": "mock/gpt-4o", "messages": "\xff\xfe hi"}', "not valid UTF-8"),
        (b'{"model": "mock/gpt-4o", "messages": [{"role": "user", "content": "caf\xc3"}]}', "not valid UTF-8"),
        (b'{"model": "mock/gpt-4o", "messages": [], "x": "\\ud800"}', "not valid JSON"),
        (b'\xef\xbb\xbf{"model": "mock/gpt-4o"}', "not valid JSON"),
    ],
    ids=["array", "string", "empty", "broken-utf8", "truncated-utf8", "lone-surrogate-escape", "bom"],
)
def test_chat_body_that_is_not_a_json_object_is_rejected(
    raw: httpx.Client, fake_upstream: FakeUpstream, body: bytes, expected: str
) -> None:
    error = error_of(post(raw, body), 400)

    assert expected in error["message"]
    assert fake_upstream.received == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "mock/gpt-4o"}, "messages"),
        ({"model": "mock/gpt-4o", "messages": "hello"}, "messages"),
        ({"model": "mock/gpt-4o", "messages": {"role": "user"}}, "messages"),
        ({"model": "mock/gpt-4o", "messages": []}, "messages"),
        ({"model": "mock/gpt-4o", "messages": ["hello"]}, "messages[0]"),
        ({"model": "mock/gpt-4o", "messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"model": "mock/gpt-4o", "messages": [*HELLO, {"role": 7, "content": "x"}]}, "messages[1].role"),
        ({"messages": HELLO}, "model"),
        ({"model": 4, "messages": HELLO}, "model"),
        ({"model": "", "messages": HELLO}, "model"),
        ({"model": "mock/gpt-4o", "messages": HELLO, "stream": "yes"}, "stream"),
        ({"model": "mock/gpt-4o", "messages": HELLO, "provider": ["mock"]}, "provider"),
    ],
    ids=[
        "no-messages",
        "messages-string",
        "messages-object",
        "messages-empty",
        "message-not-object",
        "message-no-role",
        "second-message-bad-role",
        "no-model",
        "model-number",
        "model-empty",
        "stream-string",
        "provider-list",
    ],
)
def test_chat_invalid_field_is_rejected_naming_the_param(
    raw: httpx.Client, fake_upstream: FakeUpstream, body: dict[str, Any], param: str
) -> None:
    error = error_of(raw.post("/v1/chat/completions", json=body), 400)

    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert fake_upstream.received == []


def test_chat_missing_messages_raises_sdk_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="mock/gpt-4o", messages=[])

    assert caught.value.param == "messages"
    assert sdk_error(caught)["code"] == "invalid_request"


@pytest.mark.parametrize("model", ["gpt-4o\r\nx-evil: 1", "open/m\nx", "open/a\x00b", "open/tab\there"])
def test_chat_model_with_control_characters_is_rejected_before_any_upstream_call(
    edge: RunningGateway, fake_upstream: FakeUpstream, model: str
) -> None:
    """Regression: such a name for a provider with an unknown model list reached the upstream, then
    broke the ``x-polyroute-model`` response header, and the client got a dropped connection."""
    with httpx.Client(base_url=edge.url, headers=AUTH, timeout=15) as http:
        response = http.post("/v1/chat/completions", json={"model": model, "messages": HELLO})

    assert error_of(response, 400)["param"] == "model"
    assert "x-evil" not in response.headers
    assert fake_upstream.received == []


# --- unknown models -------------------------------------------------------------------------------


def test_chat_unknown_model_is_not_found_with_close_matches(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4", messages=HELLO)

    error = sdk_error(caught)
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    assert "'gpt-4'" in error["message"]
    assert "mock/gpt-4o" in error["message"]


def test_chat_model_not_listed_by_its_provider_is_not_found(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="mock/gpt-9", messages=HELLO)

    assert sdk_error(caught)["code"] == "model_not_found"
    assert fake_upstream.received == []


def test_chat_model_of_provider_without_model_list_goes_to_upstream(
    edge: RunningGateway, fake_upstream: FakeUpstream
) -> None:
    with openai.OpenAI(base_url=edge.base_url, api_key=ADMIN_KEY, max_retries=0) as sdk:
        answer = sdk.chat.completions.create(model="open/anything-goes", messages=HELLO)

    assert answer.choices[0].message.content
    assert fake_upstream.received[0].json()["model"] == "anything-goes"


# --- body size ------------------------------------------------------------------------------------


def big_body() -> bytes:
    body = json.dumps({"model": "mock/gpt-4o", "messages": [{"role": "user", "content": "x" * 4 * MAX_BODY}]})
    return body.encode()


def test_chat_body_over_limit_with_content_length_is_rejected(
    edge: RunningGateway, fake_upstream: FakeUpstream
) -> None:
    with httpx.Client(base_url=edge.url, headers=AUTH, timeout=15) as http:
        response = post(http, big_body())
        assert response.request.headers["content-length"] == str(len(big_body()))
        error = error_of(response, 413)
        follow_up = http.post("/v1/chat/completions", json={"model": "mock/gpt-4o", "messages": HELLO})

    assert error["code"] == "payload_too_large"
    assert str(MAX_BODY) in error["message"]
    assert follow_up.status_code == 200
    assert len(fake_upstream.received) == 1


def test_chat_body_over_limit_with_chunked_encoding_is_rejected(
    edge: RunningGateway, fake_upstream: FakeUpstream
) -> None:
    data = big_body()

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), 512):
            yield data[start : start + 512]

    with httpx.Client(base_url=edge.url, headers=AUTH, timeout=15) as http:
        response = http.post("/v1/chat/completions", content=pieces())
        assert response.request.headers["transfer-encoding"] == "chunked"
        error = error_of(response, 413)
        follow_up = http.post("/v1/chat/completions", json={"model": "mock/gpt-4o", "messages": HELLO})

    assert error["code"] == "payload_too_large"
    assert follow_up.status_code == 200
    assert len(fake_upstream.received) == 1


def test_chat_body_under_limit_sent_chunked_is_served(edge: RunningGateway, fake_upstream: FakeUpstream) -> None:
    data = json.dumps({"model": "mock/gpt-4o", "messages": HELLO}).encode()

    with httpx.Client(base_url=edge.url, headers=AUTH, timeout=15) as http:
        response = http.post("/v1/chat/completions", content=iter([data[:10], data[10:]]))

    assert response.status_code == 200
    assert fake_upstream.received[0].json() == {"model": "gpt-4o", "messages": HELLO}


# --- authentication -------------------------------------------------------------------------------


def test_chat_without_key_is_unauthenticated(gateway: RunningGateway, fake_upstream: FakeUpstream) -> None:
    with (
        openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        sdk.chat.completions.create(model="mock/gpt-4o", messages=HELLO, extra_headers={"Authorization": openai.omit})

    error = sdk_error(caught)
    assert (error["code"], error["type"]) == ("missing_api_key", "authentication_error")
    assert fake_upstream.received == []


def test_chat_with_wrong_key_is_unauthenticated(gateway: RunningGateway, fake_upstream: FakeUpstream) -> None:
    with openai.OpenAI(base_url=gateway.base_url, api_key=ADMIN_KEY + "x", max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            sdk.chat.completions.create(model="mock/gpt-4o", messages=HELLO)
        with pytest.raises(openai.AuthenticationError):
            sdk.models.list()

    assert sdk_error(caught)["code"] == "invalid_api_key"
    assert ADMIN_KEY not in caught.value.response.text
    assert fake_upstream.received == []


def test_health_and_ready_need_no_key(gateway: RunningGateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        health = http.get("/health")
        ready = http.get("/ready")
        models = http.get("/v1/models")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert error_of(models, 401)["code"] == "missing_api_key"


def test_chat_with_x_api_key_header_is_accepted(gateway: RunningGateway) -> None:
    with httpx.Client(base_url=gateway.url, headers={"x-api-key": ADMIN_KEY}, timeout=15) as http:
        response = http.post("/v1/chat/completions", json={"model": "mock/gpt-4o", "messages": HELLO})
        wrong = http.post("/v1/chat/completions", json=HELLO, headers={"x-api-key": "nope"})

    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"]
    assert error_of(wrong, 401)["code"] == "invalid_api_key"


# --- upstream error answers -----------------------------------------------------------------------


def test_upstream_bad_request_is_passed_on_with_its_message_and_type(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    body = error_body("Invalid value for 'temperature': must be <= 2.", type_="invalid_request_error")
    body["error"]["param"] = "temperature"
    fake_upstream.push(Reply(status=400, json_body=body))

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="mock/gpt-4o", messages=HELLO, temperature=3)

    error = sdk_error(caught)
    assert "Invalid value for 'temperature': must be <= 2." in error["message"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "temperature")


def test_upstream_not_found_is_passed_on(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    message = "The model `gpt-4o` does not exist or you do not have access to it."
    fake_upstream.push(Reply(status=404, json_body=error_body(message, code="model_not_found")))

    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="mock/gpt-4o", messages=HELLO)

    assert message in sdk_error(caught)["message"]


def test_upstream_rate_limit_is_passed_on_with_retry_after(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    body = error_body("Rate limit reached for gpt-4o", type_="requests", code="rate_limit_exceeded")
    fake_upstream.push(Reply(status=429, json_body=body, headers={"Retry-After": "7"}))

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="mock/gpt-4o", messages=HELLO)

    error = sdk_error(caught)
    assert caught.value.response.headers["retry-after"] == "7"
    assert error["type"] == "rate_limit_error"
    assert "Rate limit reached" in error["message"]


def test_upstream_server_error_becomes_bad_gateway(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(status=500, json_body=error_body("The server had an error", type_="server_error")))

    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="mock/gpt-4o", messages=HELLO)

    assert caught.value.status_code == 502
    assert "The server had an error" in sdk_error(caught)["message"]


def test_upstream_auth_failure_is_a_gateway_fault_not_the_clients(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    body = error_body("Incorrect API key provided.", type_="invalid_request_error", code="invalid_api_key")
    fake_upstream.push(Reply(status=401, json_body=body))

    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="mock/gpt-4o", messages=HELLO)

    assert caught.value.status_code == 502
    assert sdk_error(caught)["code"] == "upstream_auth_failed"


@pytest.mark.parametrize("status", [400, 401, 500], ids=["400", "401", "500"])
def test_upstream_error_echoing_its_key_never_shows_the_key(
    client: openai.OpenAI, fake_upstream: FakeUpstream, status: int
) -> None:
    """The key is redacted from every field the client sees, even when truncation would cut it in two."""
    prefix = f"mock returned {status}: "
    padding = "x" * (1000 - len(prefix) - 20)
    body = {"error": {"message": padding + UPSTREAM_KEY, "type": UPSTREAM_KEY, "code": UPSTREAM_KEY, "param": None}}
    body["error"]["param"] = f"Bearer {UPSTREAM_KEY}"
    fake_upstream.push(Reply(status=status, json_body=body))

    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="mock/gpt-4o", messages=HELLO)

    text = caught.value.response.text
    assert UPSTREAM_KEY[:10] not in text
    assert "[redacted]" in text


@pytest.mark.parametrize(
    "reply",
    [
        Reply(raw_body=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
        Reply(raw_body=b"\x00\x01garbage"),
        Reply(json_body={"id": "x", "object": "chat.completion"}),
        Reply(json_body=[completion()]),
    ],
    ids=["html", "garbage", "no-choices", "array"],
)
def test_upstream_success_that_is_not_a_completion_is_a_protocol_error(
    client: openai.OpenAI, fake_upstream: FakeUpstream, reply: Reply
) -> None:
    fake_upstream.push(reply)

    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="mock/gpt-4o", messages=HELLO)

    assert caught.value.status_code == 502
    assert sdk_error(caught)["code"] == "upstream_protocol_error"
    assert "<html>" not in caught.value.response.text


def test_upstream_success_status_with_error_body_is_an_error(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(Reply(json_body=error_body("model overloaded, try later", type_="server_error")))

    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="mock/gpt-4o", messages=HELLO)

    assert caught.value.status_code >= 500
    assert "model overloaded, try later" in sdk_error(caught)["message"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_upstream_answer_over_the_size_cap_is_refused(
    client: openai.OpenAI, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    monkeypatch.setattr("polyroute.upstream.client.MAX_ANSWER_BYTES", 4096)
    huge = completion(content="x" * 10_000)
    fake_upstream.push(Reply(json_body=huge, chunked=chunked))

    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="mock/gpt-4o", messages=HELLO)

    assert caught.value.status_code == 502
    assert sdk_error(caught)["code"] == "upstream_protocol_error"
    assert "larger than 4096 bytes" in sdk_error(caught)["message"]
    assert client.chat.completions.create(model="mock/gpt-4o", messages=HELLO).choices


def test_upstream_unreachable_is_bad_gateway(edge: RunningGateway) -> None:
    with (
        openai.OpenAI(base_url=edge.base_url, api_key=ADMIN_KEY, max_retries=0) as sdk,
        pytest.raises(openai.InternalServerError) as caught,
    ):
        sdk.chat.completions.create(model="dead/m1", messages=HELLO)

    assert caught.value.status_code == 502
    error = sdk_error(caught)
    assert error["code"] == "upstream_unreachable"
    assert "dead" in error["message"]
    assert UPSTREAM_KEY not in caught.value.response.text


def test_upstream_stalling_past_timeout_is_gateway_timeout(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    running = start_gateway(mock_routing(fake_upstream), tmp_path, first_byte_timeout_s=0.5)
    try:
        fake_upstream.push(Reply(json_body=completion(), delay_s=2))
        with openai.OpenAI(base_url=running.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=15) as sdk:
            with pytest.raises(openai.InternalServerError) as caught:
                sdk.chat.completions.create(model="mock/gpt-4o", messages=HELLO)
            answer = sdk.chat.completions.create(model="mock/gpt-4o", messages=HELLO)
    finally:
        running.stop()

    assert caught.value.status_code == 504
    assert sdk_error(caught)["code"] == "upstream_timeout"
    assert answer.choices[0].message.content


# --- routes ---------------------------------------------------------------------------------------


def test_unknown_route_is_openai_shaped_not_found(raw: httpx.Client) -> None:
    error = error_of(raw.get("/v1/no/such/thing"), 404)

    assert error["code"] == "not_found"
    assert "/v1/no/such/thing" in error["message"]


def test_wrong_method_is_openai_shaped_method_not_allowed(raw: httpx.Client) -> None:
    response = raw.get("/v1/chat/completions")

    assert error_of(response, 405)["code"] == "method_not_allowed"
    assert response.headers["allow"] == "POST"


def test_no_error_response_leaks_a_traceback(raw: httpx.Client, fake_upstream: FakeUpstream) -> None:
    fake_upstream.default = lambda req: Reply(raw_body=b'Traceback (most recent call last):\n  File "x"')
    bodies = [
        b"{",
        b"null",
        b"\xff",
        b'{"model": {"a": 1}, "messages": [null]}',
        b'{"model": "mock/gpt-4o", "messages": [{"role": "user"}], "stream": 1}',
        b'{"model": "mock/gpt-4o", "messages": [{"role": "user", "content": 1}]}',
        b'{"model": "' + b"m" * 1500 + b'", "messages": [{"role": "user"}]}',
        b'{"model": "x", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ]
    responses = [post(raw, body) for body in bodies]
    responses += [raw.get(path) for path in ("/v1/models/nope", "/v1/models/list?type=x", "/v1/../../etc/passwd")]

    for response in responses:
        assert response.status_code >= 400
        assert "Traceback" not in response.text
        assert not re.search(r'File "', response.text), response.text
