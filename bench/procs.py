"""Child processes for the benchmark: start, pin, wait until healthy, measure from /proc, clean up.

Every child is started in its own session (process group) so that a Ctrl-C at the terminal reaches
only the harness, which then ends each child it started by its own group id (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in task.read_text().split()]
    return found


def process_tree(pid: int) -> list[int]:
    """The pid and all its live descendants (for servers that fork workers)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += _children(current)
    return tree


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process tree so far, in seconds (0 for processes that are gone)."""
    total = 0
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return total / CLOCK_TICKS


def wait_quiet(pids: list[int], quiet_s: float, max_s: float, busy_share: float = 0.02) -> float:
    """Wait until the process trees used < ``busy_share`` of a core for ``quiet_s``; return seconds waited.

    Servers that defer work (a request log flushed every second) keep using CPU after the load stops;
    waiting for that to end keeps it out of the next measurement and inside this one's CPU count.
    """
    start = time.monotonic()
    window_start, window_cpu = start, sum(cpu_seconds(p) for p in pids)
    while time.monotonic() - start < max_s:
        time.sleep(0.05)
        now, cpu = time.monotonic(), sum(cpu_seconds(p) for p in pids)
        if cpu - window_cpu > busy_share * max(now - window_start, 0.1):
            window_start, window_cpu = now, cpu
        elif now - window_start >= quiet_s:
            break
    return round(time.monotonic() - start, 2)


@dataclass(frozen=True)
class MachineSample:
    """Machine-wide CPU counters and the CPU of everything this harness runs, at one moment."""

    wall: float
    busy: float
    steal: float
    ours: float

    @classmethod
    def take(cls, pids: list[int]) -> MachineSample:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        mine = os.times()
        ours = mine.user + mine.system + mine.children_user + mine.children_system  # wrk, once reaped
        ours += sum(cpu_seconds(p) for p in pids)
        busy = (user + nice + system + irq + softirq) / CLOCK_TICKS
        return cls(time.monotonic(), busy, steal / CLOCK_TICKS, ours)

    def foreign_since(self, earlier: MachineSample) -> dict[str, float]:
        """Share of one core used by processes that are not ours, and stolen by the hypervisor."""
        wall = max(self.wall - earlier.wall, 1e-6)
        foreign = (self.busy - earlier.busy) - (self.ours - earlier.ours)
        return {
            "foreign_cpu_share": round(max(foreign, 0.0) / wall, 3),
            "steal_share": round((self.steal - earlier.steal) / wall, 3),
        }


def rss_kib(pid: int) -> int:
    """Summed VmRSS of a process tree, in KiB."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


@dataclass
class Child:
    """A started server process and where it logs."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int
    started: float = 0.0
    """``time.monotonic()`` just before the process was spawned (cold start is counted from here)."""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class Supervisor:
    """Starts children and guarantees they are ended (call :meth:`stop_all` in a ``finally``)."""

    workdir: Path
    pin: bool = True
    children: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        port: int,
        cpu: int | str | None,
        env: dict[str, str] | None = None,
        *,
        cwd: Path | None = None,
    ) -> Child:
        """Start ``argv`` in its own process group, pinned to ``cpu`` (one CPU or a list: "0,1") if pinning is on."""
        if self.pin and cpu is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", str(cpu), *argv]
        log = self.workdir / f"{name}.log"
        started = time.monotonic()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
                cwd=cwd,
            )
        child = Child(name, proc, log, port, started)
        self.children.append(child)
        return child

    def stop(self, child: Child, grace: float = 3.0) -> None:
        """End one child's process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
            if child.proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(wait)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.proc.pid, signal.SIGKILL)  # stragglers left in the group

    def stop_all(self) -> None:
        for child in reversed(self.children):
            self.stop(child)
        self.children.clear()


def wait_healthy(child: Child, url: str, timeout: float) -> str | None:
    """Poll ``url`` until it answers 200; None when healthy, else the reason it is not."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not child.alive():
            return f"{child.name} exited with code {child.proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200:
                    return None
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            last = type(exc).__name__
        time.sleep(0.05)
    return f"{child.name} not healthy at {url} after {timeout:g} s ({last})"


def wait_first_answer(
    child: Child, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[float | None, str]:
    """Poll ``url`` with a real request until it answers 200: (seconds since spawn, "ok") or (None, why not).

    This is the cold start a user sees: from process start to the first successful answer, not to the
    first open port or health check.
    """
    deadline = child.started + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not child.alive():
            return None, f"{child.name} exited with code {child.proc.returncode}"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=2.0) as resp:
                resp.read()
                if resp.status == 200:
                    return time.monotonic() - child.started, "ok"
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:200]!r}"
        except (OSError, ValueError) as exc:
            last = type(exc).__name__
        time.sleep(0.01)
    return None, f"{child.name} gave no successful answer at {url} within {timeout:g} s ({last})"


def pin_self(cpu: int) -> bool:
    """Pin the harness (and what it spawns without taskset: wrk, fakes) to one CPU."""
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        return False
    return True
