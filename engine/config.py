"""Settings, validated once at start.

Sources, highest priority first (merged by pydantic-settings, not by hand):

1. values given by the CLI (``load(overrides=...)``);
2. environment variables: ``ENGINE_<SECTION>__<KEY>``, e.g. ``ENGINE_KAFKA__BOOTSTRAP=host:9092``;
3. a TOML file: ``--config PATH`` or ``ENGINE_CONFIG=PATH`` (see ``docs/configuration.md``);
4. the defaults below, which match the local stack (``python -m engine stack up``).

A bad value fails at start with :class:`ConfigError`, naming the key and how to fix it; so does an ``ENGINE_*``
environment variable that names no setting (pydantic-settings would ignore it): the closest known name is given.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import os
import re
import tomllib
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from adapters.feeds.formats import Format, parse_columns
from adapters.kafka_security import KafkaSecurity, Mechanism, Protocol
from events.validation import instrument_problem

PROJECT_ROOT = Path(__file__).resolve().parent.parent

OTHER_VARIABLES = frozenset(
    {
        "ENGINE_CONFIG",  # the TOML file (also --config)
        "ENGINE_KAFKA_LIB_DIR",  # ops/_kafka.py: Kafka's jars, instead of the cached download
        "ENGINE_TESTS_KEEP",  # tests/servers.py: keep the schemas and topics the tests made
        "ENGINE_STACK_SECURE",  # ops/bootstrap.sh: 1 starts the secure stack (stack up --secure); CI sets it
    }
)
"""``ENGINE_*`` environment variables that are not settings, and are read elsewhere."""


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    bootstrap: str = "127.0.0.1:19092"
    partitions: int = Field(default=4, ge=1, le=256, description="partitions of each trading topic")
    client_id: str = "engine"
    topic_prefix: str = Field(
        default="", pattern=r"^[A-Za-z0-9._-]{0,100}$", description="prepended to every topic and consumer group name"
    )
    snapshot_every: int = Field(
        default=100_000,
        ge=0,
        description="records of a ticks partition between snapshots of the engine's state "
        "(a recovery cache in engine.snapshots; 0: none)",
    )
    replication_factor: int = Field(
        default=1,
        ge=1,
        le=32,
        description="copies of each partition of the topics the engine creates; at most the cluster's brokers",
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        le=32,
        description="the topics' min.insync.replicas: copies a write needs before it is acknowledged "
        "(producers use acks=all); default: the broker's (1); at most replication_factor",
    )

    security_protocol: Protocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (managed clusters: SASL_SSL)"
    )
    sasl_mechanism: Mechanism | None = Field(
        default=None, description="with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
    )
    ssl_cafile: Path | None = Field(
        default=None,
        description="with SSL/SASL_SSL: the CA bundle (PEM) the brokers' certificates are checked "
        "against; default: the system's",
    )
    ssl_certfile: Path | None = Field(default=None, description="with SSL/SASL_SSL: a client certificate (PEM)")
    ssl_keyfile: Path | None = Field(default=None, description="the client certificate's private key (PEM)")
    username: str | None = Field(default=None, description="with SASL_*: the SASL user (an API key for PLAIN)")
    password: SecretStr | None = Field(
        default=None, description="with SASL_*: only from ENGINE_KAFKA__PASSWORD (or kafka.secrets_file)"
    )
    secrets_file: Path | None = Field(
        default=None, description="a TOML file (mode 0600) holding password = '...', instead of ENGINE_KAFKA__PASSWORD"
    )

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> KafkaSettings:
        if self.min_insync_replicas is not None and self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"min_insync_replicas ({self.min_insync_replicas}) is more than replication_factor "
                f"({self.replication_factor}): no write could ever be acknowledged"
            )
        return self

    @model_validator(mode="after")
    def _security(self) -> KafkaSettings:
        proto = self.security_protocol
        tls, sasl = proto in ("SSL", "SASL_SSL"), proto.startswith("SASL_")
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, key)
            if path is not None and not tls:
                raise ValueError(f"kafka.{key} is given but kafka.security_protocol is {proto}: it has no TLS")
            if path is not None and not path.expanduser().is_file():
                raise ValueError(f"kafka.{key} {path}: no such file")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("kafka.ssl_certfile and kafka.ssl_keyfile go together: give both or neither")
        if not sasl:
            given = [k for k in ("sasl_mechanism", "username", "password", "secrets_file") if getattr(self, k)]
            if given:
                raise ValueError(f"kafka.{given[0]} is given but kafka.security_protocol is {proto}: it has no SASL")
            return self
        if self.sasl_mechanism is None:
            raise ValueError(f"kafka.security_protocol {proto} needs kafka.sasl_mechanism (PLAIN, SCRAM-SHA-256/512)")
        if not self.username:
            raise ValueError(f"kafka.security_protocol {proto} needs kafka.username (ENGINE_KAFKA__USERNAME)")
        if self.password is None and self.secrets_file is None:
            raise ValueError(
                f"kafka.security_protocol {proto} needs a password: ENGINE_KAFKA__PASSWORD in the environment, or "
                "kafka.secrets_file (a TOML file holding password = '...')"
            )
        if self.password is None:
            self._secret_from_file()
        return self

    def _secret_from_file(self) -> SecretStr:
        path = (self.secrets_file or Path()).expanduser()
        if not path.is_file():
            raise ValueError(f"kafka.secrets_file {path}: no such file")
        if path.stat().st_mode & 0o077:
            raise ValueError(f"kafka.secrets_file {path} is readable by others: chmod 600 {path}")
        try:
            value = tomllib.loads(path.read_text()).get("password")
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"kafka.secrets_file {path}: cannot be read as TOML ({type(exc).__name__})") from None
        if not isinstance(value, str) or not value:
            raise ValueError(f"kafka.secrets_file {path}: no password = '...' in it")
        return SecretStr(value)

    def security(self) -> KafkaSecurity:
        """What :func:`adapters.kafka_security.client_args` needs; the password from the environment, else the
        secrets file."""
        sasl = self.security_protocol.startswith("SASL_")
        password = self.password if self.password is not None or not sasl else self._secret_from_file()
        return KafkaSecurity(
            protocol=self.security_protocol,
            mechanism=self.sasl_mechanism,
            cafile=_expand(self.ssl_cafile),
            certfile=_expand(self.ssl_certfile),
            keyfile=_expand(self.ssl_keyfile),
            username=self.username,
            password=password,
        )


def _expand(path: Path | None) -> Path | None:
    return None if path is None else path.expanduser()


class PostgresSettings(_Section):
    """Three roles: the schema owner (``dsn``: creates schemas and partitions), the writer (projection
    workers: insert, and update current-state tables only) and the reader (people, dashboards). Passwords
    belong in a libpq password file (``passfile``, PGPASSFILE, ~/.pgpass) or PGPASSWORD, not in these settings."""

    dsn: str = "postgresql://engine@127.0.0.1:15432/engine"
    writer_dsn: str | None = Field(default=None, description="default: dsn with user engine_writer")
    reader_dsn: str | None = Field(default=None, description="default: dsn with user engine_reader")
    schema_: str = Field(default="audit", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    passfile: Path | None = Field(
        default=None,
        description="the libpq password file the engine's connections use (set as PGPASSFILE); default: the local "
        "stack's <stack.state_dir>/pgpass when there is one, else PGPASSFILE or ~/.pgpass",
    )
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = Field(
        default=None,
        description="libpq's sslmode, added to dsn, writer_dsn and reader_dsn as ?sslmode= (a DSN's own wins); "
        "default: PGSSLMODE, else prefer; a managed PostgreSQL: verify-full",
    )
    sslrootcert: Path | None = Field(default=None, description="the CA bundle (PEM) the server is checked against")
    sslcert: Path | None = Field(default=None, description="a client certificate (PEM)")
    sslkey: Path | None = Field(default=None, description="the client certificate's private key (PEM)")

    @model_validator(mode="after")
    def _tls_in_dsns(self) -> PostgresSettings:
        """sslmode, sslrootcert, sslcert and sslkey as the DSNs' own parameters (libpq's, which asyncpg and psql both
        read), so that every connection made from any of them, and ``engine sql``, has them; a parameter a DSN
        already has is kept. Nothing given: the DSNs are as written."""
        params = {k: getattr(self, k) for k in ("sslmode", "sslrootcert", "sslcert", "sslkey")}
        given = {k: str(v.expanduser()) if isinstance(v, Path) else v for k, v in params.items() if v is not None}
        if not given:
            return self
        for key in ("dsn", "writer_dsn", "reader_dsn"):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, with_params(value, given))
        return self

    @model_validator(mode="after")
    def _tls_files(self) -> PostgresSettings:
        for key in ("sslrootcert", "sslcert", "sslkey"):
            path = getattr(self, key)
            if path is not None and not path.expanduser().is_file():
                raise ValueError(f"postgres.{key} {path}: no such file")
        if (self.sslcert is None) != (self.sslkey is None):
            raise ValueError("postgres.sslcert and postgres.sslkey go together: give both or neither")
        if self.sslmode == "disable" and (self.sslrootcert or self.sslcert):
            raise ValueError("postgres.sslmode is disable but TLS files are given: drop them or choose another mode")
        return self

    @property
    def writer(self) -> str:
        return self.writer_dsn or with_user(self.dsn, "engine_writer")

    @property
    def reader(self) -> str:
        return self.reader_dsn or with_user(self.dsn, "engine_reader")


STACK_PASSFILE = "pgpass"  # in stack.state_dir: the local stack's password file for the engine's roles (0600)


def passfile(postgres: PostgresSettings, state_dir: Path) -> Path | None:
    """The password file the engine's connections use: ``postgres.passfile``, else the local stack's when it
    exists (``stack up`` writes it), else None (libpq's own choice: PGPASSFILE, then ~/.pgpass)."""
    if postgres.passfile is not None:
        return postgres.passfile.expanduser()
    stack = state_dir / STACK_PASSFILE
    return stack if stack.is_file() else None


def export_passfile(settings: Settings) -> Path | None:
    """Set PGPASSFILE to :func:`passfile` (when there is one) for this process and those it starts: libpq's
    variable, which asyncpg and psql read. The commands do this first; so do the benchmarks and the tests."""
    found = passfile(settings.postgres, settings.stack.state_dir)
    if found is not None:
        os.environ["PGPASSFILE"] = str(found)
    return found


def export_connections(settings: Settings) -> None:
    """How this process and those it starts connect: :func:`export_passfile`, and the Kafka security of every client
    of ``kafka.bootstrap`` (:func:`adapters.kafka_security.use`). (PostgreSQL's TLS is in the DSNs themselves, see
    :class:`PostgresSettings`.) A setting not given changes nothing: a plaintext run is as before."""
    export_passfile(settings)
    from adapters import kafka_security

    kafka_security.use(settings.kafka.security(), settings.kafka.bootstrap)


STACK_CLIENT_FILE = "secure.toml"
"""In stack.state_dir: the secure stack's client settings (written by ``stack up --secure``, removed by
``stack up --plain``), read below the environment and the --config file when it exists."""


def _stack_client_file(given: dict[str, Any], toml_path: str | None) -> Path:
    """``<stack.state_dir>/secure.toml`` of the state directory these settings will have: given (``load``'s
    overrides, or Settings' arguments), else ENGINE_STACK__STATE_DIR, else the --config file's, else the default."""
    stack = given.get("stack")
    state: Any = stack.get("state_dir") if isinstance(stack, dict) else getattr(stack, "state_dir", None)
    if state is None:
        state = os.environ.get("ENGINE_STACK__STATE_DIR")
    if state is None and toml_path:
        with contextlib.suppress(OSError, tomllib.TOMLDecodeError, AttributeError):
            state = tomllib.loads(Path(toml_path).read_text()).get("stack", {}).get("state_dir")
    base = Path(state).expanduser().resolve() if state else StackSettings.model_fields["state_dir"].default
    return Path(base) / STACK_CLIENT_FILE


def with_params(dsn: str, params: dict[str, str]) -> str:
    """The DSN with these query parameters added (one it already has is kept)."""
    parts = urlsplit(dsn)
    have = dict(parse_qsl(parts.query))
    query = urlencode({**params, **have}, safe="/")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def with_user(dsn: str, user: str) -> str:
    """The same DSN for another role (host, port, database and options kept; any password dropped)."""
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    ready_max_lag_events: int = Field(default=10_000, ge=0, description="/readyz fails above this projection lag")
    ready_max_lag_seconds: float = Field(default=60.0, ge=0, description="/readyz fails above this projection lag")


def _instrument_names(v: tuple[str, ...]) -> tuple[str, ...]:
    """Instrument names, each checked (BASE/QUOTE, see events.validation)."""
    for name in v:
        problem = instrument_problem(name)
        if problem is not None:
            raise ValueError(problem)
    return v


TradeFormat = Format  # the recorded feed's formats (adapters.feeds.formats)
_COLUMNS_HELP = (
    "recorded feed: a generic CSV's column mapping, time=COL:UNIT,price=COL,amount=COL,side=COL (or buyer_maker=COL)"
    "[,id=COL][,delimiter=C][,header=yes|no], or the same keys as a table (see docs/configuration.md)"
)


def _columns_text(v: Any) -> Any:
    """A column mapping (text or table) checked and as its text; ValueError naming what is wrong."""
    if v is None or not isinstance(v, str | dict):
        return v
    return parse_columns(v).text()


def _format_and_columns(where: str, fmt: str, columns: str | None) -> None:
    if columns is not None and fmt not in ("auto", "csv"):
        raise ValueError(f"{where}columns is for format csv; format is {fmt!r}")
    if fmt == "csv" and columns is None:
        raise ValueError(
            f"{where}format 'csv' needs {where}columns (which column holds what, e.g. "
            "time=ts:ms,price=px,amount=qty,side=side)"
        )


class RecordedFile(_Section):
    """One file of a recorded feed of several (``[[feed.files]]``): its trades are of ``symbol``."""

    path: Path
    symbol: str
    format: TradeFormat = "auto"
    columns: str | None = Field(default=None, description=_COLUMNS_HELP)

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str) -> str:
        problem = instrument_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v

    @field_validator("columns", mode="before")
    @classmethod
    def _columns(cls, v: Any) -> Any:
        return _columns_text(v)


