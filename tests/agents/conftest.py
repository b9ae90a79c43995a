"""Fixtures for the coding-agent tests: the agents' binaries, a gateway with their model names, a proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents.harness import AgentScript, RecordingProxy, agent_binary, not_installed_reason
from tests.fakes import FakeUpstream
from tests.gateway_fixtures import RunningGateway, mock_routing, start_gateway

CLAUDE_CUSTOM_MODELS = ("claude-code-main", "claude-code-fast")
"""Names Claude Code does not know: it then assumes its newest request shape."""
CLAUDE_CLASSIC_MODEL = "claude-haiku-4-5"
"""An older model Claude Code knows: with experimental betas off it sends the long-standing request shape."""
CODEX_CUSTOM_MODEL = "codex-main"
CODEX_KNOWN_MODEL = "gpt-5.5"
"""A model Codex has metadata for: it then also offers ``apply_patch`` (a custom tool) and ``tool_search``."""

AGENT_ALIASES = {
    CLAUDE_CUSTOM_MODELS[0]: "mock/gpt-4o",
    CLAUDE_CUSTOM_MODELS[1]: "mock/gpt-4o-mini",
    CLAUDE_CLASSIC_MODEL: "mock/gpt-4o-mini",
    CODEX_CUSTOM_MODEL: "mock/gpt-4o",
    CODEX_KNOWN_MODEL: "mock/gpt-4o",
}


@pytest.fixture
def claude_bin() -> Path:
    binary = agent_binary("claude")
    if binary is None:
        pytest.skip(not_installed_reason("Claude Code (claude)"))
    return binary


@pytest.fixture
def codex_bin() -> Path:
    binary = agent_binary("codex")
    if binary is None:
        pytest.skip(not_installed_reason("Codex CLI (codex)"))
    return binary


@pytest.fixture
def agent_script(fake_upstream: FakeUpstream) -> AgentScript:
    """The upstream model: a shell tool call first, then text."""
    script = AgentScript()
    fake_upstream.default = script
    return script


@pytest.fixture
def agent_gateway(fake_upstream: FakeUpstream, tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway whose aliases route every model name the agents send to the fake upstream."""
    running = start_gateway(mock_routing(fake_upstream, aliases=AGENT_ALIASES), tmp_path / "gateway-data")
    yield running
    running.stop()


@pytest.fixture
def proxy(agent_gateway: RunningGateway) -> Iterator[RecordingProxy]:
    """Where the agents connect: records each exchange with the gateway for the failure report."""
    recording = RecordingProxy(agent_gateway.url).start()
    yield recording
    recording.stop()
