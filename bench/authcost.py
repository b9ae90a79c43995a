"""Auth, limits and accounting: what a key with limits and a budget costs the gateway per request.

Four gateway set-ups get the same wrk load (16 connections), interleaved with the other targets
in the throughput phase; CPU-ms per request is counted from /proc as for every other run:

* ``gateway``: the main gateway with a ``full`` key that has every limit and a budget set, all
  generous enough never to refuse (``FULL_SPEC``). It is the key of every other gateway measurement,
  so "all features on" is the default.
* ``gateway-auth-only``: the same process with a key without limits or budget (looked up and
  checked, never limited or charged).
* ``gateway-no-auth``: a second gateway process started with ``POLYROUTE_REQUIRE_API_KEY=false``.
* ``gateway-redis``: a third gateway process with ``POLYROUTE_REDIS_URL`` (the shared limiter) and
  a key with the same settings as the full key. Redis's own CPU is counted from ``/proc`` (its pid
  from ``INFO server``); it is skipped, with the reason, when Redis does not answer.

The gateways' routing file prices the fake's model, so each answer has a cost and the budget is
charged. The target: the full key (in-process limiter, one worker) adds ≤ 0.1 CPU-ms per request
over no auth, taken as the median over repeats of (full − no auth) within the same repeat.
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fake_upstream

FULL, AUTH_ONLY, NO_AUTH, REDIS = "gateway", "gateway-auth-only", "gateway-no-auth", "gateway-redis"
VARIANTS = (FULL, AUTH_ONLY, NO_AUTH, REDIS)
"""The set-ups, in the order of the report."""
LABELS = {
    NO_AUTH: ("no auth", "none (`POLYROUTE_REQUIRE_API_KEY=false`)", "–"),
    AUTH_ONLY: ("auth only", "full, no limits, no budget", "–"),
    FULL: ("full key, in-process", "full, limits + budget", "in-process"),
    REDIS: ("full key, Redis", "full, limits + budget", "Redis"),
}
"""Per set-up: case, key, limiter (table columns)."""
REDIS_URL = "redis://127.0.0.1:6379/0"
CONNS = 16
ADDED_CPU_MS_MAX = 0.1
"""Target: the full key adds at most this much gateway CPU per request over no auth (in-process, one worker)."""
PRICE = {"input": 1.0, "output": 2.0}
"""USD per million tokens of the fake's model, so each answer has a cost to charge to the budget."""
FULL_SPEC: dict[str, Any] = {
    "type": "full",
    "name": "bench-full",
    "limits": {
        "requests_per_minute": 10**8,
        "requests_per_hour": 10**9,
        "requests_per_day": 10**9,
        "tokens_per_minute": 10**9,
        "tokens_per_day": 10**9,
        "max_concurrent": 10**4,
    },
    "budget": {"daily_usd": 10.0**6, "weekly_usd": 10.0**7, "monthly_usd": 10.0**8, "total_usd": 10.0**9},
}
AUTH_ONLY_SPEC: dict[str, Any] = {"type": "full", "name": "bench-auth-only"}
"""A full key takes no limits and no budget by default."""


