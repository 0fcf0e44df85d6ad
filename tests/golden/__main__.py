"""``python -m tests.golden --write``: write the golden outputs again (see cases.py)."""

import sys

from tests.golden.cases import CASES, write

if sys.argv[1:] != ["--write"]:
    sys.exit("usage: python -m tests.golden --write")
for name in CASES:
    print(name, write(name), "events")
