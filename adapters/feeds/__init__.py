"""Feeds: where ticks come from. Every feed yields ``(ts_event_ns, TickReceived)``.

- :class:`SyntheticFeed`: a seeded random walk (the default: a fresh machine needs no data);
- :class:`RecordedFeed`: a ccxt trade list (``[ts_ms, id, type, side, price, amount, cost]``),
  as fast as possible or at a speed factor.
"""

from adapters.feeds._base import Feed, publish_feed
from adapters.feeds.recorded import RecordedFeed
from adapters.feeds.synthetic import SyntheticFeed

__all__ = ["Feed", "RecordedFeed", "SyntheticFeed", "publish_feed"]
