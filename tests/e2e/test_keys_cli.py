"""``polyroute keys``: against the local database of a data dir, and against a running server with ``--url``.

Each flow starts with the real command in a subprocess; the steps after it call the same entry point
(``polyroute.cli.main``) in this process with the same environment, which keeps the set fast (each
subprocess pays the whole import). Exit codes and messages are checked both ways.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import yaml

from polyroute.cli import main
from tests.e2e.process import ServerProcess, run_cli
from tests.fakes import FakeUpstream
from tests.gateway_fixtures import ADMIN_KEY, UPSTREAM_KEY, free_port, mock_routing

pytestmark = pytest.mark.e2e

UNKNOWN = "key_0000000000000000"


class Result(Protocol):
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Ran:
    """What a command run in this process exited with and printed."""

    returncode: int
    stdout: str
    stderr: str


Cli = Callable[..., Ran]


def subprocess_keys(data_dir: Path, *args: str, **env: str) -> Result:
    return run_cli(["keys", *args], {"POLYROUTE_DATA_DIR": str(data_dir), **env}, cwd=data_dir)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``polyroute keys ...`` in this process, with only the given ``POLYROUTE_*`` variables set."""
    for name in list(os.environ):
        if name.startswith("POLYROUTE_"):
            monkeypatch.delenv(name)

    def run(data_dir: Path, *args: str, **env: str) -> Ran:
        with monkeypatch.context() as patch:
            patch.chdir(data_dir)
            for name, value in {"POLYROUTE_DATA_DIR": str(data_dir), **env}.items():
                patch.setenv(name, value)
            try:
                code, extra = main(["keys", *args]), ""
            except SystemExit as exc:  # what the interpreter does with it at the top level
                code, extra = (1, f"{exc.code}\n") if isinstance(exc.code, str) else (int(exc.code or 0), "")
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err + extra)

    return run


def output(result: Result) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def audit_actions(database: Path) -> list[tuple[str, str, str | None]]:
    with closing(sqlite3.connect(database)) as conn:
        rows = conn.execute("SELECT action, target, actor FROM audit_log ORDER BY id").fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


# Local database


def test_local_create_list_show_revoke_rotate(tmp_path: Path, cli: Cli) -> None:
    trial = output(subprocess_keys(tmp_path, "create", "--type", "test", "--name", "x"))
    assert trial["key"].startswith("pr_test_")
    assert (trial["type"], trial["name"], trial["status"]) == ("test", "x", "active")
    assert trial["display"] == trial["key"][: len("pr_test_") + 4]
    assert trial["limits"]["requests_per_hour"] == 30
    assert trial["expires_at"] == pytest.approx(trial["created_at"] + 3600)
    full = output(cli(tmp_path, "create", "--name", "y", "--models", "mock/*", "--budget", "5", "--rpm", "10"))
    assert full["key"].startswith("pr_full_")
    assert (full["models"], full["budget"]["total_usd"], full["limits"]["requests_per_minute"]) == (["mock/*"], 5.0, 10)
    listing = cli(tmp_path, "list")
    assert output(listing)["total"] == 2
    assert {k["id"] for k in output(listing)["data"]} == {trial["id"], full["id"]}
    assert trial["key"] not in listing.stdout and full["key"] not in listing.stdout
    shown = output(cli(tmp_path, "show", trial["id"]))
    assert (shown["id"], shown["name"], "key" in shown) == (trial["id"], "x", False)
    revoked = output(cli(tmp_path, "revoke", trial["id"]))
    assert (revoked["id"], revoked["status"]) == (trial["id"], "revoked")
    assert revoked["revoked_at"] >= trial["created_at"]
    rotated = output(cli(tmp_path, "rotate", full["id"]))
    assert rotated["key"].startswith("pr_full_") and rotated["key"] != full["key"]
    assert (rotated["rotated_from"], rotated["name"], rotated["models"]) == (full["id"], "y", ["mock/*"])
    gone = output(cli(tmp_path, "list", "--status", "revoked"))
    assert {k["id"] for k in gone["data"]} == {trial["id"], full["id"]}
    assert [k["id"] for k in output(cli(tmp_path, "list", "--status", "active"))["data"]] == [rotated["id"]]
    again = cli(tmp_path, "rotate", trial["id"])
    assert (again.returncode, again.stdout) == (1, "")
    assert again.stderr == f"polyroute keys: API key {trial['id']!r} is revoked and cannot be rotated\n"
    assert audit_actions(tmp_path / "polyroute.db") == [
        ("key.create", trial["id"], "cli"),
        ("key.create", full["id"], "cli"),
        ("key.revoke", trial["id"], "cli"),
        ("key.revoke", full["id"], "cli"),
        ("key.rotate", rotated["id"], "cli"),
    ]


