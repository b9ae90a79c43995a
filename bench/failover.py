"""The failover hop: what one fallback from a failing deployment to a working one adds.

A gateway of its own (no auth, one worker, its own data dir) has two OpenAI-format providers that
both list the fake's model: ``first`` points at a fake that answers every chat request at once with
HTTP 500 and an OpenAI error body (``fake_upstream.py --fail-status 500``), ``second`` at the
ordinary fake. The routing file also names ``second/bench-model`` as the fallback of
``first/bench-model``, so the hop does not depend on the default fallback scope. Three cases at one
connection, in interleaved rounds like the latency rounds:

* ``no-fallback``: ``second/bench-model`` through the gateway (one attempt);
* ``fallback``: ``first/bench-model`` through the gateway: ``first`` answers 500, the request goes
  on to ``second`` (two attempts, ``X-Polyroute-Fallback: true``);
* ``failing-upstream``: the same request straight to the failing fake (its own time).

Per round, hop = p50(fallback) − p50(no-fallback) − p50(failing-upstream); the report shows the
median over rounds, target ≤ 1 ms. The wrk script of each case also looks at every response
(status, ``X-Polyroute-Attempts``, ``X-Polyroute-Fallback``) and, at one connection, times it with
``clock_gettime(CLOCK_MONOTONIC)`` from the Lua request hook to the response hook, so the fallback
p50 is taken over the requests that really hopped (attempts 2, fallback true) only: a circuit
breaker or cooldown that starts skipping the always-failing deployment would otherwise turn the
case into a plain request. The share of requests that hopped is reported next to the number. All
three p50s come from those script timings (the same few µs of hook overhead in each); wrk's own
histogram p50s are in the JSON too.

Gateway CPU-ms per request of fallback against no-fallback at 16 connections (interleaved, order
flipped every repeat), counted as for every other run.

A gateway with circuit breakers would soon stop trying a deployment that always fails. Before
measuring, the harness raises the breaker's thresholds out of reach through ``PUT /api/resilience``
(``failure_threshold`` and ``min_requests`` 10^9) when the gateway has that route; either way the
share that hopped is counted, and a round's hop needs at least ``MIN_HOPPED`` requests that hopped.

Then one request of each kind must show the case is what it claims: the failing fake answers 500,
no-fallback answers 200 with attempts 1 and fallback false, fallback answers 200 with attempts 2 and
fallback true. Otherwise the case is not measured, its target is a MISS and the reason is printed on
stderr.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loadgen

GATEWAY, FAILING = "gateway-failover", "fake-failing"
"""Process names: the failover gateway and the always-failing fake."""
FIRST, SECOND = "first", "second"
MODEL = "bench-model"
NO_FALLBACK, FALLBACK, FAILING_UPSTREAM = "no-fallback", "fallback", "failing-upstream"
CASES = (NO_FALLBACK, FALLBACK, FAILING_UPSTREAM)
CPU_CASES = (NO_FALLBACK, FALLBACK)
REQUESTED = {NO_FALLBACK: f"{SECOND}/{MODEL}", FALLBACK: f"{FIRST}/{MODEL}", FAILING_UPSTREAM: MODEL}
"""The model each case asks for (the failing fake answers 500 whatever it is)."""
FAIL_STATUS = 500
CONNS = 16
HOP_MS_MAX = 1.0
"""Target: one fallback hop adds at most this much p50 at one connection, the failing upstream's own time aside."""
HOPPED = "200,2,true"
"""A response that hopped: status, X-Polyroute-Attempts, X-Polyroute-Fallback."""
MIN_HOPPED = 50
"""Requests that hopped a round needs before its hop is computed (a few cold ones say nothing)."""
BREAKER_OFF = {"failure_threshold": 10**9, "min_requests": 10**9}
"""Resilience profile fields that keep a circuit breaker from opening on the always-failing deployment."""

RunOne = Callable[[str, Path, int, float], dict[str, Any]]
"""One wrk run: (case, script, connections, seconds) → the run's numbers."""
Post = Callable[[str, bytes, dict[str, str]], tuple[int, dict[str, str], bytes]]
"""(url, body, headers) → status, lower-cased headers, body."""

