"""polyroute benchmark: the gateway against the bare Python pass-through floor and the direct upstream.

Usage: ``.venv/bin/python bench/run.py [--quick] [--out bench/results] [--no-gateway] [--no-pin]``.

Starts a fast fake OpenAI upstream (plus one with a fixed 20 ms delay), the pass-through floor
(``bench/passthrough.py``) and ``polyroute serve``, then measures with wrk: added latency at one
connection in interleaved rounds, throughput at 16 and 64 connections, CPU-ms per request and RSS
from /proc, a 20 ms-upstream concurrency sweep, a streaming check, and the cross-format case (an
Anthropic client on ``/v1/messages`` streaming from the OpenAI-format fake: time to first event and
CPU-ms per request next to same-format streaming; ``bench/crossformat.py``). The gateway is measured
with a ``full`` key that has limits and a budget; the cost of auth, limits and accounting is measured
against the same key without limits, a gateway without auth and one with the Redis limiter
(``bench/authcost.py``). Two more gateways of their own measure one fallback hop from a provider that
answers 500 (``bench/failover.py``) and 200 configured providers against one (``bench/deployments.py``).
Prints a Markdown report with PASS/MISS per target and writes
``<out>/<date>-<host>.json`` and ``<out>/latest.md``. All children are ended on exit, Ctrl-C or
error. See bench/README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import functools
import json
import os
import platform
import secrets
import signal
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import authcost
import coldstart
import crossformat
import deployments
import failover
import frontier
import heldstreams
import loadgen
import peers
import procs
import report

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PY = sys.executable
HARNESS_CPU, SERVER_CPU = 0, 1
GATEWAY_QUIET_S = 1.2
"""Idle time that proves the gateway is done: longer than its request-log flush interval (1 s)."""
FAKE_CHUNKS, FAKE_CHUNK_DELAY_MS = 64, 1
"""Content chunks per streamed answer of the fakes, and the gap between chunks."""
PACED_CHUNK_DELAY_MS = 1000
"""The paced fake of the memory phase: one event per second."""
EXPECTED_EVENTS = {"openai": FAKE_CHUNKS + 4, "anthropic": FAKE_CHUNKS + 5}
"""Events of one streamed answer per client API: role, content, finish, usage, [DONE] (OpenAI); message_start,
content_block_start, content, content_block_stop, message_delta, message_stop (Anthropic)."""
STREAM_S = (FAKE_CHUNKS + 4) * FAKE_CHUNK_DELAY_MS / 1000 * 1.5
"""Generous wall time of one streamed answer (role, content, finish and usage chunks, [DONE])."""
MESSAGES = [
    {"role": "system", "content": "You are a concise assistant. Answer in plain prose."},
    {
        "role": "user",
        "content": "Summarise the benefits of HTTP connection pooling for an API gateway in two sentences.",
    },
]


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Durations (seconds) and sizes of each phase."""

    warmup: float
    latency_rounds: int
    latency_s: float
    throughput_s: float
    throughput_reps: int
    delay_conns: tuple[int, ...]
    delay_s: float
    stream_rounds: int
    xf_s: float
    xf_reps: int
    budget_s: int
    c1_variants: tuple[str, ...]
    """Auth set-ups that join the 1-connection latency rounds (all of them join the 16-connection runs)."""
    reps_64: int
    """Repeats at 64 connections (the first ones of the throughput repeats)."""
    fo_rounds: int = 2
    """Interleaved rounds of the failover hop at one connection."""
    fo_s: float = 1.0
    extra_reps: int = 1
    """Repeats of the 16-connection runs of the failover and deployment-count cases."""
    extra_s: float = 1.0
    extra_warmup: float = 1.0
    """Seconds of the warm-up run of each extra gateway (wrk takes whole seconds only)."""
    deployments: bool = True
    """Whether the deployment-count case (1 vs 200 providers) runs."""
    frontier_levels: tuple[int, ...] = (1, 4, 16, 64)
    """Connection counts of the throughput frontier (levels other phases ran are reused)."""
    frontier_s: float = 1.0
    held_streams: int = 1000
    """Streams held open at once in the memory phase."""
    held_chunks: int = 3
    """Content chunks of a paced answer (one event per second: the stream lasts chunks + 3 seconds)."""
    cold_starts: int = 1
    """Fresh starts of the gateway (and pass-through) in the cold-start phase; the median is reported."""
    peer_budget_s: int = 150
    """Seconds added to the budget when peers run (their start-up, LiteLLM's ~10-15 s, included)."""
    memory_rounds: int = 2
    """Rounds of held streams on the gateway (the pass-through gets one): a second round shows whether the
    first one's memory is reused (allocator) or kept growing (a leak)."""
    gateway_quiet_s: float = 1.2
    """Idle time that proves a gateway is done after a CPU-counted run (see ``GATEWAY_QUIET_S``)."""


QUICK = Plan(
    warmup=1,
    latency_rounds=3,
    latency_s=1,
    throughput_s=2,
    throughput_reps=1,
    delay_conns=(1, 16, 64, 256),
    delay_s=1,
    stream_rounds=20,
    xf_s=2,
    xf_reps=1,
    budget_s=175,
    c1_variants=(),
    reps_64=1,
    fo_rounds=1,
    deployments=False,
)
FULL = Plan(
    warmup=2,
    latency_rounds=3,
    latency_s=2,
    throughput_s=3,
    throughput_reps=2,
    delay_conns=(1, 16, 64, 256),
    delay_s=2,
    stream_rounds=60,
    xf_s=3,
    xf_reps=2,
    budget_s=430,
    c1_variants=(authcost.REDIS,),
    reps_64=1,
    fo_rounds=3,
    fo_s=2.0,
    extra_reps=1,
    extra_s=2.0,
    extra_warmup=1.0,
    frontier_levels=(1, 4, 16, 64, 128),
    frontier_s=2.0,
    held_chunks=4,
    cold_starts=3,
    peer_budget_s=160,
)
SMOKE = Plan(
    warmup=1,
    latency_rounds=1,
    latency_s=1,
    throughput_s=1,
    throughput_reps=1,
    delay_conns=(1, 16),
    delay_s=1,
    stream_rounds=5,
    xf_s=1,
    xf_reps=1,
    budget_s=240,
    c1_variants=(),
    reps_64=1,
    fo_rounds=1,
    deployments=False,
    frontier_levels=(1, 4, 16),
    held_streams=200,
    held_chunks=2,
    gateway_quiet_s=0.3,
)
"""A structure check, not a measurement: every phase once, as short as it can be (tests/bench)."""


