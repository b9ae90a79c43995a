"""Load generation: wrk for fixed-connection load, a small asyncio client for streaming.

wrk is driven by a generated Lua script that sets method, headers and body and, in ``done()``,
prints the summary and latency percentiles as one JSON line. The percentiles come straight from
wrk's histogram in microseconds (``--latency`` prints the same histogram, rounded to 2 digits).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import procs
import uvloop

_DONE_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,' ..
    '"p999_us":%.1f,"mean_us":%.1f,"max_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max))
end
"""


def require_wrk() -> str | None:
    """Path of wrk, or None when it is not installed."""
    return shutil.which("wrk")


def wrk_version() -> str:
    """wrk's version line."""
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    text = (out.stdout or out.stderr or "unknown").splitlines()[0]
    return text.split(" [", 1)[0].split(" Copyright", 1)[0].strip()


def write_script(path: Path, body: bytes, headers: dict[str, str]) -> Path:
    """Write a wrk Lua script that POSTs ``body`` with ``headers``."""
    text = body.decode()
    if "]==]" in text:
        raise ValueError("body must not contain ]==]")
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{text}]==]"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n" + _DONE_LUA)
    return path


@dataclass
class WrkResult:
    """One wrk run; latencies in microseconds."""

    requests: int
    duration_s: float
    rps: float
    errors: int
    non_2xx: int
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    mean_us: float
    max_us: float
    cpu_ms: dict[str, float]
    """CPU milliseconds used by each watched process tree from the start of the run until it was idle again."""
    cpu_ms_in_window: dict[str, float]
    """The same, counted only while wrk was running."""
    settle_s: float
    """How long the servers kept working after wrk stopped."""

    def cpu_ms_per_request(self, name: str) -> float | None:
        if name not in self.cpu_ms or not self.requests:
            return None
        return self.cpu_ms[name] / self.requests

    def cpu_share(self, name: str) -> float | None:
        """Fraction of one core the watched process used during the run."""
        if name not in self.cpu_ms_in_window or not self.duration_s:
            return None
        return self.cpu_ms_in_window[name] / 1000.0 / self.duration_s

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def run_wrk(
    url: str, script: Path, conns: int, seconds: float, watch: dict[str, int], settle: Callable[[], float]
) -> WrkResult:
    """Run wrk with one thread; ``watch`` maps names to pids whose CPU time is measured meanwhile.

    ``settle()`` is called after wrk ends and waits until the servers are idle again, so CPU spent on
    deferred work (request-log flushes) counts for the requests that caused it.
    """
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script), url]
    before = {name: procs.cpu_seconds(pid) for name, pid in watch.items()}
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    window = {name: procs.cpu_seconds(pid) for name, pid in watch.items()}
    settled = settle()
    after = {name: procs.cpu_seconds(pid) for name, pid in watch.items()}
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result (exit {out.returncode}): {out.stderr.strip() or out.stdout[-500:]}")
    raw = json.loads(line.removeprefix("BENCHJSON "))
    duration = raw["duration_us"] / 1e6
    errors = raw["err_connect"] + raw["err_read"] + raw["err_write"] + raw["err_timeout"]
    return WrkResult(
        requests=raw["requests"],
        duration_s=round(duration, 3),
        rps=round(raw["requests"] / duration, 1) if duration else 0.0,
        errors=errors,
        non_2xx=raw["err_status"],
        p50_us=raw["p50_us"],
        p90_us=raw["p90_us"],
        p99_us=raw["p99_us"],
        p999_us=raw["p999_us"],
        mean_us=round(raw["mean_us"], 1),
        max_us=raw["max_us"],
        cpu_ms={name: round((after[name] - before[name]) * 1000.0, 1) for name in watch},
        cpu_ms_in_window={name: round((window[name] - before[name]) * 1000.0, 1) for name in watch},
        settle_s=settled,
    )


@dataclass
class Target:
    """Something to send chat requests to; ``fmt`` is the client API its stream speaks."""

    name: str
    url: str
    body: bytes
    headers: dict[str, str]
    fmt: str = "openai"
    """``openai`` (Chat Completions chunks, ``[DONE]``) or ``anthropic`` (Messages events)."""


@dataclass
class StreamSample:
    """One streamed answer as the client saw it."""

    status: int
    ttfb_us: float
    """Time to the first event of any kind."""
    ttft_us: float
    """Time to the first event carrying answer text."""
    total_us: float
    gaps_us: list[float]
    events: int
    done: bool
    usage: bool
    text: str
    body_bytes: int
    """Bytes of the response body (after de-chunking), every line included."""


@dataclass(frozen=True)
class Fidelity:
    """What a stream's events said, read after the stream ended (so parsing costs no measured time)."""

    done: bool
    usage: bool
    text: str
    first_text: int | None
    """Index of the first event carrying answer text."""


