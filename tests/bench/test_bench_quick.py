"""The benchmark harness runs end to end and every case yields numbers (structure, never speed).

Runs ``bench/run.py --smoke`` once (every phase, as short as it can be: ~1.5-2 minutes) into a temporary
directory and checks the JSON it wrote: each case has numbers, streams are exact (every event, the same
bytes as the upstream's for same-format, ``[DONE]`` last, the usage chunk), held streams all completed and
a second round of them did not keep growing memory. Timing targets live in the report, never here.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.redis_fixtures import DEFAULT_REDIS_URL, _reachable
from tests.storage_fixtures import services_required

pytestmark = pytest.mark.bench

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 300
GROWTH_SHARE_BOUND = 0.5
"""Generous: a second round of held streams may grow RSS by at most half of what the first round added."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The results of one ``--smoke`` run (skipped without wrk, unless services are required)."""
    if shutil.which("wrk") is None:
        message = "wrk is not installed (apt-get install -y wrk; `make bench` installs it)"
        if services_required():
            pytest.fail(f"{message}: required under CI", pytrace=False)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("bench")
    argv = [sys.executable, str(REPO / "bench" / "run.py"), "--smoke", "--out", str(out), "--docs", str(out / "docs")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False, cwd=REPO)
    assert done.returncode == 0, f"bench/run.py --smoke exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr}"
    [json_path] = out.glob("*.json")
    results = json.loads(json_path.read_text())
    results["_out"] = str(out)
    return results


@pytest.fixture(scope="module")
def redis_up() -> bool:
    return _reachable(DEFAULT_REDIS_URL) is None


def test_smoke_run_measures_every_target_without_errors(smoke):
    assert smoke["gateway"]["status"] == "ok", smoke["gateway"]
    latency = smoke["latency_c1"]["summary"]
    for name in ("direct", "passthrough", "gateway"):
        assert _number(latency[name]["p50_us"]) and latency[name]["rps"] > 0, name
        assert latency[name]["errors"] == 0, name
    for conns in ("16", "64"):
        for name in ("direct", "passthrough", "gateway"):
            entry = smoke["throughput"][conns][name]
            assert entry["rps"] > 0 and entry["errors"] == 0 and entry["non_2xx"] == 0, (conns, name)
    assert _number(smoke["throughput"]["16"]["gateway"]["cpu_ms_per_req"])
    assert not smoke.get("skipped_phases"), smoke.get("skipped_phases")


def test_smoke_run_sweeps_the_20ms_upstream_at_every_concurrency(smoke):
    sweep = smoke["delay20"]
    assert sorted(int(c) for c in sweep) == sorted(smoke["plan"]["delay_conns"])
    for per in sweep.values():
        for name in ("passthrough", "gateway"):
            assert per[name]["rps"] > 0 and per[name]["non_2xx"] == 0 and _number(per[name]["p99_us"]), name


def test_smoke_run_finds_a_throughput_frontier_per_worker(smoke, redis_up):
    summary = smoke["frontier"]["summary"]["targets"]
    expected = {"direct", "passthrough", "gateway"} | ({"gateway-redis", "gateway-w2"} if redis_up else set())
    assert expected <= set(summary)
    for name in expected:
        entry = summary[name]
        assert {int(c) for c in entry["levels"]} >= set(smoke["plan"]["frontier_levels"]), name
        assert entry["unbounded_rps"] > 0 and entry["unbounded_rps_per_worker"] > 0, name
    if redis_up:
        assert summary["gateway-w2"]["workers"] == 2
        assert _number(smoke["frontier"]["summary"]["scaling_w2_over_w1"]["unbounded_rps"])


def test_smoke_run_streams_are_exact(smoke):
    stream, expected = smoke["stream"], smoke["expected_events"]
    direct_bytes = stream["direct"]["bytes_all"]
    for name in ("direct", "passthrough", "gateway", "gateway-anthropic"):
        s = stream[name]
        assert s["ok"] == s["requests"] > 0, name
        assert s["events_all"] == [expected[s["format"]]], name
        assert s["all_done"] and s["all_usage"] and s["text_stable"], name
        assert s["text"] == stream["direct"]["text"], name
    for name in ("passthrough", "gateway"):
        assert stream[name]["bytes_all"] == direct_bytes, f"{name} changed the bytes of a same-format stream"


def test_smoke_run_counts_cpu_for_every_case_of_the_cpu_table(smoke):
    xf = smoke["crossformat"]["summary"]
    for case in ("same-format", "cross-format"):
        assert _number(xf[case]["cpu_ms_per_req"]) and xf[case]["non_2xx"] == 0, case
    assert _number(smoke["stream_cpu"]["summary"]["passthrough"]["cpu_ms_per_req"])
    failover = smoke["failover"]
    assert failover["status"] == "ok", failover["status"]
    assert _number(failover["summary"]["cases"]["fallback"]["cpu_ms_per_req"])
    assert _number(failover["summary"]["hop_us"])


def test_smoke_run_releases_held_streams(smoke):
    memory = smoke["memory"]
    assert memory["status"] == "ok"
    for name in ("passthrough", "gateway"):
        m = memory[name]
        for held in [m, *m["rounds"]]:
            assert held["held_together"] == held["complete"] == memory["streams"], (name, held["incomplete"])
        assert _number(m["kib_per_stream"]) and m["kib_per_stream"] > 0, name
    gateway = memory["gateway"]
    assert gateway["rounds"], "the gateway gets a second round of held streams"
    assert gateway["growth_share"] is not None and gateway["growth_share"] <= GROWTH_SHARE_BOUND, gateway["growth_kib"]


def test_smoke_run_times_cold_starts(smoke):
    for name in ("passthrough", "gateway"):
        cold = smoke["cold_start"][name]
        assert cold["status"] == "ok" and _number(cold["seconds"]) and cold["seconds"] > 0, cold


def test_smoke_run_evaluates_every_target_and_writes_the_report(smoke):
    verdicts = {row["metric"]: row["verdict"] for row in smoke["checks"]["targets"]}
    skipped = [m for m, v in verdicts.items() if v == "SKIP" and "LiteLLM" not in m]
    assert not skipped, f"targets not measured: {skipped}"
    docs = Path(smoke["_out"]) / "docs"
    text = (docs / "latest.md").read_text()
    assert "| metric | target | measured | verdict |" in text
    assert (Path(smoke["_out"]) / "latest.md").exists()
    pytest.importorskip("matplotlib")
    assert {p.name for p in docs.glob("*.png")} >= {"latency.png", "sweep-20ms.png", "frontier.png", "cpu.png"}
