"""Deployment count: what 200 configured providers cost the gateway per request, next to one.

Two gateways of their own (no auth, one worker, own data dirs) differ only in their routing file:
one provider, or 200 (``dep000`` … ``dep199``). Every provider is OpenAI format, points at the same
fake and lists 3 models of its own (``dep007-m0`` … ``dep007-m2``) and the shared ``bench-model``;
every model is priced, so each answer has a cost. Every model list is in the file, so start-up asks
no upstream for one (discovery fetches lists only for providers without ``models``); the harness
reads the fake's count of model-list requests after start-up to show it.

Two requests, each under ``wrk -t1 -c16``, both gateways interleaved (1, 200, then 200, 1 for the
second request, so a slow drift weighs on both alike; order flipped every repeat):

* ``provider/model``: one provider's own model (``dep133/dep133-m1`` of 200, ``dep000/dep000-m1`` of 1);
* ``shared``: the bare ``bench-model``, which every provider serves (the first in config order answers;
  the others are its same-model fallback candidates).

Reported per request: gateway CPU-ms per request (from /proc, until the gateway is idle again, as
for every run), p50, p99 and req/s at 16 connections, and the 200 / 1 ratios; per gateway: time to
healthy and RSS.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

ONE, MANY = "gateway-deployments-1", "gateway-deployments-200"
"""Process names of the two gateways."""
COUNTS = {ONE: 1, MANY: 200}
GATEWAYS = (ONE, MANY)
SPECIFIC, SHARED = "provider/model", "shared"
REQUESTS = (SPECIFIC, SHARED)
SHARED_MODEL = "bench-model"
OWN_MODELS = 3
CONNS = 16

RunOne = Callable[[str, Path, int, float], dict[str, Any]]
"""One wrk run: (gateway, script, connections, seconds) → the run's numbers."""
Post = Callable[[str, bytes, dict[str, str]], tuple[int, dict[str, str], bytes]]
"""(url, body, headers) → status, lower-cased headers, body."""


def provider_name(index: int) -> str:
    return f"dep{index:03d}"


def own_models(index: int) -> list[str]:
    return [f"{provider_name(index)}-m{j}" for j in range(OWN_MODELS)]


def chosen(gateway: str) -> int:
    """The provider whose own model the ``provider/model`` request asks for: two thirds down the file."""
    return COUNTS[gateway] * 2 // 3


def requested(gateway: str, request: str) -> str:
    if request == SHARED:
        return SHARED_MODEL
    index = chosen(gateway)
    return f"{provider_name(index)}/{own_models(index)[1]}"


def routing_file(path: Path, count: int, port: int, price: dict[str, float]) -> Path:
    """``count`` providers at the fake on ``port``, each with its own 3 models and the shared one, all priced."""
    lines = ["providers:"]
    for i in range(count):
        lines += [
            f"  - name: {provider_name(i)}",
            "    format: openai",
            f"    base_url: http://127.0.0.1:{port}/v1",
            "    api_key: sk-bench",
            f"    models: [{', '.join([*own_models(i), SHARED_MODEL])}]",
        ]
    each = "{" + ", ".join(f"{k}: {v}" for k, v in price.items()) + "}"
    lines += ["prices:", f"  {SHARED_MODEL}: {each}"]
    lines += [f"  {model}: {each}" for i in range(count) for model in own_models(i)]
    path.write_text("\n".join(lines) + "\n")
    return path


def smoke(post: Post, url: str, gateway: str, body_for: Callable[[str], bytes]) -> str | None:
    """None when the gateway answers both requests (200 with choices; the chosen provider for provider/model)."""
    for request in REQUESTS:
        model = requested(gateway, request)
        try:
            status, headers, data = post(url, body_for(model), {"Content-Type": "application/json"})
        except OSError as exc:
            return f"{model}: request failed: {exc!r}"
        if status != 200 or b'"choices"' not in data:
            return f"{model}: HTTP {status}: {data[:200]!r}"
        provider = headers.get("x-polyroute-provider")
        if request == SPECIFIC and provider not in (None, provider_name(chosen(gateway))):
            return f"{model} answered by provider {provider!r}"
    return None