@dataclass
class Rig:
    """The processes under test and the wrk scripts to hit them."""

    sup: procs.Supervisor
    fake: procs.Child
    targets: dict[str, procs.Child] = field(default_factory=dict)
    scripts: dict[str, Path] = field(default_factory=dict)
    slow_scripts: dict[str, Path] = field(default_factory=dict)
    slow_targets: dict[str, procs.Child] = field(default_factory=dict)
    gateway_status: str = "not started"
    gateway_data: Path | None = None
    deadline: float = float("inf")
    """Monotonic time by which the optional phases must be done."""
    gateway_quiet_s: float = 1.2
    """``Plan.gateway_quiet_s``: how long a gateway must be idle before a CPU-counted run is over."""
    key: str = ""
    """The admin key (creates the keys the load uses)."""
    keys: dict[str, str] = field(default_factory=dict)
    """Gateway target → the key its load sends (see ``authcost``)."""
    key_records: dict[str, dict[str, Any]] = field(default_factory=dict)
    variants: dict[str, str] = field(default_factory=dict)
    """Auth set-up → "ok" or why it was skipped."""
    redis: authcost.RedisSide | None = None
    xf_status: str = "not measured"
    xf_scripts: dict[str, tuple[str, Path]] = field(default_factory=dict)
    """Cross-format CPU runs: case → (gateway URL, wrk script)."""
    extra: dict[str, procs.Child] = field(default_factory=dict)
    """The failover and deployment-count processes (name → child), stopped after their phases."""
    fo_scripts: dict[tuple[str, int], Path] = field(default_factory=dict)
    """Failover case: (case, connections) → wrk script."""
    dep_scripts: dict[tuple[str, str], Path] = field(default_factory=dict)
    """Deployment count: (gateway, request) → wrk script."""
    peers: dict[str, peers.Peer] = field(default_factory=dict)
    """The peers that started and answered (name → peer), in the order they are reported."""
    paced_targets: dict[str, procs.Child] = field(default_factory=dict)
    """Servers in front of the paced fake (memory phase): the pass-through's own process, the gateway."""
    stream_scripts: dict[str, Path] = field(default_factory=dict)
    """Same-format streaming wrk scripts of the pass-through and the peers (their CPU per streamed request)."""
    workers: dict[str, int] = field(default_factory=dict)
    """Worker processes of each target that has more than one."""
    config: Path | None = None
    """The gateways' routing file."""
    w2_status: str = "not started"
    """The 2-worker gateway (throughput frontier): "ok" or why it was skipped."""


def chat_body(model: str, stream: bool = False) -> bytes:
    doc: dict[str, Any] = {"model": model, "messages": MESSAGES, "max_tokens": 64, "temperature": 0.2}
    if stream:
        doc |= {"stream": True, "stream_options": {"include_usage": True}}
    return json.dumps(doc).encode()


def url_of(child: procs.Child, path: str = "/v1/chat/completions") -> str:
    return f"http://127.0.0.1:{child.port}{path}"


# ---------------------------------------------------------------- starting things


def passthrough_argv(upstream: procs.Child, port: int) -> list[str]:
    return [PY, str(BENCH / "passthrough.py"), "--upstream", url_of(upstream, ""), "--port", str(port)]


def start_passthroughs(rig: Rig, slow: procs.Child, paced: procs.Child) -> None:
    """One pass-through per fake (its own process each), so every phase finds the floor in front of its fake."""
    for name, upstream, where in (
        ("passthrough", rig.fake, rig.targets),
        ("passthrough-20ms", slow, rig.slow_targets),
        ("passthrough-paced", paced, rig.paced_targets),
    ):
        port = procs.free_port()
        child = rig.sup.start(name, passthrough_argv(upstream, port), port, SERVER_CPU)
        if reason := procs.wait_healthy(child, url_of(child, "/health"), 10):
            raise RuntimeError(f"{reason}\n{child.log_tail()}")
        where["passthrough"] = child


def start_fake(
    sup: procs.Supervisor,
    name: str,
    delay_ms: float,
    fail_status: int = 0,
    *,
    chunks: int = FAKE_CHUNKS,
    chunk_delay_ms: float = FAKE_CHUNK_DELAY_MS,
) -> procs.Child:
    port = procs.free_port()
    argv = [PY, str(BENCH / "fake_upstream.py"), "--port", str(port), "--delay-ms", f"{delay_ms:g}"]
    argv += ["--chunk-delay-ms", f"{chunk_delay_ms:g}", "--chunks", str(chunks)]
    argv += ["--fail-status", str(fail_status)] if fail_status else []
    child = sup.start(name, argv, port, HARNESS_CPU)
    if reason := procs.wait_healthy(child, url_of(child, "/health"), 10):
        raise RuntimeError(f"{reason}\n{child.log_tail()}")
    return child


