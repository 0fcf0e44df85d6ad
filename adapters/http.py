"""The engine's HTTP server (aiohttp). Binds 127.0.0.1 unless configured otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_async.aio.web import server_stats

ReadyCheck = Callable[[], Awaitable[dict[str, dict[str, Any]]]]
StatusFn = Callable[[], Awaitable[dict[str, Any]]]


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


DASHBOARD = Path(__file__).with_name("dashboard.html")


class HttpServer:
    """``/metrics``, ``/healthz``, ``/readyz`` (503 with the failing check), ``/api/status`` and ``/dashboard``."""

    def __init__(self, host: str, port: int, ready: ReadyCheck | None = None, status: StatusFn | None = None) -> None:
        self._host, self._port = host, port
        self._ready = ready
        self._status = status
        self._runner: web.AppRunner | None = None
        self.port: int = port

    async def _readyz(self, request: web.Request) -> web.Response:
        checks = await self._ready() if self._ready is not None else {}
        failed = sorted(name for name, c in checks.items() if not c.get("ok"))
        body = {"status": "not ready" if failed else "ready", "failed": failed, "checks": checks}
        return web.json_response(body, status=503 if failed else 200)

    async def _api_status(self, request: web.Request) -> web.Response:
        body = await self._status() if self._status is not None else {}
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def _dashboard(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(DASHBOARD, headers={"Cache-Control": "no-store"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", server_stats)
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/api/status", self._api_status)
        app.router.add_get("/dashboard", self._dashboard)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:  # the real port when 0 was asked for
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listening socket and the connections; safe twice."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await asyncio.shield(runner.cleanup())

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
