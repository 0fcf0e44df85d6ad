"""ops/alertmanager/alertmanager.yml: valid for Alertmanager as shipped and with its commented examples (e-mail,
Slack, Telegram) turned on, and its receiver is the engine's webhook."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

SHIPPED = Path(__file__).resolve().parents[2] / "ops" / "alertmanager" / "alertmanager.yml"
_EXAMPLE = re.compile(
    r"^(\s*)# (\s*)((?:routes|receiver|continue|webhook_configs|email_configs|slack_configs|telegram_configs"
    r"|send_resolved|max_alerts|from|smarthost|auth_\w+|channel|title|text|chat_id|parse_mode):.*"
    r"|- (?:matchers|name|url|to|api_url_file|bot_token):.*)$"
)


def with_examples(text: str) -> str:
    """The file with its commented examples uncommented."""
    return "\n".join(_EXAMPLE.sub(r"\1\2\3", line) for line in text.splitlines()) + "\n"


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool is not installed: apt-get install prometheus-alertmanager", pytrace=False)
    return subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60, check=False)


def test_the_shipped_receiver_is_the_engines_webhook_and_amtool_takes_the_file() -> None:
    conf = yaml.safe_load(SHIPPED.read_text())
    (receiver,) = [r for r in conf["receivers"] if r["name"] == conf["route"]["receiver"]]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"] == "http://127.0.0.1:8000/alerts/webhook" and hook["send_resolved"] is True
    out = _check(SHIPPED)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_commented_examples_are_valid_alertmanager_configuration(tmp_path: Path) -> None:
    full = with_examples(SHIPPED.read_text())
    conf = yaml.safe_load(full)
    (people,) = [r for r in conf["receivers"] if r["name"] == "engine-and-people"]
    assert {"webhook_configs", "email_configs", "slack_configs", "telegram_configs"} <= set(people)
    assert conf["route"]["routes"][0]["receiver"] == "engine-and-people"
    path = tmp_path / "alertmanager.yml"
    path.write_text(full)
    out = _check(path)
    assert out.returncode == 0, out.stdout + out.stderr