def _load(payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def openai_fidelity(payloads: list[bytes]) -> Fidelity:
    """Chat Completions: done = the last event is ``[DONE]``; usage = a chunk with a ``usage`` object."""
    pieces: list[str] = []
    first: int | None = None
    for i, payload in enumerate(payloads):
        for choice in _load(payload).get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if content:
                pieces.append(content)
                first = i if first is None else first
    done = bool(payloads) and payloads[-1] == b"[DONE]"
    return Fidelity(done, any(b'"usage":{' in p for p in payloads), "".join(pieces), first)


def anthropic_fidelity(payloads: list[bytes]) -> Fidelity:
    """Messages: done = the last event is ``message_stop``; usage = a ``message_delta`` with ``usage``."""
    docs = [_load(p) for p in payloads]
    pieces: list[str] = []
    first: int | None = None
    for i, doc in enumerate(docs):
        delta = doc.get("delta") or {}
        if doc.get("type") == "content_block_delta" and delta.get("type") == "text_delta" and delta.get("text"):
            pieces.append(delta["text"])
            first = i if first is None else first
    done = bool(docs) and docs[-1].get("type") == "message_stop"
    usage = any(d.get("type") == "message_delta" and isinstance(d.get("usage"), dict) for d in docs)
    return Fidelity(done, usage, "".join(pieces), first)


_FIDELITY: dict[str, Callable[[list[bytes]], Fidelity]] = {"openai": openai_fidelity, "anthropic": anthropic_fidelity}


async def _one_stream(session: aiohttp.ClientSession, target: Target) -> StreamSample:
    stamps: list[float] = []
    payloads: list[bytes] = []
    size = 0
    start = time.perf_counter()
    async with session.post(target.url, data=target.body, headers=target.headers) as resp:
        async for line in resp.content:
            size += len(line)
            if line.startswith(b"data:"):
                stamps.append(time.perf_counter())
                payloads.append(line[5:].strip())
        status = resp.status
    end = time.perf_counter()
    seen = _FIDELITY[target.fmt](payloads)
    first = stamps[0] if stamps else end
    first_text = stamps[seen.first_text] if seen.first_text is not None else end
    return StreamSample(
        status=status,
        ttfb_us=(first - start) * 1e6,
        ttft_us=(first_text - start) * 1e6,
        total_us=(end - start) * 1e6,
        gaps_us=[(b - a) * 1e6 for a, b in zip(stamps, stamps[1:], strict=False)],
        events=len(payloads),
        done=seen.done,
        usage=seen.usage,
        text=seen.text,
        body_bytes=size,
    )


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100.0 * (len(ordered) - 1))))]


def _summarize(target: Target, samples: list[StreamSample]) -> dict[str, object]:
    ok = [s for s in samples if s.status == 200]
    gaps = [g for s in ok for g in s.gaps_us]
    texts = {s.text for s in ok}
    return {
        "format": target.fmt,
        "requests": len(samples),
        "ok": len(ok),
        "ttfb_p50_us": round(_percentile([s.ttfb_us for s in ok], 50), 1),
        "ttfb_p99_us": round(_percentile([s.ttfb_us for s in ok], 99), 1),
        "ttft_p50_us": round(_percentile([s.ttft_us for s in ok], 50), 1),
        "ttft_p99_us": round(_percentile([s.ttft_us for s in ok], 99), 1),
        "total_p50_us": round(_percentile([s.total_us for s in ok], 50), 1),
        "gap_p50_us": round(_percentile(gaps, 50), 1),
        "gap_p99_us": round(_percentile(gaps, 99), 1),
        "events_median": statistics.median([s.events for s in ok]) if ok else 0,
        "events_all": sorted({s.events for s in ok}),
        "bytes_median": statistics.median([s.body_bytes for s in ok]) if ok else 0,
        "bytes_all": sorted({s.body_bytes for s in ok}),
        "all_done": bool(ok) and all(s.done for s in ok),
        "all_usage": bool(ok) and all(s.usage for s in ok),
        "text": ok[0].text if len(texts) == 1 else None,
        "text_stable": len(texts) == 1,
    }


async def _stream_rounds(targets: list[Target], rounds: int) -> dict[str, dict[str, object]]:
    samples: dict[str, list[StreamSample]] = {t.name: [] for t in targets}
    timeout = aiohttp.ClientTimeout(total=30)
    sessions = {
        t.name: aiohttp.ClientSession(timeout=timeout, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())
        for t in targets
    }
    try:
        for target in targets:  # warm up connections
            await _one_stream(sessions[target.name], target)
        for _ in range(rounds):
            for target in targets:
                samples[target.name].append(await _one_stream(sessions[target.name], target))
    finally:
        for session in sessions.values():
            await session.close()
    return {t.name: _summarize(t, samples[t.name]) for t in targets}


def stream_check(targets: list[Target], rounds: int) -> dict[str, dict[str, object]]:
    """Interleaved streaming requests, one at a time; time to first event and first text, gaps, fidelity."""
    return uvloop.run(_stream_rounds(targets, rounds))
