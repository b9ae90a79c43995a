"""Running real coding agents (Claude Code, Codex CLI) against a gateway, and seeing what they exchanged.

The agents are npm packages installed by ``scripts/install_agents`` into ``.cache/agents``. Each run gets
a private home directory and a clean environment, so no user configuration or credential leaks in.
With update checks, telemetry, error reports and plugins off, the only host an agent contacts is the
recording proxy on 127.0.0.1, which forwards to the gateway and keeps every request and response for
the failure report.

``AgentScript`` is the upstream model: the FakeUpstream answers the first request that offers tools
with a call of the agent's shell tool, and every later request with text.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes import Received, Reply, completion, text_stream, tool_call_stream

ROOT = Path(__file__).resolve().parents[2]
AGENTS_BIN = Path(os.environ.get("POLYROUTE_AGENTS_BIN") or ROOT / ".cache" / "agents" / "node_modules" / ".bin")

MARKER = "polyroute-ok"
COMMAND = f"echo {MARKER} > out.txt && cat out.txt"
FINAL_TEXT = "Done: out.txt now holds the polyroute marker."
CALL_ID = "call_polyroute_agent_1"
AGENT_TIMEOUT_S = 180.0

CHAT_COMPLETIONS_PARAMS = frozenset(
    {
        "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "stream", "stream_options",
        "max_completion_tokens", "max_tokens", "temperature", "top_p", "stop", "n", "seed", "user",
        "safety_identifier", "prompt_cache_key", "reasoning_effort", "verbosity", "response_format",
        "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "metadata",
        "store", "service_tier", "prediction", "modalities", "audio", "web_search_options",
    }
)  # fmt: skip
"""Request fields OpenAI's Chat Completions API documents; a real upstream rejects any other."""

_SECRET_HEADERS = {"authorization", "x-api-key", "cookie"}
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}


def agent_binary(name: str) -> Path | None:
    """The installed agent executable, or None when ``scripts/install_agents`` has not installed it."""
    path = AGENTS_BIN / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def not_installed_reason(name: str) -> str:
    """Why an agent test skips: what is missing and how to get it."""
    how = (
        "run scripts/install_agents (it needs npm and the npm registry)"
        if shutil.which("npm")
        else "npm is not available here, so it cannot be installed"
    )
    return f"{name} is not installed under {AGENTS_BIN}: {how}"


def base_environment(home: Path) -> dict[str, str]:
    """A clean environment for an agent: no inherited keys, proxies or configuration, a private HOME."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
    }


def claude_environment(home: Path, base_url: str, api_key: str, models: tuple[str, str]) -> dict[str, str]:
    """Claude Code in print mode against ``base_url``: no update checks, telemetry, error reports or retries.

    ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC`` also stops the ``HEAD /api/hello`` probe of the base URL;
    with it the only traffic is ``POST /v1/messages?beta=true``. ``models`` is (main, small/fast).
    """
    main, fast = models
    return {
        **base_environment(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "ANTHROPIC_MODEL": main,
        "ANTHROPIC_SMALL_FAST_MODEL": fast,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": fast,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "API_TIMEOUT_MS": "120000",
    }


def claude_command(binary: Path, task: str) -> list[str]:
    """``claude -p``: the Bash tool pre-approved (print mode cannot ask), one JSON result on stdout."""
    return [
        str(binary),
        "-p",
        task,
        "--allowedTools",
        "Bash",
        "--output-format",
        "json",
        "--no-session-persistence",
    ]


def write_codex_home(codex_home: Path, base_url: str, model: str) -> None:
    """A CODEX_HOME whose config.toml sends ``model`` to ``base_url`` over the Responses API.

    Plugins are off (they fetch from github.com and chatgpt.com), as are update checks and analytics;
    no retries, so a gateway error ends the run at once with the gateway's message.
    """
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        f"""model = {json.dumps(model)}
model_provider = "polyroute"
check_for_update_on_startup = false

[analytics]
enabled = false

[features]
plugins = false

