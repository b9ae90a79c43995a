"""Memory under held streams: RSS of a server warm, with N streams open at once, and after they end.

A paced fake (``fake_upstream.py --chunk-delay-ms 1000``) sends the first event of each streamed answer
at once and then one event per second, so a stream stays open for a few seconds while doing almost
nothing: what it costs is memory. The client (uvloop + aiohttp, in the harness, one connection per
stream) opens all N streams together and counts a stream as held once its first event has arrived.
While all N are held, the server's RSS (``VmRSS`` of its process tree) is sampled a few times; the
peak is "held". Then every stream is read to its end, the server is left to go idle, and RSS is read
again ("after"). Reported: RSS warm (just before), held, after, KiB per held stream
(``(held − warm) / N``) and what stayed (``after − warm``), plus how many streams completed with every
event, ``[DONE]`` last and the usage chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import procs
import uvloop

SAMPLES = 4
SAMPLE_GAP_S = 0.2


@dataclass
class _Stream:
    status: int = 0
    events: int = 0
    done: bool = False
    usage: bool = False
    error: str = ""


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], held: Callable[[], None]
) -> _Stream:
    out = _Stream()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            out.status = resp.status
            last = b""
            async for line in resp.content:
                if not line.startswith(b"data:"):
                    continue
                if out.events == 0:
                    held()
                out.events += 1
                last = line[5:].strip()
                out.usage = out.usage or b'"usage":{' in last
            out.done = last == b"[DONE]"
    except (TimeoutError, aiohttp.ClientError) as exc:
        out.error = type(exc).__name__
    return out


async def _hold(
    pid: int, url: str, body: bytes, headers: dict[str, str], count: int, open_timeout_s: float
) -> dict[str, Any]:
    all_held = asyncio.Event()
    state = {"held": 0}

    def held() -> None:
        state["held"] += 1
        if state["held"] == count:
            all_held.set()

    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=open_timeout_s + 120)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        started = time.monotonic()
        tasks = [asyncio.ensure_future(_one(session, url, body, headers, held)) for _ in range(count)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_held.wait(), open_timeout_s)
        opened_s = time.monotonic() - started
        held_now = state["held"]
        samples = []
        for _ in range(SAMPLES):
            samples.append(procs.rss_kib(pid))
            await asyncio.sleep(SAMPLE_GAP_S)
        streams = await asyncio.gather(*tasks)
    return {
        "held": held_now,
        "opened_s": round(opened_s, 2),
        "held_samples_kib": samples,
        "streams": streams,
        "total_s": round(time.monotonic() - started, 2),
    }


def measure(
    pid: int,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    count: int,
    expected_events: int,
    open_timeout_s: float,
    settle: Callable[[], float],
) -> dict[str, Any]:
    """Hold ``count`` streams on the server ``pid`` (its tree); RSS warm, held, after and per stream."""
    warm = procs.rss_kib(pid)
    raw = uvloop.run(_hold(pid, url, body, headers, count, open_timeout_s))
    settled = settle()
    after = procs.rss_kib(pid)
    streams: list[_Stream] = raw["streams"]
    complete = [s for s in streams if s.status == 200 and s.done and s.usage and s.events == expected_events]
    held = max(raw["held_samples_kib"])
    errors: dict[str, int] = {}
    for s in streams:
        if s not in complete:
            why = s.error or f"HTTP {s.status}, {s.events} events, done {s.done}"
            errors[why] = errors.get(why, 0) + 1
    return {
        "streams": count,
        "held_together": raw["held"],
        "opened_s": raw["opened_s"],
        "total_s": raw["total_s"],
        "complete": len(complete),
        "incomplete": errors,
        "rss_kib": {"warm": warm, "held": held, "after": after, "held_samples": raw["held_samples_kib"]},
        "kib_per_stream": round((held - warm) / count, 2) if raw["held"] == count else None,
        "kept_kib": after - warm,
        "kept_share": share(after - warm, {"warm": warm, "held": held}),
        "settle_s": settled,
    }


def share(kib: int, rss: dict[str, int]) -> float | None:
    """``kib`` as a share of what holding the streams added to RSS (held − warm)."""
    added = rss["held"] - rss["warm"]
    return round(kib / added, 3) if added > 0 else None