class FeedSettings(_Section):
    kind: Literal["synthetic", "recorded", "ccxt"] = "synthetic"
    # ccxt: live trades of ``instruments`` from ``exchange`` (websocket, REST polling as fallback)
    exchange: str = Field(default="binance", pattern=r"^[a-z0-9_]{2,40}$")
    rest_url: str | None = Field(default=None, pattern=r"^https?://", description="ccxt feed: REST override")
    ws_url: str | None = Field(default=None, pattern=r"^wss?://", description="ccxt feed: websocket override")
    # synthetic
    seed: int = 7
    instruments: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")
    start_prices: tuple[Decimal, ...] = (Decimal("60000.00"), Decimal("3000.00"))
    tick_size: tuple[Decimal, ...] = (Decimal("0.01"), Decimal("0.01"))
    ticks_per_second: float = Field(default=20.0, gt=0)
    volatility_bps: Decimal = Field(default=Decimal("5"), gt=0, description="std-dev of one step, in bps")
    # recorded
    path: Path | None = None
    symbol: str | None = None
    format: TradeFormat = Field(default="auto", description="recorded feed: the file's format (auto: from its content)")
    columns: str | None = Field(default=None, description=_COLUMNS_HELP)
    # several files (several instruments, or several days of one), merged by time; instead of path and symbol
    files: tuple[RecordedFile, ...] = ()
    speed: float = Field(
        default=0.0, ge=0, allow_inf_nan=False, description="0 = as fast as possible, 1 = real time, 60 = 60x"
    )

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str | None) -> str | None:
        problem = None if v is None else instrument_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v

    @field_validator("instruments")
    @classmethod
    def _instruments(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _instrument_names(v)

    @field_validator("columns", mode="before")
    @classmethod
    def _columns(cls, v: Any) -> Any:
        return _columns_text(v)

    @model_validator(mode="after")
    def _check(self) -> FeedSettings:
        if self.kind == "ccxt":
            return self
        if self.kind == "synthetic":
            if not (len(self.instruments) == len(self.start_prices) == len(self.tick_size)):
                raise ValueError("feed.instruments, feed.start_prices and feed.tick_size must have the same length")
        elif self.files:
            if self.path is not None or self.symbol is not None:
                raise ValueError("feed.files: give the files either as feed.files or as feed.path and feed.symbol")
            for i, f in enumerate(self.recorded_files()):
                _format_and_columns(f"feed.files[{i}].", f.format, f.columns)
        else:
            _format_and_columns("feed.", self.format, self.columns)
            if self.path is None:
                raise ValueError("feed.path is required when feed.kind = 'recorded' (a trade file, see --format)")
            if self.symbol is None:
                raise ValueError("feed.symbol is required when feed.kind = 'recorded', e.g. 'XRP/ETH'")
        return self

    def recorded_files(self) -> tuple[RecordedFile, ...]:
        """The files of a recorded feed: ``files`` (an entry without its own format takes ``format``, without its
        own columns, ``columns`` if its format is auto or csv), or the one of ``path`` and ``symbol``."""
        if self.files:
            out = []
            for f in self.files:
                fmt = f.format if "format" in f.model_fields_set else self.format
                columns = f.columns if "columns" in f.model_fields_set or fmt not in ("auto", "csv") else self.columns
                out.append(f.model_copy(update={"format": fmt, "columns": columns}))
            return tuple(out)
        if self.path is None or self.symbol is None:
            return ()
        return (RecordedFile(path=self.path, symbol=self.symbol, format=self.format, columns=self.columns),)


class StrategySettings(_Section):
    kind: str = Field(default="ma_cross", description="a built-in (ma_cross) or 'package.module:ClassName'")
    path: Path | None = Field(default=None, description="a folder of strategy files put on the import path")
    name: str | None = Field(default=None, description="the prefix of its client order ids (default: its own)")
    params: dict[str, Any] = Field(default_factory=dict, description="the strategy's parameters (its Params)")
    # ma_cross's parameters as they were set before [strategy.params] (its fast, slow, quantity, allow_short)
    fast: int = Field(default=10, ge=1)
    slow: int = Field(default=30, ge=2)
    order_quantity: Decimal = Field(default=Decimal("0.01"), gt=0)
    order_type: Literal["market", "limit"] = Field(default="market", description="of the orders a Target makes")
    allow_short: bool = False

    @model_validator(mode="after")
    def _check(self) -> StrategySettings:
        if self.fast >= self.slow:
            raise ValueError(f"strategy.fast ({self.fast}) must be smaller than strategy.slow ({self.slow})")
        self.build()  # a strategy that cannot be loaded, or a bad parameter, fails at start
        return self

    def all_params(self) -> dict[str, Any]:
        """The parameters the strategy is built with: ``params``, over ma_cross's older keys for ma_cross."""
        if self.kind != "ma_cross":
            return dict(self.params)
        legacy = {
            "fast": self.fast,
            "slow": self.slow,
            "quantity": self.order_quantity,
            "allow_short": self.allow_short,
        }
        return {**legacy, **self.params}

    def build(self) -> Any:
        """The strategy (a :class:`engine.strategy.Strategy`), built and validated once per distinct setting."""
        return _build(self.kind, json.dumps(self.all_params(), sort_keys=True, default=str), self.path, self.name)


@functools.lru_cache(maxsize=32)
def _build(kind: str, params_json: str, path: Path | None, name: str | None) -> Any:
    from engine.strategy_loader import build

    return build(kind, json.loads(params_json), path=path, name=name)


class StrategyRisk(_Section):
    """A strategy's own risk limits (``[strategies.risk]``), over its own position and orders; a limit not set is the
    account's (``[risk]``), which also holds over every strategy's orders of an instrument together."""

    max_order_notional: Decimal | None = Field(default=None, gt=0)
    max_position: Decimal | None = Field(default=None, gt=0)
    max_open_orders: int | None = Field(default=None, ge=1)
    max_orders_per_minute: int | None = Field(default=None, ge=1)


class StrategyEntry(_Section):
    """One of several strategies in one engine (``[[strategies]]``): its name (the prefix of its client order ids,
    the ``strategy`` column and label), what it is, its parameters, the instruments it trades (default: every one the
    feed has) and its own risk limits."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="1-32 of a-z, 0-9 and _, from a letter")
    kind: str = Field(default="ma_cross", description="a built-in or 'package.module:ClassName'")
    path: Path | None = Field(default=None, description="a folder of strategy files (default: strategy.path)")
    params: dict[str, Any] = Field(default_factory=dict)
    instruments: tuple[str, ...] = Field(default=(), description="the instruments it trades (default: all)")
    order_type: Literal["market", "limit"] = Field(default="market", description="of the orders a Target makes")
    risk: StrategyRisk = StrategyRisk()

    @field_validator("instruments")
    @classmethod
    def _instruments(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _instrument_names(v)

    def build(self, path: Path | None = None) -> Any:
        return _build(self.kind, json.dumps(self.params, sort_keys=True, default=str), self.path or path, self.name)


class RiskSettings(_Section):
    max_order_notional: Decimal = Field(default=Decimal("1000"), gt=0)
    max_position: Decimal = Field(default=Decimal("0.05"), gt=0)
    max_open_orders: int = Field(default=5, ge=1, description="open orders per instrument; one more is refused")
    max_orders_per_minute: int = Field(
        default=30, ge=1, description="orders sent per instrument in any 60 s of event time"
    )
    daily_loss_limit: Decimal = Field(
        default=Decimal("0.05"),
        gt=0,
        le=1,
        description="loss today, as a share of start-of-day equity, that halts trading",
    )


class VenueSettings(_Section):
    """Where orders go. ``paper`` simulates fills from the ticks; ``ccxt`` trades on any exchange ccxt knows
    (``exchange``: binance, coinbase, alpaca, kraken, ...); ``openalgo`` goes through an OpenAlgo server.

    Credentials: ``ENGINE_VENUE__API_KEY`` / ``ENGINE_VENUE__SECRET`` / ``ENGINE_VENUE__PASSWORD`` in the
    environment, or ``secrets_file``: a TOML file OUTSIDE the repository holding ``api_key``, ``secret`` and
    (for venues that have one) ``password``. They never reach a log, an event or a metric."""

    kind: Literal["paper", "ccxt", "openalgo"] = "paper"
    taker_fee_rate: Decimal = Field(default=Decimal("0.001"), ge=0)
    maker_fee_rate: Decimal = Field(default=Decimal("0.0005"), ge=0)
    fee_currency: str | None = Field(default=None, description="default: the instrument's quote currency")
    starting_balances: dict[str, Decimal] = Field(
        default_factory=lambda: {"USDT": Decimal("100000")},
        description="the paper account's balances at its first start, per currency",
    )
    exchange: str = Field(default="binance", pattern=r"^[a-z0-9_]{2,40}$", description="ccxt exchange id")
    sandbox: bool = Field(default=False, description="ccxt: the exchange's test network")
    base_url: str | None = Field(
        default=None, pattern=r"^https?://", description="REST endpoint: the OpenAlgo server, or a proxy/fake for ccxt"
    )
    api_key: SecretStr | None = None
    secret: SecretStr | None = None
    password: SecretStr | None = None
    secrets_file: Path | None = None
    openalgo_exchange: str = "NSE"
    openalgo_product: str = "MIS"
    timeout: float = Field(default=10.0, gt=0, description="seconds before a venue request counts as lost")
    stops: Literal["native", "engine"] | None = Field(
        default=None,
        description="a strategy's stops: 'native' sends the venue's own stop order (the venue triggers it), 'engine' "
        "holds it and triggers it from the ticks; default native where the venue adapter has stop orders, else engine",
    )

    @model_validator(mode="after")
    def _check(self) -> VenueSettings:
        if self.kind == "paper" and self.stops == "native":
            raise ValueError("venue.stops = 'native' needs a live venue: the paper venue's stops are the engine's")
        if self.secrets_file is not None:
            path = self.secrets_file.expanduser().resolve()
            if path.is_relative_to(PROJECT_ROOT):
                raise ValueError(f"venue.secrets_file {path} is inside the repository: keep secrets outside it")
            if not path.is_file():
                raise ValueError(f"venue.secrets_file {path}: no such file")
        if self.kind == "openalgo" and self.base_url is None:
            raise ValueError(
                "venue.base_url is required for openalgo (the OpenAlgo server, e.g. http://127.0.0.1:5000)"
            )
        return self


class ExecutionSettings(_Section):
    """How the execution service talks to a live venue (see engine/execution.py)."""

    poll_interval: float = Field(default=0.5, gt=0, description="seconds between polls of working orders' fills")
    confirm_timeout: float = Field(default=10.0, gt=0, description="how long a lost submit is looked for")
    submit_attempts: int = Field(default=3, ge=1, le=10)
    max_command_age: float = Field(default=30.0, gt=0, description="an older order command expires unsent")
    reconcile_interval: float = Field(default=60.0, gt=0)
    lookback: float = Field(default=86_400.0, gt=0, description="seconds of log and venue history reconciled")


class ProjectionSettings(_Section):
    """How projection workers treat a record they cannot apply (an exception while folding it; a record that does
    not decode or fails validation is always dead-lettered)."""

    on_error: Literal["deadletter", "stop"] = Field(
        default="deadletter",
        description="deadletter: park the record on events.deadletter with the reason and go on; stop: stop the "
        "worker with the error",
    )


class StackSettings(_Section):
    state_dir: Path = PROJECT_ROOT / ".state"
    kafka_version: str = "4.1.1"
    kafka_controller_port: int = 19093
    kafka_heap: str = "512m"
    kafka_internal_port: int = Field(
        default=19095,
        ge=1024,
        le=65535,
        description="stack up --secure: the broker's TLS listener with client certificates (its own connections)",
    )
    kafka_brokers: int = Field(
        default=1, ge=1, le=9, description="brokers of the local Kafka (stack up --brokers N): 1, or a KRaft cluster"
    )
    kafka_cluster_port: int = Field(
        default=19192,
        ge=1024,
        le=65000,
        description="with kafka_brokers > 1: node i's broker listens on this port + 2(i-1), its controller on the "
        "next port",
    )
    kafka_cluster_heap: str = "256m"
    # not Debian's 9090 / 9093: the packages' own services may be running there (see ops/bootstrap.sh)
    prometheus_port: int = 19090
    alertmanager_port: int = 19094

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ENGINE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    http: HttpSettings = HttpSettings()
    feed: FeedSettings = FeedSettings()
    strategy: StrategySettings = StrategySettings()
    strategies: tuple[StrategyEntry, ...] = Field(
        default=(), description="several strategies in one engine ([[strategies]]); instead of [strategy]"
    )
    risk: RiskSettings = RiskSettings()
    venue: VenueSettings = VenueSettings()
    execution: ExecutionSettings = ExecutionSettings()
    projections: ProjectionSettings = ProjectionSettings()
    stack: StackSettings = StackSettings()
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _several(self) -> Settings:
        if not self.strategies:
            return self
        given = self.strategy.model_fields_set - {"path"}
        if given:
            raise ValueError(
                f"strategy.{sorted(given)[0]}: with [[strategies]], [strategy] may set only path (the folder of "
                "strategy files); give each entry's kind and params in its [[strategies]] table"
            )
        names = [e.name for e in self.strategies]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"strategies: the name {twice[0]!r} is given twice (names prefix client order ids)")
        known = self.feed_instruments()
        for i, e in enumerate(self.strategies):
            try:
                e.build(self.strategy.path)  # a strategy that cannot be loaded, or a bad parameter, fails at start
            except ValueError as exc:
                raise ValueError(re.sub(r"^strategy\.", f"strategies[{i}].", str(exc))) from None
            unknown = [x for x in e.instruments if known is not None and x not in known]
            if unknown:
                raise ValueError(
                    f"strategies[{i}].instruments: {unknown[0]} is not among the feed's ({', '.join(known or ())})"
                )
        return self

    def feed_instruments(self) -> tuple[str, ...] | None:
        """The instruments the configured feed publishes (None: not known from the settings)."""
        if self.feed.kind == "recorded":
            return tuple(dict.fromkeys(f.symbol for f in self.feed.recorded_files())) or None
        return self.feed.instruments

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("ENGINE_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        given = getattr(init_settings, "init_kwargs", {})
        stack_client = _stack_client_file(given if isinstance(given, dict) else {}, toml_path)
        if stack_client.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=stack_client))
        return tuple(sources)


def _fix_hint(loc: str, msg: str) -> str:
    msg = msg.removeprefix("Value error, ")
    inner = re.match(r"((?:strategy|strategies\[\d+\])\.[a-z_][a-z0-9_.]*|strategies): (.*)", msg, re.S)
    if loc in ("strategy", "settings") and inner:  # the strategy's own checks name their key (strategy.params.fast)
        loc, msg = inner.groups()
    own = re.match(r"((?:kafka|postgres)\.[a-z_]+) (.*)", msg, re.S)
    if loc in ("kafka", "postgres") and own:  # the section's own checks name their key first
        loc = own.group(1)
        msg = msg.removeprefix(loc + " ").removeprefix(loc + ": ")
    if loc.startswith("strategies"):  # a list of tables: in the TOML file, or all of it as JSON in the environment
        loc = re.sub(r"^strategies\.(\d+)", r"strategies[\1]", loc)
        return (
            f"{loc}: {msg} (set it in the [[strategies]] tables of the TOML file given by --config/ENGINE_CONFIG, "
            "or as a JSON list in ENGINE_STRATEGIES)"
        )
    if "not a parameter of" in msg:  # nothing to set: a name the strategy does not take
        return f"{loc}: {msg} (given in [strategy.params], ENGINE_STRATEGY__PARAMS__* or --param)"
    env = "ENGINE_" + loc.upper().replace(".", "__")
    return f"{loc}: {msg} (set it in the TOML file given by --config/ENGINE_CONFIG, with {env}, or on the command line)"


def known_variables() -> tuple[frozenset[str], tuple[str, ...]]:
    """The ``ENGINE_*`` environment variables that name a setting (a section, as JSON, or one of its keys), and the
    prefixes of those that name a key of a table setting (``ENGINE_VENUE__STARTING_BALANCES__USDT``); upper case.
    Derived from :class:`Settings`, so a new setting is known at once."""
    names = set(OTHER_VARIABLES)
    prefixes: list[str] = []
    for name, field in Settings.model_fields.items():
        env = f"ENGINE_{(field.alias or name).upper()}"
        names.add(env)
        section = field.annotation
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            continue
        for key, sub in section.model_fields.items():
            key_env = f"{env}__{(sub.alias or key).upper()}"
            names.add(key_env)
            if typing.get_origin(sub.annotation) is dict:
                prefixes.append(key_env + "__")
    return frozenset(names), tuple(prefixes)


def unknown_variables(environ: typing.Mapping[str, str]) -> list[str]:
    """A line for each ``ENGINE_*`` variable of ``environ`` that names no setting, with the closest known name."""
    names, prefixes = known_variables()
    lines = []
    for var in sorted(environ):
        upper = var.upper()  # pydantic-settings matches names in any case
        if not upper.startswith("ENGINE_") or upper in names or upper.startswith(prefixes):
            continue
        close = difflib.get_close_matches(upper, names, n=1, cutoff=0.75)
        hint = (
            f"did you mean {close[0]}?" if close else "settings are ENGINE_<SECTION>__<KEY>: see docs/configuration.md"
        )
        lines.append(f"unknown setting {var} ({hint})")
    return lines


def _no_password_in_file(toml_path: str | None) -> None:
    """kafka.password in the --config file is refused: it belongs in the environment or kafka.secrets_file."""
    if not toml_path:
        return
    try:
        data = tomllib.loads(Path(toml_path).read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return  # the settings source says what is wrong with it
    kafka = data.get("kafka")
    if isinstance(kafka, dict) and "password" in kafka:
        raise ConfigError(
            f"invalid configuration: kafka.password is in {toml_path}: a password belongs in ENGINE_KAFKA__PASSWORD "
            "or in kafka.secrets_file (a TOML file, mode 0600, holding password = '...'), never in the config file"
        )


def load(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, or raise ConfigError naming every bad key and its fix (an ``ENGINE_*`` environment
    variable that names no setting included)."""
    unknown = unknown_variables(os.environ)
    if unknown:
        raise ConfigError("; ".join(unknown))
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"--config {config_file}: no such file")
        os.environ["ENGINE_CONFIG"] = str(config_file)
    elif (p := os.environ.get("ENGINE_CONFIG")) and not Path(p).is_file():
        raise ConfigError(f"ENGINE_CONFIG={p}: no such file")
    _no_password_in_file(os.environ.get("ENGINE_CONFIG"))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if p != "schema_") or "settings"
            lines.append(_fix_hint(loc, err["msg"]))
        if len(lines) == 1:
            raise ConfigError(f"invalid configuration: {lines[0]}") from None
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
