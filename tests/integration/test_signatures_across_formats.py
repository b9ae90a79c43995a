"""A Gemini thought signature survives a round trip through an OpenAI client, sealed in the tool-call id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fake_providers import FakeProvider, provider_config
from tests.fakes import Reply
from tests.gateway_fixtures import ADMIN_KEY, RunningGateway, start_gateway

SIGNATURE = "CiQBjz1rX+/e4Zq0m3xh8Jk2fTzV1w=="


@pytest.fixture(scope="module")
def gemini_fake() -> Iterator[FakeProvider]:
    with FakeProvider("gemini") as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway_to_gemini(gemini_fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    routing = {"providers": [provider_config(gemini_fake, "gem")]}
    running = start_gateway(routing, tmp_path_factory.mktemp("signatures"))
    yield running
    running.stop()


def _signed_call_answer() -> dict[str, Any]:
    part = {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}, "thoughtSignature": SIGNATURE}
    return {
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1",
    }


def test_openai_client_round_trips_a_gemini_thought_signature(
    gateway_to_gemini: RunningGateway, gemini_fake: FakeProvider
) -> None:
    gemini_fake.reset()
    gemini_fake.push(Reply(json_body=_signed_call_answer()))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    question = [{"role": "user", "content": "Weather in Oslo?"}]
    with openai.OpenAI(base_url=gateway_to_gemini.base_url, api_key=ADMIN_KEY, max_retries=0) as client:
        first = client.chat.completions.create(model="gem/gemini-2.5-flash", messages=question, tools=tools)
        call = first.choices[0].message.tool_calls[0]
        assert json.loads(call.function.arguments) == {"city": "Oslo"}
        gemini_fake.push(
            Reply(
                json_body={
                    **_signed_call_answer(),
                    "candidates": [
                        {"content": {"role": "model", "parts": [{"text": "Snow."}]}, "finishReason": "STOP", "index": 0}
                    ],
                }
            )
        )
        history = [
            *question,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp": -3}'},
        ]
        second = client.chat.completions.create(model="gem/gemini-2.5-flash", messages=history, tools=tools)
    assert second.choices[0].message.content == "Snow."
    contents = gemini_fake.received[-1].json()["contents"]
    model_turn = contents[1]["parts"][0]
    assert model_turn["functionCall"]["name"] == "get_weather"
    assert model_turn["thoughtSignature"] == SIGNATURE
    assert contents[2]["parts"][0]["functionResponse"] == {"name": "get_weather", "response": {"temp": -3}}
