"""``python -m engine`` (or ``engine``, the installed command): the command line.

Commands: run, project, replay, rebuild, diff, halt, resume, sql, stack, strategy, backtest, shadow;
``python -m engine COMMAND --help`` documents each. One function per command, found in :data:`COMMANDS`; each
returns its exit code or raises, and :func:`main` turns an error into one line on stderr and the exit code of its
kind (see :mod:`engine.errors`).
The global options (``--config``, ``--log-level``) go before or after the command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
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


def _run_name(text: str) -> str:
    from engine.backtest import Run, RunNameError

    try:
        return Run(text).name
    except RunNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    mode = st.add_mutually_exclusive_group()
    mode.add_argument(
        "--secure",
        action="store_true",
        help="up: Kafka with SASL_SSL (SCRAM) and PostgreSQL with TLS only, on certificates made under the state "
        "directory; the commands find the client settings in <stack.state_dir>/secure.toml (docs/deployment.md)",
    )
    mode.add_argument("--plain", action="store_true", help="up: a secure stack made plaintext again (default: as is)")
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

    bt = sub.add_parser(
        "backtest",
        help="a strategy on recorded trades through the real pipeline, in a run of its own; then its report",
        description="backtest --file F --symbol S [--strategy NAME] [--param k=v ...]: feed the file's trades through "
        "Kafka, the engine (paper venue) and the audit projection as run does, as fast as it goes, under topics "
        "bt_RUN.* and the schema bt_RUN; then print the report (read from the schema's performance view: "
        "python -m engine sql shows it too) and write it as HTML. A --param with commas (fast=5,10,20) sweeps: one "
        "run per combination, --jobs at a time, then a table of them sorted by --sort. backtest list: the runs; "
        "backtest show RUN: a run's report again; backtest drop RUN...: delete runs' topics and schemas.",
    )
    bt.add_argument("action", nargs="*", metavar="list | show RUN | drop RUN...", help="default: a new run")
    bt.add_argument("--file", type=Path, action="append", help="a trade file (as run --file); repeatable")
    bt.add_argument("--format", choices=FORMATS, help="the files' format (default auto: told from their content)")
    bt.add_argument("--symbol", action="append", help="the instrument of each --file (one for all, or one each)")
    _feed_options(bt)
    bt.add_argument(
        "--strategy", metavar="NAME", help="a built-in or package.module:ClassName (default: the settings')"
    )
    _strategy_options(bt)
    bt.add_argument("--run", type=_run_name, help="the run's name (default <strategy>_<UTC time>)")
    bt.add_argument("--replace", action="store_true", help="drop a run of that name first")
    bt.add_argument("--compare", type=_run_name, metavar="RUN", help="put this other run side by side")
    bt.add_argument("--html", type=Path, metavar="FILE", help="the HTML report (default backtest-RUN.html here)")
    bt.add_argument("--no-html", action="store_true", help="no HTML report")
    bt.add_argument("--sort", default="net_pnl", metavar="FIGURE", help="sweep: the figure to sort by, best first")
    bt.add_argument("--jobs", type=_positive, help="sweep: runs at a time (default: the number of cores)")

    sh = sub.add_parser(
        "shadow",
        help="a candidate strategy on a production day: what it would have done differently",
        description="shadow --date D [--strategy NAME] [--param k=v ...]: hand production's ticks, from the log's "
        "start to the end of day D, to the candidate on the paper venue (under topics sh_RUN.* and the schema "
        "sh_RUN: production's are only read), then pair the day's orders of production and the candidate and list "
        "the differences: orders only one side placed, orders of both with another price, quantity or time, the "
        "first --limit of them with their causing ticks, and each side's PnL of the day. Exit 0: the same "
        "decisions; 1: different; 2: could not compare. shadow drop RUN...: delete shadow runs.",
    )
    sh.add_argument("action", nargs="*", metavar="drop RUN...", help="default: a new shadow run")
    sh.add_argument("--date", type=_day, help="the production day, YYYY-MM-DD (UTC)")
    sh.add_argument(
        "--strategy",
        metavar="NAME",
        help="the candidate: a built-in or package.module:ClassName (default: production's strategies as its engine "
        "last started them, from its EngineStarted event, with any --param over their parameters)",
    )
    _strategy_options(sh)  # --strategy-path serves production's strategy too
    sh.add_argument(
        "--against",
        action="append",
        metavar="STRATEGY",
        help="production's strategy to compare with, by name (repeatable; default: those named as the candidate's, "
        "else production's only one)",
    )
    sh.add_argument("--run", type=_run_name, help="the shadow run's name (default <strategy>_<day>_<UTC time>)")
    sh.add_argument("--replace", action="store_true", help="drop a shadow run of that name first")
    sh.add_argument("--limit", type=_positive, default=20, metavar="N", help="differing decisions listed (20)")
    sh.add_argument(
        "--window",
        type=_at_least_zero,
        default=60.0,
        metavar="SECONDS",
        help="an order of each side, same instrument, side and type, at most this far apart: the same order at "
        "another time (default 60)",
    )

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


def _settings(args: argparse.Namespace, *, candidate: bool = False, ran: dict[str, Any] | None = None) -> cfg.Settings:
    """The settings, with the command line's over them. A shadow's strategy options are its candidate's: they apply
    only with ``candidate`` (the settings read first are production's), over ``ran``: production's strategies,
    risk limits and paper venue as its engine last started with them (its EngineStarted's settings), when known."""
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
    if args.command == "backtest" and not args.action:  # a new run: recorded trades, as fast as they go, on paper
        over["feed"] = {
            "kind": "recorded",
            "speed": 0,
            **({"format": args.format} if args.format else {}),
            **_recorded_files(args.file or [], args.symbol or [], args.format, args.columns),
        }
        if args.columns and len(args.file or []) <= 1:
            over["feed"]["columns"] = args.columns
        over["venue"] = {"kind": "paper"}
    if getattr(args, "port", None) is not None:
        over["http"] = {"port": args.port}
    strategy: dict[str, Any] = {}
    if args.command == "shadow" and not candidate:
        args = argparse.Namespace(**{**vars(args), "param": [], "strategy": None})  # --strategy-path: both
    if args.command == "shadow" and args.strategy:
        strategy["kind"] = args.strategy
    if args.command == "strategy":
        strategy["kind"] = args.name
    if args.command == "backtest" and args.strategy:
        strategy["kind"] = args.strategy
    if getattr(args, "strategy_path", None) is not None:
        strategy["path"] = args.strategy_path
    pairs = getattr(args, "param", None) or []
    if args.command == "backtest":  # a value with commas is swept: each run is given one of them
        from engine.backtest import split_params

        try:
            pairs, _ = split_params(pairs)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
    if pairs:
        from engine.strategy_loader import StrategyError, parse_params

        try:
            strategy["params"] = parse_params(pairs)
        except StrategyError as exc:
            raise BadInput(str(exc)) from None
    if candidate and ran is not None and not args.strategy:  # production's strategies as they ran, then --param
        if ran.get("strategies"):
            if strategy.get("params"):
                raise BadInput("production runs several strategies: give the candidate with --strategy NAME")
            over["strategies"] = ran["strategies"]  # [strategy] may then hold only the path (given or not)
        else:
            strategy = {
                **ran["strategy"],
                **strategy,
                "params": {**ran["strategy"].get("params", {}), **strategy.get("params", {})},
            }
    if candidate and ran is not None:  # what else shaped production's decisions: its limits, the paper venue's fees
        over["risk"] = ran["risk"]
        over["venue"] = ran["venue"]
    if strategy:
        over["strategy"] = strategy
    if args.command == "strategy" or (args.command in ("backtest", "shadow") and args.strategy):
        over["strategies"] = ()  # the strategy named on the command line, alone
    if args.log_level:
        over["log_level"] = args.log_level
    elif args.command in ("backtest", "shadow"):  # the report is the output: the log only for what went wrong
        over["log_level"] = "warning"
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
        secure = True if args.secure else False if args.plain else None
        if secure and settings.stack.kafka_brokers > 1:
            raise BadInput("stack up --secure is for the single broker; the local cluster (--brokers N) is plaintext")
        statuses = stack.up(settings, timeout=args.timeout, with_prometheus=args.with_prometheus, secure=secure)
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


_HEAD_CHECKED = 1000  # the trades of each file backtest reads before it writes anything


def _check_recorded(settings: cfg.Settings, *, head: int | None = None) -> None:
    """Every file of a recorded feed is checked whole (streamed) before anything (a topic, an event, a schema) is
    written; with ``head``, only its first ``head`` trades (its format, its columns, its start: ``backtest``, which
    drops its run if a later row is bad, rather than read every file twice)."""
    if settings.feed.kind == "recorded":
        from adapters.feeds.formats import read_trades
        from adapters.feeds.recorded import check_file

        for f in settings.feed.recorded_files():
            if not f.path.is_file():
                raise BadInput(f"feed.path {f.path}: no such file (--file or ENGINE_FEED__PATH)")
            if head is None:
                check_file(f.path, f.format, f.columns)
            else:
                for _ in itertools.islice(read_trades(f.path, f.format, f.columns), head):
                    pass


def _engine(settings: cfg.Settings, **kwargs: Any) -> dict[str, Any]:
    from engine.app import run_engine

    try:
        return asyncio.run(run_engine(settings, **kwargs))
    except Exception as exc:  # the engine stopped on an error: say it plainly (the log has the traceback)
        known = engine_error(exc)
        kind = type(known) if known is not None else EngineError
        raise kind(f"the engine stopped: {known if known is not None else exc}") from exc


def _kafka_login(settings: cfg.Settings) -> None:
    """A secured Kafka that refuses the login or the certificate: one line and exit 2 (``run`` and ``project`` wait
    out outages, and would wait for ever on a wrong password)."""
    if settings.kafka.security_protocol != "PLAINTEXT":
        from engine import preflight

        asyncio.run(preflight.kafka_login(settings.kafka.bootstrap))


def _run(args: argparse.Namespace, settings: cfg.Settings) -> int:
    which = set() if args.no_projections else {"audit", "metrics"}
    _check_recorded(settings)
    _kafka_login(settings)
    summary = _engine(
        settings, duration=args.duration, projections=which, limit=args.ticks, drain_timeout=args.drain_timeout
    )
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


def _backtest(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from engine import backtest as bt

    action, *names = args.action or ["run"]
    if action == "list" and not names:
        return _backtest_list(settings)
    if action == "drop" and names:
        return _backtest_drop(settings, [bt.Run(_run_name_or_bad(n)) for n in names])
    if action == "show" and len(names) == 1:
        run = bt.Run(_run_name_or_bad(names[0]))
        _probe(postgres=settings.postgres.dsn)
        return _backtest_report(args, settings, run)
    if action != "run" or names:
        raise BadInput(f"backtest {' '.join(args.action)}: say list, show RUN, drop RUN..., or nothing for a new run")
    if args.sort not in bt.SORTABLE:
        raise BadInput(f"--sort {args.sort!r}: one of {', '.join(bt.SORTABLE)}")
    fixed, swept = bt.split_params(args.param)
    name = args.run or bt.default_name(args.strategy or _strategy_names(settings))
    if swept:
        return _backtest_sweep(args, settings, name, fixed, swept)
    run = bt.Run(name)
    over = {
        "kafka": settings.kafka.model_copy(update={"topic_prefix": run.topic_prefix}),
        "postgres": settings.postgres.model_copy(update={"schema_": run.schema}),
    }
    s = settings.model_copy(update=over)
    _check_recorded(s, head=_HEAD_CHECKED)
    _probe(kafka=s.kafka.bootstrap, postgres=s.postgres.dsn)
    if asyncio.run(bt.exists(s.postgres.dsn, s.kafka.bootstrap, run)):
        if not args.replace:
            raise BadInput(f"run {name} exists: another --run NAME, --replace, or backtest drop {name}")
        asyncio.run(bt.drop(s.postgres.dsn, s.kafka.bootstrap, run))
    try:
        summary = _engine(s, projections={"audit"}, http=False, drain_timeout=600.0, feed=_child_feed(s))
    except BadInput as exc:  # a bad row past the checked head: the run stopped there; a part of a file is no backtest
        with contextlib.suppress(Exception):
            asyncio.run(bt.drop(s.postgres.dsn, s.kafka.bootstrap, run))
        raise BadInput(f"{exc.__cause__ or exc} (run {name} stopped there and is dropped)") from exc
    if not summary["drained"]:
        raise EngineError(f"run {name}: {summary['drain']}")
    print(
        f"run {name}: {summary['ticks_published']} trades in {summary['seconds']} s "
        f"({summary['ticks_published'] / max(summary['seconds'], 1e-9):,.0f} trades/s), "
        f"{summary['events_published']} events; topics {run.topic_prefix}*, schema {run.schema}"
    )
    return _backtest_report(args, s, run)


def _child_feed(s: cfg.Settings) -> Any:
    """A backtest's feed: the settings' recorded files, published from a child process, on another core than the
    engine's (adapters.feeds.child); a new run has nothing in the log to resume after."""
    from adapters.feeds import RecordedFeed
    from adapters.feeds.child import ChildFeed
    from engine.app import make_feed

    base = make_feed(s)
    assert isinstance(base, RecordedFeed)
    return ChildFeed.of(
        base,
        bootstrap=s.kafka.bootstrap,
        topic_prefix=s.kafka.topic_prefix,
        client_id=f"{s.kafka.client_id}-feed",
        log_level=s.log_level,
    )


def _shadow(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from engine import shadow as sh
    from engine.app import topics_of
    from engine.backtest import drop, exists

    action, *names = args.action or ["run"]
    if action == "drop" and names:
        return _backtest_drop(settings, [sh.shadow_run(_run_name_or_bad(n)) for n in names])
    if action != "run" or names:
        raise BadInput(f"shadow {' '.join(args.action)}: say drop RUN..., or nothing for a new shadow run")
    if args.date is None:
        raise BadInput("shadow needs --date YYYY-MM-DD: a UTC day of production's log")
    production = settings
    _probe(kafka=production.kafka.bootstrap, postgres=production.postgres.dsn)
    ran = asyncio.run(sh.last_started(production.postgres.reader, production.postgres.schema_))
    candidate = _settings(args, candidate=True, ran=ran)
    as_ran = argparse.Namespace(**{**vars(args), "param": [], "strategy": None})
    produced = _strategy_names_of(_settings(as_ran, candidate=True, ran=ran) if ran else production)
    proposed = _strategy_names_of(candidate)
    against = args.against or [n for n in produced if n in proposed] or (produced if len(produced) == 1 else [])
    if not against:
        raise BadInput(
            f"production runs {', '.join(produced)}: say which to compare the candidate with, --against NAME"
        )
    if unknown := [n for n in against if n not in produced]:
        raise BadInput(f"--against {', '.join(unknown)}: production's strategies are {', '.join(produced)}")
    day: date = args.date
    run = sh.shadow_run(args.run or sh.default_name("_".join(proposed), day))
    prod_schema = production.postgres.schema_
    if run.topic_prefix == production.kafka.topic_prefix or run.schema == prod_schema:
        raise BadInput(f"shadow run {run.name}: its topics or schema are production's")
    try:
        plan = asyncio.run(sh.plan(production.kafka.bootstrap, topics_of(production), day))
    except sh.NothingToShadow as exc:
        raise BadInput(str(exc)) from None
    if not asyncio.run(_schema_there(production.postgres.reader, prod_schema)):
        raise BadInput(f"production's schema {prod_schema!r} does not exist: nothing to compare with")
    try:
        asyncio.run(sh.check_applied(production.postgres.reader, prod_schema, plan))
    except sh.NothingToShadow as exc:
        raise BadInput(str(exc)) from None
    over = {
        "kafka": candidate.kafka.model_copy(update={"topic_prefix": run.topic_prefix, "partitions": len(plan.ranges)}),
        "postgres": candidate.postgres.model_copy(update={"schema_": run.schema}),
        "venue": cfg.VenueSettings(kind="paper"),
    }
    shadow_settings = candidate.model_copy(update=over)
    if asyncio.run(exists(shadow_settings.postgres.dsn, shadow_settings.kafka.bootstrap, run)):
        if not args.replace:
            raise BadInput(f"shadow run {run.name} exists: another --run NAME, --replace, or shadow drop {run.name}")
        asyncio.run(drop(shadow_settings.postgres.dsn, shadow_settings.kafka.bootstrap, run))
    feed = sh.feed_of(production.kafka.bootstrap, plan)
    summary = _engine(shadow_settings, projections={"audit"}, http=False, drain_timeout=600.0, feed=feed)
    if not summary["drained"]:
        raise EngineError(f"shadow run {run.name}: {summary['drain']}")
    outcome = asyncio.run(
        sh.compare_day(
            production.postgres.reader,
            prod_schema,
            run.schema,
            day,
            production_strategies=against,
            window_ns=int(args.window * 1e9),
        )
    )
    print(
        f"shadow {run.name} of {day}: candidate {_described(candidate)} against production's {', '.join(against)} "
        f"(schema {prod_schema}); {summary['ticks_published']} ticks from the log's start to the day's end "
        f"({plan.day_records} records of the day) in {summary['seconds']} s; topics {run.topic_prefix}*, "
        f"schema {run.schema}"
        + (f"; {feed.skipped} records of the log that are not ticks, or unreadable, left out" if feed.skipped else "")
    )
    print(sh.format_outcome(outcome, limit=args.limit))
    return 0 if outcome.comparison.identical else 1


def _described(settings: cfg.Settings) -> str:
    """The settings' strategies as name(param=value, ...)."""
    entries = [(e.name, e.params) for e in settings.strategies] or [
        (str(settings.strategy.build().name), settings.strategy.params)
    ]
    return ", ".join(f"{n}({', '.join(f'{k}={v}' for k, v in sorted(p.items()))})" for n, p in entries)


def _strategy_names_of(settings: cfg.Settings) -> list[str]:
    """The names of the settings' strategies, as their signals and orders carry them."""
    if settings.strategies:
        return [e.name for e in settings.strategies]
    return [str(settings.strategy.build().name)]


async def _schema_there(reader_dsn: str, schema: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(reader_dsn)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema))
    finally:
        await conn.close()


def _run_name_or_bad(text: str) -> str:
    try:
        return _run_name(text)
    except argparse.ArgumentTypeError as exc:
        raise BadInput(str(exc)) from None


def _strategy_names(settings: cfg.Settings) -> str:
    entries = settings.strategies or ()
    return "_".join(e.name for e in entries)[:20] if entries else settings.strategy.kind.rsplit(":", 1)[-1]


def _backtest_report(args: argparse.Namespace, settings: cfg.Settings, run: Any) -> int:
    import asyncpg

    from engine import backtest as bt

    other = bt.Run(args.compare) if args.compare else None

    async def read() -> tuple[Any, Any, list[Any], str]:
        conn = await asyncpg.connect(settings.postgres.reader)
        try:
            runs = []
            for r in (run, *([other] if other else [])):
                known = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", r.schema)
                if not known:
                    raise BadInput(f"no run {r.name} (no schema {r.schema}): python -m engine backtest list")
                report = await bt.read_report(conn, r.name, r.schema)
                series = None if args.no_html else await bt.read_series(conn, r.schema)
                runs.append((report, series))
            detail = await conn.fetchval(
                f"SELECT detail::text FROM \"{run.schema}\".system_events WHERE type = 'EngineStarted' "  # noqa: S608
                "ORDER BY ts_event LIMIT 1"
            )
        finally:
            await conn.close()
        return runs[0][0], runs[1][0] if other else None, runs, detail or "{}"

    report, against, runs, detail = asyncio.run(read())
    print(bt.format_report(report))
    if against is not None:
        print()
        print(bt.format_compare(report, against))
    if not args.no_html:
        import orjson

        settings_text = orjson.loads(detail).get("settings", "{}")
        pretty = orjson.dumps(orjson.loads(settings_text), option=orjson.OPT_INDENT_2).decode()
        path = args.html or Path(f"backtest-{run.name}" + (f"-vs-{other.name}" if other else "") + ".html")
        bt.write(path, bt.render(runs, settings=pretty))
        print(f"\nHTML report: {path}")
    print(f"the figures in SQL: python -m engine sql -- -c 'select * from {run.schema}.performance'")  # noqa: S608
    return 0


def _backtest_sweep(
    args: argparse.Namespace, settings: cfg.Settings, name: str, fixed: list[str], swept: list[tuple[str, list[str]]]
) -> int:
    import os

    import asyncpg

    from engine import backtest as bt

    combos = bt.combinations(swept)
    runs = [(f"{name}_{i}", combo) for i, combo in enumerate(combos, 1)]
    for n, _ in runs:
        _run_name_or_bad(n)
    base: list[str] = []
    if args.config:
        base += ["--config", str(args.config)]
    for f in args.file or []:
        base += ["--file", str(f)]
    for sym in args.symbol or []:
        base += ["--symbol", sym]
    for flag, val in (
        ("--format", args.format),
        ("--strategy", args.strategy),
        ("--strategy-path", args.strategy_path),
    ):
        if val:
            base += [flag, str(val)]
    for p in fixed:
        base += ["--param", p]
    base += ["--no-html", "--log-level", "warning"] + (["--replace"] if args.replace else [])
    jobs = args.jobs or os.cpu_count() or 1
    print(f"sweep {name}: {len(runs)} runs, {jobs} at a time", file=sys.stderr, flush=True)
    outcomes = asyncio.run(bt.run_all(base, runs, jobs))

    async def totals() -> dict[str, list[dict[str, Any]]]:
        conn = await asyncpg.connect(settings.postgres.reader)
        try:
            out: dict[str, list[dict[str, Any]]] = {}
            for o in outcomes:
                if o.exit_code == 0:
                    rep = await bt.read_report(conn, o.run, bt.Run(o.run).schema)
                    out[o.run] = [r for r in rep.rows if r["strategy"] == "*" and r["instrument"] == "*"]
            return out
        finally:
            await conn.close()

    found = asyncio.run(totals())
    shown = ("net_pnl", "round_trips", "win_rate", "profit_factor", "sharpe", "max_drawdown", "fees")
    figures = (args.sort, *(f for f in shown if f != args.sort))
    rows: list[tuple[Any, dict[str, Any] | None]] = []
    for o in outcomes:
        rows += [(o, t) for t in found.get(o.run) or []] or [(o, None)]
    rows.sort(key=lambda ot: bt.sort_key(args.sort, ot[1]))
    names = [k for k, _ in swept]
    table = [
        [
            o.run,
            *(p.split("=", 1)[1] for p in o.params),
            (t or {}).get("currency", "-"),
            *(bt.value(f, t.get(f)) if t else "-" for f in figures),
            "ok" if o.exit_code == 0 else o.error,
        ]
        for o, t in rows
    ]
    print(bt.table(["run", *names, "currency", *figures, ""], table))
    print(f"sorted by {args.sort}, best first; a run's report: python -m engine backtest show RUN")
    failed = [o for o in outcomes if o.exit_code != 0]
    if failed:
        raise EngineError(f"{len(failed)} of {len(outcomes)} runs failed (see the table)")
    return 0


def _backtest_list(settings: cfg.Settings) -> int:
    from engine import backtest as bt

    _probe(kafka=settings.kafka.bootstrap, postgres=settings.postgres.dsn)
    runs = asyncio.run(bt.list_runs(settings.postgres.reader, settings.kafka.bootstrap))
    if not runs:
        print("no backtest runs (python -m engine backtest --file F --symbol S makes one)")
        return 0
    print(
        bt.table(
            ["run", "started (UTC)", "strategies", "files", "net PnL", "schema", "topics"],
            [
                [
                    r.name,
                    f"{r.started:%Y-%m-%d %H:%M:%S}" if r.started else "-",
                    r.strategies or "-",
                    r.files or "-",
                    r.net_pnl or "-",
                    "yes" if r.schema else "no",
                    str(r.topics),
                ]
                for r in runs
            ],
        )
    )
    return 0


def _backtest_drop(settings: cfg.Settings, runs: list[Any]) -> int:
    from engine import backtest as bt

    _probe(kafka=settings.kafka.bootstrap, postgres=settings.postgres.dsn)
    missing = []
    for run in runs:
        had, topics, groups = asyncio.run(bt.drop(settings.postgres.dsn, settings.kafka.bootstrap, run))
        if not had and not topics:
            missing.append(run.name)
            continue
        print(
            f"dropped {run.name}: schema {run.schema if had else '(none)'}, {len(topics)} topics, {len(groups)} groups"
        )
    if missing:
        raise BadInput(f"no run {', '.join(missing)} (python -m engine backtest list)")
    return 0


def _project(args: argparse.Namespace, settings: cfg.Settings) -> int:
    from engine.app import run_projections

    _kafka_login(settings)
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
    "backtest": _backtest,
    "shadow": _shadow,
}
"""Every command of the parser, and the function that does it."""

ANY_ERROR_IS_2 = frozenset({"diff", "shadow"})
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
        cfg.export_connections(settings)  # PGPASSFILE (asyncpg, psql, processes started), the Kafka clients' security
        from engine.logging import configure

        configure(settings.log_level)
        logging = True
        code = command(args, settings)
        sys.stdout.flush()  # here, where a closed pipe is told (below), not at the interpreter's exit
        return code
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C: asyncio.run has cancelled the command's tasks
        print("interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED
    except Exception as exc:
        if isinstance(exc, BrokenPipeError) and _stdout_closed():
            return 1  # the reader of the output went away (`... | head`): nothing to say, as Python's own exit on EPIPE
        return _failed(args.command, exc, logging=logging)


def _stdout_closed() -> bool:
    """stdout's reader is gone (its pipe reports an error); stdout is then pointed at /dev/null, so that the flush at
    exit does not fail once more."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        broken = any(ev & select.POLLERR for _, ev in poller.poll(0))
    except (OSError, ValueError):
        return False
    if broken:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return broken


def cli() -> NoReturn:
    """The installed ``engine`` command (``[project.scripts]``)."""
    sys.exit(main(prog="engine"))


if __name__ == "__main__":
    sys.exit(main())
