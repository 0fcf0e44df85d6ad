"""How every Kafka client of the project connects: :func:`client_args`, the keyword arguments of
``AIOKafkaProducer``, ``AIOKafkaConsumer`` and ``AIOKafkaAdminClient`` (bootstrap servers, security protocol, SASL
and TLS), from the settings' ``kafka.security_*`` keys.

A process sets its security once, for the settings' ``kafka.bootstrap`` (:func:`use`, called by
``engine.config.export_connections``); a client of that cluster gets it, a client of any other (a test's or a
benchmark's private plaintext stack) does not. PLAINTEXT, the default, gives ``{"bootstrap_servers": ...}`` alone,
exactly what the clients were made with before. The password is
a :class:`pydantic.SecretStr`: its repr, and so any log line or error holding the settings, shows ``**********``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: Protocol = "PLAINTEXT"
    mechanism: Mechanism | None = None
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    username: str | None = None
    password: SecretStr | None = None

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")


PLAINTEXT = KafkaSecurity()
_current: dict[str, KafkaSecurity] = {}


def use(security: KafkaSecurity, bootstrap: str) -> None:
    """The security of every client of ``bootstrap`` this process makes from now on (see :func:`client_args`)."""
    _current.clear()
    _current[bootstrap] = security


def saved() -> dict[str, KafkaSecurity]:
    """What :func:`use` set, for :func:`restore` in a spawned process (which inherits nothing of this module)."""
    return dict(_current)


def restore(state: dict[str, KafkaSecurity]) -> None:
    _current.clear()
    _current.update(state)


def current(bootstrap: str) -> KafkaSecurity:
    return _current.get(bootstrap, PLAINTEXT)


def client_args(bootstrap: str, security: KafkaSecurity | None = None) -> dict[str, Any]:
    """The keyword arguments of a Kafka client of ``bootstrap``, with ``security`` (default: the process's for that
    cluster, see :func:`use`)."""
    sec = current(bootstrap) if security is None else security
    args: dict[str, Any] = {"bootstrap_servers": bootstrap}
    if sec.protocol == "PLAINTEXT":
        return args
    args["security_protocol"] = sec.protocol
    if sec.tls:
        args["ssl_context"] = create_ssl_context(cafile=sec.cafile, certfile=sec.certfile, keyfile=sec.keyfile)
    if sec.sasl:
        args["sasl_mechanism"] = sec.mechanism
        args["sasl_plain_username"] = sec.username
        args["sasl_plain_password"] = sec.password.get_secret_value() if sec.password is not None else None
    return args


def to_wire(security: KafkaSecurity) -> dict[str, Any]:
    """The security as JSON values, for a child process over a pipe (never an argument, a variable or a file: the
    password is in it)."""
    return {
        "protocol": security.protocol,
        "mechanism": security.mechanism,
        "cafile": None if security.cafile is None else str(security.cafile),
        "certfile": None if security.certfile is None else str(security.certfile),
        "keyfile": None if security.keyfile is None else str(security.keyfile),
        "username": security.username,
        "password": None if security.password is None else security.password.get_secret_value(),
    }


def from_wire(d: dict[str, Any]) -> KafkaSecurity:
    return KafkaSecurity(
        protocol=d["protocol"],
        mechanism=d["mechanism"],
        cafile=None if d["cafile"] is None else Path(d["cafile"]),
        certfile=None if d["certfile"] is None else Path(d["certfile"]),
        keyfile=None if d["keyfile"] is None else Path(d["keyfile"]),
        username=d["username"],
        password=None if d["password"] is None else SecretStr(d["password"]),
    )
