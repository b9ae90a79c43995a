"""Run ``polyroute`` as a real subprocess on loopback, the way a user does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from tests.gateway_fixtures import free_port


class ServerProcess:
    """``python -m polyroute serve`` with a private data dir; stderr captured to a file."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log_path = data_dir / "server.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("POLYROUTE_")}
        full_env.update({"POLYROUTE_DATA_DIR": str(data_dir), "POLYROUTE_PORT": str(self.port)})
        full_env.update(env)
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "polyroute", "serve", *args],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 20.0) -> float:
        """Seconds until /health answered; raises if the process died or never answered."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=0.5).status_code == 200:
                    return time.monotonic() - start
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not answer within {timeout_s}s:\n{self.output()}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._log.close()

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def run_cli(
    args: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a short ``polyroute`` command and capture its output."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("POLYROUTE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "polyroute", *args], env=full_env, capture_output=True, text=True, timeout=60, cwd=cwd
    )
