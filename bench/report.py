"""Turn the benchmark's raw results into target checks, a Markdown report and a JSON file."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import authcost
import crossformat
import deployments
import failover
import frontier
import targets

XF_CPU_RATIO_MAX = 2.0
"""Cross-format (Anthropic → OpenAI) streaming CPU per request ≤ 2× same-format."""
XF_TTFT_EXTRA_MS_MAX = 1.0
"""Cross-format added time to first token (first text) ≤ same-format's + 1 ms."""


def median(values: list[float]) -> float | None:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(clean) if clean else None


def _fmt(value: Any, digits: int = 0, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}{suffix}"


def summarize_latency(rounds: list[dict[str, dict[str, Any]]], names: list[str]) -> dict[str, dict[str, Any]]:
    """Median across rounds of each target's p50/p99 and of (target − direct) within the same round."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        runs = [r for r in rounds if name in r]
        entry: dict[str, Any] = {
            "p50_us": median([r[name]["p50_us"] for r in runs]),
            "p99_us": median([r[name]["p99_us"] for r in runs]),
            "rps": median([r[name]["rps"] for r in runs]),
            "errors": sum(r[name]["errors"] + r[name]["non_2xx"] for r in runs),
        }
        if name != "direct":
            entry["added_p50_us"] = median([r[name]["p50_us"] - r["direct"]["p50_us"] for r in runs])
            entry["added_p99_us"] = median([r[name]["p99_us"] - r["direct"]["p99_us"] for r in runs])
            entry["added_p50_per_round_us"] = [round(r[name]["p50_us"] - r["direct"]["p50_us"], 1) for r in runs]
            cpu = [r[name]["cpu_ms"][name] / r[name]["requests"] for r in runs if r[name]["requests"]]
            entry["cpu_ms_per_req"] = median(cpu)
        out[name] = entry
    return out


def summarize_runs(runs: list[dict[str, Any]], names: list[str]) -> dict[str, dict[str, Any]]:
    """Median req/s, latency and CPU per target across repeated runs at one concurrency."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        mine = [r for r in runs if r["target"] == name]
        if not mine:
            continue
        out[name] = {
            "rps": median([r["rps"] for r in mine]),
            "rps_runs": [r["rps"] for r in mine],
            "p50_us": median([r["p50_us"] for r in mine]),
            "p99_us": median([r["p99_us"] for r in mine]),
            "cpu_ms_per_req": median([r["cpu_ms_per_req"] for r in mine]),
            "errors": sum(r["errors"] for r in mine),
            "non_2xx": sum(r["non_2xx"] for r in mine),
            "requests": sum(r["requests"] for r in mine),
        }
    return out


def _check(name: str, value: float | None, limit: float, passed: bool | None, detail: str) -> dict[str, Any]:
    verdict = "SKIP" if passed is None else ("PASS" if passed else "MISS")
    return {"name": name, "value": value, "limit": limit, "verdict": verdict, "detail": detail}