[model_providers.polyroute]
name = "polyroute"
base_url = {json.dumps(base_url)}
env_key = "POLYROUTE_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 120000
"""
    )


def codex_environment(home: Path, codex_home: Path, api_key: str) -> dict[str, str]:
    return {**base_environment(home), "CODEX_HOME": str(codex_home), "POLYROUTE_API_KEY": api_key}


def codex_command(binary: Path, task: str) -> list[str]:
    """``codex exec``: no git repository needed, no approvals, no sandbox, no session files, JSONL events.

    The only command it runs is the scripted one, in a temporary directory; the Linux sandbox
    (bubblewrap) is not needed for that and may be unavailable where the tests run.
    """
    return [
        str(binary),
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "--ephemeral",
        "--json",
        task,
    ]


# --- the scripted upstream model ------------------------------------------------------------------


def _tool_names(body: Mapping[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or () if isinstance(t, dict) and "function" in t]


def _shell_call(tools: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The agent's own shell tool and arguments running ``COMMAND``, whichever the agent's version offers."""
    if "Bash" in tools:  # Claude Code
        return "Bash", {"command": COMMAND, "description": "Write the marker file"}
    if "shell" in tools:  # Codex before unified exec
        return "shell", {"command": ["bash", "-lc", COMMAND]}
    if "shell_command" in tools:
        return "shell_command", {"command": COMMAND}
    return "exec_command", {"cmd": COMMAND}  # Codex with unified exec


@dataclass
class AgentScript:
    """FakeUpstream's ``default``: a tool call for the first request offering tools, then text.

    Each answer matches the request: SSE when it asks for a stream (with a usage chunk when it asks
    for one), a chat.completion otherwise.
    """

    tool_call_request: Received | None = None
    """The upstream request answered with the tool call."""
    tool_name: str | None = None
    tool_arguments: dict[str, Any] = field(default_factory=dict)

    def __call__(self, received: Received) -> Reply:
        body = received.json()
        model = body.get("model", "gpt-4o")
        stream = bool(body.get("stream"))
        if self.tool_call_request is None and body.get("tools"):
            self.tool_call_request = received
            self.tool_name, self.tool_arguments = _shell_call(_tool_names(body))
            arguments = json.dumps(self.tool_arguments)
            if stream:
                pieces = [arguments[i : i + 16] for i in range(0, len(arguments), 16)]
                return Reply(events=tool_call_stream(self.tool_name, pieces, call_id=CALL_ID, model=model))
            call = {"id": CALL_ID, "type": "function", "function": {"name": self.tool_name, "arguments": arguments}}
            return Reply(json_body=completion(model=model, tool_calls=[call]))
        if stream:
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            words = FINAL_TEXT.split(" ")
            pieces = [w if i == 0 else f" {w}" for i, w in enumerate(words)]
            return Reply(events=text_stream(pieces, model=model, include_usage=usage))
        return Reply(json_body=completion(FINAL_TEXT, model=model))


def tool_result_request(fake_received: Sequence[Received], script: AgentScript) -> dict[str, Any] | None:
    """The first upstream request after the tool call that carries a ``tool`` message for it."""
    if script.tool_call_request is None:
        return None
    start = next(i for i, r in enumerate(fake_received) if r is script.tool_call_request)
    for received in fake_received[start + 1 :]:
        if received.path != "/v1/chat/completions":
            continue
        body: dict[str, Any] = received.json()
        if any(m.get("role") == "tool" and m.get("tool_call_id") == CALL_ID for m in body.get("messages", [])):
            return body
    return None


