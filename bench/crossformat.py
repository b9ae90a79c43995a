"""The cross-format case: an Anthropic Messages client, through the gateway, to an OpenAI-format upstream.

The gateway's ``POST /v1/messages`` translates each of the fake's Chat Completions chunks into
Messages events (``message_start`` … ``message_stop``). Two measurements put it next to the
same-format case (OpenAI client, OpenAI upstream, chunks relayed as they are):

* time to first event and first text, in the interleaved streaming check (target ``gateway-anthropic``);
* gateway CPU-ms per streamed request under wrk at 16 connections, same-format and cross-format runs
  interleaved, and their ratio.

Both requests ask for the same thing (system prompt, user message, 64 tokens, temperature 0.2).
"""

from __future__ import annotations

import json
import math
import statistics
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import loadgen

NAME = "gateway-anthropic"
"""The streaming check's name for the cross-format target."""
PATH = "/v1/messages"
CONNS = 16
"""Connections of the CPU runs: the same as the non-streaming CPU target."""
SAME, CROSS = "same-format", "cross-format"
RunOne = Callable[[str, Path, int, float], dict[str, Any]]
"""One wrk run against the gateway: (url, script, connections, seconds) → the run's numbers."""


def messages_body(model: str, messages: list[dict[str, str]]) -> bytes:
    """A streaming Messages request equivalent to the OpenAI one built from ``messages``."""
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    doc: dict[str, Any] = {"model": model, "max_tokens": 64, "temperature": 0.2, "stream": True, "messages": turns}
    if system:
        doc["system"] = system
    return json.dumps(doc).encode()


def messages_headers(key: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "x-api-key": key, "anthropic-version": "2023-06-01"}


def smoke(url: str, body: bytes, key: str) -> str | None:
    """None when one streamed Messages answer is complete (200, usage, text, ``message_stop`` last)."""
    request = urllib.request.Request(url, data=body, headers=messages_headers(key), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status, data = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    except OSError as exc:
        return f"streamed Messages request failed: {exc!r}"
    payloads = [ln[5:].strip() for ln in data.splitlines() if ln.startswith(b"data:")]
    seen = loadgen.anthropic_fidelity(payloads)
    if status != 200 or not (seen.done and seen.usage and seen.text):
        return f"streamed Messages request got HTTP {status}: {data[:300]!r}"
    return None


def stream_target(url: str, body: bytes, key: str) -> loadgen.Target:
    return loadgen.Target(NAME, url, body, messages_headers(key), fmt="anthropic")


def measure_cpu(run_one: RunOne, cases: dict[str, tuple[str, Path]], reps: int, seconds: float) -> dict[str, Any]:
    """Interleaved wrk runs of both cases (the order flips every repeat); medians and the ratio."""
    runs: list[dict[str, Any]] = []
    for rep in range(reps):
        names = list(cases) if rep % 2 == 0 else list(reversed(cases))
        this = {case: run_one(*cases[case], CONNS, seconds) for case in names}
        runs += [{"rep": rep, "case": case, **r} for case, r in this.items()]
        print(
            f"  streaming, {CONNS} conns: "
            + ", ".join(
                f"{c} {r['rps']:.0f} req/s, {r['cpu_ms_per_req'] or 0:.3f} CPU-ms/req" for c, r in this.items()
            ),
            flush=True,
        )
    summary = {case: _summarize([r for r in runs if r["case"] == case]) for case in cases}
    same, cross = summary[SAME]["cpu_ms_per_req"], summary[CROSS]["cpu_ms_per_req"]
    ratio = cross / same if same and cross is not None else None
    return {"conns": CONNS, "summary": summary, "cpu_ratio": ratio, "runs": runs}


def _median(values: list[Any]) -> float | None:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(clean) if clean else None


def _summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rps": _median([r["rps"] for r in runs]),
        "cpu_ms_per_req": _median([r["cpu_ms_per_req"] for r in runs]),
        "cpu_ms_per_req_runs": [r["cpu_ms_per_req"] for r in runs],
        "gateway_cpu_share": _median([r.get("target_cpu_share") for r in runs]),
        "foreign_cpu_share": _median([r.get("foreign_cpu_share") for r in runs]),
        "p50_us": _median([r["p50_us"] for r in runs]),
        "p99_us": _median([r["p99_us"] for r in runs]),
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "non_2xx": sum(r["non_2xx"] for r in runs),
    }


def note(results: dict[str, Any]) -> str | None:
    """How long the streamed answer is, and why the first event and the first text differ."""
    xf = results.get("crossformat", {})
    if xf.get("status") != "ok":
        return None
    up = xf["upstream"]
    stream = results.get("stream", {})
    text = (
        f"Cross-format case: the fake streams {up['content_chunks']} content chunks {up['chunk_delay_ms']:g} ms "
        f"apart ({up['content_chunks'] + 4} SSE events with the role, finish and usage chunks and [DONE]); "
        "same-format is an OpenAI client on /v1/chat/completions, cross-format an Anthropic client on "
        "/v1/messages, both through the gateway to the same OpenAI-format fake."
    )
    same, cross = stream.get("gateway", {}), stream.get(NAME, {})
    if same.get("ttfb_p50_us") is None or cross.get("ttfb_p50_us") is None:
        return text
    return text + (
        f" TTFT is the first event carrying answer text; the Anthropic renderer holds message_start back one "
        f"event (so usage right after it can fill it), so from an upstream whose first chunk carries only the "
        f"role it leaves with the first text: cross-format first event p50 "
        f"{cross['ttfb_p50_us'] - same['ttfb_p50_us']:+,.0f} µs against same-format, first text "
        f"{cross['ttft_p50_us'] - same['ttft_p50_us']:+,.0f} µs."
    )