_LUA = r"""
-- failover case: what each response says, and (timed scripts) how long it took
local bench_out, bench_timed = @OUT@, @TIMED@
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec_t;
int clock_gettime(int clk_id, bench_timespec_t *tp);
]]
local bench_ts = ffi.new("bench_timespec_t")
local function bench_now_us()
  ffi.C.clock_gettime(1, bench_ts)  -- CLOCK_MONOTONIC
  return tonumber(bench_ts.tv_sec) * 1000000 + tonumber(bench_ts.tv_nsec) / 1000
end
bench_counts, bench_lat, bench_kind = {}, {}, {}
local bench_req, bench_t0 = nil, 0
request = function()
  if bench_req == nil then bench_req = wrk.format() end
  if bench_timed then bench_t0 = bench_now_us() end
  return bench_req
end
response = function(status, headers, body)
  local took = bench_timed and (bench_now_us() - bench_t0) or 0
  local attempts, fallback = "-", "-"
  for name, value in pairs(headers) do
    local lower = string.lower(name)
    if lower == "x-polyroute-attempts" then attempts = value end
    if lower == "x-polyroute-fallback" then fallback = value end
  end
  local kind = status .. "," .. attempts .. "," .. fallback
  bench_counts[kind] = (bench_counts[kind] or 0) + 1
  if bench_timed then
    bench_lat[#bench_lat + 1] = took
    bench_kind[#bench_kind + 1] = kind
  end
end
local bench_threads = {}
setup = function(thread) table.insert(bench_threads, thread) end
local bench_summary_done = done
done = function(summary, latency, requests)
  bench_summary_done(summary, latency, requests)
  local out = io.open(bench_out, "w")
  for _, thread in ipairs(bench_threads) do
    for kind, n in pairs(thread:get("bench_counts")) do out:write(string.format("count %s %d\n", kind, n)) end
    local lat, kind = thread:get("bench_lat"), thread:get("bench_kind")
    for i = 1, #lat do out:write(string.format("lat %s %.1f\n", kind[i], lat[i])) end
  end
  out:close()
end
"""


def routing_file(path: Path, failing_port: int, ok_port: int, price: dict[str, float]) -> Path:
    """``first`` (the failing fake) and ``second`` (the ordinary one), both listing the model, one fallback."""
    lines = ["providers:"]
    for name, port in ((FIRST, failing_port), (SECOND, ok_port)):
        lines += [
            f"  - name: {name}",
            "    format: openai",
            f"    base_url: http://127.0.0.1:{port}/v1",
            "    api_key: sk-bench",
            f"    models: [{MODEL}]",
        ]
    lines += ["fallbacks:", f"  {FIRST}/{MODEL}: [{SECOND}/{MODEL}]"]
    lines += ["prices:", f"  {MODEL}:"] + [f"    {k}: {v}" for k, v in price.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_script(path: Path, body: bytes, headers: dict[str, str], *, timed: bool) -> Path:
    """A wrk script that POSTs ``body`` and records each response's kind (and time, when ``timed``)."""
    loadgen.write_script(path, body, headers)
    lua = _LUA.replace("@OUT@", json.dumps(str(seen_path(path)))).replace("@TIMED@", "true" if timed else "false")
    path.write_text(path.read_text() + lua)
    return path


def seen_path(script: Path) -> Path:
    return script.with_suffix(".seen")


@dataclass(frozen=True)
class Seen:
    """What one wrk run's responses said: count per kind ("status,attempts,fallback") and timings per kind."""

    counts: dict[str, int]
    latencies: dict[str, list[float]]

    @classmethod
    def read(cls, path: Path) -> Seen:
        counts: dict[str, int] = {}
        latencies: dict[str, list[float]] = {}
        for line in path.read_text().splitlines():
            what, kind, value = line.split(" ")
            if what == "count":
                counts[kind] = counts.get(kind, 0) + int(value)
            else:
                latencies.setdefault(kind, []).append(float(value))
        return cls(counts, latencies)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def timings(self, only: str | None = None) -> list[float]:
        return sorted(v for kind, vs in self.latencies.items() if only in (None, kind) for v in vs)


def _percentile(ordered: list[float], pct: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(round(pct / 100.0 * (len(ordered) - 1))))]


# ---------------------------------------------------------------- set-up and smoke


