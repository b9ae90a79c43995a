"""Cold start: the time from process start to the first successful answer.

A fresh process is started (pinned like the server under test, while the other servers are idle) and
polled every 10 ms with a real chat completion until one answers 200; the time counts from just before
the process is spawned. For the gateway the data dir is prepared first with ``polyroute keys create``
(migrations applied, a full key with a request limit and a budget), so the measured start is a restart
with every feature on: routing file, database, key lookup, limits, request log. The pass-through is
measured the same way. Peers are timed the same way when the harness starts them (``peers.check``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import procs

TIMEOUT_S = 30.0
KEY_ARGS = ["--type", "full", "--name", "bench-cold", "--rpm", str(10**8), "--budget", "1e9", "--daily-budget", "1e6"]
"""The cold-start gateway's key: a request limit and two budgets (the CLI's subset of the full key)."""


def prepare_gateway(exe: Path, data_dir: Path, env: dict[str, str]) -> str:
    """Create ``data_dir`` with the migrations applied and a full key; return the key's secret.

    Raises:
        RuntimeError: the CLI did not create the key.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(exe), "keys", "create", *KEY_ARGS]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **env})
    try:
        return str(json.loads(done.stdout)["key"])
    except (ValueError, KeyError) as exc:
        raise RuntimeError(f"polyroute keys create failed ({done.returncode}): {done.stderr[-300:]!r}") from exc


def measure(
    start: Callable[[int], procs.Child],
    stop: Callable[[procs.Child], None],
    url_for: Callable[[int], str],
    body: bytes,
    headers: dict[str, str],
    times: int,
) -> dict[str, Any]:
    """Start a fresh process ``times`` times (``start(port)``), each time until its first 200; medians."""
    runs: list[float] = []
    reasons: list[str] = []
    rss: list[int] = []
    for _ in range(times):
        port = procs.free_port()
        child = start(port)
        try:
            seconds, reason = procs.wait_first_answer(child, url_for(port), body, headers, TIMEOUT_S)
            if seconds is None:
                reasons.append(f"{reason}; log tail: {child.log_tail(5)!r}")
            else:
                runs.append(round(seconds, 3))
                rss.append(procs.rss_kib(child.pid))
        finally:
            stop(child)
    return {
        "status": "ok" if runs else f"failed: {reasons[0] if reasons else 'not run'}",
        "seconds": statistics.median(runs) if runs else None,
        "runs_s": runs,
        "rss_kib_after_first_answer": statistics.median(rss) if rss else None,
        "failures": reasons,
    }
