"""Build the live venue the settings name (``venue.kind`` = ``ccxt`` | ``openalgo``), with its credentials.

Credentials come from the environment (``ENGINE_VENUE__API_KEY``, ``ENGINE_VENUE__SECRET``,
``ENGINE_VENUE__PASSWORD``) or from ``venue.secrets_file`` (TOML, outside the repository), the environment
first. They are read here, once, and handed to the adapter; nothing else sees them.
"""

from __future__ import annotations

import tomllib

from adapters.venues.base import Credentials, LiveVenue
from engine.config import ConfigError, ExecutionSettings, VenueSettings
from engine.execution import ExecutionSettings as ServiceSettings


def load_credentials(v: VenueSettings) -> Credentials:
    found: dict[str, str] = {}
    if v.secrets_file is not None:
        try:
            data = tomllib.loads(v.secrets_file.expanduser().read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(
                f"venue.secrets_file {v.secrets_file}: cannot be read as TOML ({type(exc).__name__})"
            ) from None
        found = {k: str(data[k]) for k in ("api_key", "secret", "password") if data.get(k)}
    for name in ("api_key", "secret", "password"):
        value = getattr(v, name)
        if value is not None:
            found[name] = value.get_secret_value()
    needed = ("api_key",) if v.kind == "openalgo" else ("api_key", "secret")
    missing = [n for n in needed if not found.get(n)]
    if missing:
        keys = ", ".join(f"ENGINE_VENUE__{n.upper()}" for n in missing)
        raise ConfigError(
            f"venue.kind = {v.kind!r} needs credentials: {', '.join(missing)} missing. Set {keys} in the environment, "
            'or give venue.secrets_file: a TOML file outside the repository with api_key = "...", secret = "..."'
        )
    return Credentials(found["api_key"], found.get("secret", ""), found.get("password"))


def make_live_venue(v: VenueSettings) -> LiveVenue | None:
    """The live venue of the settings, or None for the paper venue (which the core simulates)."""
    if v.kind == "paper":
        return None
    creds = load_credentials(v)
    if v.kind == "openalgo":
        from adapters.venues.openalgo import OpenAlgoVenue

        assert v.base_url is not None  # validated with the settings
        return OpenAlgoVenue(
            v.base_url, credentials=creds, exchange=v.openalgo_exchange, product=v.openalgo_product, timeout_s=v.timeout
        )
    from adapters.venues.ccxt import CcxtVenue

    try:
        return CcxtVenue(
            v.exchange, credentials=creds, sandbox=v.sandbox, base_url=v.base_url, timeout_ms=int(v.timeout * 1000)
        )
    except ValueError as exc:
        raise ConfigError(f"venue.exchange: {exc}") from None


def native_stops(v: VenueSettings) -> bool:
    """Whether a strategy's stops go to the venue as its own stop orders (``venue.stops``): by default where the
    venue adapter sends them (ccxt: :func:`adapters.venues.ccxt.native_stops`), else (and on the paper venue) the
    engine holds them. ``"native"`` on a venue without them stops the engine at start."""
    if v.kind == "paper":
        return False
    from adapters.venues.ccxt import native_stops as ccxt_native_stops

    supported = v.kind == "ccxt" and ccxt_native_stops(v.exchange)
    if v.stops == "native" and not supported:
        where = f"ccxt exchange {v.exchange!r}" if v.kind == "ccxt" else f"venue.kind {v.kind!r}"
        raise ConfigError(
            f"venue.stops = 'native': this engine sends no native stop orders to {where}; "
            "use venue.stops = 'engine' (the engine holds the stops and triggers them from the ticks)"
        )
    return supported if v.stops is None else v.stops == "native"


def service_settings(e: ExecutionSettings) -> ServiceSettings:
    return ServiceSettings(
        poll_interval=e.poll_interval,
        confirm_timeout=e.confirm_timeout,
        submit_attempts=e.submit_attempts,
        max_command_age=e.max_command_age,
        reconcile_interval=e.reconcile_interval,
        lookback=e.lookback,
    )
