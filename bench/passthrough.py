"""The bare Python pass-through floor: uvicorn (httptools, uvloop) + raw ASGI + one pooled aiohttp session.

No features at all: it reads the body, forwards it to ``--upstream`` + the same path, and relays status
and body (streams chunk by chunk). Whatever a gateway adds on top of this is the cost of its features.
Run: ``python bench/passthrough.py --upstream http://127.0.0.1:9000 --port 9001``.
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import uvicorn


class PassThrough:
    """Raw ASGI app forwarding every HTTP request to one upstream."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
            jar = aiohttp.DummyCookieJar()
            self.session = aiohttp.ClientSession(connector=connector, cookie_jar=jar, auto_decompress=False)
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await self.session.close()
            return await send({"type": "lifespan.shutdown.complete"})
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        assert self.session is not None
        url = self.upstream + scope["path"]
        headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
        async with self.session.request(scope["method"], url, data=body, headers=headers) as resp:
            ctype = resp.headers.get("Content-Type", "application/json").encode()
            start = {"type": "http.response.start", "status": resp.status, "headers": [(b"content-type", ctype)]}
            if ctype.startswith(b"text/event-stream"):
                await send(start)
                async for chunk in resp.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                return await send({"type": "http.response.body", "body": b""})
            data = await resp.read()
            start["headers"].append((b"content-length", b"%d" % len(data)))
            await send(start)
            await send({"type": "http.response.body", "body": data})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="bare pass-through floor")
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = PassThrough(args.upstream)
    opts = {"loop": "uvloop", "http": "httptools", "access_log": False, "log_level": "warning"}
    uvicorn.run(app, host=args.host, port=args.port, **opts)
