"""A state snapshot's fingerprint covers the code that decides the core's state, and only that: a change to the CLI
keeps the snapshots usable, a change to the trader does not."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from engine.core import state_snapshot
from tests.support import REPO


def _copy(tmp: Path) -> Path:
    root = tmp / "repo"
    for rel in ("engine", "events", "adapters"):
        shutil.copytree(REPO / rel, root / rel, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_change_to_the_cli_keeps_the_fingerprint_a_change_to_the_trader_changes_it(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    before = state_snapshot.code_hash(root)
    assert before == state_snapshot.code_hash(REPO)
    for rel in ("engine/__main__.py", "engine/app.py", "engine/status.py", "engine/logging.py", "engine/execution.py"):
        with (root / rel).open("a") as f:
            f.write("\n# a log line changed\n")
    assert state_snapshot.code_hash(root) == before
    with (root / "engine/core/trader.py").open("a") as f:
        f.write("\n# the trader changed\n")
    assert state_snapshot.code_hash(root) != before


def test_every_module_of_ours_that_decides_the_core_state_is_in_the_fingerprint() -> None:
    probe = (
        "import json, sys\n"
        "import engine.core, engine.core.state_snapshot, engine.core.breaker, engine.core.daily_loss\n"
        "import adapters.venues.paper\n"
        "print(json.dumps({m: getattr(sys.modules[m], '__file__', None) for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True).stdout
    hashed = {REPO / rel for rel in state_snapshot.DECIDING}
    ours = {
        Path(path)
        for name, path in json.loads(out).items()
        if path and name.split(".")[0] in ("engine", "events") and name not in ("engine",)
    }
    missing = sorted(str(p.relative_to(REPO)) for p in ours if not any(p == h or h in p.parents for h in hashed))
    assert missing == [], f"imported by the core but not in its fingerprint: {missing}"