def message_text(content: Any) -> str:
    """The text of an OpenAI message's ``content``: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


# --- the recording proxy between an agent and the gateway ------------------------------------------


@dataclass
class Exchange:
    """One request an agent sent and what the gateway answered."""

    method: str
    target: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "target": self.target,
            "request_headers": self.request_headers,
            "request_body": _decoded(self.request_body),
            "status": self.status,
            "response_headers": self.response_headers,
            "response_body": self.response_body.decode(errors="replace"),
            "error": self.error,
        }


def _decoded(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return body.decode(errors="replace")


class RecordingProxy:
    """A pass-through HTTP proxy on 127.0.0.1 that streams responses through and records every exchange."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.exchanges: list[Exchange] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RecordingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=300))
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        exchange = Exchange(
            method=request.method,
            target=request.path_qs,
            request_headers={
                k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v) for k, v in request.headers.items()
            },
            request_body=body,
        )
        self.exchanges.append(exchange)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        assert self._session is not None
        try:
            async with self._session.request(
                request.method, self.target + request.path_qs, headers=headers, data=body, allow_redirects=False
            ) as upstream:
                exchange.status = upstream.status
                exchange.response_headers = dict(upstream.headers)
                response = web.StreamResponse(
                    status=upstream.status,
                    headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS},
                )
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    exchange.response_body += chunk
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (TimeoutError, aiohttp.ClientError, ConnectionResetError) as exc:
            exchange.error = f"{type(exc).__name__}: {exc}"
            raise


# --- running an agent and explaining what happened -------------------------------------------------


@dataclass
class AgentRun:
    """A finished agent process."""

    command: list[str]
    returncode: int | None
    stdout: str
    stderr: str

    @classmethod
    def execute(cls, command: list[str], *, cwd: Path, env: Mapping[str, str]) -> AgentRun:
        try:
            done = subprocess.run(
                command,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=AGENT_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            return cls(command, None, _text(exc.stdout), _text(exc.stderr) + f"\n[killed after {AGENT_TIMEOUT_S}s]")
        return cls(command, done.returncode, done.stdout, done.stderr)

    def json_lines(self) -> list[dict[str, Any]]:
        """Every stdout line that is a JSON object (Claude's ``--output-format json``, Codex's ``--json``)."""
        out = []
        for line in self.stdout.splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append(value)
        return out


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _summary(body: Any) -> str:
    if not isinstance(body, dict):
        return repr(body)[:300]
    keys = {k: v for k, v in body.items() if k not in ("messages", "input", "tools", "system", "instructions")}
    tools = [t.get("name") or (t.get("function") or {}).get("name") or t.get("type") for t in body.get("tools") or ()]
    items = body.get("messages") or body.get("input") or []
    shape = []
    for item in items if isinstance(items, list) else []:
        content = item.get("content")
        kinds = [c.get("type") for c in content if isinstance(c, dict)] if isinstance(content, list) else ["str"]
        shape.append(f"{item.get('role') or item.get('type')}{kinds}")
    scalars = json.dumps(keys, default=str)
    return f"fields={scalars[:1500]}\n      tools={tools}\n      items={shape}"


def explain(
    run: AgentRun,
    proxy: RecordingProxy,
    upstream: Sequence[Received],
    dump: Path,
) -> str:
    """A failure report: the agent's exit, its output, and every exchange with the gateway and upstream."""
    dump.write_text(
        json.dumps(
            {
                "command": run.command,
                "returncode": run.returncode,
                "stdout": run.stdout,
                "stderr": run.stderr,
                "agent_to_gateway": [e.to_json() for e in proxy.exchanges],
                "gateway_to_upstream": [{"path": r.path, "body": _decoded(r.body)} for r in upstream],
            },
            indent=2,
            default=str,
        )
    )
    lines = [
        f"agent exited {run.returncode}: {' '.join(run.command[:2])} ...",
        f"stdout (tail):\n{run.stdout[-3000:]}",
        f"stderr (tail):\n{run.stderr[-3000:]}",
        f"agent -> gateway ({len(proxy.exchanges)} requests):",
    ]
    for exchange in proxy.exchanges:
        lines.append(f"  >>> {exchange.method} {exchange.target}")
        lines.append(f"      {_summary(_decoded(exchange.request_body))}")
        lines.append(
            f"  <<< {exchange.status} {exchange.response_headers.get('Content-Type', '')} {exchange.error or ''}"
        )
        lines.append("      " + exchange.response_body.decode(errors="replace")[:4000].replace("\n", "\n      "))
    lines.append(f"gateway -> upstream ({len(upstream)} requests):")
    lines.extend(f"  >>> {r.method} {r.path}\n      {_summary(_decoded(r.body))}" for r in upstream)
    lines.append(f"full transcript: {dump}")
    return "\n".join(lines)
