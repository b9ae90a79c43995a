"""A client streaming without asking for usage still gets its usage accounted, and never sees the usage chunk."""

from __future__ import annotations

from typing import Any

from tests.fakes import FakeUpstream, Reply, text_stream, wait_for_log_row
from tests.gateway_fixtures import RunningGateway


def test_usage_is_asked_for_upstream_and_hidden_from_the_client(
    client: Any, fake_upstream: FakeUpstream, gateway: RunningGateway
) -> None:
    fake_upstream.push(Reply(events=text_stream(include_usage=True, prompt_tokens=21)))
    stream = client.chat.completions.with_raw_response.create(
        model="mock/gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(stream.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello! How can I help?"
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert fake_upstream.received[-1].json()["stream_options"] == {"include_usage": True}
    row = wait_for_log_row(gateway.database, stream.headers["x-request-id"])
    assert (row["prompt_tokens"], row["completion_tokens"]) == (21, 7)


def test_usage_the_client_asked_for_is_passed_on(client: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(events=text_stream(include_usage=True, prompt_tokens=21)))
    chunks = list(
        client.chat.completions.create(
            model="mock/gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 21
