"""PNG charts of one benchmark run (matplotlib, headless), for docs/benchmarks/.

One chart per question: what each server adds at one connection, how it holds concurrency against a
20 ms upstream, how far it goes (the throughput frontier), what a request costs in CPU, what held
streams cost in memory, and how long a start takes. Log scales where the servers differ by orders of
magnitude (LiteLLM against nginx). Every chart says where and when it was measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {
    "direct": "#7f7f7f",
    "passthrough": "#1f77b4",
    "gateway": "#d62728",
    "gateway-redis": "#ff9896",
    "gateway-w2": "#8c564b",
    "nginx": "#2ca02c",
    "litellm": "#9467bd",
    "portkey": "#ff7f0e",
}
ORDER = ("direct", "passthrough", "gateway", "nginx", "litellm", "portkey")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _plain(ax: Any) -> None:
    """Plain numbers on a log axis (1, 10, 100 rather than 10^0, 10^1, 10^2)."""
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: _label(value)))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _pos: ""))


def _footer(fig: Any, results: dict[str, Any]) -> None:
    text = f"{results['date']} on {results['host']} ({results['mode']}); {results['rig']['summary']}"
    fig.text(0.01, 0.005, text, fontsize=6, color="#555555", ha="left", va="bottom")


def _bars(ax: Any, groups: list[str], series: dict[str, list[float | None]], colors: list[str] | None = None) -> None:
    width = 0.8 / max(len(series), 1)
    for i, (label, values) in enumerate(series.items()):
        xs = [g + i * width - 0.4 + width / 2 for g in range(len(groups))]
        ys = [v if v is not None else 0 for v in values]
        bars = ax.bar(xs, ys, width, label=label, color=None if colors is None else colors[i % len(colors)])
        for bar, value in zip(bars, values, strict=True):
            if value is not None:
                ax.annotate(
                    _label(value),
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    fontsize=6,
                    ha="center",
                    va="bottom",
                )
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)


def latency(results: dict[str, Any], path: Path) -> Path | None:
    summary = results.get("latency_c1", {}).get("summary", {})
    names = [n for n in ORDER[1:] if n in summary and summary[n].get("added_p50_us") is not None]
    if not names:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    series = {
        "added p50": [max(summary[n]["added_p50_us"], 1) / 1000 for n in names],
        "added p99": [max(summary[n]["added_p99_us"], 1) / 1000 for n in names],
    }
    _bars(ax, names, series, ["#1f77b4", "#aec7e8"])
    ax.set_yscale("log")
    _plain(ax)
    ax.set_ylabel("ms over direct (log)")
    ax.set_title("Added latency at 1 connection (median of interleaved rounds)")
    ax.legend(fontsize=8)
    _footer(fig, results)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sweep(results: dict[str, Any], path: Path) -> Path | None:
    data = results.get("delay20", {})
    if not data:
        return None
    plt = _plt()
    conns = sorted(int(c) for c in data)
    names = [n for n in ORDER if any(n in data[str(c)] for c in conns)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    for name in names:
        xs = [c for c in conns if name in data[str(c)]]
        left.plot(xs, [data[str(c)][name]["rps"] for c in xs], marker="o", label=name, color=COLORS.get(name))
        right.plot(
            xs, [data[str(c)][name]["p99_us"] / 1000 for c in xs], marker="o", label=name, color=COLORS.get(name)
        )
    left.plot(conns, [c / 0.020 for c in conns], linestyle=":", color="black", label="ideal (conns / 20 ms)")
    for ax, label in ((left, "req/s"), (right, "p99 ms")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        _plain(ax)
        ax.set_xlabel("connections")
        ax.set_ylabel(label + " (log)")
        ax.set_xticks(conns)
        ax.set_xticklabels([str(c) for c in conns])
    left.set_title("Throughput against a 20 ms upstream")
    right.set_title("p99 latency against a 20 ms upstream")
    left.legend(fontsize=7)
    _footer(fig, results)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def frontier_chart(results: dict[str, Any], path: Path) -> Path | None:
    summary = results.get("frontier", {}).get("summary", {}).get("targets", {})
    names = [n for n in (*ORDER, "gateway-redis", "gateway-w2") if n in summary]
    if not names:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    series = {
        "max req/s, p99 < 10 ms": [summary[n]["bounded_rps"] for n in names],
        "max req/s, unbounded": [summary[n]["unbounded_rps"] for n in names],
    }
    _bars(ax, names, series, ["#2ca02c", "#98df8a"])
    ax.set_yscale("log")
    _plain(ax)
    ax.set_ylabel("req/s (log)")
    ax.set_title("Throughput frontier against the fast fake (direct = rig ceiling; gateway-w2 = 2 workers)")
    ax.legend(fontsize=8)
    _footer(fig, results)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cpu(results: dict[str, Any], cells: dict[str, dict[str, Any]], path: Path) -> Path | None:
    names = [n for n in ORDER[1:] if any(row.get(n) is not None for row in cells.values())]
    if not names:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.4))
    cases = list(cells)
    series = {name: [cells[case].get(name) for case in cases] for name in names}
    _bars(ax, [c.replace(", ", ",\n", 1) for c in cases], series, [COLORS[n] for n in names])
    ax.set_yscale("log")
    _plain(ax)
    ax.set_ylabel("CPU-ms per request (log)")
    ax.set_title("CPU per request at 16 connections (/proc, until idle)")
    ax.legend(fontsize=8)
    _footer(fig, results)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def memory(results: dict[str, Any], path: Path) -> Path | None:
    mem = results.get("memory", {})
    names = [n for n in ("passthrough", "gateway") if n in mem]
    if not names:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    stages = ("start", "warm", "held", "after")
    series = {
        stage: [None if mem[n]["rss_kib"].get(stage) is None else mem[n]["rss_kib"][stage] / 1024 for n in names]
        for stage in stages
    }
    labels = [f"{n}\n{mem[n]['kib_per_stream'] or 0:.1f} KiB/stream" for n in names]
    _bars(ax, labels, series, ["#c7c7c7", "#9edae5", "#17becf", "#1f77b4"])
    ax.set_ylabel("RSS MiB")
    ax.set_title(f"RSS with {mem['streams']:,} held streams")
    ax.legend(fontsize=8)
    _footer(fig, results)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cold(results: dict[str, Any], path: Path) -> Path | None:
    data = results.get("cold_start", {})
    names = [n for n in ORDER[1:] if isinstance(data.get(n), dict) and data[n].get("seconds") is not None]
    if not names:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    _bars(ax, names, {"first answer s": [data[n]["seconds"] for n in names]}, ["#8c564b"])
    ax.set_yscale("log")
    _plain(ax)
    ax.set_ylabel("seconds from spawn (log)")
    ax.set_title("Cold start: process start to the first successful answer")
    _footer(fig, results)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(results: dict[str, Any], cpu_cells: dict[str, dict[str, Any]], out: Path) -> list[Path]:
    """Every chart that has data, as ``out/<name>.png``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    made = [
        latency(results, out / "latency.png"),
        sweep(results, out / "sweep-20ms.png"),
        frontier_chart(results, out / "frontier.png"),
        cpu(results, cpu_cells, out / "cpu.png"),
        memory(results, out / "memory.png"),
        cold(results, out / "cold-start.png"),
    ]
    return [p for p in made if p is not None]
