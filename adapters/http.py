"""The engine's HTTP server (aiohttp): ``/metrics`` (Prometheus), ``/healthz``. Binds 127.0.0.1 by default."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_async.aio.web import server_stats

ReadyCheck = Callable[[], Awaitable[dict[str, Any]]]


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


class HttpServer:
    def __init__(self, host: str, port: int, ready: ReadyCheck | None = None) -> None:
        self._host, self._port = host, port
        self._ready = ready
        self._runner: web.AppRunner | None = None
        self.port: int = port

    async def _readyz(self, request: web.Request) -> web.Response:
        if self._ready is None:
            return web.json_response({"status": "ready", "checks": {}})
        checks = await self._ready()
        ok = all(c.get("ok") for c in checks.values())
        return web.json_response({"status": "ready" if ok else "not ready", "checks": checks},
                                 status=200 if ok else 503)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", server_stats)
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:  # the real port when 0 was asked for
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