def _request(url: str, admin_key: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw[:300]


def create_key(base_url: str, admin_key: str, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A new key through ``POST /api/keys``: its secret and its record (limits, budget, id).

    Raises:
        RuntimeError: the gateway did not create it.
    """
    try:
        status, doc = _request(f"{base_url}/api/keys", admin_key, spec)
    except OSError as exc:
        raise RuntimeError(f"POST /api/keys failed: {exc!r}") from exc
    if status != 201 or not isinstance(doc, dict) or not doc.get("key"):
        raise RuntimeError(f"POST /api/keys got HTTP {status}: {doc!r}")
    record = {k: doc.get(k) for k in ("id", "type", "limits", "budget")}
    return str(doc["key"]), record


def limiter_state(base_url: str, admin_key: str, key_id: str) -> dict[str, Any] | None:
    """What the gateway's limiter counted for a key (``GET /api/rate-limits``), or None."""
    try:
        status, doc = _request(f"{base_url}/api/rate-limits?key_id={key_id}", admin_key)
    except OSError:
        return None
    if status != 200 or not isinstance(doc, dict) or not doc.get("data"):
        return None
    entry = doc["data"][0]
    return {k: entry.get(k) for k in ("requests", "tokens", "concurrent", "spend_usd")}


# ---------------------------------------------------------------- Redis


class RedisSide:
    """The Redis the shared limiter uses: its pid (for /proc CPU), command counter and clean-up."""

    def __init__(self, url: str, client: Any, pid: int | None, version: str) -> None:
        self.url = url
        self._client = client
        self.pid = pid
        self.version = version

    @classmethod
    def connect(cls, url: str) -> tuple[RedisSide | None, str]:
        """The Redis at ``url``, or None and why it cannot be used."""
        try:
            import redis
        except ImportError:
            return None, "skipped: the redis package is not installed"
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
        try:
            client.ping()
            info = client.info("server")
        except redis.RedisError as exc:
            client.close()
            return None, f"skipped: Redis at {url} does not answer ({type(exc).__name__}: {exc})"
        pid = _redis_pid(info.get("process_id"), int(info.get("tcp_port") or 0))
        return cls(url, client, pid, str(info.get("redis_version", "?"))), "ok"

    def scripts(self) -> tuple[int, int] | None:
        """``EVALSHA`` calls so far and the µs Redis spent running them (every client's; ``INFO commandstats``)."""
        try:
            entry = self._client.info("commandstats").get("cmdstat_evalsha", {})
            return int(entry.get("calls", 0)), int(entry.get("usec", 0))
        except Exception:  # counters for the report only
            return None

    def forget(self, key_ids: list[str]) -> int:
        """Delete what the limiter stored for these keys (each key id is unique to this run)."""
        removed = 0
        with contextlib.suppress(Exception):
            for key_id in key_ids:
                names = list(self._client.scan_iter(match=f"*{{{key_id}}}*", count=1000))
                removed += self._client.delete(*names) if names else 0
        return removed

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def _redis_pid(reported: object, port: int) -> int | None:
    """Redis's pid as its ``INFO`` reports it when /proc agrees, else found by scanning /proc."""
    if isinstance(reported, int) and _comm(reported).startswith("redis"):
        return reported
    for pid in _pids():
        if _comm(pid).startswith("redis-server"):
            with contextlib.suppress(OSError):
                if f":{port}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes() or not port:
                    return pid
    return None


# ---------------------------------------------------------------- summary, check, note


def _median(values: list[Any]) -> float | None:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(clean) if clean else None


def _per_rep(runs: list[dict[str, Any]], name: str, base: str) -> list[float]:
    """Per repeat: ``name``'s CPU-ms per request minus ``base``'s in the same repeat."""
    out = []
    for rep in sorted({r["rep"] for r in runs}):
        this = {r["target"]: r.get("cpu_ms_per_req") for r in runs if r["rep"] == rep}
        if this.get(name) is not None and this.get(base) is not None:
            out.append(round(this[name] - this[base], 4))
    return out


def summarize(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per set-up: req/s, p50, CPU from the 16-connection runs, added CPU over no auth, p50 at 1 connection."""
    runs = [r for r in results.get("throughput_runs", []) if r["conns"] == CONNS]
    at16 = results.get("throughput", {}).get(str(CONNS), {})
    at1 = results.get("latency_c1", {}).get("summary", {})
    out: dict[str, dict[str, Any]] = {}
    for name in VARIANTS:
        mine = [r for r in runs if r["target"] == name]
        if name not in at16 or not mine:
            continue
        entry = dict(at16[name])
        entry["cpu_ms_per_req_runs"] = [r.get("cpu_ms_per_req") for r in mine]
        entry["p50_c1_us"] = at1.get(name, {}).get("p50_us")
        entry["added_p50_c1_us"] = at1.get(name, {}).get("added_p50_us")
        if name != NO_AUTH:
            entry["added_cpu_ms_per_rep"] = _per_rep(runs, name, NO_AUTH)
            entry["added_cpu_ms"] = _median(entry["added_cpu_ms_per_rep"])
        if name == REDIS:
            redis_cpu = [r["cpu_ms"]["redis"] / r["requests"] for r in mine if "redis" in r["cpu_ms"] and r["requests"]]
            entry["redis_cpu_ms_per_req"] = _median(redis_cpu)
            scripts = [r["redis_scripts"] for r in mine if r.get("redis_scripts") and r["requests"]]
            entry["redis_scripts_per_req"] = _median([calls / n for calls, _, n in scripts])
            entry["redis_script_us_per_req"] = _median([us / n for _, us, n in scripts])
        out[name] = entry
    return out


def check(auth: dict[str, Any]) -> dict[str, Any]:
    """The target as a check entry (name, value, limit, verdict, detail)."""
    name = (
        f"full key (limits + budget, in-process) adds ≤ {ADDED_CPU_MS_MAX:g} CPU-ms/request over no auth "
        f"({CONNS} conns)"
    )
    summary = auth.get("summary", {})
    full, none = summary.get(FULL, {}), summary.get(NO_AUTH, {})
    value = full.get("added_cpu_ms")
    if auth.get("status") != "ok" or value is None:
        reason = auth.get("variants", {}).get(NO_AUTH, auth.get("status", "not measured"))
        return {"name": name, "value": None, "limit": ADDED_CPU_MS_MAX, "verdict": "SKIP", "detail": reason}
    failed = any(d.get("errors") or d.get("non_2xx") for d in (full, none))
    detail = (
        f"{full['cpu_ms_per_req']:.3f} vs {none['cpu_ms_per_req']:.3f} CPU-ms/req (medians); median of per-repeat "
        f"differences {value:+.3f} ms ({', '.join(f'{d:+.3f}' for d in full['added_cpu_ms_per_rep'])})"
    )
    if failed:
        detail += "; the gateway returned errors, numbers not valid"
    verdict = "PASS" if value <= ADDED_CPU_MS_MAX and not failed else "MISS"
    return {"name": name, "value": value, "limit": ADDED_CPU_MS_MAX, "verdict": verdict, "detail": detail}


def note(auth: dict[str, Any]) -> str | None:
    """What the keys were, what the limiters counted, and the Redis set-up (or why it was skipped)."""
    if not auth or auth.get("status") != "ok":
        return None
    limits = ", ".join(f"{k} {v:,}" for k, v in FULL_SPEC["limits"].items())
    budget = ", ".join(f"{k} {v:,.0f}" for k, v in FULL_SPEC["budget"].items())
    text = (
        f"Auth cost: the full key has {limits} and a budget ({budget}), so it is "
        f"never refused; the fake's model is priced (${PRICE['input']:g}/${PRICE['output']:g} per M tokens in/out), "
        "so each answer is charged. Added CPU = median over repeats of (set-up − no auth) in the same repeat."
    )
    usage = fake_upstream._USAGE
    price = (usage["prompt_tokens"] * PRICE["input"] + usage["completion_tokens"] * PRICE["output"]) / 1e6
    text += (
        f" One fake answer is {usage['total_tokens']} tokens, ${price:.6f}; what each limiter counted for its key "
        "afterwards (GET /api/rate-limits; a request cut off when a wrk run stops counts but charges nothing):"
    )
    counted = []
    for name, state in auth.get("limiter_state", {}).items():
        requests = (state or {}).get("requests", {}).get("day")
        if requests:
            spent = (state.get("spend_usd") or {}).get("total", 0.0)
            counted.append(
                f"{LABELS[name][0]} {requests:,} requests, {state['tokens'].get('day', 0) / requests:.2f} tokens "
                f"and ${spent / requests:.6f} per request, {state.get('concurrent', 0)} leases still held"
            )
    text += " " + ("; ".join(counted) or "nothing (the state could not be read)") + "."
    redis = auth.get("redis", {})
    if auth.get("variants", {}).get(REDIS) != "ok":
        text += f" Redis case: {auth.get('variants', {}).get(REDIS, 'not measured')}."
    elif redis:
        where = f"pid {redis['pid']}" if redis.get("pid") else "pid not found, its CPU not counted"
        text += (
            f" Redis {redis.get('version')} at {redis.get('url')} ({where}) is not pinned and may serve other "
            "clients: its CPU per request includes theirs. The limiter runs 2 scripts per request (admit, charge) "
            "and one ZREM (release); more scripts per request mean other clients ran some."
        )
    return text
