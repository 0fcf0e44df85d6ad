"""The engine's HTTP server (aiohttp). Binds 127.0.0.1 unless configured otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_async.aio.web import server_stats

from adapters.alerts import MAX_BODY_BYTES, TOO_BIG_HINT, AlertInbox

ReadyCheck = Callable[[], Awaitable[dict[str, dict[str, Any]]]]
StatusFn = Callable[[], Awaitable[dict[str, Any]]]


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


DASHBOARD = Path(__file__).with_name("dashboard.html")
TRADING = Path(__file__).with_name("trading.html")
STATIC = Path(__file__).with_name("static")  # vendored files of the pages (README.md there), served as they are
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}
HistoryFn = Callable[[], dict[str, Any]]


def _one_line(status: int, message: str) -> web.Response:
    """An error as one line of JSON, never a traceback."""
    return web.json_response({"error": message.splitlines()[0] if message else "error"}, status=status)


class HttpServer:
    """``/metrics``, ``/healthz``, ``/readyz`` (503 with the failing check), ``/api/status``, ``/api/history`` (the
    dashboard's last 40 minutes, kept by the server), ``/dashboard`` and its vendored files under ``/static/``;
    with the audit schema at hand, ``/trading`` and ``/api/trading`` (positions, PnL, orders, fills, the breaker);
    with an :class:`~adapters.alerts.AlertInbox`, Alertmanager's webhook (``POST /alerts/webhook``) and the last
    notifications (``GET /alerts.json?limit=N``, newest first)."""

    def __init__(
        self,
        host: str,
        port: int,
        ready: ReadyCheck | None = None,
        status: StatusFn | None = None,
        *,
        alerts: AlertInbox | None = None,
        history: HistoryFn | None = None,
        trading: StatusFn | None = None,
    ) -> None:
        self._host, self._port = host, port
        self._ready = ready
        self._status = status
        self._history = history
        self._trading = trading
        self._alerts = alerts
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

    async def _trading_page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(TRADING, headers={"Cache-Control": "no-store"})

    async def _api_trading(self, request: web.Request) -> web.Response:
        if self._trading is None:
            return _one_line(
                503, "no audit projection in this process: /trading is served by `run` or `project` with the audit"
            )
        try:
            body = await self._trading()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
            return _one_line(503, f"the audit schema cannot be read now: {type(e).__name__}: {e}")
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def _api_history(self, request: web.Request) -> web.Response:
        body = self._history() if self._history is not None else {"interval": 1.0, "t": [], "projections": {}}
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = STATIC / name
        kind = _STATIC_TYPES.get(path.suffix)
        if kind is None or "/" in name or name.startswith(".") or not path.is_file():
            return _one_line(404, f"no such file: {name[:80]!r}")
        return web.FileResponse(path, headers={"Content-Type": kind, "Cache-Control": "max-age=3600"})

    async def _alert_webhook(self, request: web.Request) -> web.Response:
        if self._alerts is None:
            return _one_line(404, "no alert inbox in this process")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _one_line(413, f"body of {request.content_length} bytes, at most {MAX_BODY_BYTES} {TOO_BIG_HINT}")
        body = bytearray()
        try:
            async for chunk in request.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    return _one_line(413, f"body over {MAX_BODY_BYTES} bytes {TOO_BIG_HINT}")
        except (OSError, ValueError, web.HTTPException) as e:
            return _one_line(400, f"could not read the body: {type(e).__name__}")
        answer = await self._alerts.receive(bytes(body))
        return web.json_response(answer.body, status=answer.status)

    async def _alerts_json(self, request: web.Request) -> web.Response:
        raw = request.query.get("limit", "50")
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= 1000):
            return _one_line(400, f"limit: expected an integer from 1 to 1000, got {raw[:20]!r}")
        items = self._alerts.recent(int(raw)) if self._alerts is not None else []
        return web.json_response({"notifications": items}, headers={"Cache-Control": "no-store"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", server_stats)
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/api/status", self._api_status)
        app.router.add_get("/dashboard", self._dashboard)
        app.router.add_get("/api/history", self._api_history)
        app.router.add_get("/trading", self._trading_page)
        app.router.add_get("/api/trading", self._api_trading)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_post("/alerts/webhook", self._alert_webhook)
        app.router.add_get("/alerts.json", self._alerts_json)
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
