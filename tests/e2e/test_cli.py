"""The ``polyroute`` command's short subcommands, run as a user runs them."""

from __future__ import annotations

import sqlite3

import pytest

from polyroute import __version__
from tests.e2e.process import run_cli

pytestmark = pytest.mark.e2e

VALID = """
providers:
  - name: mock
    format: openai
    base_url: http://127.0.0.1:9000/v1
    api_key: ${MOCK_KEY}
    models: [gpt-4o]
aliases:
  fast: mock/gpt-4o
"""

INVALID = """
providers:
  - name: a
    format: openai
    base_url: http://127.0.0.1:9000/v1
  - name: b
    format: grpc
    base_url: http://127.0.0.1:9000/v1
  - name: c
    format: openai
    base_url: not-a-url
    colour: blue
    api_key: ${NOT_SET_ANYWHERE}
"""


def test_version_prints_the_package_version():
    result = run_cli(["version"])
    assert result.returncode == 0
    assert result.stdout.strip() == f"polyroute {__version__}"


def test_check_config_valid_file_exits_zero(tmp_path):
    path = tmp_path / "polyroute.yaml"
    path.write_text(VALID)
    result = run_cli(["check-config", "--config", str(path)], {"MOCK_KEY": "k"})
    assert result.returncode == 0, result.stderr
    assert "OK (1 providers, 1 aliases)" in result.stdout


def test_check_config_lists_every_error_with_its_path(tmp_path):
    path = tmp_path / "polyroute.yaml"
    path.write_text(INVALID)
    result = run_cli(["check-config", "--config", str(path)])
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any(line.startswith("providers[1].format: ") for line in lines), lines
    assert any(line.startswith("providers[2].base_url: not a URL") for line in lines), lines
    assert "providers[2].colour: unknown key" in lines
    assert any("providers[2].api_key: environment variable NOT_SET_ANYWHERE is not set" in line for line in lines)
    assert "Traceback" not in result.stderr


def test_check_config_reads_polyroute_config_variable(tmp_path):
    path = tmp_path / "elsewhere.yaml"
    path.write_text(VALID)
    result = run_cli(["check-config"], {"POLYROUTE_CONFIG": str(path), "MOCK_KEY": "k"})
    assert result.returncode == 0, result.stderr


def test_check_config_missing_file_exits_one(tmp_path):
    result = run_cli(["check-config", "--config", str(tmp_path / "nope.yaml")])
    assert result.returncode == 1
    assert "no such file" in result.stderr


def test_check_config_without_file_describes_zero_config(tmp_path):
    result = run_cli(["check-config"], {"GROQ_API_KEY": "x", "POLYROUTE_POLLINATIONS": "false"}, cwd=tmp_path)
    assert result.returncode == 0
    assert "zero-config mode would register: groq" in result.stdout


def test_migrate_creates_the_request_log_table(tmp_path):
    result = run_cli(["migrate"], {"POLYROUTE_DATA_DIR": str(tmp_path / "d")})
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "d" / "polyroute.db") as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    assert {"request_log", "alembic_version"} <= tables


def test_bad_environment_value_is_reported_not_traced(tmp_path):
    result = run_cli(["check-config"], {"POLYROUTE_PORT": "not-a-port"}, cwd=tmp_path)
    assert result.returncode == 1
    assert "POLYROUTE_PORT" in result.stderr
    assert "Traceback" not in result.stderr
