from __future__ import annotations

import re

_PARTS = re.compile(r"(?P<where>(?:line|row) \d+): (?P<why>.*)", re.S)


class RecordedFileError(ValueError):
    """The file is not a trade file of a known format; the message (one line) says which file, where and why."""

    def parts(self, path: object) -> tuple[str, str]:
        """Where in ``path`` (``line N``, ``row N`` or empty) and why, from the message of an error about it."""
        text = str(self)
        prefix = f"{path}: "
        if text.startswith(prefix):
            text = text[len(prefix) :]
        m = _PARTS.fullmatch(text)
        return (m["where"], m["why"]) if m else ("", text)
