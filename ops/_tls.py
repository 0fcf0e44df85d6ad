"""The secure local stack's certificates and client settings (``stack up --secure``).

Under ``<state>/tls``, made once (again when one is missing, or within 30 days of its end): a CA of its own
(``ca.pem``, key ``ca-key.pem``), a certificate for the broker (``kafka.pem``, key ``kafka-key.pem``, and the two
in one PEM key store Kafka reads, ``kafka-keystore.pem``) and one for PostgreSQL (``postgres.pem``,
``postgres-key.pem``), each for 127.0.0.1, ::1 and localhost, with the ``cryptography`` package. Private keys are
mode 0600 from their first byte.

The client settings the engine's commands read (:data:`engine.config.STACK_CLIENT_FILE`, ``<state>/secure.toml``)
name the CA, the SCRAM user and the password file ``<state>/kafka-secrets.toml`` (0600), never a password.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import tomllib
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ops._proc import write_private

KAFKA_USER = "engine"
SCRAM_MECHANISM: Final = "SCRAM-SHA-512"
SECRETS_FILE = "kafka-secrets.toml"  # in the state directory: password = '...' of KAFKA_USER (0600)
VALID_DAYS = 825
RENEW_DAYS = 30


def tls_dir(state: Path) -> Path:
    return state / "tls"


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "trading-engine local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # PKCS#8: the form Kafka's PEM key store reads
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(common: str = "trading-engine local CA") -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, common: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A certificate for 127.0.0.1, ::1 and localhost, for a server and (the broker's own connections) a client."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _fresh(path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=RENEW_DAYS)


def ensure_certificates(state: Path) -> Path:
    """The CA and the two servers' certificates under ``<state>/tls`` (made when missing or near their end; a new
    CA means new certificates for both). The directory."""
    d = tls_dir(state)
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    ca_file, ca_key_file = d / "ca.pem", d / "ca-key.pem"
    new_ca = not (_fresh(ca_file) and ca_key_file.is_file())
    if new_ca:
        ca_key, ca = make_ca()
        write_private(ca_key_file, _key_pem(ca_key))
        ca_file.write_bytes(_pem(ca))
    else:
        loaded = serialization.load_pem_private_key(ca_key_file.read_bytes(), None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        ca_key, ca = loaded, x509.load_pem_x509_certificate(ca_file.read_bytes())
    for name in ("kafka", "postgres"):
        cert_file, key_file = d / f"{name}.pem", d / f"{name}-key.pem"
        if new_ca or not (_fresh(cert_file) and key_file.is_file()):
            key, cert = make_leaf(ca_key, ca, f"trading-engine local {name}")
            write_private(key_file, _key_pem(key))
            cert_file.write_bytes(_pem(cert) + _pem(ca))
            if name == "kafka":
                write_private(d / "kafka-keystore.pem", _key_pem(key) + _pem(cert) + _pem(ca))
    return d


def kafka_password(state: Path) -> str:
    """The SCRAM password of :data:`KAFKA_USER`: generated once (like the PostgreSQL roles'), kept in
    ``<state>/kafka-secrets.toml``, mode 0600."""
    path = state / SECRETS_FILE
    try:
        value = tomllib.loads(path.read_text()).get("password")
    except (OSError, tomllib.TOMLDecodeError):
        value = None
    if isinstance(value, str) and value and not path.stat().st_mode & 0o077:
        return value
    value = value if isinstance(value, str) and value else secrets.token_urlsafe(24)
    write_private(
        path,
        f"# the local stack's Kafka SCRAM password of {KAFKA_USER} (stack up --secure)\n"
        f"password = '{value}'\n".encode(),
    )
    return value


def client_settings(state: Path) -> str:
    """The TOML of the secure stack's client settings (no password: the file that holds it is named)."""
    d = tls_dir(state)
    return (
        "# Written by `python -m engine stack up --secure` (ops/_tls.py); removed by `stack up --plain`.\n"
        "# Read by every command whose stack.state_dir is this directory, below the environment and --config.\n"
        "[kafka]\n"
        'security_protocol = "SASL_SSL"\n'
        f'sasl_mechanism = "{SCRAM_MECHANISM}"\n'
        f"ssl_cafile = '{d / 'ca.pem'}'\n"
        f'username = "{KAFKA_USER}"\n'
        f"secrets_file = '{state / SECRETS_FILE}'\n"
        "\n[postgres]\n"
        'sslmode = "verify-full"\n'
        f"sslrootcert = '{d / 'ca.pem'}'\n"
    )
