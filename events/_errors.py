"""The error a record that is not a valid event raises (defined apart, so that the codec and the validation
rules can both use it)."""

from __future__ import annotations


class DecodeError(ValueError):
    """A record is not a valid event; ``reason`` says why, in words fit for a dead-letter header."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
