"""Throughput frontier: the most requests per second a server sustains with p99 under 10 ms, and at all.

wrk is closed-loop: with c connections at most c requests are in flight, so req/s and latency both
rise with c until the server's core is saturated. The frontier is read from runs at several
connection counts against the fast fake (``Plan.frontier_levels``): "p99 < 10 ms" is the best req/s
among the levels whose p99 stayed under 10 ms, "unbounded" the best req/s at any level. Levels that
other phases already ran are reused (1 connection: the latency rounds; 16 and 64: the throughput
repeats; medians over their runs); the others run here, one wrk run per target and level. Per worker
= req/s / worker processes. "direct" (wrk straight to the fake, the two sharing one core) is the rig
ceiling: nothing can be measured above it with this load generator on this machine.

Scaling with ``--workers``: the 1-worker gateway with the Redis limiter (``gateway-redis``) against
the same configuration with 2 workers (``gateway-w2``: ``POLYROUTE_WORKERS=2``, the same Redis, its
own full key) at the same levels. Two workers cannot share one pinned CPU, so ``gateway-w2`` runs on
both CPUs, which wrk and the fake also use: the ratio is what this 2-core machine allows, not what
two free cores would give.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

P99_LIMIT_US = 10_000.0
W1, W2 = "gateway-redis", "gateway-w2"
"""The scaling pair: one and two workers, both with the Redis limiter."""
RunOne = Callable[[str, int, float], dict[str, Any]]
"""One wrk run: (target, connections, seconds) → the run's numbers."""


def reused_points(results: dict[str, Any]) -> dict[str, dict[int, dict[str, Any]]]:
    """Levels other phases measured: 1 connection from the latency rounds, 16 and 64 from throughput."""
    points: dict[str, dict[int, dict[str, Any]]] = {}
    sources = [(1, results.get("latency_c1", {}).get("summary", {}), "latency rounds")]
    sources += [(c, results.get("throughput", {}).get(str(c), {}), "throughput repeats") for c in (16, 64)]
    for conns, summary, source in sources:
        for target, entry in summary.items():
            if entry.get("rps") and entry.get("p99_us") is not None:
                errors = entry.get("errors", 0) + entry.get("non_2xx", 0)
                point = {"rps": entry["rps"], "p99_us": entry["p99_us"], "errors": errors, "source": source}
                points.setdefault(target, {})[conns] = point
    return points


def measure(
    run_one: RunOne, targets: list[str], levels: tuple[int, ...], seconds: float, results: dict[str, Any]
) -> dict[str, Any]:
    """Run the levels not measured yet for each target (interleaved by level), then summarize."""
    points = {t: dict(v) for t, v in reused_points(results).items() if t in targets}
    runs: list[dict[str, Any]] = []
    for conns in levels:
        this = {}
        for target in targets:
            if conns in points.get(target, {}):
                continue
            res = run_one(target, conns, seconds)
            runs.append({"target": target, "conns": conns, **res})
            errors = res["errors"] + res["non_2xx"]
            points.setdefault(target, {})[conns] = {
                "rps": res["rps"],
                "p99_us": res["p99_us"],
                "errors": errors,
                "source": "frontier",
            }
            this[target] = res
        if this:
            print(
                f"  {conns} conns: "
                + ", ".join(f"{t} {r['rps']:.0f} req/s p99 {r['p99_us'] / 1000:.1f} ms" for t, r in this.items()),
                flush=True,
            )
    return {"points": points, "runs": runs}


def summarize(points: dict[str, dict[int, dict[str, Any]]], workers: dict[str, int]) -> dict[str, Any]:
    """Per target: best req/s with p99 < 10 ms and unbounded (and per worker); the 2-worker scaling."""
    out: dict[str, Any] = {}
    for target, levels in points.items():
        clean = {c: p for c, p in levels.items() if not p["errors"]}
        bounded = [(p["rps"], c) for c, p in clean.items() if p["p99_us"] < P99_LIMIT_US]
        unbounded = [(p["rps"], c) for c, p in clean.items()]
        n = workers.get(target, 1)
        best_b, best_u = max(bounded, default=None), max(unbounded, default=None)
        out[target] = {
            "workers": n,
            "levels": {str(c): levels[c] for c in sorted(levels)},
            "bounded_rps": best_b[0] if best_b else None,
            "bounded_conns": best_b[1] if best_b else None,
            "unbounded_rps": best_u[0] if best_u else None,
            "unbounded_conns": best_u[1] if best_u else None,
            "bounded_rps_per_worker": best_b[0] / n if best_b else None,
            "unbounded_rps_per_worker": best_u[0] / n if best_u else None,
        }
    one, two = out.get(W1, {}), out.get(W2, {})
    scaling = {
        key: two[key] / one[key] if two.get(key) and one.get(key) else None for key in ("bounded_rps", "unbounded_rps")
    }
    return {"targets": out, "scaling_w2_over_w1": scaling}


def table(fr: dict[str, Any], order: list[str]) -> list[str]:
    """The frontier table (Markdown), or why it was not measured."""
    summary = fr.get("summary", {}).get("targets", {})
    if not summary:
        return ["", f"Throughput frontier: {fr.get('status', 'not measured')}"]
    levels = sorted({int(c) for t in summary.values() for c in t["levels"]})
    head = " | ".join(f"@{c} req/s (p99 ms)" for c in levels)
    lines = [
        "",
        "Throughput frontier against the fast fake (wrk -t1, closed loop; best req/s over the connection counts "
        "whose p99 < 10 ms, and at any count; per worker = req/s / worker processes; `direct` is the rig ceiling; "
        "levels from the latency rounds (1) and throughput repeats (16, 64) where the target ran in them):",
        "",
        f"| target | workers | max req/s p99 < 10 ms | per worker | max req/s unbounded | per worker | {head} |",
        "|---|---:|---:|---:|---:|---:|" + "---:|" * len(levels),
    ]
    for target in [t for t in order if t in summary] + [t for t in summary if t not in order]:
        s = summary[target]
        cells = []
        for c in levels:
            p = s["levels"].get(str(c))
            cells.append(
                "–" if p is None else f"{p['rps']:,.0f} ({p['p99_us'] / 1000:.1f})" + (" err" if p["errors"] else "")
            )
        lines.append(
            f"| {target} | {s['workers']} | {_at(s['bounded_rps'], s['bounded_conns'])} "
            f"| {_num(s['bounded_rps_per_worker'])} | {_at(s['unbounded_rps'], s['unbounded_conns'])} "
            f"| {_num(s['unbounded_rps_per_worker'])} | " + " | ".join(cells) + " |"
        )
    scaling = fr.get("summary", {}).get("scaling_w2_over_w1", {})
    lines += [
        "",
        f"Scaling, 2 workers over 1 (both with the Redis limiter; 2 workers share both CPUs with wrk and the "
        f"fake): p99 < 10 ms {_ratio(scaling.get('bounded_rps'))}, unbounded {_ratio(scaling.get('unbounded_rps'))}. "
        + (fr.get("w2_status", "") if fr.get("w2_status", "ok") != "ok" else ""),
    ]
    return lines


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _at(rps: float | None, conns: int | None) -> str:
    return "–" if rps is None else f"{rps:,.0f} @{conns}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"
