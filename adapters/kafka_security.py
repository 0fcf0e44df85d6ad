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
