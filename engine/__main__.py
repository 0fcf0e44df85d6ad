"""``python -m engine`` (or ``engine``, the installed command): the command line.

Commands: run, project, replay, rebuild, diff, halt, resume, sql, stack; ``python -m engine COMMAND --help``
documents each. One function per command, found in :data:`COMMANDS`; each returns its exit code or raises, and
:func:`main` turns an error into one line on stderr and the exit code of its kind (see :mod:`engine.errors`).
The global options (``--config``, ``--log-level``) go before or after the command.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, NoReturn

from adapters.feeds.formats import FORMATS
from engine import __version__
from engine import config as cfg
from engine.errors import INTERRUPTED, BadInput, EngineError, describe, engine_error


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line on stderr, ``error: ...``, and exit code 2 (argparse's own prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _when(text: str) -> datetime:
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time, e.g. 2019-10-11 or 2019-10-11T12:00Z") from None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day, e.g. 2019-10-11") from None


def _workers(text: str) -> int | Literal["auto"]:
    return "auto" if text == "auto" else _positive(text)


def _whole(text: str, least: int, most: int | None = None) -> int:
    try:
        n = int(text)
    except ValueError:
        n = least - 1
    if n < least or (most is not None and n > most):
        within = f"from {least} to {most}" if most is not None else f"of at least {least}"
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number {within}")
    return n


def _positive(text: str) -> int:
    return _whole(text, 1)


def _count(text: str) -> int:
    return _whole(text, 0)


def _port(text: str) -> int:
    return _whole(text, 0, 65535)


def _number(text: str, *, zero: bool) -> float:
    try:
        x = float(text)
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or x < 0 or (x == 0 and not zero):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number {'of at least 0' if zero else 'above 0'}")
    return x


def _above_zero(text: str) -> float:
    return _number(text, zero=False)


def _at_least_zero(text: str) -> float:
    return _number(text, zero=True)


def _schema(text: str) -> str:
    """A schema name, by the rule every SQL statement applies (adapters.postgres.ident)."""
    from adapters.postgres import BadIdentifier, ident

    try:
        ident(text)
    except BadIdentifier as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """``--config`` and ``--log-level``, on the main parser (``default`` None) and again on each command's (``default``
    SUPPRESS: given there, it overrides; not given, it leaves what the main parser read), so that they go before or
    after the command. Each parser gets actions of its own: a shared one would share its default too."""
    parser.add_argument(
        "--config",
        type=Path,
        default=default,
        help="TOML settings file (also ENGINE_CONFIG); see docs/configuration.md",
    )
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default=default, help="default: info"
    )


def _parser(prog: str = "python -m engine") -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog,
        description="An event-sourced trading engine: every fact is an event on Kafka; PostgreSQL "
        "and Prometheus are projections of the log.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(p, default=None)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser(
        "run",
        help="trade (paper) and publish every event; runs projections in-process",
        description="Feed ticks to Kafka, trade from the ticks read back from Kafka, publish "
        "every decision, and (by default) fold the log into PostgreSQL and /metrics. Stops "
        "cleanly on SIGINT/SIGTERM, after --duration, or at the end of a recorded file, "
        "after draining what was published.",
    )
    r.add_argument("--duration", type=_above_zero, metavar="SECONDS", help="stop after this many seconds")
    r.add_argument("--feed", choices=["synthetic", "recorded"], help="tick source (default: synthetic)")
    r.add_argument(
        "--file",
        type=Path,
        action="append",
        help="recorded feed: a trade file (ccxt trade lists or objects as JSON or JSON lines, Binance trades or "
        "aggTrades CSV; plain, .gz or .zip); repeat it for several, merged by time",
    )
    r.add_argument(
        "--format",
        choices=FORMATS,
        help="recorded feed: the file's format (default auto: told from its content; csv: a --columns mapping)",
    )
    _feed_options(r)
    r.add_argument(
        "--symbol",
        action="append",
        help="recorded feed: the instrument of the file, e.g. XRP/ETH; one per --file, in order, or one for all",
    )
    r.add_argument(
        "--speed", type=_at_least_zero, help="recorded feed: 0 = as fast as possible (default), N = N x real time"
    )
    r.add_argument("--seed", type=int, help="synthetic feed: random seed (default 7)")
    r.add_argument("--ticks", type=_positive, metavar="N", help="synthetic feed: stop after N ticks")
    r.add_argument("--rate", type=_above_zero, metavar="TICKS_PER_SECOND", help="synthetic feed: pace (default 20)")
    r.add_argument("--no-projections", action="store_true", help="do not run projections in this process")
    _strategy_options(r)
    r.add_argument("--port", type=_port, help="HTTP port for /metrics and /healthz (default 8000; 0 = any)")
    r.add_argument(
        "--drain-timeout",
        type=_at_least_zero,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait, when stopping, for published events to be processed (default 120)",
    )

    pr = sub.add_parser("project", help="run projection workers only (they scale out as consumer groups)")
    pr.add_argument(
        "--only",
        choices=["audit", "metrics"],
        action="append",
        help="run just this projection (repeatable; default: both)",
    )
    pr.add_argument("--port", type=_port, help="HTTP port for /metrics (default 8000; 0 = any)")
    pr.add_argument("--no-http", action="store_true", help="do not serve /metrics")

    rp = sub.add_parser(
        "replay",
        help="rebuild the audit projection from the log into a fresh schema",
        description="Fold the log into a fresh schema: all of it, a time range, or one UTC day "
        "(--date: from the day's snapshots and events, stopping at the day's end). A progress bar "
        "shows on a terminal.",
    )
    rp.add_argument("--schema", required=True, type=_schema, help="target schema ([a-z_][a-z0-9_]*), must not exist")
    rp.add_argument("--date", type=_day, help="one UTC day, YYYY-MM-DD")
    rp.add_argument("--from", dest="start", type=_when, help="first event time (ISO, UTC if no zone)")
    rp.add_argument("--to", dest="end", type=_when, help="stop before this event time (ISO)")
    rp.add_argument("--replace", action="store_true", help="drop the schema first if it exists")
    rp.add_argument(
        "--workers",
        type=_workers,
        default="auto",
        help="processes sharing the partitions, as a live consumer group does; auto (the default): one "
        "per core, at most one per partition number, and one per 10,000 events to fold (50,000 where the "
        "processes cannot be forked)",
    )

    rb = sub.add_parser(
        "rebuild",
        help="blue/green: rebuild the audit schema from the log, then switch to it",
        description="Builds a new version of the audit projection from the start of the log (with "
        "this code's schema) while the current one keeps serving, catches it up, then renames it "
        "into place in one transaction; live workers follow. The old version stays as "
        "<schema>_old_<time>.",
    )
    rb.add_argument(
        "--workers",
        type=_workers,
        default="auto",
        help="processes sharing the partitions for the initial build (as replay --workers; default auto)",
    )

    df = sub.add_parser(
        "diff",
        help="compare the audit tables of two schemas row by row (exit 1 if different, 2 if they cannot be compared)",
    )
    df.add_argument("schema_a", type=_schema)
    df.add_argument("schema_b", type=_schema)
    df.add_argument("--date", type=_day, help="compare only this UTC day's rows (YYYY-MM-DD)")
    df.add_argument("--limit", type=_count, default=5, help="differences shown per table (default 5)")

    sub.add_parser(
        "sql",
        help="open psql on the audit database as the read-only role",
        description="Runs psql with the reader DSN (postgres.reader_dsn) and the audit schema first "
        "on the search path. Extra arguments after -- go to psql.",
    ).add_argument("psql_args", nargs=argparse.REMAINDER, help="passed to psql, e.g. -- -c 'select * from positions'")

    for name, what in (
        ("halt", "stop trading: every new order is refused, cancels still pass"),
        ("resume", "resume trading after a halt"),
    ):
        h = sub.add_parser(
            name,
            help=what,
            description=f"{what.capitalize()}. Writes a "
            f"{'TradingHalted' if name == 'halt' else 'TradingResumed'} event to the log; every "
            "engine applies it from that event's time on, and a restart rebuilds it from the log.",
        )
        h.add_argument("--reason", required=True, help="why (kept in the event)")

    st = sub.add_parser("stack", help="the local Kafka + PostgreSQL stack (no Docker needed)")
    st.add_argument("action", choices=["up", "down", "status"])
    st.add_argument("--timeout", type=_above_zero, default=240.0, help="up: seconds to wait for both services")
    st.add_argument(
        "--brokers",
        type=_positive,
        metavar="N",
        help="up: N Kafka nodes (a local KRaft cluster, each node broker and controller) instead of one broker "
        "(stack.kafka_brokers; ports from stack.kafka_cluster_port); it prints the kafka.bootstrap to use",
    )
    st.add_argument(
        "--with-prometheus",
        action="store_true",
        help="up: also start Debian's Prometheus (scraping the engine, with the alert rules) and "
        "Alertmanager on 127.0.0.1:19090 and :19094 (stack.prometheus_port, stack.alertmanager_port)",
    )
    sg = sub.add_parser(
        "strategy",
        help="check a strategy: deterministic, restartable from a snapshot",
        description="check NAME: run the strategy on the paper venue over the same ticks three times, in fresh "
        "processes with other hash seeds (all of them; again; the second half restarted from a state snapshot "
        "taken half way) and fail with the first event that differs and its tick. NAME is a built-in (ma_cross) "
        "or package.module:ClassName (with --strategy-path). Without --file, the synthetic feed's seeded walk.",
    )
    sg.add_argument("action", choices=["check"])
    sg.add_argument("name", metavar="NAME", help="a built-in or package.module:ClassName")
    sg.add_argument("--file", type=Path, help="a recorded ccxt trade list .json[.gz] (default: synthetic ticks)")
    sg.add_argument("--symbol", help="the instrument of --file, e.g. XRP/ETH")
    sg.add_argument("--ticks", type=_positive, default=5000, metavar="N", help="ticks to run (default 5000)")
    _strategy_options(sg)

    for command in sub.choices.values():
        _global_options(command, default=argparse.SUPPRESS)
    return p


def _feed_options(parser: argparse.ArgumentParser) -> None:
    """The recorded feed's options beyond --file, --format and --symbol (run's, and backtest's)."""
    parser.add_argument(
        "--columns",
        metavar="MAPPING",
        help="recorded feed: a generic CSV's columns, e.g. time=ts:ms,price=px,amount=qty,side=side,id=trade_id: "
        "time's unit s, ms, us, ns or iso; side=COL[:BUY/SELL] or buyer_maker=COL[:TRUE/FALSE]; optional "
        "id=COL, delimiter=C (or comma, semicolon, tab, pipe, space), header=yes|no; a column by header name or "
        "number from 1 (implies --format csv; for every --file; see docs/configuration.md)",
    )