def _call(method: str, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def relax_breaker(base_url: str, admin_key: str) -> str:
    """Raise the gateway's breaker thresholds out of reach, if it has them; what happened, for the report."""
    headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"}
    try:
        status, data = _call("PUT", f"{base_url}/api/resilience", json.dumps(BREAKER_OFF).encode(), headers)
        if status == 200:
            _call("POST", f"{base_url}/api/resilience/reset", b"{}", headers)
    except OSError as exc:
        return f"PUT /api/resilience failed ({exc!r}); a breaker may skip the failing deployment"
    if status == 404:
        return "the gateway has no PUT /api/resilience (HTTP 404): no breaker thresholds to raise"
    if status != 200:
        return f"PUT /api/resilience got HTTP {status} ({data[:150]!r}); a breaker may skip the failing deployment"
    fields = " and ".join(BREAKER_OFF)
    return f"breaker thresholds raised through PUT /api/resilience ({fields} 10^9), then reset"


def smoke(post: Post, gateway_url: str, failing_url: str, body_for: Callable[[str], bytes]) -> str | None:
    """None when each case is what it claims (see the module doc), else what is wrong."""
    headers = {"Content-Type": "application/json"}
    expected = {
        FAILING_UPSTREAM: (failing_url, FAIL_STATUS, None, None),
        NO_FALLBACK: (gateway_url, 200, "1", "false"),
        FALLBACK: (gateway_url, 200, "2", "true"),
    }
    for case, (url, status, attempts, fallback) in expected.items():
        try:
            got, answer, data = post(url, body_for(REQUESTED[case]), headers)
        except OSError as exc:
            return f"{case}: request failed: {exc!r}"
        seen = (answer.get("x-polyroute-attempts"), answer.get("x-polyroute-fallback"))
        if got != status or (attempts is not None and seen != (attempts, fallback)):
            return (
                f"{case} ({REQUESTED[case]}): HTTP {got}, attempts {seen[0]}, fallback {seen[1]}; expected HTTP "
                f"{status}" + (f", attempts {attempts}, fallback {fallback}" if attempts else "") + f": {data[:200]!r}"
            )
    return None


def fail_loudly(reason: str) -> str:
    """The case's status when its smoke failed; also printed on stderr."""
    print(f"FAILOVER CASE FAILED: {reason}", file=sys.stderr, flush=True)
    return f"failed: {reason}"


# ---------------------------------------------------------------- measuring


def _run(run_one: RunOne, case: str, script: Path, conns: int, seconds: float) -> dict[str, Any]:
    out = seen_path(script)
    out.unlink(missing_ok=True)
    res = run_one(case, script, conns, seconds)
    seen = Seen.read(out) if out.exists() else Seen({}, {})
    res["responses"] = seen.counts
    res["hopped_share"] = seen.counts.get(HOPPED, 0) / seen.total if seen.total else None
    if conns == 1:
        every, hopped = seen.timings(), seen.timings(HOPPED)
        hopped = hopped if len(hopped) >= MIN_HOPPED else []
        res["timed_p50_us"], res["timed_p99_us"] = _percentile(every, 50), _percentile(every, 99)
        res["hopped_p50_us"], res["hopped_p99_us"] = _percentile(hopped, 50), _percentile(hopped, 99)
    return res


def measure(
    run_one: RunOne, scripts: dict[tuple[str, int], Path], rounds: int, seconds: float, reps: int, cpu_s: float
) -> dict[str, Any]:
    """Interleaved rounds of the three cases at one connection, then the CPU runs at 16; summary included."""
    runs: list[dict[str, Any]] = []
    for i in range(rounds):
        this = {case: _run(run_one, case, scripts[(case, 1)], 1, seconds) for case in CASES}
        runs += [{"round": i, "conns": 1, "case": c, **r} for c, r in this.items()]
        hop = _hop(this)
        print(
            f"  round {i + 1}: "
            + ", ".join(f"{c} p50 {_num(r.get('timed_p50_us'))} µs" for c, r in this.items())
            + f"; hop {_num(hop)} µs, {_share(this[FALLBACK]['hopped_share'])} hopped",
            flush=True,
        )
    for rep in range(reps):
        names = CPU_CASES if rep % 2 == 0 else CPU_CASES[::-1]
        this = {case: _run(run_one, case, scripts[(case, CONNS)], CONNS, cpu_s) for case in names}
        runs += [{"rep": rep, "conns": CONNS, "case": c, **r} for c, r in this.items()]
        print(
            f"  {CONNS} conns: "
            + ", ".join(f"{c} {r['rps']:.0f} req/s, {r['cpu_ms_per_req'] or 0:.3f} CPU-ms/req" for c, r in this.items())
            + f"; {_share(this[FALLBACK]['hopped_share'])} hopped",
            flush=True,
        )
    return {"summary": summarize(runs), "runs": runs}


def _hop(this: dict[str, dict[str, Any]]) -> float | None:
    """One round's hop (µs): fallback (requests that hopped) − no-fallback − failing upstream, script timings."""
    hopped: float | None = this[FALLBACK].get("hopped_p50_us")
    plain: float | None = this[NO_FALLBACK].get("timed_p50_us")
    base: float | None = this[FAILING_UPSTREAM].get("timed_p50_us")
    if hopped is None or plain is None or base is None:
        return None
    return round(hopped - plain - base, 1)


def _hop_wrk(this: dict[str, dict[str, Any]]) -> float:
    """The same from wrk's histograms (every request of the fallback case, hopped or not)."""
    p50s: list[float] = [this[case]["p50_us"] for case in CASES]
    return round(p50s[1] - p50s[0] - p50s[2], 1)


def _median(values: list[Any]) -> float | None:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(clean) if clean else None


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _hopped_share(runs: list[dict[str, Any]]) -> float | None:
    total = sum(sum(r["responses"].values()) for r in runs)
    return sum(r["responses"].get(HOPPED, 0) for r in runs) / total if total else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per case medians at 1 and 16 connections, the hop per round and its median, CPU ratio, share hopped."""
    c1 = [r for r in runs if r["conns"] == 1]
    c16 = [r for r in runs if r["conns"] == CONNS]
    rounds = [{r["case"]: r for r in c1 if r["round"] == i} for i in sorted({r["round"] for r in c1})]
    hops = [_hop(rnd) for rnd in rounds if len(rnd) == len(CASES)]
    cases: dict[str, dict[str, Any]] = {}
    for case in CASES:
        at1, at16 = [r for r in c1 if r["case"] == case], [r for r in c16 if r["case"] == case]
        key = "hopped_p50_us" if case == FALLBACK else "timed_p50_us"
        cases[case] = {
            "requested": REQUESTED[case],
            "p50_c1_us": _median([r.get(key) for r in at1]),
            "p99_c1_us": _median([r.get(key.replace("p50", "p99")) for r in at1]),
            "wrk_p50_c1_us": _median([r["p50_us"] for r in at1]),
            "rps_c1": _median([r["rps"] for r in at1]),
            "rps": _median([r["rps"] for r in at16]),
            "p50_us": _median([r["p50_us"] for r in at16]),
            "cpu_ms_per_req": _median([r.get("cpu_ms_per_req") for r in at16]),
            "cpu_ms_per_req_runs": [r.get("cpu_ms_per_req") for r in at16],
            "errors": sum(r["errors"] for r in at1 + at16),
            "non_2xx": sum(r["non_2xx"] for r in at1 + at16),
            "responses": _merge([r["responses"] for r in at1 + at16]),
        }
    fallback, plain = cases[FALLBACK], cases[NO_FALLBACK]
    cpu = (fallback["cpu_ms_per_req"], plain["cpu_ms_per_req"])
    hop = _median(hops)
    return {
        "cases": cases,
        "hop_per_round_us": hops,
        "hop_us": hop,
        "hop_ms": None if hop is None else hop / 1000,
        "hop_wrk_per_round_us": [_hop_wrk(rnd) for rnd in rounds if len(rnd) == len(CASES)],
        "hopped_share_c1": _hopped_share([r for r in c1 if r["case"] == FALLBACK]),
        "hopped_share_c16": _hopped_share([r for r in c16 if r["case"] == FALLBACK]),
        "cpu_ratio": cpu[0] / cpu[1] if cpu[0] is not None and cpu[1] else None,
        "added_cpu_ms": cpu[0] - cpu[1] if cpu[0] is not None and cpu[1] is not None else None,
    }


def _merge(counts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for each in counts:
        for kind, n in each.items():
            out[kind] = out.get(kind, 0) + n
    return out


# ---------------------------------------------------------------- check, table


def _gateway_failed(summary: dict[str, Any]) -> bool:
    """Socket errors anywhere, or a gateway answer that was not 2xx (the failing fake's 500s are expected)."""
    cases = summary.get("cases", {})
    return any(c.get("errors") for c in cases.values()) or any(
        cases.get(name, {}).get("non_2xx") for name in (NO_FALLBACK, FALLBACK)
    )


def check(fo: dict[str, Any]) -> dict[str, Any]:
    """The target as a check entry (name, value, limit, verdict, detail)."""
    name = (
        f"one fallback hop (first answers {FAIL_STATUS}, then second) adds ≤ {HOP_MS_MAX:g} ms p50 @1 conn "
        "beyond the failing upstream's own time"
    )
    entry = {"name": name, "value": None, "limit": HOP_MS_MAX}
    status = fo.get("status", "not measured")
    if status != "ok":
        return entry | {"verdict": "MISS" if status.startswith("failed") else "SKIP", "detail": status}
    summary = fo.get("summary", {})
    if not summary:
        return entry | {"verdict": "SKIP", "detail": "not measured (time budget)"}
    value = summary.get("hop_ms")
    if value is None:
        detail = (
            f"no round had {MIN_HOPPED} requests that hopped ({_share(summary.get('hopped_share_c1'))} hopped; "
            f"a breaker or cooldown skipped the failing deployment? {fo.get('breaker', '')})"
        )
        return entry | {"verdict": "SKIP", "detail": detail}
    cases = summary["cases"]
    per_round = ", ".join(f"{h:+,.0f}" for h in summary["hop_per_round_us"] if h is not None)
    detail = (
        f"fallback {_num(cases[FALLBACK]['p50_c1_us'])} − no fallback {_num(cases[NO_FALLBACK]['p50_c1_us'])} − "
        f"failing upstream {_num(cases[FAILING_UPSTREAM]['p50_c1_us'])} µs; per round {per_round} µs; "
        f"{_share(summary['hopped_share_c1'])} of the fallback requests hopped"
    )
    failed = _gateway_failed(summary)
    if failed:
        detail += "; the gateway returned errors, numbers not valid"
    verdict = "PASS" if value <= HOP_MS_MAX and not failed else "MISS"
    return entry | {"value": value, "verdict": verdict, "detail": detail}


def table(fo: dict[str, Any]) -> list[str]:
    """The case's Markdown table (or why it was not measured)."""
    summary = fo.get("summary")
    if fo.get("status") != "ok" or not summary:
        status = fo.get("status", "not measured")
        return ["", f"Failover hop: {'not measured (time budget)' if status == 'ok' else status}"]
    lines = [
        "",
        f"Failover hop: a gateway with providers `{FIRST}` (a fake answering every chat request with "
        f"{FAIL_STATUS} at once) and `{SECOND}` (the ordinary fake), both listing `{MODEL}`; no auth. p50/p99 @1c "
        "are medians over interleaved rounds of per-request times taken in the wrk script (the fallback row only "
        "over requests that hopped: 200 with attempts 2 and fallback true); hopped = share of responses that did; "
        f"req/s, p50 and CPU @{CONNS} from wrk and /proc:",
        "",
        f"| case | requested | p50 @1c µs | p99 @1c µs | req/s @1c | hopped | req/s @{CONNS} | p50 @{CONNS} µs "
        f"| CPU ms/req @{CONNS} | responses (status, attempts, fallback) | socket errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for case in CASES:
        c = summary["cases"][case]
        share = _share(_hopped_share_of(c)) if case != FAILING_UPSTREAM else "–"
        kinds = ", ".join(f"{k}: {n:,}" for k, n in sorted(c["responses"].items()))
        lines.append(
            f"| {case} | `{c['requested']}` | {_num(c['p50_c1_us'])} | {_num(c['p99_c1_us'])} | {_num(c['rps_c1'])} "
            f"| {share} | {_num(c['rps'])} | {_num(c['p50_us'])} | {_fmt3(c['cpu_ms_per_req'])} | {kinds} "
            f"| {c['errors']} |"
        )
    hop, added = summary.get("hop_us"), summary.get("added_cpu_ms")
    ratio = summary.get("cpu_ratio")
    lines += [
        "",
        f"One hop = fallback − no-fallback − failing upstream (p50 @1c, median over rounds): **{_num(hop)} µs** "
        f"(per round: {', '.join(_num(h) for h in summary['hop_per_round_us'])}; from wrk's histograms, which wrk "
        "corrects for coordinated omission: "
        f"{', '.join(_num(h) for h in summary['hop_wrk_per_round_us'])}); "
        f"{_share(summary['hopped_share_c1'])} of fallback requests hopped @1c, "
        f"{_share(summary['hopped_share_c16'])} @{CONNS}. Gateway CPU per request @{CONNS}: fallback / no-fallback "
        f"{'–' if ratio is None else f'{ratio:.2f}×'} "
        f"({'–' if added is None else f'{added:+.3f}'} ms; the fallback request makes two upstream calls). "
        f"Breaker: {fo.get('breaker', 'not checked')}.",
    ]
    return lines


def _hopped_share_of(case: dict[str, Any]) -> float | None:
    total = sum(case["responses"].values())
    return case["responses"].get(HOPPED, 0) / total if total else None


def _fmt3(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"
