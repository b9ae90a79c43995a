"""``polyroute keys ...``: create, list, show, revoke and rotate API keys.

Against the local database (``POLYROUTE_DATABASE_URL`` or the data dir) by default, or against a
running server with ``--url`` and an admin key (``--admin-key`` or ``POLYROUTE_ADMIN_KEY``). Output
is JSON; a created or rotated key's secret is in it, and is shown only that once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from polyroute.api.key_service import KeyService, KeySpec, key_record, parse_body
from polyroute.core.keys import KeyStatus, KeyType
from polyroute.errors import GatewayError
from polyroute.settings import Settings
from polyroute.storage.audit import SqlAuditLog
from polyroute.storage.keys import SqlKeyStore
from polyroute.storage.migrate import upgrade_sync
from polyroute.storage.sql import create_engine

_ACTOR = "cli"


def add_parser(commands: Any) -> None:
    """Register ``keys`` and its subcommands on the main parser's subcommands."""
    keys = commands.add_parser("keys", help="manage API keys")
    keys.add_argument("--url", help="a running gateway (default: the local database)")
    keys.add_argument("--admin-key", help="admin key for --url (default: env POLYROUTE_ADMIN_KEY)")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key; prints its secret once")
    create.add_argument("--type", choices=[t.value for t in KeyType], default=KeyType.FULL.value)
    create.add_argument("--name")
    create.add_argument("--owner")
    create.add_argument("--models", nargs="+", help="allowed model patterns (globs over provider/model)")
    create.add_argument("--budget", type=float, help="total budget in USD")
    create.add_argument("--daily-budget", type=float, help="daily budget in USD")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--expires-at", type=float, help="expiry as Unix seconds")
    create.add_argument(
        "--fallback-scope", choices=["same_model", "configured", "any"], help="how far fallback may wander"
    )
    listing = actions.add_parser("list", help="list keys")
    listing.add_argument("--type", choices=[t.value for t in KeyType])
    listing.add_argument("--status", choices=[s.value for s in KeyStatus])
    for name in ("show", "revoke", "rotate"):
        actions.add_parser(name, help=f"{name} a key").add_argument("id")


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"type": args.type}
    for field in ("name", "owner", "models", "expires_at", "fallback_scope"):
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    budget = {k: v for k, v in (("total_usd", args.budget), ("daily_usd", args.daily_budget)) if v is not None}
    if budget:
        body["budget"] = budget
    if args.rpm is not None:
        body["limits"] = {"requests_per_minute": args.rpm}
    return body


async def _local(args: argparse.Namespace, settings: Settings) -> Any:
    engine = create_engine(settings.resolved_database_url)
    service = KeyService(SqlKeyStore(engine), SqlAuditLog(engine))
    now = time.time()
    try:
        if args.action == "create":
            secret, key = await service.create(parse_body(KeySpec, _spec(args)), actor=_ACTOR, ip=None, now=now)
            return {"key": secret, **key_record(key)}
        if args.action == "list":
            page = await service.store.list(
                key_type=KeyType(args.type) if args.type else None,
                status=KeyStatus(args.status) if args.status else None,
                limit=500,
            )
            return {"data": [key_record(k) for k in page.keys], "total": page.total}
        if args.action == "show":
            return key_record(await service.get(args.id))
        if args.action == "revoke":
            return key_record(await service.revoke(args.id, actor=_ACTOR, ip=None, now=now))
        secret, key = await service.rotate(args.id, actor=_ACTOR, ip=None, now=now)
        return {"key": secret, **key_record(key)}
    finally:
        await engine.dispose()


def _remote(args: argparse.Namespace, admin_key: str) -> Any:
    base = args.url.rstrip("/") + "/api/keys"
    requests: dict[str, tuple[str, str, Any]] = {
        "create": ("POST", base, _spec(args) if args.action == "create" else None),
        "list": ("GET", base + _query(args), None),
        "show": ("GET", f"{base}/{getattr(args, 'id', '')}", None),
        "revoke": ("DELETE", f"{base}/{getattr(args, 'id', '')}", None),
        "rotate": ("POST", f"{base}/{getattr(args, 'id', '')}/rotate", None),
    }
    method, url, body = requests[args.action]
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {admin_key}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise SystemExit(f"polyroute keys: the server answered {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"polyroute keys: cannot reach {args.url}: {exc.reason}") from None


def _query(args: argparse.Namespace) -> str:
    pairs = [f"{name}={value}" for name in ("type", "status") if (value := getattr(args, name, None))]
    return "?" + "&".join(pairs) if pairs else ""


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one ``keys`` subcommand; prints JSON, returns the exit status."""
    if args.url:
        admin_key = args.admin_key or (settings.admin_key.get_secret_value() if settings.admin_key else None)
        if not admin_key:
            sys.stderr.write("polyroute keys: --url needs --admin-key or POLYROUTE_ADMIN_KEY\n")
            return 2
        result = _remote(args, admin_key)
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade_sync(settings.resolved_database_url)
        try:
            result = asyncio.run(_local(args, settings))
        except GatewayError as exc:
            sys.stderr.write(f"polyroute keys: {exc.message}\n")
            return 1
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


__all__ = ["add_parser", "run"]
