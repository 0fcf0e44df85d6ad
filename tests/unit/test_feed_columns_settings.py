"""A generic CSV's column mapping in the settings (``feed.columns``, ``[[feed.files]]`` entries' ``columns``) and on
the command line (``--columns``): checked when the settings load, one line naming what is wrong, exit 2, nothing
started; a TOML table and its text form are the same mapping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import config as cfg
from tests.support import TRADES

REPO = Path(__file__).resolve().parents[2]
MAPPING = "time=when:ms,price=px,amount=qty,side=side"


def _cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("ENGINE_")} | env
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], env=environ, cwd=REPO, capture_output=True, text=True, timeout=120
    )


def _feed(**feed: object) -> cfg.FeedSettings:
    return cfg.load(feed={"kind": "recorded", **feed}).feed


def test_a_toml_table_and_its_text_are_one_mapping(tmp_path: Path) -> None:
    toml = tmp_path / "engine.toml"
    toml.write_text(
        '[feed]\nkind = "recorded"\npath = "t.csv"\nsymbol = "XRP/ETH"\n'
        '[feed.columns]\ntime = "When:ms"\nprice = "px"\namount = "qty"\nside = "dir:B/S"\ndelimiter = "semicolon"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    old = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        from_toml = cfg.load(toml).feed
        os.environ["ENGINE_FEED__COLUMNS"] = "time=when:ms,price=px,amount=qty,side=dir:b/s,delimiter=;"
        from_env = cfg.load(toml).feed
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert (
        from_toml.columns
        == from_env.columns
        == "time=when:ms,price=px,amount=qty,side=dir:b/s,delimiter=semicolon,header=yes"
    )
    (f,) = from_toml.recorded_files()
    assert f.columns == from_toml.columns


def test_files_take_the_feeds_mapping_unless_they_have_their_own_or_another_format() -> None:
    feed = _feed(
        columns=MAPPING,
        files=[
            {"path": "a.csv", "symbol": "A/B"},
            {"path": "b.csv", "symbol": "A/B", "columns": "time=1:s,price=2,amount=3,buyer_maker=4"},
            {"path": "c.json", "symbol": "A/B", "format": "ccxt"},
        ],
    )
    assert [(f.format, f.columns) for f in feed.recorded_files()] == [
        ("auto", MAPPING + ",header=yes"),
        ("auto", "time=1:s,price=2,amount=3,buyer_maker=4,header=no"),
        ("ccxt", None),
    ]


@pytest.mark.parametrize(
    ("feed", "reason"),
    [
        ({"path": "t.csv", "symbol": "A/B", "format": "csv"}, "feed.format 'csv' needs feed.columns"),
        ({"path": "t.csv", "symbol": "A/B", "format": "ccxt", "columns": MAPPING}, "feed.columns is for format csv"),
        (
            {"path": "t.csv", "symbol": "A/B", "columns": "time=when,price=px,amount=q,side=s"},
            "feed.columns: time=when: give the unit",
        ),
        ({"files": [{"path": "t.csv", "symbol": "A/B", "format": "csv"}]}, "feed.files[0].format 'csv' needs"),
        ({"files": [{"path": "t.csv", "symbol": "A/B", "columns": "price=1"}]}, "no time and amount column"),
    ],
)
def test_a_bad_mapping_in_the_settings_is_one_line(feed: dict[str, object], reason: str) -> None:
    with pytest.raises(cfg.ConfigError) as err:
        _feed(**feed)
    assert reason in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--columns", "time=when:ms,price=px"], "feed.columns: no amount column"),
        (["--columns", "time=when:fortnights,price=px,amount=qty,side=side"], "(s, ms, us, ns or iso)"),
        (["--format", "csv"], "feed.format 'csv' needs feed.columns"),
        (["--format", "binance-trades", "--columns", MAPPING], "feed.columns is for format csv"),
        (["--columns", MAPPING], "no column 'when' (time) in the header"),  # the real trades: JSON, no such header
    ],
)
def test_a_bad_columns_option_stops_run_with_one_line(args: list[str], reason: str) -> None:
    res = _cli(["run", "--file", str(TRADES), "--symbol", "XRP/ETH", *args])
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0], res.stderr
    assert "Traceback" not in res.stderr