def _strategy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strategy-path", type=Path, metavar="DIR", help="a folder of strategy files (also strategy.path)"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a strategy parameter (repeatable; over [strategy.params])",
    )


def _recorded_files(
    files: list[Path], symbols: list[str], fmt: str | None, columns: str | None = None
) -> dict[str, Any]:
    """``--file`` and ``--symbol`` (and ``--format``, ``--columns``, for every file) as feed settings: one file as
    path and symbol, several as ``files``."""
    if len(symbols) > 1 and len(symbols) != len(files):
        raise BadInput(f"{len(files)} --file and {len(symbols)} --symbol: give one --symbol per --file, or one for all")
    if len(files) <= 1:
        return {
            k: v for k, v in (("path", files[0] if files else None), ("symbol", symbols[0] if symbols else None)) if v
        }
    if not symbols:
        raise BadInput("--file needs --symbol, the instrument of the file (e.g. XRP/ETH)")
    pairs = zip(files, symbols if len(symbols) > 1 else symbols * len(files), strict=True)
    given = {k: v for k, v in (("format", fmt), ("columns", columns)) if v}
    return {"files": [{"path": p, "symbol": s, **given} for p, s in pairs]}


def _settings(args: argparse.Namespace) -> cfg.Settings:
    over: dict[str, Any] = {}
    if args.command == "run":
        feed: dict[str, Any] = {}
        for key, val in (
            ("kind", args.feed),
            ("format", args.format),
            ("columns", args.columns),
            ("speed", args.speed),
            ("seed", args.seed),
            ("ticks_per_second", args.rate),
        ):
            if val is not None:
                feed[key] = val
        feed.update(_recorded_files(args.file or [], args.symbol or [], args.format, args.columns))
        if len(args.file or []) > 1:
            feed.pop("columns", None)  # given to each file
        if args.file and args.feed is None:
            feed["kind"] = "recorded"
        if feed:
            over["feed"] = feed
    if getattr(args, "port", None) is not None:
        over["http"] = {"port": args.port}
    strategy: dict[str, Any] = {}
    if args.command == "strategy":
        strategy["kind"] = args.name
    if getattr(args, "strategy_path", None) is not None:
        strategy["path"] = args.strategy_path
    if getattr(args, "param", None):
        from engine.strategy_loader import StrategyError, parse_params

        try:
            strategy["params"] = parse_params(args.param)
        except StrategyError as exc:
            raise BadInput(str(exc)) from None
    if strategy:
        over["strategy"] = strategy
    if args.command == "strategy":
        over["strategies"] = ()  # the strategy named on the command line, alone
    if args.log_level:
        over["log_level"] = args.log_level
    try:
        return cfg.load(args.config, **over)
    except ValueError as exc:  # as before: any other ValueError of the settings is bad input too
        raise BadInput(str(exc)) from exc


