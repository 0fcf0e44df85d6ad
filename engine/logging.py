"""structlog set-up: readable on a terminal, JSON lines otherwise; always to stderr.

The libraries' own loggers (aiokafka, asyncpg, ccxt: the standard library's ``logging``) go through structlog's
``ProcessorFormatter``, so they come out in the same form, and through :class:`RateLimit`: a client that cannot
reach its broker logs the same line many times a second, which would bury every other line of an outage.
"""

from __future__ import annotations

import logging
import sys
import time

import structlog


class RateLimit(logging.Filter):
    """At most one record per logger and message template every ``every`` seconds; the next one that passes says
    how many were held back."""

    def __init__(self, every: float = 30.0) -> None:
        super().__init__()
        self.every = every
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last, held = self._last.get(key, (-self.every, 0))
        if now - last < self.every:
            self._last[key] = (last, held + 1)
            return False
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like it in the last {now - last:.0f} s]"
        return True


def configure(level: str = "info") -> None:
    lvl = getattr(logging, level.upper())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if sys.stderr.isatty() else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.processors.format_exc_info],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler.addFilter(RateLimit())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(lvl, logging.WARNING))
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    # "coordinator not available" while a new group forms is routine, not an error worth a line
    logging.getLogger("aiokafka.consumer.group_coordinator").setLevel(logging.CRITICAL)
