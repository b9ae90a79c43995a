"""Peers measured side by side with polyroute: nginx ``proxy_pass``, LiteLLM's proxy, Portkey's gateway.

Each peer is installed on first use into places the harness owns, outside the timed run:

* nginx: Debian's ``nginx-light`` (``apt-get install -y nginx-light``, only when running as root; the
  Makefile's ``bench`` target does the same). Run as a non-daemon process (``daemon off``, one worker
  process) with a generated config: one ``server`` per fake on free loopback ports, upstream keep-alive,
  ``proxy_buffering off`` so streams pass event by event.
* LiteLLM: ``pip install "litellm[proxy]<1.109.1"`` into its own venv at ``.cache/bench/litellm``;
  started as ``litellm --config … --num_workers 1`` with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` and a
  random ``LITELLM_MASTER_KEY`` (sent as the bearer token); the config maps ``bench-model`` to
  ``openai/bench-model`` at the fake and ``bench-model-20ms`` to the 20 ms fake.
* Portkey: ``npm install @portkey-ai/gateway`` into ``.cache/bench/portkey``; started as the package's
  own ``bin`` (what ``npx @portkey-ai/gateway`` runs, without npm's wrapper process) with
  ``--port=N --headless``; requests carry its documented headers ``x-portkey-provider: openai`` and
  ``x-portkey-custom-host: http://127.0.0.1:<fake>/v1``.

Every peer is pinned to the CPU of the system under test, like the gateway. Before it is measured it
must answer one real completion (200 with ``choices``); that first answer, polled from process
start, is its cold start. A streamed completion is checked too (complete, ``[DONE]`` last); a peer
whose stream fails is measured without streaming and the reason is reported. A peer that cannot be
installed, started or asked is reported as skipped with the reason: no number is ever made up for it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import loadgen
import procs

NGINX, LITELLM, PORTKEY = "nginx", "litellm", "portkey"
PEERS = (NGINX, LITELLM, PORTKEY)
REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "bench"
LITELLM_REQUIREMENT = "litellm[proxy]<1.109.1"
PORTKEY_PACKAGE = "@portkey-ai/gateway"
FAST, SLOW, PACED = "fast", "slow", "paced"
"""Routes: the fast fake, the 20 ms fake and the paced fake (one chunk per second)."""
START_TIMEOUT_S = {NGINX: 10.0, LITELLM: 90.0, PORTKEY: 30.0}
INSTALL_TIMEOUT_S = 900


@dataclass(frozen=True)
class Route:
    """Where a client sends a chat request for one of the fakes through a peer, and with what."""

    url: str
    headers: dict[str, str]
    model: str


@dataclass
class Peer:
    """A running peer: its process, its routes to each fake, and what was learnt starting it."""

    name: str
    child: procs.Child
    routes: dict[str, Route]
    version: str
    cold_start_s: float | None = None
    stream: str = "not checked"
    """"ok" when one streamed answer came through complete, else why not."""
    extra: list[procs.Child] = field(default_factory=list)
    """The same process under the other ports it listens on (nginx: one ``server`` per fake)."""

    def child_for(self, route: str) -> procs.Child:
        """A child whose port is the one ``route`` uses (the process is the same)."""
        port = int(self.routes[route].url.split(":")[2].split("/")[0])
        return next((c for c in [self.child, *self.extra] if c.port == port), self.child)


# ---------------------------------------------------------------- installing


def _run(argv: list[str], log: Path, timeout: float, cwd: Path | None = None) -> str | None:
    """Run an install step, appending to ``log``; None when it worked, else the reason."""
    try:
        with log.open("ab") as out:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(argv[:3])} failed: {exc!r}"
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        return f"{' '.join(argv[:4])} exited {done.returncode}: {' | '.join(tail)}"
    return None


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def litellm_binary() -> Path:
    return CACHE / "litellm" / "bin" / "litellm"


def portkey_entry() -> Path:
    return CACHE / "portkey" / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"


def install(name: str) -> str | None:
    """Install one peer if it is missing; None when it is there, else why it could not be installed."""
    CACHE.mkdir(parents=True, exist_ok=True)
    log = CACHE / f"{name}-install.log"
    if name == NGINX:
        if nginx_binary():
            return None
        if os.geteuid() != 0:
            return "nginx is not installed and the harness is not root (apt-get install -y nginx-light)"
        reason = _run(["apt-get", "install", "-y", "-qq", "nginx-light"], log, INSTALL_TIMEOUT_S)
        if reason:
            reason = _run(["apt-get", "update", "-qq"], log, INSTALL_TIMEOUT_S) or _run(
                ["apt-get", "install", "-y", "-qq", "nginx-light"], log, INSTALL_TIMEOUT_S
            )
        return reason or (None if nginx_binary() else "apt-get install nginx-light left no nginx binary")
    if name == LITELLM:
        if litellm_binary().exists():
            return None
        venv = CACHE / "litellm"
        reason = _run([sys.executable, "-m", "venv", str(venv)], log, 120)
        pip = [str(venv / "bin" / "pip"), "install", "--quiet", LITELLM_REQUIREMENT]
        reason = reason or _run(pip, log, INSTALL_TIMEOUT_S)
        return reason or (None if litellm_binary().exists() else f"pip left no {litellm_binary()}")
    if portkey_entry().exists():
        return None
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return "node/npm are not installed (apt-get install -y nodejs npm)"
    where = CACHE / "portkey"
    where.mkdir(parents=True, exist_ok=True)
    argv = [npm, "install", "--prefix", str(where), "--no-audit", "--no-fund", PORTKEY_PACKAGE]
    reason = _run(argv, log, INSTALL_TIMEOUT_S)
    return reason or (None if portkey_entry().exists() else f"npm left no {portkey_entry()}")


def _output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (done.stdout + done.stderr).strip().splitlines()[-1:][0] if (done.stdout + done.stderr).strip() else "?"


def version(name: str) -> str:
    if name == NGINX:
        return _output([nginx_binary() or "nginx", "-v"]).split("version: ")[-1]
    if name == LITELLM:
        python = str(CACHE / "litellm" / "bin" / "python")
        code = "import importlib.metadata as m; print('litellm', m.version('litellm'))"
        return _output([python, "-c", code])
    package = json.loads((portkey_entry().parent.parent / "package.json").read_text())
    return f"{PORTKEY_PACKAGE} {package.get('version', '?')} on node {_output(['node', '--version'])}"


# ---------------------------------------------------------------- configs and start


def nginx_config(workdir: Path, listen: dict[int, int]) -> Path:
    """A config for one non-daemon nginx: ``listen`` maps a local port to the fake port it proxies to."""
    root = workdir / "nginx"
    root.mkdir(exist_ok=True)
    lines = [
        "daemon off;",
        "worker_processes 1;",
        f"pid {root / 'nginx.pid'};",
        "error_log stderr warn;",
        "events { worker_connections 8192; }",
        "http {",
        "  access_log off;",
    ]
    lines += [f"  {kind}_temp_path {root / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]
    for port, upstream in listen.items():
        lines += [
            f"  upstream fake{upstream} {{ server 127.0.0.1:{upstream}; keepalive 512; }}",
            "  server {",
            f"    listen 127.0.0.1:{port} backlog=4096;",
            "    location / {",
            f"      proxy_pass http://fake{upstream};",
            "      proxy_http_version 1.1;",
            '      proxy_set_header Connection "";',
            "      proxy_buffering off;",
            "    }",
            "  }",
        ]
    path = root / "nginx.conf"
    path.write_text("\n".join([*lines, "}"]) + "\n")
    return path


def litellm_config(path: Path, fakes: dict[str, int]) -> Path:
    """``bench-model`` (and ``bench-model-20ms``, ``bench-model-paced``) as ``openai/bench-model`` at the fakes."""
    lines = ["model_list:"]
    for route, port in fakes.items():
        lines += [
            f"  - model_name: {_litellm_model(route)}",
            "    litellm_params:",
            "      model: openai/bench-model",
            f"      api_base: http://127.0.0.1:{port}/v1",
            "      api_key: sk-bench",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _litellm_model(route: str) -> str:
    return "bench-model" if route == FAST else f"bench-model-{'20ms' if route == SLOW else route}"


def start(
    name: str, sup: procs.Supervisor, workdir: Path, fakes: dict[str, int], cpu: int | None
) -> tuple[Peer | None, str]:
    """Start one peer pointed at ``fakes`` (route → fake port); the peer and "ok", or None and why not."""
    json_headers = {"Content-Type": "application/json"}
    if name == NGINX:
        listen = {procs.free_port(): port for port in fakes.values()}
        config = nginx_config(workdir, listen)
        argv = [nginx_binary() or "nginx", "-e", "stderr", "-p", str(config.parent), "-c", str(config)]
        ports = list(listen)
        child = sup.start(name, argv, ports[0], cpu)
        extra = [procs.Child(name, child.proc, child.log, p, child.started) for p in ports[1:]]
        routes = {
            route: Route(
                f"http://127.0.0.1:{port}/v1/chat/completions", json_headers | _bearer("sk-bench"), "bench-model"
            )
            for route, port in zip(fakes, ports, strict=True)
        }
        return Peer(name, child, routes, version(name), extra=extra), "ok"
    port = procs.free_port()
    if name == LITELLM:
        master = "sk-" + secrets.token_hex(16)
        config = litellm_config(workdir / "litellm.yaml", fakes)
        argv = [str(litellm_binary()), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": master}
        child = sup.start(name, [*argv, "--num_workers", "1"], port, cpu, env, cwd=workdir)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        routes = {route: Route(url, json_headers | _bearer(master), _litellm_model(route)) for route in fakes}
        return Peer(name, child, routes, version(name)), "ok"
    argv = ["node", str(portkey_entry()), f"--port={port}", "--headless"]
    child = sup.start(name, argv, port, cpu, cwd=workdir)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    routes = {
        route: Route(
            url,
            json_headers
            | _bearer("sk-bench")
            | {"x-portkey-provider": "openai", "x-portkey-custom-host": f"http://127.0.0.1:{fake}/v1"},
            "bench-model",
        )
        for route, fake in fakes.items()
    }
    return Peer(name, child, routes, version(name)), "ok"


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def check(peer: Peer, body_for: Callable[[str, bool], bytes], expected_events: int) -> str | None:
    """Cold start (first 200 from process start) and a streamed answer; None when the peer can be measured."""
    fast = peer.routes[FAST]
    seconds, reason = procs.wait_first_answer(
        peer.child, fast.url, body_for(fast.model, False), fast.headers, START_TIMEOUT_S[peer.name]
    )
    if seconds is None:
        return f"{reason}; log tail: {peer.child.log_tail(5)!r}"
    peer.cold_start_s = round(seconds, 3)
    peer.stream = stream_smoke(fast, body_for(fast.model, True), expected_events)
    return None


def stream_smoke(route: Route, body: bytes, expected_events: int) -> str:
    """ "ok" when one streamed answer is complete (200, ``[DONE]`` last, usage, every event), else what was wrong."""
    request = urllib.request.Request(route.url, data=body, headers=route.headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as resp:
            status, data = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    except OSError as exc:
        return f"streamed request failed: {exc!r}"
    payloads = [ln[5:].strip() for ln in data.splitlines() if ln.startswith(b"data:")]
    seen = loadgen.openai_fidelity(payloads)
    if status != 200 or not seen.done:
        return f"streamed request got HTTP {status}: {data[:200]!r}"
    if len(payloads) != expected_events or not seen.usage:
        return f"incomplete stream: {len(payloads)} events of {expected_events}, usage {'yes' if seen.usage else 'no'}"
    return "ok"


def describe(peers: dict[str, Peer], skipped: dict[str, str]) -> dict[str, Any]:
    """The peers' part of the results: version, cold start and stream status, or why each was skipped."""
    out: dict[str, Any] = {name: {"status": reason} for name, reason in skipped.items()}
    for name, peer in peers.items():
        out[name] = {
            "status": "ok",
            "version": peer.version,
            "cold_start_s": peer.cold_start_s,
            "stream": peer.stream,
            "routes": {route: {"url": r.url, "model": r.model} for route, r in peer.routes.items()},
        }
    return out