def test_errors_exit_with_a_status_and_a_message(tmp_path: Path) -> None:
    with ThreadPoolExecutor(2) as pool:
        unknown_job = pool.submit(subprocess_keys, tmp_path, "show", UNKNOWN)
        no_admin_job = pool.submit(subprocess_keys, tmp_path, "--url", "http://127.0.0.1:9", "list")
        unknown, no_admin = unknown_job.result(), no_admin_job.result()
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr == f"polyroute keys: no API key with id '{UNKNOWN}'\n"
    assert (no_admin.returncode, no_admin.stdout) == (2, "")
    assert no_admin.stderr == "polyroute keys: --url needs --admin-key or POLYROUTE_ADMIN_KEY\n"


def test_bad_arguments_are_refused_before_anything_is_stored(tmp_path: Path, cli: Cli) -> None:
    bad_type = cli(tmp_path, "create", "--type", "root")
    assert bad_type.returncode == 2
    assert "invalid choice: 'root'" in bad_type.stderr
    bad_budget = cli(tmp_path, "create", "--budget", "-3")
    assert (bad_budget.returncode, bad_budget.stdout) == (1, "")
    assert bad_budget.stderr.startswith("polyroute keys: budget.total_usd: ")
    bad_rpm = cli(tmp_path, "create", "--rpm", "-1")
    assert bad_rpm.stderr.startswith("polyroute keys: limits.requests_per_minute: ")
    assert output(cli(tmp_path, "list")) == {"data": [], "total": 0}
    unreachable = f"http://127.0.0.1:{free_port()}"
    refused = cli(tmp_path, "--url", unreachable, "--admin-key", ADMIN_KEY, "list")
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr.startswith(f"polyroute keys: cannot reach {unreachable}: ")


# A running server


@pytest.fixture(scope="module")
def server(fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("keys-cli-server")
    config = data_dir / "polyroute.yaml"
    config.write_text(yaml.safe_dump(mock_routing(fake_upstream_server)))
    env = {"POLYROUTE_ADMIN_KEY": ADMIN_KEY, "MOCK_KEY": UPSTREAM_KEY}
    running = ServerProcess(["--config", str(config)], env, data_dir)
    try:
        running.wait_ready(30)
        yield running
    finally:
        running.close()


def status_with(server: ServerProcess, secret: str) -> tuple[int, str | None]:
    answer = httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {secret}"}, timeout=15)
    return answer.status_code, None if answer.status_code == 200 else answer.json()["error"]["code"]


def test_remote_create_list_show_revoke_rotate(server: ServerProcess, tmp_path: Path, cli: Cli) -> None:
    url = server.url
    created = output(subprocess_keys(tmp_path, "--url", url, "--admin-key", ADMIN_KEY, "create", "--type", "test"))
    assert created["key"].startswith("pr_test_")
    assert (created["type"], created["status"]) == ("test", "active")
    assert status_with(server, created["key"]) == (200, None)
    listing = output(cli(tmp_path, "--url", url, "list", "--type", "test", POLYROUTE_ADMIN_KEY=ADMIN_KEY))
    assert created["id"] in {k["id"] for k in listing["data"]}
    assert {k["type"] for k in listing["data"]} == {"test"}
    shown = output(cli(tmp_path, "--url", url, "--admin-key", ADMIN_KEY, "show", created["id"]))
    assert (shown["id"], shown["status"], "key" in shown) == (created["id"], "active", False)
    rotated = output(cli(tmp_path, "--url", url, "--admin-key", ADMIN_KEY, "rotate", created["id"]))
    assert (rotated["rotated_from"], rotated["type"]) == (created["id"], "test")
    assert status_with(server, created["key"]) == (403, "key_revoked")
    assert status_with(server, rotated["key"]) == (200, None)
    revoked = output(cli(tmp_path, "--url", url, "--admin-key", ADMIN_KEY, "revoke", rotated["id"]))
    assert (revoked["id"], revoked["status"]) == (rotated["id"], "revoked")
    assert status_with(server, rotated["key"]) == (403, "key_revoked")


def test_remote_errors(server: ServerProcess, tmp_path: Path, cli: Cli) -> None:
    unknown = cli(tmp_path, "--url", server.url, "--admin-key", ADMIN_KEY, "show", UNKNOWN)
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr.startswith("polyroute keys: the server answered 404: ")
    assert f"no API key with id '{UNKNOWN}'" in unknown.stderr
    wrong = cli(tmp_path, "--url", server.url, "--admin-key", "pr_admin_not-a-real-key", "list")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("polyroute keys: the server answered 401: ")
    assert "invalid_api_key" in wrong.stderr
    full = output(cli(tmp_path, "--url", server.url, "--admin-key", ADMIN_KEY, "create", "--type", "full"))
    not_admin = cli(tmp_path, "--url", server.url, "--admin-key", full["key"], "list")
    assert not_admin.returncode == 1
    assert "the server answered 403" in not_admin.stderr and "admin_key_required" in not_admin.stderr


def test_key_created_offline_in_the_servers_data_dir_is_honoured(server: ServerProcess, cli: Cli) -> None:
    offline = output(cli(server.data_dir, "create", "--type", "full", "--name", "offline"))
    assert status_with(server, offline["key"]) == (200, None)
    shown = httpx.get(
        f"{server.url}/api/keys/{offline['id']}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=15
    )
    assert (shown.status_code, shown.json()["name"]) == (200, "offline")
