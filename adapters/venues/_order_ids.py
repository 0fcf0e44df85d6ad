"""The client order id <-> venue order id map a live adapter keeps of the orders it has seen."""

from __future__ import annotations


class OrderIds:
    """Both directions of ``client_order_id <-> venue_order_id``, in memory (empty after a restart)."""

    def __init__(self) -> None:
        self._venue: dict[str, str] = {}  # client order id -> venue order id
        self._client: dict[str, str] = {}  # and back

    def remember(self, client_order_id: str, venue_order_id: str) -> None:
        self._venue[client_order_id] = venue_order_id
        self._client[venue_order_id] = client_order_id

    def venue_id(self, client_order_id: str) -> str | None:
        return self._venue.get(client_order_id)

    def client_id(self, venue_order_id: str) -> str | None:
        return self._client.get(venue_order_id)

    def knows_venue_id(self, venue_order_id: str) -> bool:
        return venue_order_id in self._client

    def knows_client_id(self, client_order_id: str) -> bool:
        return client_order_id in self._venue

    def by_client_id(self) -> dict[str, str]:
        """A copy of ``client_order_id -> venue_order_id``."""
        return dict(self._venue)