def evaluate(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The issue's targets (``targets.py``) and the checks of earlier cases, each PASS, MISS or SKIP."""
    others = crossformat_checks(results) + [
        authcost.check(results.get("auth", {})),
        failover.check(results.get("failover", {})),
    ]
    return {"targets": targets.evaluate(results), "other": others}


def _added_ttfb(stream: dict[str, Any], name: str, key: str = "ttfb_p50_us") -> float | None:
    direct, target = stream.get("direct", {}).get(key), stream.get(name, {}).get(key)
    return target - direct if direct is not None and target is not None else None


def crossformat_checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Anthropic → OpenAI streaming against OpenAI → OpenAI: CPU per request and time to first token."""
    xf = results.get("crossformat", {})
    measured = xf.get("status") == "ok"
    stream = results.get("stream", {})
    summary = xf.get("summary", {})
    same, cross = summary.get(crossformat.SAME, {}), summary.get(crossformat.CROSS, {})
    failed = any(d.get("errors") or d.get("non_2xx") for d in (same, cross))
    xs = stream.get(crossformat.NAME, {})
    if xs and not (xs["ok"] == xs["requests"] and xs["all_done"] and xs["all_usage"]):
        failed = True
    if xs and xs.get("text") != stream.get("direct", {}).get("text"):
        failed = True
    ratio = xf.get("cpu_ratio") if measured else None
    same_added = _added_ttfb(stream, "gateway", "ttft_p50_us")
    cross_added = _added_ttfb(stream, crossformat.NAME, "ttft_p50_us")
    extra = None
    if measured and same_added is not None and cross_added is not None:
        extra = (cross_added - same_added) / 1000
    checks = [
        _check(
            "cross-format (Anthropic → OpenAI) streaming CPU/request ≤ 2× same-format (16 conns)",
            ratio,
            XF_CPU_RATIO_MAX,
            None if ratio is None else ratio <= XF_CPU_RATIO_MAX and not failed,
            f"{_fmt(cross.get('cpu_ms_per_req'), 3)} vs {_fmt(same.get('cpu_ms_per_req'), 3)} CPU-ms/req",
        ),
        _check(
            "cross-format added time to first token (first text, p50 vs direct) ≤ same-format's + 1 ms",
            extra,
            XF_TTFT_EXTRA_MS_MAX,
            None if extra is None else extra <= XF_TTFT_EXTRA_MS_MAX and not failed,
            f"cross-format +{_fmt(cross_added)} µs vs same-format +{_fmt(same_added)} µs over direct, in ms",
        ),
    ]
    if not measured:
        for check in checks:
            check["detail"] = xf.get("status", "not measured")
    elif failed:
        for check in checks:
            check["detail"] += "; cross-format requests failed or streams were incomplete, numbers not valid"
    return checks


def _main_table(results: dict[str, Any], names: list[str]) -> list[str]:
    lat = results["latency_c1"]["summary"]
    thr = results["throughput"]
    rss = results.get("rss_kib", {})
    lines = [
        "| target | p50 @1c µs | p99 @1c µs | added p50 µs | added p99 µs | req/s @16 | req/s @64 "
        "| CPU ms/req @16 | CPU ms/req @1 | RSS start→after MiB | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        c1, c16, c64 = lat.get(name, {}), thr["16"].get(name, {}), thr["64"].get(name, {})
        mem = rss.get(name)
        mem_s = f"{mem['start'] / 1024:.1f} → {mem['after'] / 1024:.1f}" if mem else "–"
        errors = c1.get("errors", 0) + sum(d.get("errors", 0) + d.get("non_2xx", 0) for d in (c16, c64))
        lines.append(
            f"| {name} | {_fmt(c1.get('p50_us'))} | {_fmt(c1.get('p99_us'))} | {_fmt(c1.get('added_p50_us'))} "
            f"| {_fmt(c1.get('added_p99_us'))} | {_fmt(c16.get('rps'))} | {_fmt(c64.get('rps'))} "
            f"| {_fmt(c16.get('cpu_ms_per_req'), 3)} | {_fmt(c1.get('cpu_ms_per_req'), 3)} | {mem_s} | {errors} |"
        )
    return lines


def _delay_table(results: dict[str, Any], names: list[str]) -> list[str]:
    sweep = results.get("delay20", {})
    if not sweep:
        return []
    lines = [
        "",
        "Upstream with a fixed 20 ms delay (ideal req/s = conns / 20 ms):",
        "",
        "| conns | target | req/s | % of ideal | p50 ms | p99 ms | errors |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for conns, per in sweep.items():
        for name in names:
            if name in per:
                r = per[name]
                ideal = int(conns) / 0.020
                lines.append(
                    f"| {conns} | {name} | {_fmt(r['rps'])} | {_fmt(100 * r['rps'] / ideal)}% "
                    f"| {_fmt(r['p50_us'] / 1000, 2)} | {_fmt(r['p99_us'] / 1000, 2)} | {r['errors'] + r['non_2xx']} |"
                )
    return lines


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.0f}%"


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def _stream_table(results: dict[str, Any], names: list[str]) -> list[str]:
    stream = results.get("stream", {})
    if not stream:
        return []
    lines = [
        "",
        "Streaming, one at a time (first event, first text, gaps between events, fidelity; done = `[DONE]` last "
        "for OpenAI clients, `message_stop` last for Anthropic ones; usage = a usage chunk or a `message_delta` "
        "with usage; text = the same text as direct):",
        "",
        "| target | client API | TTFB p50 µs | added TTFB p50 µs | TTFB p99 µs | first text p50 µs "
        "| added first text p50 µs | gap p50 µs | gap p99 µs | events (expected) | bytes | done | usage | text |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    reference = stream.get("direct", {}).get("text")
    expected = results.get("expected_events", {})
    direct_bytes = stream.get("direct", {}).get("bytes_all")
    for name in [*names, *(n for n in stream if n not in names)]:
        s = stream.get(name)
        if not s:
            continue
        added = _added_ttfb(stream, name) if name != "direct" else None
        added_text = _added_ttfb(stream, name, "ttft_p50_us") if name != "direct" else None
        same_text = s.get("text") is not None and s.get("text") == reference
        fmt = s.get("format", "openai")
        events = s.get("events_all", [s["events_median"]])
        exact = events == [expected.get(fmt)]
        sizes = s.get("bytes_all", [])
        same_bytes = " (= direct)" if fmt == "openai" and name != "direct" and sizes == direct_bytes else ""
        lines.append(
            f"| {name} | {fmt} | {_fmt(s['ttfb_p50_us'])} | {_fmt(added)} "
            f"| {_fmt(s['ttfb_p99_us'])} | {_fmt(s.get('ttft_p50_us'))} | {_fmt(added_text)} "
            f"| {_fmt(s['gap_p50_us'])} | {_fmt(s['gap_p99_us'])} "
            f"| {'/'.join(str(e) for e in events)} ({expected.get(fmt, '?')}{'' if exact else ', NOT EXACT'}) "
            f"| {'/'.join(f'{b:,}' for b in sizes)}{same_bytes} "
            f"| {_yes(s['all_done'])} | {_yes(s['all_usage'])} | {_yes(same_text)} |"
        )
    return lines


def _crossformat_table(results: dict[str, Any]) -> list[str]:
    xf = results.get("crossformat", {})
    stream = results.get("stream", {})
    if xf.get("status") != "ok" or not (xf.get("summary") or stream.get(crossformat.NAME)):
        return ["", f"Cross-format streaming (Anthropic client → OpenAI upstream): {xf.get('status', 'not measured')}"]
    up = xf["upstream"]
    lines = [
        "",
        f"Cross-format streaming through the gateway, Anthropic client → OpenAI upstream, next to same-format "
        f"(the fake streams {up['content_chunks']} content chunks {up['chunk_delay_ms']:g} ms apart; first event "
        f"and first text from the streaming check, added = against direct; req/s, stream p50 and CPU from wrk at "
        f"{xf.get('conns', crossformat.CONNS)} connections; other load = CPU of other processes on the machine, "
        "share of a core):",
        "",
        "| case | client → upstream | TTFB p50 µs | TTFB p99 µs | added TTFB p50 µs | TTFT p50 µs | TTFT p99 µs "
        "| added TTFT p50 µs | req/s | stream p50 ms | CPU ms/req | gateway CPU share | other load | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = (
        (crossformat.SAME, "gateway", "OpenAI → OpenAI"),
        (crossformat.CROSS, crossformat.NAME, "Anthropic → OpenAI"),
    )
    for case, target, route in rows:
        cpu = xf.get("summary", {}).get(case, {})
        s = stream.get(target, {})
        share, foreign, p50 = cpu.get("gateway_cpu_share"), cpu.get("foreign_cpu_share"), cpu.get("p50_us")
        lines.append(
            f"| {case} | {route} | {_fmt(s.get('ttfb_p50_us'))} | {_fmt(s.get('ttfb_p99_us'))} "
            f"| {_fmt(_added_ttfb(stream, target))} | {_fmt(s.get('ttft_p50_us'))} | {_fmt(s.get('ttft_p99_us'))} "
            f"| {_fmt(_added_ttfb(stream, target, 'ttft_p50_us'))} | {_fmt(cpu.get('rps'))} "
            f"| {_fmt(None if p50 is None else p50 / 1000, 1)} | {_fmt(cpu.get('cpu_ms_per_req'), 3)} "
            f"| {_pct(share)} | {_pct(foreign)} | {cpu.get('errors', 0) + cpu.get('non_2xx', 0)} |"
        )
    lines.append(f"| ratio cross / same | | | | | | | | | | {_fmt(xf.get('cpu_ratio'), 2, '×')} | | | |")
    return lines


def _auth_row(name: str, entry: dict[str, Any], rss: dict[str, Any]) -> str:
    case, key, limiter = authcost.LABELS[name]
    mem = rss.get(authcost.FULL if name == authcost.AUTH_ONLY else name)
    added = entry.get("added_cpu_ms")
    return (
        f"| {case} | {key} | {limiter} | {_fmt(entry.get('rps'))} | {_fmt(entry.get('p50_us'))} "
        f"| {_fmt(entry.get('p99_us'))} | {_fmt(entry.get('cpu_ms_per_req'), 3)} "
        f"| {'–' if added is None else f'{added:+.3f}'} | {_fmt(entry.get('p50_c1_us'))} "
        f"| {_fmt(entry.get('redis_cpu_ms_per_req'), 3)} | {_fmt(entry.get('redis_scripts_per_req'), 2)} "
        f"| {_fmt(entry.get('redis_script_us_per_req'), 0)} "
        f"| {_fmt(mem['after'] / 1024, 1) if mem else '–'} | {entry.get('errors', 0) + entry.get('non_2xx', 0)} |"
    )


def _auth_table(results: dict[str, Any]) -> list[str]:
    auth = results.get("auth", {})
    summary = auth.get("summary") or {}
    if auth.get("status") != "ok" or not summary:
        return ["", f"Auth, limits and accounting: {auth.get('status', 'not measured')}"]
    lines = [
        "",
        f"Auth, limits and accounting: the same wrk load ({authcost.CONNS} connections, interleaved with the "
        "throughput runs, order flipped every repeat) on the gateway without keys, with a key without limits, "
        "and with a full key (every limit and a budget, never refusing) on the in-process and the Redis limiter; "
        "added CPU = median over repeats of (case − no auth) in the same repeat; p50 @1c from the latency rounds "
        "where the case ran in them:",
        "",
        "| case | key | limiter | req/s @16 | p50 @16 µs | p99 @16 µs | CPU ms/req @16 | added CPU ms/req "
        "| p50 @1c µs | Redis CPU ms/req | Redis scripts/req | Redis script µs/req | RSS after MiB | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rss = results.get("rss_kib", {})
    order = (authcost.NO_AUTH, authcost.AUTH_ONLY, authcost.FULL, authcost.REDIS)
    lines += [_auth_row(name, summary[name], rss) for name in order if name in summary]
    skipped = [f"{authcost.LABELS[n][0]}: {v}" for n, v in auth.get("variants", {}).items() if v != "ok"]
    return lines + ([""] + [f"Not measured — {s}" for s in skipped] if skipped else [])


def _data_files(results: dict[str, Any]) -> str:
    files = results["gateway"].get("data_dir_files")
    if not files:
        return ""
    listed = ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in sorted(files.items()))
    return f" (data dir after the run: {listed})"


def _key_of(results: dict[str, Any]) -> str:
    if not results["gateway"].get("key"):
        return ""
    return "; every gateway request sends a full key with every limit and a budget set (in-process limiter)"


TARGET_ORDER = ("direct", "passthrough", "gateway", "nginx", "litellm", "portkey")


def markdown(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    summary = results["latency_c1"]["summary"]
    names = [n for n in TARGET_ORDER if n in summary]
    head = [
        f"# polyroute benchmark — {results['date']} on {results['host']} ({results['mode']})",
        "",
        f"Rig: {results['rig']['summary']}",
        f"Gateway: {results['gateway']['status']}{_data_files(results)}{_key_of(results)}",
        _peers_line(results),
        _load_line(results),
        "",
        "Targets of the benchmark issue (ratios from this run):",
        "",
        *targets.table(results["checks"]["targets"]),
        "",
    ]
    body = (
        _main_table(results, names) + _delay_table(results, names) + frontier.table(results.get("frontier", {}), names)
    )
    body += _cpu_table(results) + _stream_table(results, names) + _memory_table(results) + _cold_table(results)
    if results["gateway"]["status"] == "ok":
        body += _crossformat_table(results) + _auth_table(results)
        body += failover.table(results.get("failover", {})) + deployments.table(results.get("deployments", {}))
    checks = ["", "Checks of the earlier cases:", ""]
    for c in results["checks"]["other"]:
        value = "–" if c["value"] is None else f"{c['value']:.3g}"
        checks.append(f"- **{c['verdict']}** {c['name']}: {value} (limit {c['limit']:g}; {c['detail']})")
    notes = ["", *[f"> {n}" for n in results.get("notes", [])]]
    return "\n".join(head + body + checks + notes) + "\n"


def _peers_line(results: dict[str, Any]) -> str:
    info = results.get("peers", {})
    if not info.get("enabled"):
        return "Peers: not run (on in the full run; `--peers` adds them to --quick)."
    parts = []
    for name in ("nginx", "litellm", "portkey"):
        p = info.get(name, {})
        if p.get("status") == "ok":
            stream = "" if p.get("stream") == "ok" else f"; streaming not measured: {p.get('stream')}"
            parts.append(f"{name} {p.get('version')} (first answer {p.get('cold_start_s')} s after start{stream})")
        else:
            parts.append(f"{name} {p.get('status', 'not run')}")
    return "Peers: " + "; ".join(parts) + "."


def _load_line(results: dict[str, Any]) -> str:
    load = results.get("load_summary")
    if not load:
        return ""
    return (
        f"Background load measured by the harness: other processes used {load['median']:.0%} of a core in the median "
        f"wrk run (max {load['max']:.0%}, {load['start']:.0%} before the run); hypervisor steal peaked at "
        f"{load['steal_max']:.0%}. Run took {results.get('elapsed_s', '–')} s."
    )


def _cpu_cells(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    thr = results.get("throughput", {}).get("16", {})
    scpu = results.get("stream_cpu", {}).get("summary", {})
    xf = results.get("crossformat", {}).get("summary", {})
    fo = results.get("failover", {}).get("summary", {})
    plain = {n: thr.get(n, {}).get("cpu_ms_per_req") for n in TARGET_ORDER[1:]}
    same = {n: scpu.get(n, {}).get("cpu_ms_per_req") for n in TARGET_ORDER[1:]}
    same["gateway"] = xf.get(crossformat.SAME, {}).get("cpu_ms_per_req")
    cross = {"gateway": xf.get(crossformat.CROSS, {}).get("cpu_ms_per_req")}
    hop = {"gateway": fo.get("cases", {}).get(failover.FALLBACK, {}).get("cpu_ms_per_req")}
    chunks = results.get("crossformat", {}).get("upstream", {}).get("content_chunks", "?")
    return {
        "OpenAI → OpenAI, non-streaming": plain,
        f"OpenAI → OpenAI, streaming ({chunks} chunks)": same,
        f"Anthropic client → OpenAI upstream, streaming ({chunks} chunks)": cross,
        "failover hop (first answers 500, second answers)": hop | {"_added": fo.get("added_cpu_ms")},
    }


def _cpu_table(results: dict[str, Any]) -> list[str]:
    cells = _cpu_cells(results)
    present = [n for n in TARGET_ORDER[1:] if any(row.get(n) is not None for row in cells.values())]
    if not present:
        return []
    lines = [
        "",
        "CPU-ms per request (utime + stime of the server's process tree from /proc, from the start of a wrk run "
        "until the server is idle again, / requests; 16 connections; the gateway with the full key):",
        "",
        "| case | " + " | ".join(present) + " |",
        "|---|" + "---:|" * len(present),
    ]
    for case, row in cells.items():
        values = [_fmt(row.get(n), 3) for n in present]
        if row.get("_added") is not None and "gateway" in present:
            values[present.index("gateway")] += f" (+{row['_added']:.3f} over one attempt)"
        lines.append(f"| {case} | " + " | ".join(values) + " |")
    return lines


def _memory_table(results: dict[str, Any]) -> list[str]:
    mem = results.get("memory", {})
    rows = [n for n in ("passthrough", "gateway") if n in mem]
    if not rows:
        return ["", f"Memory with held streams: {mem.get('status', 'not measured')}"]
    lines = [
        "",
        f"Memory: {mem['streams']:,} streams held at once against a fake that sends one event every "
        f"{mem['chunk_gap_ms'] / 1000:g} s (each stream ~{mem['stream_s']} s); RSS of the process tree, MiB; "
        "start = after start-up, warm = after all earlier load, held = peak while every stream was open, after = "
        "once the streams ended and the server went idle:",
        "",
        "| target | held together | opened in s | RSS start | warm | held | after | KiB per held stream "
        "| after − warm MiB | round 2: held, after | round 2 growth MiB | complete streams |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name in rows:
        m = mem[name]
        rss = m["rss_kib"]
        start = rss.get("start")
        lines.append(
            f"| {name} | {m['held_together']:,} | {m['opened_s']} | {_fmt(None if start is None else start / 1024, 1)} "
            f"| {rss['warm'] / 1024:.1f} | {rss['held'] / 1024:.1f} | {rss['after'] / 1024:.1f} "
            f"| {_fmt(m['kib_per_stream'], 1)} | {m['kept_kib'] / 1024:+.1f} | {_second(m)} "
            f"| {_fmt(None if 'growth_kib' not in m else m['growth_kib'] / 1024, 1)} "
            f"| {m['complete'] + sum(r['complete'] for r in m.get('rounds', [])):,} of "
            f"{m['streams'] * (1 + len(m.get('rounds', []))):,} |"
        )
    return lines + [
        "",
        "Round 2 repeats the same streams on the same process: RSS that stays up after round 1 but does not grow "
        "in round 2 is freed memory the allocator keeps for reuse, not a leak.",
    ]


def _second(m: dict[str, Any]) -> str:
    if not m.get("rounds"):
        return "–"
    rss = m["rounds"][-1]["rss_kib"]
    return f"{rss['held'] / 1024:.1f}, {rss['after'] / 1024:.1f}"


def _cold_table(results: dict[str, Any]) -> list[str]:
    cold = results.get("cold_start", {})
    rows = [n for n in TARGET_ORDER[1:] if n in cold]
    if not rows:
        return ["", f"Cold start: {cold.get('status', 'not measured')}"]
    lines = [
        "",
        "Cold start: from process spawn to the first 200 on a real chat completion, polled every 10 ms (the "
        "gateway with an existing data dir and a full key, a restart with every feature on; peers from their "
        "one start in this run):",
        "",
        "| target | first answer s (median) | runs s | RSS after first answer MiB |",
        "|---|---:|---|---:|",
    ]
    for name in rows:
        c = cold[name]
        rss = c.get("rss_kib_after_first_answer")
        runs = ", ".join(f"{r:.2f}" for r in c.get("runs_s", []) if r is not None) or c.get("status", "–")
        lines.append(
            f"| {name} | {_fmt(c.get('seconds'), 2)} | {runs} | {_fmt(None if rss is None else rss / 1024, 1)} |"
        )
    return lines


def write(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``<date>-<host>.json`` and ``latest.md``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{results['date']}-{results['host']}.json"
    md_path = out_dir / "latest.md"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(json_path)
    md_path.write_text(markdown(results))
    return json_path, md_path


def write_docs(results: dict[str, Any], docs_dir: Path, json_path: Path) -> list[Path]:
    """``docs_dir/latest.md`` (the report with its charts) and the PNG charts; the paths written.

    Without matplotlib (``pip install matplotlib``) the report is written without charts, saying so.
    """
    docs_dir.mkdir(parents=True, exist_ok=True)
    try:
        import charts

        pngs = charts.write_all(results, _cpu_cells(results), docs_dir)
        missing = ""
    except ImportError as exc:
        pngs, missing = [], f"Charts not drawn: {exc} (install matplotlib)."
    try:
        source = json_path.resolve().relative_to(docs_dir.resolve().parent.parent)
    except ValueError:
        source = json_path
    flag = "" if results["mode"] == "full" else " --" + results["mode"].split()[0]
    intro = [
        f"Produced by `.venv/bin/python bench/run.py{flag}`"
        f" on {results['host']} ({results['rig']['summary']}); raw numbers: `{source}`. See bench/README.md for "
        "what each phase measures and how to read it.",
        "",
        *[f"![{png.stem}]({png.name})" for png in pngs],
        *([missing] if missing else []),
        "",
    ]
    text = markdown(results).split("\n", 1)
    md = docs_dir / "latest.md"
    md.write_text(text[0] + "\n\n" + "\n".join(intro) + text[1])
    return [md, *pngs]