# --- the commands: each takes the parsed arguments and the settings, and returns its exit code or raises -------------


def _stack(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from ops import stack

    if args.brokers is not None:
        if args.brokers > 9:
            raise BadInput(f"--brokers {args.brokers}: at most 9 nodes in the local cluster")
        settings = settings.model_copy(
            update={"stack": settings.stack.model_copy(update={"kafka_brokers": args.brokers})}
        )
    if args.action == "up":
        statuses = stack.up(settings, timeout=args.timeout, with_prometheus=args.with_prometheus)
    else:
        statuses = stack.down(settings) if args.action == "down" else stack.status(settings)
    for s in statuses:
        line = f"{s.name:<10} {s.state:<8} {s.endpoint}"
        if s.pid:
            line += f"  pid {s.pid}"
        if s.log_file:
            line += f"  log {s.log_file}"
        if s.detail:
            line += f"  ({s.detail})"
        print(line)
    cluster = stack.cluster_bootstrap(settings)
    if cluster is not None and any(s.state == "running" and s.name.startswith("kafka-") for s in statuses):
        same = "" if settings.kafka.bootstrap == cluster else f" (now {settings.kafka.bootstrap})"
        print(f"engine     set kafka.bootstrap to {cluster}, e.g. ENGINE_KAFKA__BOOTSTRAP={cluster}{same}")
    return 0


def _run(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from engine.app import run_engine

    which = set() if args.no_projections else {"audit", "metrics"}
    if settings.feed.kind == "recorded":
        # every file is checked whole (streamed) before anything (a topic, an event, a schema) is written
        from adapters.feeds.recorded import check_file

        for f in settings.feed.recorded_files():
            if not f.path.is_file():
                raise BadInput(f"feed.path {f.path}: no such file (--file or ENGINE_FEED__PATH)")
            check_file(f.path, f.format, f.columns)
    try:
        summary = asyncio.run(
            run_engine(
                settings,
                duration=args.duration,
                projections=which,
                limit=args.ticks,
                drain_timeout=args.drain_timeout,
            )
        )
    except Exception as exc:  # the engine stopped on an error: say it plainly (the log has the traceback)
        known = engine_error(exc)
        kind = type(known) if known is not None else EngineError
        raise kind(f"the engine stopped: {known if known is not None else exc}") from exc
    skipped = summary.get("ticks_skipped", 0)
    resumed = f" (resumed: {skipped} trades of the file were in the log already)" if skipped else ""
    parked = {k: v for k, v in summary.get("dead_lettered", {}).items() if v}
    print(
        f"stopped ({summary['reason']}) after {summary['seconds']} s: {summary['ticks_published']} ticks "
        f"published{resumed}, {summary['ticks_processed']} processed, {summary['events_published']} events "
        f"published; projected: {summary['projections']}" + (f"; dead-lettered: {parked}" if parked else "")
    )
    if not summary["drained"]:
        raise EngineError(f"{summary['drain']} (the next start goes on from the log)")
    print("look: python -m engine sql -- -c 'select * from positions'   (the audit tables, read-only)")
    live = settings.postgres.schema_
    print(f"      python -m engine replay --schema {live}_check && python -m engine diff {live} {live}_check")
    return 0


def _project(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from engine.app import run_projections

    asyncio.run(run_projections(settings, set(args.only or ["audit", "metrics"]), http=not args.no_http))
    return 0


def _probe(*, kafka: str | None = None, postgres: str | None = None) -> None:
    """The servers answer (see :mod:`engine.preflight`), or :class:`~engine.errors.Unreachable` within seconds. In an
    event loop of its own, whose threads (a host name is resolved in one) are joined before the command starts: a
    replay forks its workers only from a process with no other thread."""
    from engine import preflight

    asyncio.run(preflight.servers_answer(kafka=kafka, postgres=postgres))


def _replay(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from events import Topics
    from projections.replay import replay

    if args.date and (args.start or args.end):
        raise BadInput("give --date or --from/--to, not both")
    _probe(kafka=settings.kafka.bootstrap, postgres=settings.postgres.dsn)
    res = asyncio.run(
        replay(
            settings.kafka.bootstrap,
            settings.postgres.dsn,
            settings.postgres.writer,
            args.schema,
            start=args.start,
            end=args.end,
            day=args.date,
            replace=args.replace,
            topics=Topics(settings.kafka.topic_prefix),
            workers=args.workers,
        )
    )
    print(
        f"replayed {res.events} events into schema {res.schema} in {res.seconds:.2f} s "
        f"({res.events_per_second:,.0f} events/s)"
    )
    return 0


def _rebuild(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from engine import preflight
    from events import Topics
    from projections.rebuild import rebuild

    _probe(kafka=settings.kafka.bootstrap, postgres=settings.postgres.dsn)
    asyncio.run(preflight.replaceable_audit_schema(settings.postgres.dsn, settings.postgres.schema_))
    rb = asyncio.run(
        rebuild(
            settings.kafka.bootstrap,
            settings.postgres.dsn,
            settings.postgres.writer,
            settings.postgres.schema_,
            topics=Topics(settings.kafka.topic_prefix),
            workers=args.workers,
        )
    )
    kept = f"; the previous version is kept as {rb.old}" if rb.old else ""
    print(f"rebuilt {rb.schema} from {rb.events} events in {rb.seconds:.2f} s and switched to it{kept}")
    return 0


def _diff(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from projections.replay import diff

    _probe(postgres=settings.postgres.dsn)
    result = asyncio.run(diff(settings.postgres.dsn, args.schema_a, args.schema_b, day=args.date, limit=args.limit))
    different = False
    for table, lines in result.items():
        if lines:
            different = True
            print(f"{table}: DIFFERENT")
            for line in lines:
                print(f"  {line}")
        else:
            print(f"{table}: equal")
    return 1 if different else 0


def _breaker(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from engine.app import switch_breaker

    _probe(kafka=settings.kafka.bootstrap)
    asyncio.run(switch_breaker(settings, halt=args.command == "halt", reason=args.reason))
    print("trading halted: only cancels pass" if args.command == "halt" else "trading resumed")
    return 0


def _sql(args: argparse.Namespace, settings: cfg.Settings) -> int:
    import os
    import shutil

    psql = shutil.which("psql")
    if psql is None:
        raise BadInput("psql is not installed (Debian: apt-get install postgresql-client)")
    extra = [a for a in args.psql_args if a != "--"]
    env = {**os.environ, "PGOPTIONS": f"-c search_path={settings.postgres.schema_},public"}
    os.execvpe(psql, [psql, settings.postgres.reader, *extra], env)  # noqa: S606 - replaces this process


def _strategy(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from engine.strategy_check import check

    if args.file is not None:
        if not args.file.is_file():
            raise BadInput(f"--file {args.file}: no such file")
        if not args.symbol:
            raise BadInput("--file needs --symbol, the instrument of the file (e.g. XRP/ETH)")
    name = settings.strategy.build().name
    out = check(settings, file=args.file, symbol=args.symbol, limit=args.ticks)
    if not out.ok:
        print(f"{name}: NOT deterministic: {out.message}")
        return 1
    print(
        f"{name}: deterministic: {out.ticks} ticks, {out.events} events, the same in 3 runs (twice from the start, "
        "once restarted from a snapshot half way)"
    )
    return 0


Command = Callable[[argparse.Namespace, cfg.Settings], int]

COMMANDS: dict[str, Command] = {
    "run": _run,
    "project": _project,
    "replay": _replay,
    "rebuild": _rebuild,
    "diff": _diff,
    "halt": _breaker,
    "resume": _breaker,
    "sql": _sql,
    "stack": _stack,
    "strategy": _strategy,
}
"""Every command of the parser, and the function that does it."""

ANY_ERROR_IS_2 = frozenset({"diff"})
"""Commands with diff(1)'s exit codes: 1 means "different", so every error that kept it from comparing is 2."""


def _failed(command: str, exc: Exception, *, logging: bool) -> int:
    """One line on stderr for an error, and the exit code of its kind. An error of no known kind is a bug: its
    traceback goes to the log (once it is set up) at debug level, ``--log-level debug``."""
    err = engine_error(exc)
    if err is None:
        if logging:
            import structlog

            structlog.get_logger(__name__).debug("command.failed", command=command, exc_info=exc)
        err = EngineError(f"unexpected {describe(exc)} (a bug? --log-level debug shows where)")
    print(f"error: {err}", file=sys.stderr, flush=True)
    return 2 if command in ANY_ERROR_IS_2 else err.exit_code


def main(argv: list[str] | None = None, prog: str = "python -m engine") -> int:
    """Run one command; return its exit code (bad usage exits 2 from the parser, ``--help`` and ``--version`` 0)."""
    args = _parser(prog).parse_args(argv)
    command = COMMANDS[args.command]
    logging = False
    try:
        settings = _settings(args)
        cfg.export_passfile(settings)  # PGPASSFILE: the roles' passwords, for asyncpg, psql and the processes started
        from engine.logging import configure

        configure(settings.log_level)
        logging = True
        return command(args, settings)
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C: asyncio.run has cancelled the command's tasks
        print("interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED
    except Exception as exc:
        return _failed(args.command, exc, logging=logging)


def cli() -> NoReturn:
    """The installed ``engine`` command (``[project.scripts]``)."""
    sys.exit(main(prog="engine"))


if __name__ == "__main__":
    sys.exit(main())
