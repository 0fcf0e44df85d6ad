"""docs/strategies.md stays true: its tutorial's strategy is docs/examples/breakout.py, that file passes
``strategy check`` with the output the tutorial shows, and the parameter error it shows is the one the engine
prints. No servers needed."""

from __future__ import annotations

import re

from tests.support import REPO, run_cli

DOC = REPO / "docs" / "strategies.md"
EXAMPLES = REPO / "docs" / "examples"
MARKER = "<!-- docs/examples/breakout.py:"


def _block_after_marker(text: str) -> str:
    """The fenced python block that follows the marker line."""
    start = text.index(MARKER)
    match = re.compile(r"```python\n(.*?)\n```\n", re.DOTALL).search(text, start)
    assert match is not None, f"no ```python block after {MARKER!r} in {DOC}"
    assert text[start : match.start()].count("\n") == 1, "the block must follow the marker line directly"
    return match.group(1) + "\n"


def test_the_tutorials_listing_is_the_example_file() -> None:
    listing = _block_after_marker(DOC.read_text())
    example = (EXAMPLES / "breakout.py").read_text()
    assert listing == example, "docs/strategies.md and docs/examples/breakout.py differ: copy the file into the doc"


def test_the_example_passes_the_check_as_the_tutorial_shows() -> None:
    res = run_cli(["strategy", "check", "breakout:Breakout", "--strategy-path", str(EXAMPLES)], {})
    assert res.returncode == 0, res.stdout + res.stderr
    (line,) = res.stdout.splitlines()
    assert line.startswith("breakout: deterministic: 5000 ticks"), line
    assert line in DOC.read_text(), f"the tutorial shows another output than: {line}"


def test_a_bad_parameter_is_refused_with_the_line_the_reference_shows() -> None:
    res = run_cli(["strategy", "check", "breakout:Breakout", "--strategy-path", str(EXAMPLES), "--param", "bars=0"], {})
    assert res.returncode == 2, res.stdout + res.stderr
    (line,) = res.stderr.splitlines()
    assert line.startswith("error: invalid configuration: strategy.params: need 1 <= exit_bars <= bars"), line
    assert line in DOC.read_text(), f"the reference shows another error than: {line}"
