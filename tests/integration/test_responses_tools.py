"""Responses tools the upstream's format lacks, through the gateway with the official ``openai`` SDK as client.

The upstream is the OpenAI Chat Completions FakeUpstream. A namespace's members and a custom (free-form) tool
reach it as function tools; their calls come back to the client as a ``function_call`` with ``namespace`` and
a ``custom_tool_call`` with its ``input`` text, in whole answers, streams and stored responses alike. Hosted
tools, which only OpenAI can run, are dropped for this upstream and reported as dropped.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
from openai.types.responses import ResponseCustomToolCall, ResponseFunctionToolCall

from tests.fakes import FakeUpstream, Reply, completion, text_stream, tool_call_stream, wait_for_log_row
from tests.gateway_fixtures import ADMIN_KEY, RunningGateway

MODEL = "mock/gpt-4o"
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello\n*** End Patch\n"
GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF\nend_patch: "*** End Patch" LF?\n'
SPAWN = {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}
TOOLS: list[Any] = [
    {"type": "function", "name": "exec_command", "parameters": {"type": "object"}, "strict": False},
    {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Tools for spawning and managing sub-agents.",
        "tools": [{"type": "function", "name": "spawn_agent", "description": "Spawn one.", "parameters": SPAWN}],
    },
    {
        "type": "custom",
        "name": "apply_patch",
        "description": "Edit files.",
        "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR},
    },
    {"type": "web_search", "external_web_access": True},
]
PATCH_ARGUMENTS = json.dumps({"input": PATCH})


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_calls_come_back_in_the_declared_shapes_and_the_history_goes_up_flattened(
    client: openai.OpenAI, gateway: RunningGateway, fake_upstream: FakeUpstream
) -> None:
    calls = [
        _call("call_1", "multi_agent_v1__spawn_agent", '{"message": "hi"}'),
        _call("call_2", "apply_patch", PATCH_ARGUMENTS),
    ]
    fake_upstream.push(Reply(json_body=completion(tool_calls=calls)))

    first = client.responses.create(
        model=MODEL, input="Add hello.txt", tools=TOOLS, extra_headers={"x-request-id": "responses-tools-1"}
    )

    sent = fake_upstream.received[-1].json()
    assert [(tool["type"], tool["function"]["name"]) for tool in sent["tools"]] == [
        ("function", "exec_command"),
        ("function", "multi_agent_v1__spawn_agent"),
        ("function", "apply_patch"),
    ]
    patch_parameters = sent["tools"][2]["function"]["parameters"]
    assert patch_parameters["required"] == ["input"]
    assert patch_parameters["properties"]["input"] == {"type": "string", "description": GRAMMAR.strip()}
    spawn, patch = first.output
    assert isinstance(spawn, ResponseFunctionToolCall)
    assert (spawn.namespace, spawn.name, spawn.call_id, spawn.arguments) == (
        "multi_agent_v1",
        "spawn_agent",
        "call_1",
        '{"message": "hi"}',
    )
    assert isinstance(patch, ResponseCustomToolCall)
    assert (patch.name, patch.call_id, patch.input, patch.namespace) == ("apply_patch", "call_2", PATCH, None)
    row = wait_for_log_row(gateway.database, "responses-tools-1")
    assert row["status"] == 200
    assert "hosted_tools" in row["dropped_fields"].split(",")
    assert client.responses.retrieve(first.id).output == first.output

    fake_upstream.push(Reply(json_body=completion("Patched.")))
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        tools=TOOLS,
        input=[
            {"type": "function_call_output", "call_id": "call_1", "output": "spawned"},
            {"type": "custom_tool_call_output", "call_id": "call_2", "output": "Success. Updated hello.txt"},
        ],
    )

    assert second.output_text == "Patched."
    messages = fake_upstream.received[-1].json()["messages"]
    assert [message["role"] for message in messages] == ["user", "assistant", "tool", "tool"]
    spawned, patched = messages[1]["tool_calls"]
    assert spawned == _call("call_1", "multi_agent_v1__spawn_agent", '{"message": "hi"}')
    assert (patched["id"], patched["function"]["name"]) == ("call_2", "apply_patch")
    assert json.loads(patched["function"]["arguments"]) == {"input": PATCH}
    assert [message["content"] for message in messages[2:]] == ["spawned", "Success. Updated hello.txt"]


def test_streamed_calls_come_back_in_the_declared_shapes(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    pieces = [PATCH_ARGUMENTS[i : i + 9] for i in range(0, len(PATCH_ARGUMENTS), 9)]
    fake_upstream.push(Reply(events=tool_call_stream("apply_patch", pieces, call_id="call_p")))

    with client.responses.stream(model=MODEL, input="Add hello.txt", tools=TOOLS, store=False) as stream:
        events = list(stream)
        final = stream.get_final_response()

    [patch] = final.output
    assert isinstance(patch, ResponseCustomToolCall)
    assert (patch.name, patch.call_id, patch.input) == ("apply_patch", "call_p", PATCH)
    deltas = [event.delta for event in events if event.type == "response.custom_tool_call_input.delta"]
    assert deltas == [PATCH]
    assert not [event for event in events if event.type == "response.function_call_arguments.delta"]

    fake_upstream.push(Reply(events=tool_call_stream("multi_agent_v1__spawn_agent", ['{"mess', 'age": "hi"}'])))
    with client.responses.stream(model=MODEL, input="Spawn one", tools=TOOLS, store=False) as stream:
        final = stream.get_final_response()

    [spawn] = final.output
    assert isinstance(spawn, ResponseFunctionToolCall)
    assert (spawn.namespace, spawn.name, spawn.arguments) == ("multi_agent_v1", "spawn_agent", '{"message": "hi"}')


def test_hosted_tools_alone_leave_answers_as_they_were(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(events=text_stream(include_usage=True)))

    with client.responses.stream(model=MODEL, input="hi", tools=[TOOLS[3]], store=False) as stream:
        final = stream.get_final_response()

    assert final.output_text == "Hello! How can I help?"
    assert "tools" not in fake_upstream.received[-1].json()


def test_strict_mode_refuses_to_drop_hosted_tools(gateway: RunningGateway, fake_upstream: FakeUpstream) -> None:
    headers = {"authorization": f"Bearer {ADMIN_KEY}", "x-polyroute-strict": "true"}
    before = len(fake_upstream.received)
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        answer = http.post("/v1/responses", headers=headers, json={"model": MODEL, "input": "hi", "tools": TOOLS})
    assert answer.status_code == 400
    assert "hosted_tools" in answer.json()["error"]["message"]
    assert len(fake_upstream.received) == before
