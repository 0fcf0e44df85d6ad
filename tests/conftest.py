"""Shared fixtures. Servers: see tests/servers.py (a missing Kafka or PostgreSQL fails, never skips)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import servers as discovery


@pytest.fixture(scope="session")
def servers() -> Iterator[discovery.Servers]:
    try:
        with discovery.find() as found:
            print(f"\ntest servers: {discovery.describe(found)}")
            yield found
    except Exception as exc:  # any failure to reach or start them is a failure of the run
        pytest.fail(f"no Kafka/PostgreSQL for the tests: {exc}", pytrace=False)
