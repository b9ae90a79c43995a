"""Real coding agents complete a task through the gateway: Claude Code on /v1/messages, Codex on /v1/responses.

The upstream is an OpenAI Chat Completions FakeUpstream that answers first with a call of the agent's
own shell tool (``echo polyroute-ok > out.txt && cat out.txt``) and then with text. Each test checks the
whole loop: the agent ran the command in its working directory, the gateway carried the command's
output back upstream as a tool result, and the agent printed the scripted final text. A failure prints
every request the agent sent and what the gateway answered (see ``harness.explain``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.agents.conftest import CLAUDE_CLASSIC_MODEL, CLAUDE_CUSTOM_MODELS, CODEX_CUSTOM_MODEL, CODEX_KNOWN_MODEL
from tests.agents.harness import (
    CALL_ID,
    CHAT_COMPLETIONS_PARAMS,
    FINAL_TEXT,
    MARKER,
    AgentRun,
    AgentScript,
    RecordingProxy,
    claude_command,
    claude_environment,
    codex_command,
    codex_environment,
    explain,
    message_text,
    tool_result_request,
    write_codex_home,
)
from tests.fakes import FakeUpstream
from tests.gateway_fixtures import ADMIN_KEY

pytestmark = pytest.mark.agents

TASK = "Create out.txt containing the word polyroute-ok using the shell, then say that you are done."

CLAUDE_VARIANTS: dict[str, tuple[tuple[str, str], dict[str, str]]] = {
    # A model name of the gateway's own, all defaults: what Claude Code sends for its newest models.
    # thinking {type: adaptive}, output_config.effort, context_management, a deferred tool
    # (defer_loading), and the environment as a ``system`` message inside ``messages``.
    "custom-model": (CLAUDE_CUSTOM_MODELS, {}),
    # An older Claude model with experimental betas off: thinking {type: enabled, budget_tokens},
    # only user/assistant turns, no context_management, no deferred tools.
    "classic-model": (
        (CLAUDE_CLASSIC_MODEL, CLAUDE_CLASSIC_MODEL),
        {"CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS": "1"},
    ),
}
CODEX_VARIANTS = {
    "custom-model": CODEX_CUSTOM_MODEL,  # fallback metadata: exec_command, a ``namespace`` tool, web_search
    "known-model": CODEX_KNOWN_MODEL,  # adds apply_patch (``custom`` tool, lark grammar) and tool_search
}


def round_trip_problems(fake: FakeUpstream, script: AgentScript) -> list[str]:
    """What is wrong with the upstream side of the tool loop; empty when it is right."""
    if script.tool_call_request is None:
        return ["no upstream request offered tools, so the tool call was never made"]
    offered = [t.get("function", {}).get("name") for t in script.tool_call_request.json().get("tools", [])]
    problems = []
    if script.tool_name not in offered:
        problems.append(f"the shell tool {script.tool_name!r} was not offered upstream: {offered}")
    for received in fake.received:
        stray = sorted(set(received.json()) - CHAT_COMPLETIONS_PARAMS) if received.body else []
        if stray:
            problems.append(f"an upstream Chat Completions request carries fields OpenAI rejects: {stray}")
    second = tool_result_request(fake.received, script)
    if second is None:
        return [*problems, f"no upstream request after the tool call carries a tool message for {CALL_ID}"]
    messages: list[dict[str, Any]] = second["messages"]
    position = next(i for i, m in enumerate(messages) if m.get("role") == "tool" and m.get("tool_call_id") == CALL_ID)
    calls = [c for m in messages[:position] if m.get("role") == "assistant" for c in m.get("tool_calls") or ()]
    if not any(c.get("id") == CALL_ID and c["function"]["name"] == script.tool_name for c in calls):
        problems.append(f"the assistant tool call {CALL_ID} is missing before its result: {calls}")
    if MARKER not in message_text(messages[position].get("content")):
        problems.append(f"the tool result lacks the command's output {MARKER!r}: {messages[position]}")
    return problems


def failed_exchanges(proxy: RecordingProxy) -> list[str]:
    return [f"{e.method} {e.target} -> {e.status or e.error}" for e in proxy.exchanges if (e.status or 599) >= 400]


@pytest.mark.parametrize("variant", list(CLAUDE_VARIANTS))
def test_claude_code_runs_a_shell_command_through_the_gateway(
    claude_bin: Path,
    proxy: RecordingProxy,
    fake_upstream: FakeUpstream,
    agent_script: AgentScript,
    tmp_path: Path,
    variant: str,
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    models, extra = CLAUDE_VARIANTS[variant]
    env = claude_environment(tmp_path / "home", proxy.url, ADMIN_KEY, models) | extra

    run = AgentRun.execute(claude_command(claude_bin, TASK), cwd=workdir, env=env)

    def report() -> str:
        return explain(run, proxy, fake_upstream.received, tmp_path / "transcript.json")

    results = [line for line in run.json_lines() if line.get("type") == "result"]
    assert run.returncode == 0 and results and not results[-1].get("is_error"), report()
    assert not failed_exchanges(proxy), f"{failed_exchanges(proxy)}\n{report()}"
    assert all(e.target.startswith("/v1/messages") for e in proxy.exchanges), report()
    assert (workdir / "out.txt").read_text() == f"{MARKER}\n", report()
    problems = round_trip_problems(fake_upstream, agent_script)
    assert not problems, f"{problems}\n{report()}"
    assert FINAL_TEXT in results[-1].get("result", ""), report()


@pytest.mark.parametrize("variant", list(CODEX_VARIANTS))
def test_codex_runs_a_shell_command_through_the_gateway(
    codex_bin: Path,
    proxy: RecordingProxy,
    fake_upstream: FakeUpstream,
    agent_script: AgentScript,
    tmp_path: Path,
    variant: str,
) -> None:
    workdir, codex_home = tmp_path / "work", tmp_path / "codex-home"
    workdir.mkdir()
    write_codex_home(codex_home, f"{proxy.url}/v1", CODEX_VARIANTS[variant])
    env = codex_environment(tmp_path / "home", codex_home, ADMIN_KEY)

    run = AgentRun.execute(codex_command(codex_bin, TASK), cwd=workdir, env=env)

    def report() -> str:
        return explain(run, proxy, fake_upstream.received, tmp_path / "transcript.json")

    events = run.json_lines()
    failures = [e for e in events if e.get("type") in ("error", "turn.failed")]
    items = [e["item"] for e in events if e.get("type") == "item.completed"]
    assert run.returncode == 0 and not failures, report()
    assert any(e.get("type") == "turn.completed" for e in events), report()
    assert not failed_exchanges(proxy), f"{failed_exchanges(proxy)}\n{report()}"
    assert all(e.target.startswith("/v1/responses") for e in proxy.exchanges), report()
    assert (workdir / "out.txt").read_text() == f"{MARKER}\n", report()
    commands = [i for i in items if i.get("type") == "command_execution"]
    assert commands and commands[0].get("exit_code") == 0, report()
    problems = round_trip_problems(fake_upstream, agent_script)
    assert not problems, f"{problems}\n{report()}"
    answers = [i.get("text", "") for i in items if i.get("type") == "agent_message"]
    assert any(FINAL_TEXT in text for text in answers), report()