def gateway_config(path: Path, fake: procs.Child, slow: procs.Child, paced: procs.Child) -> Path:
    lines = ["providers:"]
    for name, child in (("fake", fake), ("slow", slow), ("paced", paced)):
        lines += [
            f"  - name: {name}",
            "    format: openai",
            f"    base_url: http://127.0.0.1:{child.port}/v1",
            "    api_key: sk-bench",
            "    models: [bench-model]",
        ]
    lines += ["prices:", "  bench-model:"] + [f"    {k}: {v}" for k, v in authcost.PRICE.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


GATEWAY_EXE = REPO / ".venv" / "bin" / "polyroute"
W2_CPUS = f"{HARNESS_CPU},{SERVER_CPU}"
"""Two workers cannot share one pinned CPU: the 2-worker gateway runs on both."""


def gateway_env(rig: Rig, data_dir: Path, env: dict[str, str]) -> dict[str, str]:
    """One worker, its own data dir, keys required and no Redis unless ``env`` says."""
    base = {"POLYROUTE_ADMIN_KEY": rig.key, "POLYROUTE_DATA_DIR": str(data_dir), "POLYROUTE_WORKERS": "1"}
    return base | {"POLYROUTE_REQUIRE_API_KEY": "true", "POLYROUTE_REDIS_URL": ""} | env


def gateway_argv(config: Path, port: int) -> list[str]:
    return [str(GATEWAY_EXE), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]


def launch_gateway(
    rig: Rig, name: str, config: Path, workdir: Path, env: dict[str, str], cpu: int | str = SERVER_CPU
) -> procs.Child:
    """Start one ``polyroute serve`` with its own data dir (see ``gateway_env``)."""
    data_dir = workdir / f"{name}-data"
    data_dir.mkdir()
    port = procs.free_port()
    return rig.sup.start(name, gateway_argv(config, port), port, cpu, gateway_env(rig, data_dir, env))


def start_gateway(rig: Rig, slow: procs.Child, paced: procs.Child, workdir: Path, redis_url: str) -> None:
    """The main gateway, and next to it the no-auth, Redis-limiter and 2-worker gateways (started together)."""
    if not GATEWAY_EXE.exists():
        rig.gateway_status = f"skipped: {GATEWAY_EXE.relative_to(REPO)} not installed"
        return
    config = rig.config = gateway_config(workdir / "gateway.yaml", rig.fake, slow, paced)
    child = launch_gateway(rig, "gateway", config, workdir, {})
    rig.gateway_data = workdir / "gateway-data"
    others = {
        authcost.NO_AUTH: launch_gateway(rig, authcost.NO_AUTH, config, workdir, {"POLYROUTE_REQUIRE_API_KEY": "false"})
    }
    rig.redis, rig.variants[authcost.REDIS] = (
        (None, "skipped: --redis-url none") if redis_url == "none" else authcost.RedisSide.connect(redis_url)
    )
    if rig.redis is not None:
        others[authcost.REDIS] = launch_gateway(
            rig, authcost.REDIS, config, workdir, {"POLYROUTE_REDIS_URL": redis_url}
        )
        w2_env = {"POLYROUTE_REDIS_URL": redis_url, "POLYROUTE_WORKERS": "2"}
        others[frontier.W2] = launch_gateway(rig, frontier.W2, config, workdir, w2_env, W2_CPUS)
    else:
        rig.w2_status = f"{rig.variants[authcost.REDIS]} (2 workers need the shared Redis limiter)"
    started = time.monotonic()
    if reason := procs.wait_healthy(child, url_of(child, "/health"), 15):
        rig.gateway_status = f"skipped: {reason}; log tail: {child.log_tail(5)!r}"
    else:
        rig.gateway_status = f"ok (healthy after {time.monotonic() - started:.1f} s)"
        reason = make_keys(rig, child) or smoke_gateway(child, rig.keys[authcost.FULL])
        reason = reason or smoke_gateway(child, rig.keys[authcost.AUTH_ONLY], limited=False)
        rig.gateway_status = f"skipped: {reason}" if reason else rig.gateway_status
    if not rig.gateway_status.startswith("ok"):
        for each in (child, *others.values()):
            rig.sup.stop(each)
        rig.variants = dict.fromkeys(authcost.VARIANTS, rig.gateway_status)
        rig.w2_status = rig.gateway_status
        return
    rig.targets["gateway"] = rig.targets[authcost.AUTH_ONLY] = rig.slow_targets["gateway"] = child
    rig.paced_targets["gateway"] = child
    rig.variants[authcost.FULL] = rig.variants[authcost.AUTH_ONLY] = "ok"
    reason = crossformat.smoke(url_of(child, crossformat.PATH), messages_body(), rig.keys[authcost.FULL])
    rig.xf_status = f"skipped: {reason}" if reason else "ok"
    for name, other in others.items():
        status = start_variant(rig, name, other)
        if name == frontier.W2:
            rig.w2_status = status
        else:
            rig.variants[name] = status


def start_peers(
    rig: Rig, names: list[str], workdir: Path, fakes: dict[str, procs.Child], installed: dict[str, str | None]
) -> dict[str, str]:
    """Start each peer in turn (alone, so its cold start is its own) and check it; name → "ok" or why not."""
    status: dict[str, str] = {}
    ports = {route: child.port for route, child in fakes.items()}
    for name in names:
        if reason := installed.get(name, "install not attempted"):
            status[name] = f"skipped: not installed: {reason}"
            print(f"peer {name}: {status[name]}", flush=True)
            continue
        peer, _ = peers.start(name, rig.sup, workdir, ports, SERVER_CPU)
        assert peer is not None
        if reason := peers.check(peer, chat_body, EXPECTED_EVENTS["openai"]):
            rig.sup.stop(peer.child)
            status[name] = f"skipped: {reason}"
        else:
            status[name] = "ok"
            rig.peers[name] = peer
            rig.targets[name] = peer.child
            rig.slow_targets[name] = peer.child_for(peers.SLOW)
        print(
            f"peer {name}: {status[name]}"
            + (
                f" ({peer.version}; first answer {peer.cold_start_s} s; stream {peer.stream})"
                if name in rig.peers
                else ""
            ),
            flush=True,
        )
    return status


def make_keys(rig: Rig, child: procs.Child) -> str | None:
    """The full key and the auth-only key on the main gateway; None when both exist."""
    try:
        for name, spec in ((authcost.FULL, authcost.FULL_SPEC), (authcost.AUTH_ONLY, authcost.AUTH_ONLY_SPEC)):
            rig.keys[name], rig.key_records[name] = authcost.create_key(url_of(child, ""), rig.key, spec)
    except RuntimeError as exc:
        return str(exc)
    rig.keys[authcost.NO_AUTH] = rig.keys[authcost.FULL]  # sent, so every request is the same bytes; not read
    return None


def start_variant(rig: Rig, name: str, child: procs.Child) -> str:
    """Wait for the no-auth or Redis gateway, give it its key and check it; "ok" or why it is skipped."""
    reason = procs.wait_healthy(child, url_of(child, "/health"), 30 if name == frontier.W2 else 15)
    if reason:
        reason += f"; log tail: {child.log_tail(5)!r}"
    elif name == authcost.NO_AUTH:
        reason = smoke_gateway(child, None)
    else:
        try:
            rig.keys[name], rig.key_records[name] = authcost.create_key(url_of(child, ""), rig.key, authcost.FULL_SPEC)
        except RuntimeError as exc:
            reason = str(exc)
        reason = reason or smoke_gateway(child, rig.keys[name])
    if reason:
        rig.sup.stop(child)
        return f"skipped: {reason}"
    rig.targets[name] = child
    if name == frontier.W2:
        rig.workers[name] = 2
    return "ok"


def start_extras(rig: Rig, workdir: Path, results: dict[str, Any], with_deployments: bool = True) -> None:
    """The failing fake and the failover and deployment-count gateways (no auth), launched together and checked."""
    if "gateway" not in rig.targets:
        results["failover"] = {"status": results["gateway"]["status"]}
        results["deployments"] = {"status": results["gateway"]["status"]}
        return
    failing = start_fake(rig.sup, failover.FAILING, 0, fail_status=failover.FAIL_STATUS)
    configs = {
        failover.GATEWAY: failover.routing_file(workdir / "failover.yaml", failing.port, rig.fake.port, authcost.PRICE)
    }
    for name, count in deployments.COUNTS.items() if with_deployments else ():
        configs[name] = deployments.routing_file(workdir / f"{name}.yaml", count, rig.fake.port, authcost.PRICE)
    no_auth = {"POLYROUTE_REQUIRE_API_KEY": "false"}
    started = time.monotonic()
    children = {name: launch_gateway(rig, name, path, workdir, no_auth) for name, path in configs.items()}

    def ready(child: procs.Child) -> tuple[str | None, float]:
        reason = procs.wait_healthy(child, url_of(child, "/health"), 30)
        return (f"{reason}; log tail: {child.log_tail(5)!r}" if reason else None), time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(len(children)) as pool:
        waits = dict(zip(children, pool.map(ready, children.values()), strict=True))
    gw, (reason, healthy_after) = children[failover.GATEWAY], waits[failover.GATEWAY]
    status = f"skipped: {reason}" if reason else "ok"
    breaker = failover.relax_breaker(url_of(gw, ""), rig.key) if reason is None else "not checked"
    if reason is None and (wrong := failover.smoke(_post, url_of(gw), url_of(failing), chat_body)):
        status = failover.fail_loudly(wrong)
    results["failover"] = {"status": status, "healthy_after_s": round(healthy_after, 2), "breaker": breaker}
    if status == "ok":
        rig.extra |= {failover.GATEWAY: gw, failover.FAILING: failing}
    if with_deployments:
        start_deployments(rig, results, children, waits)
    else:
        results["deployments"] = {"status": "not run in this mode (full run only)"}
    for each in [*children.values(), failing]:
        if each not in rig.extra.values():
            rig.sup.stop(each)
    write_extra_scripts(rig, workdir)


def start_deployments(
    rig: Rig,
    results: dict[str, Any],
    children: dict[str, procs.Child],
    waits: dict[str, tuple[str | None, float]],
) -> None:
    """Check the 1- and 200-provider gateways; keep them for their phase when both answer."""
    reasons = [f"{n}: {waits[n][0]}" for n in deployments.GATEWAYS if waits[n][0]] or [
        f"{n}: {why}"
        for n in deployments.GATEWAYS
        if (why := deployments.smoke(_post, url_of(children[n]), n, chat_body))
    ]
    gateways = {
        n: {"healthy_after_s": round(waits[n][1], 2), "rss_kib": {"start": procs.rss_kib(children[n].pid)}}
        for n in deployments.GATEWAYS
    }
    results["deployments"] = {
        "status": "skipped: " + "; ".join(reasons) if reasons else "ok",
        "gateways": gateways,
        "fake_model_lists": model_lists(rig.fake),
    }
    if not reasons:
        rig.extra |= {n: children[n] for n in deployments.GATEWAYS}


def model_lists(fake: procs.Child) -> int | None:
    """How many model-list requests the fake has served (its ``/health`` answer)."""
    try:
        with urllib.request.urlopen(url_of(fake, "/health"), timeout=5) as resp:
            return int(json.loads(resp.read())["model_lists"])
    except (OSError, ValueError, KeyError):
        return None


def write_extra_scripts(rig: Rig, workdir: Path) -> None:
    plain = {"Content-Type": "application/json"}
    if failover.GATEWAY in rig.extra:
        for case in failover.CASES:
            for conns in (1, failover.CONNS):
                path = workdir / f"failover-{case}-c{conns}.lua"
                body = chat_body(failover.REQUESTED[case])
                rig.fo_scripts[(case, conns)] = failover.write_script(path, body, plain, timed=conns == 1)
    if deployments.MANY in rig.extra:
        for gateway in deployments.GATEWAYS:
            for request in deployments.REQUESTS:
                path = workdir / f"{gateway}-{request.replace('/', '-')}.lua"
                body = chat_body(deployments.requested(gateway, request))
                rig.dep_scripts[(gateway, request)] = loadgen.write_script(path, body, plain)


def messages_body() -> bytes:
    return crossformat.messages_body("fake/bench-model", MESSAGES)


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def smoke_gateway(child: procs.Child, key: str | None, *, limited: bool = True) -> str | None:
    """Check that the gateway refuses a request without a key and answers a real completion with ``key``.

    With ``key`` None the gateway must answer without one (auth off). ``limited``: the answer must carry
    ``x-ratelimit-limit`` (the key's limits were applied), or must not (a key without limits).
    """
    body = chat_body("fake/bench-model")
    try:
        status, headers, data = _post(url_of(child), body, {"Content-Type": "application/json"})
        if key is not None:
            if status != 401:
                return f"a request without a key got HTTP {status}, expected 401 (auth not on?)"
            status, headers, data = _post(url_of(child), body, headers_for(key))
        doc = json.loads(data)
    except (OSError, ValueError) as exc:
        return f"smoke request failed: {exc!r}"
    if status != 200 or not doc.get("choices") or "usage" not in doc:
        return f"smoke request got HTTP {status}: {data[:300]!r}"
    if key is not None and limited != ("x-ratelimit-limit" in headers):
        return (
            f"x-ratelimit-limit {'missing' if limited else 'sent'} for a key {'with' if limited else 'without'} limits"
        )
    return None


def headers_for(key: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}


def route_of(rig: Rig, name: str, route: str = peers.FAST) -> tuple[str, dict[str, str]]:
    """The model a target's requests ask for and the headers they carry, for the fake behind ``route``."""
    if name in rig.peers:
        r = rig.peers[name].routes[route]
        return r.model, r.headers
    headers = headers_for(rig.keys.get(name, "sk-bench"))
    if name in ("direct", "passthrough"):
        return "bench-model", headers
    return {peers.FAST: "fake", peers.SLOW: "slow", peers.PACED: "paced"}[route] + "/bench-model", headers


def write_scripts(rig: Rig, workdir: Path) -> None:
    for name in rig.targets | {"direct": rig.fake}:
        model, headers = route_of(rig, name)
        rig.scripts[name] = loadgen.write_script(workdir / f"{name}.lua", chat_body(model), headers)
        if name in ("direct", "passthrough", "gateway", *rig.peers):
            slow_model, slow_headers = route_of(rig, name, peers.SLOW)
            path = workdir / f"{name}-20ms.lua"
            rig.slow_scripts[name] = loadgen.write_script(path, chat_body(slow_model), slow_headers)
        if name == "passthrough" or (name in rig.peers and rig.peers[name].stream == "ok"):
            path = workdir / f"{name}-stream.lua"
            rig.stream_scripts[name] = loadgen.write_script(path, chat_body(model, stream=True), headers)
    if rig.xf_status == "ok":
        gateway, key = rig.targets["gateway"], rig.keys[authcost.FULL]
        same = loadgen.write_script(
            workdir / "gateway-stream.lua", chat_body("fake/bench-model", stream=True), headers_for(key)
        )
        cross = loadgen.write_script(
            workdir / "gateway-anthropic-stream.lua", messages_body(), crossformat.messages_headers(key)
        )
        rig.xf_scripts = {
            crossformat.SAME: (url_of(gateway), same),
            crossformat.CROSS: (url_of(gateway, crossformat.PATH), cross),
        }


# ---------------------------------------------------------------- measuring


def order(rig: Rig) -> list[str]:
    """Direct, pass-through, gateway and the peers: the targets every comparison runs, in report order."""
    return ["direct", *[n for n in ("passthrough", "gateway") if n in rig.targets], *rig.peers]


def auth_order(rig: Rig, rep: int) -> list[str]:
    """The gateway set-ups of the auth comparison that run, in an order that flips every repeat."""
    names = [n for n in authcost.VARIANTS if n in rig.targets]
    return names if rep % 2 == 0 else names[::-1]


def hit(
    rig: Rig, name: str, conns: int, seconds: float, slow: procs.Child | None = None, quiet_s: float | None = None
) -> dict[str, Any]:
    """One wrk run against a target; CPU of the target and the fake (and Redis, for the Redis set-up) are watched.

    ``quiet_s``: a shorter idle wait for runs whose CPU is not reported (warm-up, 20 ms sweep).
    """
    fake = slow or rig.fake
    targets = rig.slow_targets if slow else rig.targets
    child = fake if name == "direct" else targets[name]
    scripts = rig.slow_scripts if slow else rig.scripts
    if name != authcost.REDIS or rig.redis is None:
        return wrk_once(rig, name, child, fake, url_of(child), scripts[name], conns, seconds, quiet_s=quiet_s)
    also = {"redis": rig.redis.pid} if rig.redis.pid else {}
    before = rig.redis.scripts()
    out = wrk_once(rig, name, child, fake, url_of(child), scripts[name], conns, seconds, also=also, quiet_s=quiet_s)
    after = rig.redis.scripts()
    if after is not None and before is not None:
        out["redis_scripts"] = [after[0] - before[0], after[1] - before[1], out["requests"]]
    return out


def wrk_once(
    rig: Rig,
    name: str,
    child: procs.Child,
    fake: procs.Child,
    url: str,
    script: Path,
    conns: int,
    seconds: float,
    *,
    also: dict[str, int] | None = None,
    quiet_s: float | None = None,
) -> dict[str, Any]:
    """One wrk run of ``script`` at ``url``; CPU of ``child`` (reported as ``name``), the fake and ``also`` watched.

    ``also``: more processes (name → pid) whose CPU is counted and is not foreign load (Redis).
    """
    watch = {"fake": fake.pid} | ({name: child.pid} if name != "direct" else {}) | (also or {})
    mine = (c for n, c in (*rig.targets.items(), *rig.slow_targets.items()) if n not in rig.peers)
    servers = sorted({c.pid for c in mine} | {child.pid})  # an idle peer's timers are not this run's work
    quiet = quiet_s if quiet_s is not None else rig.gateway_quiet_s if name.startswith("gateway") else 0.2
    settle = functools.partial(procs.wait_quiet, servers, quiet, 6.0)
    everyone = [c.pid for c in rig.sup.children] + list((also or {}).values())
    before = procs.MachineSample.take(everyone)
    res = loadgen.run_wrk(url, script, conns, seconds, watch, settle)
    out = res.to_dict() | procs.MachineSample.take(everyone).foreign_since(before)
    out["cpu_ms_per_req"] = res.cpu_ms_per_request(name)
    out["fake_cpu_share"] = res.cpu_share("fake")
    if name != "direct":
        out["target_cpu_share"] = res.cpu_share(name)
    return out


def measure_latency(rig: Rig, plan: Plan) -> dict[str, Any]:
    """Interleaved rounds at one connection: direct, pass-through, gateway and ``plan.c1_variants``."""
    names = order(rig) + [n for n in plan.c1_variants if n in rig.targets]
    rounds: list[dict[str, Any]] = []
    for i in range(plan.latency_rounds):
        this: dict[str, Any] = {}
        for name in names:
            this[name] = hit(rig, name, 1, plan.latency_s)
        rounds.append(this)
        print(f"  round {i + 1}: " + ", ".join(f"{n} p50 {r['p50_us']:.0f} µs" for n, r in this.items()), flush=True)
    return {"rounds": rounds, "summary": report.summarize_latency(rounds, names)}


def measure_throughput(rig: Rig, plan: Plan) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Repeated, interleaved runs at 16 (every auth set-up too) and 64 connections; medians across repeats."""
    runs: list[dict[str, Any]] = []
    for rep in range(plan.throughput_reps):
        for conns in (16, 64) if rep < plan.reps_64 else (16,):
            names = order(rig)[:2] + auth_order(rig, rep) + list(rig.peers) if conns == 16 else order(rig)
            this = {name: hit(rig, name, conns, plan.throughput_s) for name in names}
            runs += [{"rep": rep, "conns": conns, "target": n, **r} for n, r in this.items()]
            print(f"  {conns} conns: " + ", ".join(f"{n} {r['rps']:.0f} req/s" for n, r in this.items()), flush=True)
    names = order(rig) + [n for n in authcost.VARIANTS if n in rig.targets and n not in order(rig)]
    summary = {str(c): report.summarize_runs([r for r in runs if r["conns"] == c], names) for c in (16, 64)}
    return summary, runs


def measure_delay(rig: Rig, plan: Plan, slow: procs.Child) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for conns in plan.delay_conns:
        names = order(rig) if plan is FULL else order(rig)[1:]
        out[str(conns)] = {name: hit(rig, name, conns, plan.delay_s, slow, quiet_s=0.3) for name in names}
        print(
            f"  20 ms upstream, {conns} conns: " + ", ".join(f"{n} {r['rps']:.0f}" for n, r in out[str(conns)].items())
        )
    return out


def measure_stream(rig: Rig, plan: Plan) -> dict[str, Any]:
    targets = []
    for name in order(rig):
        if name in rig.peers and rig.peers[name].stream != "ok":
            continue
        child = rig.fake if name == "direct" else rig.targets[name]
        model, headers = route_of(rig, name)
        targets.append(loadgen.Target(name, url_of(child), chat_body(model, stream=True), headers))
    if rig.xf_status == "ok":
        url = url_of(rig.targets["gateway"], crossformat.PATH)
        targets.append(crossformat.stream_target(url, messages_body(), rig.keys[authcost.FULL]))
    return loadgen.stream_check(targets, plan.stream_rounds)


def measure_crossformat(rig: Rig, plan: Plan) -> dict[str, Any]:
    """Gateway CPU per streamed request: OpenAI → OpenAI against Anthropic → OpenAI, 16 connections."""
    run_one = functools.partial(wrk_once, rig, "gateway", rig.targets["gateway"], rig.fake)
    return crossformat.measure_cpu(run_one, rig.xf_scripts, plan.xf_reps, plan.xf_s)


def measure_failover(rig: Rig, plan: Plan) -> dict[str, Any]:
    """The failover hop (``bench/failover.py``): rounds at one connection, then CPU at 16."""
    gateway, failing = rig.extra[failover.GATEWAY], rig.extra[failover.FAILING]

    def run_one(case: str, script: Path, conns: int, seconds: float) -> dict[str, Any]:
        name, child = (failover.FAILING, failing) if case == failover.FAILING_UPSTREAM else (failover.GATEWAY, gateway)
        return wrk_once(rig, name, child, rig.fake, url_of(child), script, conns, seconds)

    return failover.measure(run_one, rig.fo_scripts, plan.fo_rounds, plan.fo_s, plan.extra_reps, plan.extra_s)


def measure_deployments(rig: Rig, plan: Plan, dep: dict[str, Any]) -> None:
    """1 against 200 providers (``bench/deployments.py``) at 16 connections; RSS after the load."""

    def run_one(gateway: str, script: Path, conns: int, seconds: float) -> dict[str, Any]:
        child = rig.extra[gateway]
        return wrk_once(rig, gateway, child, rig.fake, url_of(child), script, conns, seconds)

    dep |= deployments.measure(run_one, rig.dep_scripts, plan.extra_reps, plan.extra_s)
    for gateway in deployments.GATEWAYS:
        dep["gateways"][gateway]["rss_kib"]["after"] = procs.rss_kib(rig.extra[gateway].pid)


def warm_extras(rig: Rig, plan: Plan) -> None:
    """One wrk run on each extra gateway, back to back; the last waits until all of them are idle again."""
    jobs = (
        [(rig.extra[failover.GATEWAY], rig.fo_scripts[(failover.NO_FALLBACK, failover.CONNS)])]
        if rig.fo_scripts
        else []
    )
    jobs += [
        (rig.extra[gw], script) for (gw, request), script in rig.dep_scripts.items() if request == deployments.SHARED
    ]
    pids = [child.pid for child in rig.extra.values()]
    for i, (child, script) in enumerate(jobs):
        last = i == len(jobs) - 1
        settle = functools.partial(procs.wait_quiet, pids, GATEWAY_QUIET_S, 6.0) if last else lambda: 0.0
        loadgen.run_wrk(url_of(child), script, 16, plan.extra_warmup, {}, settle)


def measure_extras(rig: Rig, plan: Plan, results: dict[str, Any]) -> None:
    """The failover and deployment-count phases, each when it fits in the time budget; then their processes end."""
    warm_up = "warm-up of the failover and deployment gateways"
    if rig.extra and time_left(rig, len(rig.extra) * plan.extra_warmup + 3, warm_up, results):
        warm_extras(rig, plan)
    gateway_run = plan.extra_s + plan.gateway_quiet_s + 0.6
    rounds = plan.fo_rounds * (2 * (plan.fo_s + plan.gateway_quiet_s + 0.6) + plan.fo_s + 0.5)
    if failover.GATEWAY in rig.extra and time_left(
        rig, rounds + 2 * plan.extra_reps * gateway_run, "failover hop", results
    ):
        results["failover"] |= measure_failover(rig, plan)
    needed = len(deployments.GATEWAYS) * (len(deployments.REQUESTS) * plan.extra_reps + 1) * gateway_run
    if deployments.MANY in rig.extra and time_left(rig, needed, "deployment count (1 vs 200 providers)", results):
        measure_deployments(rig, plan, results["deployments"])
    for child in rig.extra.values():
        rig.sup.stop(child)
    rig.extra.clear()


def rss_all(rig: Rig) -> dict[str, int]:
    """RSS of each server process (the auth-only set-up is the main gateway's process)."""
    return {name: procs.rss_kib(child.pid) for name, child in rig.targets.items() if name != authcost.AUTH_ONLY}


# ---------------------------------------------------------------- orchestration


def rig_info(pinned: bool) -> dict[str, Any]:
    cpus = os.cpu_count() or 1
    pin = (
        f"harness, wrk and fakes on CPU {HARNESS_CPU}; pass-through and gateway on CPU {SERVER_CPU} (taskset)"
        if pinned
        else "no pinning"
    )
    summary = f"{cpus} CPUs, Linux {platform.release()}, Python {platform.python_version()}, {loadgen.wrk_version()}"
    return {
        "cpus": cpus,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pinning": pin,
        "wrk": loadgen.wrk_version(),
        "summary": f"{summary}; {pin}",
    }


def mark(results: dict[str, Any], phase: str) -> None:
    """Note when ``phase`` started (seconds since the run began), for the time budget's bookkeeping."""
    started = results.setdefault("phase_started_s", {"_t0": time.monotonic()})
    started[phase] = round(time.monotonic() - started["_t0"], 1)


def time_left(rig: Rig, needed: float, phase: str, results: dict[str, Any]) -> bool:
    """Whether ``phase`` fits in the time budget; if not, it is skipped and a note says so."""
    if time.monotonic() + needed < rig.deadline:
        print(phase, flush=True)
        mark(results, phase)
        return True
    results.setdefault("skipped_phases", []).append(f"{phase}: skipped to stay within the time budget")
    print(f"{phase}: skipped (time budget)", flush=True)
    return False


def run_phases(rig: Rig, plan: Plan, slow: procs.Child, results: dict[str, Any]) -> None:
    """Every measuring phase in order; the later ones only when they fit in the time budget."""
    rss_start = rss_all(rig)
    print("warm-up", flush=True)
    mark(results, "warm-up")
    extra = (authcost.NO_AUTH, authcost.REDIS, frontier.W2)
    warm = order(rig) + [n for n in extra if n in rig.targets]
    for i, name in enumerate(warm):
        hit(rig, name, 16, plan.warmup, quiet_s=None if i == len(warm) - 1 else 0.3)
    print("latency at 1 connection (interleaved rounds)", flush=True)
    mark(results, "latency")
    results["latency_c1"] = measure_latency(rig, plan)
    print("throughput", flush=True)
    mark(results, "throughput")
    results["throughput"], results["throughput_runs"] = measure_throughput(rig, plan)
    measure_extras(rig, plan, results)
    results["delay20"], results["stream"], n = {}, {}, len(order(rig))
    if time_left(rig, len(plan.delay_conns) * n * (plan.delay_s + 1.5), "20 ms upstream sweep", results):
        results["delay20"] = measure_delay(rig, plan, slow)
    results["frontier"] = measure_frontier(rig, plan, results)
    xf = rig.xf_status == "ok"
    if time_left(rig, plan.stream_rounds * (n + xf) * STREAM_S + 3, "streaming check", results):
        results["stream"] = measure_stream(rig, plan)
    needed = plan.xf_reps * (2 + len(rig.stream_scripts)) * (plan.xf_s + 2.0)
    if time_left(rig, needed, "streaming CPU (same-format, Anthropic → OpenAI)", results):
        if xf:
            results["crossformat"] |= measure_crossformat(rig, plan)
        results["stream_cpu"] = measure_stream_cpu(rig, plan)
    after = rss_all(rig)
    results["rss_kib"] = {name: {"start": rss_start[name], "after": after[name]} for name in rss_start}
    if rig.gateway_data is not None and "gateway" in rig.targets:
        files = {p.name: p.stat().st_size for p in rig.gateway_data.iterdir() if p.is_file()}
        results["gateway"]["data_dir_files"] = files
    results["cold_start"] = measure_cold_start(rig, plan, results)
    results["memory"] = measure_memory(rig, plan, results)
    mark(results, "end")
    results["phase_started_s"].pop("_t0", None)


def measure_frontier(rig: Rig, plan: Plan, results: dict[str, Any]) -> dict[str, Any]:
    """Best req/s with p99 < 10 ms and unbounded, per worker; 1 against 2 workers (``bench/frontier.py``)."""
    targets = order(rig) + [n for n in (frontier.W1, frontier.W2) if n in rig.targets]
    reused = frontier.reused_points(results)
    missing = sum(1 for t in targets for c in plan.frontier_levels if c not in reused.get(t, {}))
    out: dict[str, Any] = {"status": "ok", "w2_status": rig.w2_status, "levels": plan.frontier_levels}
    if not time_left(rig, missing * (plan.frontier_s + 1.0), "throughput frontier", results):
        return out | {"status": "skipped (time budget)"}

    def run_one(target: str, conns: int, seconds: float) -> dict[str, Any]:
        child = rig.fake if target == "direct" else rig.targets[target]
        return wrk_once(rig, target, child, rig.fake, url_of(child), rig.scripts[target], conns, seconds, quiet_s=0.3)

    measured = frontier.measure(run_one, targets, plan.frontier_levels, plan.frontier_s, results)
    workers = {t: rig.workers.get(t, 1) for t in targets} | {"direct": 1}
    return out | measured | {"summary": frontier.summarize(measured["points"], workers)}


def measure_stream_cpu(rig: Rig, plan: Plan) -> dict[str, Any]:
    """CPU per same-format streamed request of the pass-through and the peers (the gateway's is in crossformat)."""
    runs: list[dict[str, Any]] = []
    for rep in range(plan.xf_reps):
        names = list(rig.stream_scripts) if rep % 2 == 0 else list(reversed(rig.stream_scripts))
        for name in names:
            child = rig.targets[name]
            res = wrk_once(rig, name, child, rig.fake, url_of(child), rig.stream_scripts[name], 16, plan.xf_s)
            runs.append({"rep": rep, "target": name, **res})
            print(f"  streaming, 16 conns: {name} {res['rps']:.0f} req/s, {res['cpu_ms_per_req'] or 0:.3f} CPU-ms/req")
    return {"summary": report.summarize_runs(runs, list(rig.stream_scripts)), "runs": runs}


def measure_memory(rig: Rig, plan: Plan, results: dict[str, Any]) -> dict[str, Any]:
    """RSS with ``plan.held_streams`` streams held at once on the pass-through and the gateway (``heldstreams``)."""
    names = [n for n in ("passthrough", "gateway") if n in rig.paced_targets]
    hold_s = plan.held_chunks + 3
    out: dict[str, Any] = {"streams": plan.held_streams, "chunk_gap_ms": PACED_CHUNK_DELAY_MS, "stream_s": hold_s}
    rounds = {name: plan.memory_rounds if name == "gateway" else 1 for name in names}
    phase = f"memory with {plan.held_streams} held streams"
    if not time_left(rig, sum(rounds.values()) * (hold_s + 3), phase, results):
        return out | {"status": "skipped (time budget)"}
    for name in names:
        child = rig.paced_targets[name]
        model, headers = route_of(rig, name, peers.PACED)
        settle = functools.partial(procs.wait_quiet, [child.pid], rig.gateway_quiet_s, 8.0)
        runs = [
            heldstreams.measure(
                child.pid,
                url_of(child),
                chat_body(model, stream=True),
                headers,
                count=plan.held_streams,
                expected_events=plan.held_chunks + 4,
                open_timeout_s=hold_s - 1.5,
                settle=settle,
            )
            for _ in range(rounds[name])
        ]
        res = runs[0] | {"rounds": runs[1:]}
        res["rss_kib"]["start"] = results.get("rss_kib", {}).get(name, {}).get("start")
        if len(runs) > 1:
            res["growth_kib"] = runs[-1]["rss_kib"]["after"] - runs[0]["rss_kib"]["after"]
            res["growth_share"] = heldstreams.share(res["growth_kib"], runs[0]["rss_kib"])
        out[name] = res
        rss = res["rss_kib"]
        print(
            f"  {name}: {res['held_together']} of {plan.held_streams} held together after {res['opened_s']} s; RSS "
            f"warm {rss['warm'] / 1024:.1f}, held {rss['held'] / 1024:.1f}, after {rss['after'] / 1024:.1f} MiB; "
            f"{res['kib_per_stream']} KiB/stream; {res['complete']} complete"
            + (f"; round 2 grew RSS by {res['growth_kib'] / 1024:+.1f} MiB" if "growth_kib" in res else ""),
            flush=True,
        )
    return out | {"status": "ok"}


def measure_cold_start(rig: Rig, plan: Plan, results: dict[str, Any]) -> dict[str, Any]:
    """Fresh starts of the gateway (data dir with a full key) and the pass-through, to the first 200."""
    out: dict[str, Any] = {
        name: {"status": "ok", "seconds": p.cold_start_s, "runs_s": [p.cold_start_s]} for name, p in rig.peers.items()
    }
    if not time_left(rig, plan.cold_starts * 6 + 4, "cold start", results):
        return out | {"status": "skipped (time budget)"}

    def url_for(port: int) -> str:
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    def start_pt(port: int) -> procs.Child:
        return rig.sup.start("passthrough-cold", passthrough_argv(rig.fake, port), port, SERVER_CPU)

    out["passthrough"] = coldstart.measure(
        start_pt, rig.sup.stop, url_for, chat_body("bench-model"), headers_for("sk-bench"), plan.cold_starts
    )
    if "gateway" in rig.targets and rig.config is not None:
        data_dir = rig.sup.workdir / "gateway-cold-data"
        env = gateway_env(rig, data_dir, {})
        try:
            key = coldstart.prepare_gateway(GATEWAY_EXE, data_dir, env)
        except RuntimeError as exc:
            out["gateway"] = {"status": f"failed: {exc}", "seconds": None}
            return out | {"status": "ok"}
        config = rig.config

        def start_gw(port: int) -> procs.Child:
            return rig.sup.start("gateway-cold", gateway_argv(config, port), port, SERVER_CPU, env)

        out["gateway"] = coldstart.measure(
            start_gw, rig.sup.stop, url_for, chat_body("fake/bench-model"), headers_for(key), plan.cold_starts
        )
    for name in ("passthrough", "gateway"):
        if name in out:
            print(f"  {name}: first answer {out[name]['seconds']} s after start ({out[name]['status']})", flush=True)
    return out | {"status": "ok"}


def pick_plan(args: argparse.Namespace) -> tuple[Plan, str]:
    if args.smoke:
        return SMOKE, "smoke"
    return (QUICK, "quick") if args.quick else (FULL, "full")


def peers_wanted(args: argparse.Namespace) -> list[str]:
    """Peers run in the full run unless ``--no-peers``, in --quick and --smoke only with ``--peers``."""
    on = args.peers if args.peers is not None else not (args.quick or args.smoke)
    return list(peers.PEERS) if on and not args.no_gateway else []


def benchmark(args: argparse.Namespace, workdir: Path, sup: procs.Supervisor, pinned: bool) -> dict[str, Any]:
    started = time.monotonic()
    plan, mode = pick_plan(args)
    wanted = peers_wanted(args)
    results: dict[str, Any] = {
        "phase_started_s": {"_t0": started},
        "date": datetime.date.today().isoformat(),
        "host": socket.gethostname(),
        "mode": mode + (" + peers" if wanted and mode != "full" else ""),
        "plan": plan.__dict__,
        "rig": rig_info(pinned),
    }
    before = procs.MachineSample.take([])
    time.sleep(1.0)
    idle_load = procs.MachineSample.take([]).foreign_since(before)
    results["rig"]["foreign_load_at_start"] = idle_load
    print(f"other processes are using {idle_load['foreign_cpu_share']:.0%} of a core before the run", flush=True)
    mark(results, "start-up")
    fake = start_fake(sup, "fake", 0)
    slow = start_fake(sup, "fake-20ms", 20)
    paced = start_fake(sup, "fake-paced", 0, chunks=plan.held_chunks, chunk_delay_ms=PACED_CHUNK_DELAY_MS)
    budget = plan.budget_s + (plan.peer_budget_s if wanted else 0)
    rig = Rig(sup, fake, key="pr-bench-" + secrets.token_hex(16), deadline=started + budget - 8)
    rig.gateway_quiet_s = plan.gateway_quiet_s
    peer_status = start_peers(rig, wanted, workdir, {peers.FAST: fake, peers.SLOW: slow}, args.peer_install)
    results["peers"] = {"enabled": bool(wanted)} | peers.describe(rig.peers, peer_status)
    start_passthroughs(rig, slow, paced)
    if args.no_gateway:
        rig.gateway_status = rig.w2_status = "skipped: --no-gateway"
    else:
        start_gateway(rig, slow, paced, workdir, args.redis_url)
    print(f"gateway: {rig.gateway_status}; " + ", ".join(f"{n}: {v}" for n, v in rig.variants.items()), flush=True)
    print(f"2-worker gateway: {rig.w2_status}", flush=True)
    status = "ok" if "gateway" in rig.targets else rig.gateway_status
    results["gateway"] = {"status": status, "detail": rig.gateway_status, "key": rig.key_records.get(authcost.FULL)}
    start_extras(rig, workdir, results, plan.deployments)
    print(f"failover: {results['failover']['status']}; deployments: {results['deployments']['status']}", flush=True)
    upstream = {"content_chunks": FAKE_CHUNKS, "chunk_delay_ms": FAKE_CHUNK_DELAY_MS}
    results["expected_events"] = EXPECTED_EVENTS
    results["crossformat"] = {"status": rig.xf_status if "gateway" in rig.targets else status, "upstream": upstream}
    results["auth"] = {"status": rig.variants.get(authcost.NO_AUTH, status) if status == "ok" else status}
    results["auth"] |= {"variants": rig.variants, "keys": rig.key_records}
    try:
        write_scripts(rig, workdir)
        run_phases(rig, plan, slow, results)
        finish_auth(rig, results["auth"], results)
    finally:
        forget_redis(rig, results["auth"])
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["checks"] = report.evaluate(results)
    results["notes"] = notes(results)
    return results


def finish_auth(rig: Rig, auth: dict[str, Any], results: dict[str, Any]) -> None:
    """The auth comparison's summary and what each limiter counted (read while the gateways still run)."""
    auth["summary"] = authcost.summarize(results)
    auth["limiter_state"] = {
        name: authcost.limiter_state(url_of(rig.targets[name], ""), rig.key, rig.key_records[name]["id"])
        for name in (authcost.FULL, authcost.REDIS)
        if name in rig.targets and name in rig.key_records
    }


def forget_redis(rig: Rig, auth: dict[str, Any]) -> None:
    """Delete what the Redis limiter stored for this run's key, and close the connection."""
    if rig.redis is None:
        return
    record = rig.key_records.get(authcost.REDIS)
    removed = rig.redis.forget([record["id"]]) if record else 0
    auth["redis"] = {"url": rig.redis.url, "pid": rig.redis.pid, "version": rig.redis.version, "keys_removed": removed}
    rig.redis.close()


def all_runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    runs = [r for rnd in results["latency_c1"]["rounds"] for r in rnd.values()]
    runs += results["throughput_runs"] + results["crossformat"].get("runs", [])
    runs += results.get("failover", {}).get("runs", []) + results.get("deployments", {}).get("runs", [])
    runs += results.get("frontier", {}).get("runs", []) + results.get("stream_cpu", {}).get("runs", [])
    return runs + [r for per in results["delay20"].values() for r in per.values()]


def load_summary(results: dict[str, Any]) -> dict[str, float]:
    """Foreign CPU (other processes, share of a core) over every wrk run: median, max; steal; before the run."""
    runs = all_runs(results)
    foreign = sorted(r["foreign_cpu_share"] for r in runs) or [0.0]
    return {
        "median": foreign[len(foreign) // 2],
        "max": foreign[-1],
        "steal_max": max((r["steal_share"] for r in runs), default=0.0),
        "start": results["rig"]["foreign_load_at_start"]["foreign_cpu_share"],
        "runs": len(runs),
    }


def notes(results: dict[str, Any]) -> list[str]:
    out = ["Absolute times on a shared VM drift ±25–35% between runs; compare ratios from one run."]
    out += results.get("skipped_phases", [])
    load = results["load_summary"] = load_summary(results)
    out.append(
        f"Other processes on the machine used {load['median']:.0%} of a core in the median run "
        f"(max {load['max']:.0%}); hypervisor steal peaked at {load['steal_max']:.0%}."
        + (" Numbers are noisier than usual: rerun on a quiet machine." if load["median"] > 0.1 else "")
    )
    fake_share = max((r.get("fake_cpu_share") or 0) for r in results["throughput_runs"] if r["target"] != "direct")
    out.append(
        f"The fake upstream used at most {fake_share:.0%} of a core behind pass-through or gateway: not the bottleneck."
    )
    out.append("direct req/s is wrk and the fake sharing one core: a rig ceiling, not a target.")
    if xf_note := crossformat.note(results):
        out.append(xf_note)
    if auth_note := authcost.note(results.get("auth", {})):
        out.append(auth_note)
    return out


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def _watchdog(_signum: int, _frame: object) -> None:
    raise TimeoutError("time budget exceeded")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="polyroute benchmark (see bench/README.md)")
    parser.add_argument("--quick", action="store_true", help="short phases (≤ 3 minutes; peers only with --peers)")
    parser.add_argument(
        "--smoke", action="store_true", help="every phase once, as short as possible: a structure check (tests/bench)"
    )
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure nginx, LiteLLM and Portkey side by side (default: on for the full run, off for --quick)",
    )
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="where to write JSON and latest.md")
    parser.add_argument(
        "--docs", type=Path, default=REPO / "docs" / "benchmarks", help="where to write latest.md and the PNG charts"
    )
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="measure nothing: write the report and charts of a results file"
    )
    parser.add_argument("--no-gateway", action="store_true", help="measure only direct and pass-through")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--redis-url", default=authcost.REDIS_URL, help="Redis for the shared-limiter case ('none' skips it)"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.render is not None:
        results = json.loads(args.render.read_text())
        (args.out / "latest.md").write_text(report.markdown(results))
        written = report.write_docs(results, args.docs, args.render)
        print(f"wrote {args.out / 'latest.md'} and {', '.join(str(p) for p in written)}")
        return 0
    if loadgen.require_wrk() is None:
        print("wrk is not installed. Install it with:  sudo apt-get update && sudo apt-get install -y wrk")
        return 2
    args.peer_install = {}
    for name in peers_wanted(args):  # installing is not part of the timed run
        print(f"peer {name}: checking the install", flush=True)
        args.peer_install[name] = peers.install(name)
    pinned = not args.no_pin and (os.cpu_count() or 1) >= 2 and procs.pin_self(HARNESS_CPU)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGALRM, _watchdog)
    plan, _ = pick_plan(args)
    signal.alarm(plan.budget_s + (plan.peer_budget_s if peers_wanted(args) else 0))
    with tempfile.TemporaryDirectory(prefix="polyroute-bench-") as tmp:
        sup = procs.Supervisor(Path(tmp), pin=pinned)
        try:
            results = benchmark(args, Path(tmp), sup, pinned)
        except (RuntimeError, TimeoutError) as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted; children stopped", file=sys.stderr)
            return 130
        finally:
            signal.alarm(0)
            sup.stop_all()
    json_path, md_path = report.write(results, args.out)
    written = report.write_docs(results, args.docs, json_path)
    print()
    print(report.markdown(results))
    print(f"wrote {json_path}, {md_path} and {', '.join(str(p) for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
