"""A recorded feed published from a child process, so that it runs on another core than the engine.

``backtest`` runs the whole pipeline in one process, and the feed (reading the file, making each tick's envelope,
encoding it and handing it to the Kafka producer) took a third of that process's time. :class:`ChildFeed` is a
:class:`~adapters.feeds.recorded.RecordedFeed` whose ticks are published by ``python -m adapters.feeds.child``: the
same :func:`~adapters.feeds.publish_feed` on the same feed, with a producer of its own, to the same ticks topic. So
the ticks are the very same records (ids derived from the trades, ``ts_event`` from the file), and the engine reads
them back from the log as it does any feed's.

The parent hands the child the feed's fields and the Kafka settings as one JSON line on its stdin, and keeps that
pipe open: the child stops when its stdin ends (the parent died, even by ``kill -9``), on SIGTERM or SIGINT (the
parent's stop), or at the end of its files. It answers with one JSON line on its stdout: how many ticks the broker
acknowledged, and where the feed stopped (its last trade, whether it read its files to the end, or the error of a
row it could not read). A child that ends without answering (killed) fails the run with its exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from adapters import kafka_security
from adapters.feeds._base import publish_feed
from adapters.feeds.formats import RecordedFileError, Trade
from adapters.feeds.recorded import RecordedFeed
from adapters.kafka import EventProducer
from events import Topics

__all__ = ["ChildFeed", "FeedProcessFailed"]

_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the adapters package


class FeedProcessFailed(RuntimeError):
    """The feed's child process failed (a failure other than a bad row), or ended without saying how."""


@dataclass
class ChildFeed(RecordedFeed):
    """A recorded feed (its fields as :class:`RecordedFeed`'s) published by a child process to ``bootstrap``, topics
    prefixed ``topic_prefix``; ``stop_timeout``: how long the child gets to settle after it is told to stop."""

    bootstrap: str = ""
    topic_prefix: str = ""
    client_id: str = "engine-feed"
    log_level: str = "warning"
    stop_timeout: float = 60.0

    @classmethod
    def of(cls, feed: RecordedFeed, *, bootstrap: str, topic_prefix: str, client_id: str, log_level: str) -> ChildFeed:
        own = {f.name: getattr(feed, f.name) for f in fields(RecordedFeed)}
        return cls(**own, bootstrap=bootstrap, topic_prefix=topic_prefix, client_id=client_id, log_level=log_level)

    def _spec(self) -> dict[str, Any]:
        return {
            "feed": {
                "path": str(self.path),
                "symbol": self.symbol,
                "speed": self.speed,
                "format": self.format,
                "files": [[str(p), s, f, c] for p, s, f, c in self.files],
                "columns": self.columns,
                "venue": self.venue,
                "source": self.source,
                "resume_after": self.resume_after,
                "resume": self.resume,
            },
            "bootstrap": self.bootstrap,
            "kafka_security": kafka_security.to_wire(kafka_security.current(self.bootstrap)),  # over the pipe only
            "topic_prefix": self.topic_prefix,
            "client_id": self.client_id,
            "log_level": self.log_level,
        }

    async def publish(
        self, producer: EventProducer, stop: asyncio.Event, *, on_finished: Callable[[int], object] | None = None
    ) -> int:
        """Run the child until it ends or ``stop`` is set (then it is told to stop, and given ``stop_timeout``
        seconds); return the ticks the broker acknowledged. A bad row raises its :class:`RecordedFileError`, any
        other failure :class:`FeedProcessFailed`. ``producer`` is the engine's (unused: the child has its own)."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH")) if p)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adapters.feeds.child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(orjson.dumps(self._spec()) + b"\n")
            await proc.stdin.drain()  # and left open: its end tells the child the parent is gone
            answer = asyncio.ensure_future(proc.stdout.read())
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({answer, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not answer.done():
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
                    await asyncio.wait_for(asyncio.shield(answer), self.stop_timeout)
            finally:
                stopped.cancel()
            out = answer.result()
            code = await proc.wait()
        finally:
            if proc.returncode is None:  # cancelled, or it would not stop: it must not publish on alone
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        lines = out.decode(errors="replace").strip().splitlines()
        if not lines:
            raise FeedProcessFailed(f"the feed process ended with exit code {code} without saying how far it got")
        result = orjson.loads(lines[-1])
        self.ended, self.skipped = result["ended"], result["skipped"]
        if (last := result["last"]) is not None:
            ts_ns, trade_id, side, price, amount, file, where = last
            path = Path(file) if file else None
            self.last = Trade(ts_ns, trade_id, side, Decimal(price), Decimal(amount), path, where)
        acknowledged = int(result["acknowledged"])
        if on_finished is not None:
            on_finished(acknowledged)
        if (error := result["error"]) is not None:
            kind, message = error
            raise RecordedFileError(message) if kind == "recorded" else FeedProcessFailed(message)
        return acknowledged


# --- the child ------------------------------------------------------------------------------------------------


def _last(t: Trade | None) -> list[Any] | None:
    if t is None:
        return None
    return [t.ts_ns, t.trade_id, t.side, str(t.price), str(t.amount), None if t.file is None else str(t.file), t.where]


async def _child(spec: dict[str, Any]) -> dict[str, Any]:
    f = spec["feed"]
    feed = RecordedFeed(
        Path(f["path"]),
        f["symbol"],
        speed=f["speed"],
        format=f["format"],
        files=tuple((Path(p), s, fmt, c) for p, s, fmt, c in f["files"]),
        columns=f["columns"],
        venue=f["venue"],
        source=f["source"],
        resume_after=None if f["resume_after"] is None else (f["resume_after"][0], f["resume_after"][1]),
        resume=None if f["resume"] is None else {k: (v[0], v[1]) for k, v in f["resume"].items()},
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def parent_gone() -> None:  # its end of the pipe closed: nobody waits for these ticks any more
        while os.read(0, 4096):  # unbuffered: no lock of sys.stdin held by this thread at shutdown
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=parent_gone, name="parent-watch", daemon=True).start()
    acknowledged: list[int] = []
    error: list[str] | None = None
    kafka_security.use(kafka_security.from_wire(spec["kafka_security"]), spec["bootstrap"])  # the parent's
    async with EventProducer(spec["bootstrap"], Topics(spec["topic_prefix"]), client_id=spec["client_id"]) as p:
        try:
            await publish_feed(feed, p, stop, on_finished=acknowledged.append)
        except RecordedFileError as exc:
            error = ["recorded", str(exc)]
        except Exception as exc:
            error = ["failed", f"the feed failed: {exc!r}"]
    return {
        "acknowledged": acknowledged[-1] if acknowledged else 0,
        "ended": feed.ended,
        "skipped": feed.skipped,
        "last": _last(feed.last),
        "error": error,
    }


def main() -> None:
    from engine.logging import configure

    head = b""
    while not head.endswith(b"\n"):  # the spec's one line, read unbuffered (see parent_gone)
        chunk = os.read(0, 65536)
        if not chunk:
            sys.exit("the feed process's parent sent no settings")
        head += chunk
    spec = orjson.loads(head)
    configure(spec["log_level"])
    result = asyncio.run(_child(spec))
    try:
        sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # the parent is gone (it is why the feed stopped): nobody to tell
        os._exit(0)


if __name__ == "__main__":
    main()
