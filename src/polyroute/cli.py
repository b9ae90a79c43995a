"""The ``polyroute`` command: serve, check-config, migrate, version."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import ValidationError

from polyroute import __version__, keys_cli
from polyroute import settings as settings_module
from polyroute.app import app_from_environment, bootstrap_sync, check_settings, create_app, load_routing, secrets_of
from polyroute.errors import ConfigError
from polyroute.observability.logging import configure_logging
from polyroute.routing.discovery import initial_table
from polyroute.settings import DEFAULT_PORT, Settings
from polyroute.storage.migrate import upgrade_sync
from polyroute.upstream.client import Timeouts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polyroute", description="An LLM API gateway.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the gateway")
    serve.add_argument("--config", type=Path, help="routing file (env POLYROUTE_CONFIG)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1; env POLYROUTE_HOST)")
    serve.add_argument("--port", type=int, help=f"listen port (default {DEFAULT_PORT}; env POLYROUTE_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1; env POLYROUTE_WORKERS)")
    check = commands.add_parser("check-config", help="validate the routing file and exit")
    check.add_argument("--config", type=Path, help="routing file (env POLYROUTE_CONFIG)")
    commands.add_parser("migrate", help="apply database migrations and exit")
    commands.add_parser("version", help="print the version")
    keys_cli.add_parser(commands)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k in ("config", "host", "port", "workers") if (v := getattr(args, k, None)) is not None}
    return Settings(**overrides)


def _fail(lines: Sequence[str]) -> int:
    for line in lines:
        print(line, file=sys.stderr)
    return 1


def _check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    environ = settings_module.environment()
    routing = load_routing(settings, environ)
    if routing is None:
        timeouts = Timeouts(connect_s=1, first_byte_s=1, stream_idle_s=1, total_s=1)
        table = initial_table(None, environ, timeouts=timeouts, include_keyless=settings.pollinations)
        names = ", ".join(p.name for p in table.providers) or "none"
        print(f"no routing file: zero-config mode would register: {names} (and a local Ollama if one answers)")
        return 0
    print(f"{settings.config_path}: OK ({len(routing.providers)} providers, {len(routing.aliases)} aliases)")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    upgrade_sync(settings.resolved_database_url)
    print("database is up to date")
    return 0


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    environ = settings_module.environment()
    routing = load_routing(settings, environ)
    configure_logging(settings.log_level, secrets_of(settings, routing, environ))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    check_settings(settings)
    upgrade_sync(settings.resolved_database_url)
    bootstrap_sync(settings)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop" if sys.platform != "win32" else "asyncio",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        "log_config": None,
        "proxy_headers": False,
        "server_header": False,
        "timeout_graceful_shutdown": settings.shutdown_timeout_s,
    }
    if settings.workers == 1:
        app = create_app(settings, routing, environ, run_migrations=False)
        uvicorn.Server(uvicorn.Config(app, **options)).run()
    else:
        settings_module.export(settings)
        create_app(settings, routing, environ, run_migrations=False)  # fail here, not in every worker
        uvicorn.run(
            f"{app_from_environment.__module__}:{app_from_environment.__name__}",
            factory=True,
            workers=settings.workers,
            **options,
        )
    return 0


def _keys(args: argparse.Namespace) -> int:
    return keys_cli.run(args, _settings(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"polyroute {__version__}")
        return 0
    handlers = {
        "serve": _serve,
        "check-config": _check_config,
        "migrate": _migrate,
        "keys": _keys,
    }
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        return _fail(exc.problems)
    except ValidationError as exc:
        return _fail([f"POLYROUTE_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()])
