"""Turn the benchmark's raw results into target checks, a Markdown report and a JSON file."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

# The targets the lead set for polyroute (see bench/README.md).
LATENCY_RATIO_MAX = 1.5
CPU_MS_MAX = 0.35
THROUGHPUT_RATIO_MIN = 0.5


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


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The three targets, each PASS, MISS or SKIP (gateway not measured)."""
    lat = results.get("latency_c1", {}).get("summary", {})
    thr = results.get("throughput", {}).get("16", {})
    gw_ok = results["gateway"]["status"] == "ok" and "gateway" in lat
    gw_thr = thr.get("gateway", {})
    gw_errors = gw_ok and (lat["gateway"]["errors"] or gw_thr.get("non_2xx", 0) or gw_thr.get("errors", 0))
    checks = []
    pt_added = lat.get("passthrough", {}).get("added_p50_us")
    gw_added = lat.get("gateway", {}).get("added_p50_us")
    ratio = gw_added / pt_added if gw_ok and pt_added and gw_added is not None else None
    checks.append(
        _check(
            "gateway added p50 @1 conn ≤ 1.5× pass-through added p50",
            ratio,
            LATENCY_RATIO_MAX,
            None if ratio is None else ratio <= LATENCY_RATIO_MAX and not gw_errors,
            f"gateway +{_fmt(gw_added)} µs vs pass-through +{_fmt(pt_added)} µs",
        )
    )
    cpu = thr.get("gateway", {}).get("cpu_ms_per_req") if gw_ok else None
    checks.append(
        _check(
            "gateway CPU ≤ 0.35 ms per non-streaming request (16 conns)",
            cpu,
            CPU_MS_MAX,
            None if cpu is None else cpu <= CPU_MS_MAX and not gw_errors,
            f"{_fmt(cpu, 3)} ms/req (pass-through {_fmt(thr.get('passthrough', {}).get('cpu_ms_per_req'), 3)})",
        )
    )
    gw_rps, pt_rps = thr.get("gateway", {}).get("rps"), thr.get("passthrough", {}).get("rps")
    share = gw_rps / pt_rps if gw_ok and gw_rps and pt_rps else None
    checks.append(
        _check(
            "gateway req/s @16 conns ≥ 50% of pass-through",
            share,
            THROUGHPUT_RATIO_MIN,
            None if share is None else share >= THROUGHPUT_RATIO_MIN and not gw_errors,
            f"{_fmt(gw_rps)} vs {_fmt(pt_rps)} req/s",
        )
    )
    if gw_errors:
        for check in checks:
            check["detail"] += "; gateway returned errors, numbers not valid"
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


def _stream_table(results: dict[str, Any], names: list[str]) -> list[str]:
    stream = results.get("stream", {})
    if not stream:
        return []
    lines = [
        "",
        "Streaming, one at a time (first event, gaps between events, fidelity):",
        "",
        "| target | TTFB p50 µs | added TTFB p50 µs | TTFB p99 µs | gap p50 µs | gap p99 µs "
        "| events | [DONE] | usage |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    direct = stream.get("direct", {}).get("ttfb_p50_us")
    for name in names:
        s = stream.get(name)
        if not s:
            continue
        added = s["ttfb_p50_us"] - direct if direct is not None and name != "direct" else None
        lines.append(
            f"| {name} | {_fmt(s['ttfb_p50_us'])} | {_fmt(added)} | {_fmt(s['ttfb_p99_us'])} | {_fmt(s['gap_p50_us'])} "
            f"| {_fmt(s['gap_p99_us'])} | {s['events_median']} | {'yes' if s['all_done'] else 'NO'} "
            f"| {'yes' if s['all_usage'] else 'NO'} |"
        )
    return lines


def _data_files(results: dict[str, Any]) -> str:
    files = results["gateway"].get("data_dir_files")
    if not files:
        return ""
    listed = ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in sorted(files.items()))
    return f" (data dir after the run: {listed})"


def markdown(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    names = [n for n in ("direct", "passthrough", "gateway") if n in results["latency_c1"]["summary"]]
    head = [
        f"# polyroute benchmark — {results['date']} on {results['host']} ({results['mode']})",
        "",
        f"Rig: {results['rig']['summary']}",
        f"Gateway: {results['gateway']['status']}{_data_files(results)}",
        "",
    ]
    body = _main_table(results, names) + _delay_table(results, names) + _stream_table(results, names)
    checks = ["", "Targets:", ""]
    for c in results["checks"]:
        value = "–" if c["value"] is None else f"{c['value']:.3g}"
        checks.append(f"- **{c['verdict']}** {c['name']}: {value} (limit {c['limit']:g}; {c['detail']})")
    notes = ["", *[f"> {n}" for n in results.get("notes", [])]]
    return "\n".join(head + body + checks + notes) + "\n"


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
