"""Process settings: environment parsing, database URL drivers, the routing file default, loopback detection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from polyroute.settings import DEFAULT_PORT, Settings, environment, export


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No POLYROUTE_* from the machine running the tests, and a data dir that is not the real one."""
    for name in list(os.environ):
        if name.startswith("POLYROUTE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


# Environment parsing


def test_settings_defaults_listen_on_loopback_without_admin_key() -> None:
    settings = Settings()

    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", DEFAULT_PORT, 1)
    assert settings.admin_key is None
    assert settings.config is None
    assert settings.is_loopback


def test_settings_port_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYROUTE_PORT", "9000")

    assert Settings().port == 9000


@pytest.mark.parametrize("value", ["nine", "-1", "65536"])
def test_settings_invalid_port_is_rejected(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("POLYROUTE_PORT", value)

    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_settings_env_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("polyroute_workers", "3")

    assert Settings().workers == 3


def test_settings_unknown_polyroute_variable_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYROUTE_NO_SUCH_SETTING", "x")

    assert Settings().port == DEFAULT_PORT


def test_settings_bool_and_float_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYROUTE_POLLINATIONS", "false")
    monkeypatch.setenv("POLYROUTE_REQUEST_TIMEOUT_S", "12.5")

    settings = Settings()

    assert settings.pollinations is False
    assert settings.request_timeout_s == 12.5


def test_settings_admin_key_is_secret_and_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYROUTE_ADMIN_KEY", "pr-admin-very-secret")

    settings = Settings()

    assert isinstance(settings.admin_key, SecretStr)
    assert settings.admin_key.get_secret_value() == "pr-admin-very-secret"
    assert "pr-admin-very-secret" not in repr(settings)
    assert "pr-admin-very-secret" not in str(settings)
    assert "pr-admin-very-secret" not in str(settings.model_dump())


def test_settings_are_frozen() -> None:
    settings = Settings()

    with pytest.raises(ValidationError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


def test_settings_data_dir_follows_xdg_data_home(tmp_path: Path) -> None:
    assert Settings().data_dir == tmp_path / "xdg" / "polyroute"


def test_settings_data_dir_without_xdg_is_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))

    assert Settings().data_dir == tmp_path / ".local" / "share" / "polyroute"


# resolved_database_url


def test_resolved_database_url_defaults_to_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)

    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path}/polyroute.db"
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:////")


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("sqlite:///relative.db", "sqlite+aiosqlite:///relative.db"),
        ("sqlite:////var/lib/polyroute.db", "sqlite+aiosqlite:////var/lib/polyroute.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://u:p@db:5432/polyroute", "postgresql+asyncpg://u:p@db:5432/polyroute"),
        ("postgres://u:p@db/polyroute", "postgresql+asyncpg://u:p@db/polyroute"),
        ("postgresql+asyncpg://db/polyroute", "postgresql+asyncpg://db/polyroute"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("mysql+aiomysql://db/polyroute", "mysql+aiomysql://db/polyroute"),
    ],
)
def test_resolved_database_url_gives_async_driver(url: str, resolved: str) -> None:
    assert Settings(database_url=url).resolved_database_url == resolved


def test_resolved_database_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYROUTE_DATABASE_URL", "postgresql://db/polyroute")

    assert Settings().resolved_database_url == "postgresql+asyncpg://db/polyroute"


# config_path


def test_config_path_none_when_no_file_in_working_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)

    assert Settings().config_path is None


def test_config_path_uses_polyroute_yaml_in_working_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "polyroute.yaml").write_text("providers: []\n", encoding="utf-8")

    path = Settings().config_path

    assert path is not None
    assert path.resolve() == (tmp_path / "polyroute.yaml").resolve()


def test_config_path_directory_named_polyroute_yaml_is_not_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "polyroute.yaml").mkdir()

    assert Settings().config_path is None


def test_config_path_explicit_wins_even_if_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "polyroute.yaml").write_text("providers: []\n", encoding="utf-8")
    monkeypatch.setenv("POLYROUTE_CONFIG", str(tmp_path / "elsewhere.yaml"))

    assert Settings().config_path == tmp_path / "elsewhere.yaml"


# is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "localhost", "LocalHost"])
def test_is_loopback_loopback_addresses(host: str) -> None:
    assert Settings(host=host).is_loopback


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "", "127.example.com", "127.0.0.1.nip.io"],
)
def test_is_loopback_other_addresses_are_not(host: str) -> None:
    """A host name that merely starts with ``127.`` can resolve anywhere; it must not unlock open access."""
    assert not Settings(host=host).is_loopback


# environment and export


def test_environment_is_a_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_KEY", "one")
    snapshot = environment()
    monkeypatch.setenv("SOME_KEY", "two")

    assert snapshot["SOME_KEY"] == "one"


def test_export_writes_explicit_settings_back(monkeypatch: pytest.MonkeyPatch) -> None:
    written = ("POLYROUTE_PORT", "POLYROUTE_ADMIN_KEY", "POLYROUTE_POLLINATIONS")
    for name in written:  # so that monkeypatch removes them again after the test
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    before = {k: v for k, v in os.environ.items() if k.startswith("POLYROUTE_")}
    settings = Settings(port=9100, admin_key=SecretStr("pr-k"), pollinations=False)

    export(settings)

    assert os.environ["POLYROUTE_PORT"] == "9100"
    assert os.environ["POLYROUTE_ADMIN_KEY"] == "pr-k"
    assert os.environ["POLYROUTE_POLLINATIONS"] == "false"
    assert {k for k in os.environ if k.startswith("POLYROUTE_")} - set(before) == set(written)
    assert Settings() == settings