def measure(run_one: RunOne, scripts: dict[tuple[str, str], Path], reps: int, seconds: float) -> dict[str, Any]:
    """Both requests on both gateways at 16 connections, interleaved (1, 200, 200, 1), order flipped every repeat."""
    pairs = [(ONE, SPECIFIC), (MANY, SPECIFIC), (MANY, SHARED), (ONE, SHARED)]
    runs: list[dict[str, Any]] = []
    for rep in range(reps):
        for gateway, request in pairs if rep % 2 == 0 else pairs[::-1]:
            res = run_one(gateway, scripts[(gateway, request)], CONNS, seconds)
            runs.append({"rep": rep, "gateway": gateway, "request": request, **res})
            print(
                f"  {COUNTS[gateway]} deployment(s), {request}: {res['rps']:.0f} req/s, p50 {res['p50_us']:.0f} µs, "
                f"{res['cpu_ms_per_req'] or 0:.3f} CPU-ms/req",
                flush=True,
            )
    return {"summary": summarize(runs), "runs": runs}


def _median(values: list[Any]) -> float | None:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(clean) if clean else None


def _ratio(many: float | None, one: float | None) -> float | None:
    return many / one if many is not None and one else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per request: medians per gateway and the 200 / 1 ratios of CPU and p50."""
    out: dict[str, Any] = {}
    for request in REQUESTS:
        entry: dict[str, Any] = {}
        for gateway in GATEWAYS:
            mine = [r for r in runs if r["gateway"] == gateway and r["request"] == request]
            entry[gateway] = {
                "requested": requested(gateway, request),
                "rps": _median([r["rps"] for r in mine]),
                "p50_us": _median([r["p50_us"] for r in mine]),
                "p99_us": _median([r["p99_us"] for r in mine]),
                "cpu_ms_per_req": _median([r.get("cpu_ms_per_req") for r in mine]),
                "cpu_ms_per_req_runs": [r.get("cpu_ms_per_req") for r in mine],
                "errors": sum(r["errors"] + r["non_2xx"] for r in mine),
            }
        one, many = entry[ONE], entry[MANY]
        entry["cpu_ratio"] = _ratio(many["cpu_ms_per_req"], one["cpu_ms_per_req"])
        entry["p50_ratio"] = _ratio(many["p50_us"], one["p50_us"])
        out[request] = entry
    return out


def _fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "–" if value is None else f"{value:,.{digits}f}{suffix}"


def table(dep: dict[str, Any]) -> list[str]:
    """The case's Markdown table (or why it was not measured)."""
    summary = dep.get("summary")
    if dep.get("status") != "ok" or not summary:
        status = dep.get("status", "not measured")
        status = "not measured (time budget)" if status == "ok" else status
        return ["", f"Deployment count (1 vs {COUNTS[MANY]} providers): {status}"]
    lines = [
        "",
        f"Deployment count: gateways whose routing file has 1 or {COUNTS[MANY]} providers (each with "
        f"{OWN_MODELS} models of its own and the shared `{SHARED_MODEL}`, all at the same fake; no auth), "
        f"wrk at {CONNS} connections, interleaved; CPU from /proc until the gateway is idle again:",
        "",
        f"| request | deployments | requested | req/s @{CONNS} | p50 @{CONNS} µs | p99 @{CONNS} µs "
        f"| CPU ms/req @{CONNS} | errors |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for request in REQUESTS:
        entry = summary[request]
        for gateway in GATEWAYS:
            g = entry[gateway]
            lines.append(
                f"| {request} | {COUNTS[gateway]} | `{g['requested']}` | {_fmt(g['rps'])} | {_fmt(g['p50_us'])} "
                f"| {_fmt(g['p99_us'])} | {_fmt(g['cpu_ms_per_req'], 3)} | {g['errors']} |"
            )
        lines.append(
            f"| {request} | ratio {COUNTS[MANY]} / 1 | | | {_fmt(entry['p50_ratio'], 2, '×')} | "
            f"| {_fmt(entry['cpu_ratio'], 2, '×')} | |"
        )
    started = dep.get("gateways", {})
    if started:
        lines += ["", _startup_line(dep, started)]
    return lines


def _startup_line(dep: dict[str, Any], started: dict[str, dict[str, Any]]) -> str:
    parts = []
    for gateway in GATEWAYS:
        g = started.get(gateway, {})
        rss = g.get("rss_kib", {})
        after = f" → {rss['after'] / 1024:.1f}" if "after" in rss else ""
        parts.append(
            f"{COUNTS[gateway]} provider(s): healthy {_fmt(g.get('healthy_after_s'), 1)} s after launch, "
            f"RSS {_fmt(rss.get('start', 0) / 1024, 1)}{after} MiB"
        )
    lists = dep.get("fake_model_lists")
    return (
        "Start-up (the extra gateways are launched together): "
        + "; ".join(parts)
        + f". Model-list requests the fake received by then: {'–' if lists is None else lists}."
    )
