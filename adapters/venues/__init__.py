"""Venues: where orders go. ``paper`` simulates one from the tick stream; ``ccxt`` and ``openalgo`` are live venues
(one package each, split by concern), built on ``base`` (credentials, redaction, the error kinds, the lifecycle) and
the private helpers they share (``_retry``, ``_metrics``, ``_order_ids``)."""

from adapters.venues._retry import Backoff, retry_unavailable

__all__ = ["Backoff", "retry_unavailable"]
