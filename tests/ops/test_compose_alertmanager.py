"""Under docker compose, Alertmanager delivers to the engine service's webhook (ops/docker/alertmanager.yml, mounted
by compose.yaml), not to 127.0.0.1, which in its container is Alertmanager itself; otherwise the same as the shipped
ops/alertmanager/alertmanager.yml. No Docker here: the files are compared and checked, not run."""

from __future__ import annotations

import shutil
import subprocess
from urllib.parse import urlsplit

import yaml

from tests.support import REPO

SHIPPED = REPO / "ops" / "alertmanager" / "alertmanager.yml"
COMPOSE_ONLY = REPO / "ops" / "docker" / "alertmanager.yml"


def test_compose_mounts_its_own_alertmanager_config() -> None:
    services = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    mounts = services["alertmanager"]["volumes"]
    # the image's --config.file is /etc/alertmanager/alertmanager.yml
    assert "./ops/docker/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in mounts
    assert not any(m.startswith("./ops/alertmanager/") for m in mounts)


def test_the_compose_config_sends_to_the_engine_service_and_is_otherwise_the_shipped_one() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    mine, shipped = yaml.safe_load(COMPOSE_ONLY.read_text()), yaml.safe_load(SHIPPED.read_text())
    hooks = [w for r in mine["receivers"] for w in r.get("webhook_configs", [])]
    assert hooks, "no webhook receiver"
    for hook in hooks:
        url = urlsplit(hook["url"])
        assert url.hostname in compose, f"{hook['url']}: not a compose service"
        assert (url.hostname, url.port, url.path) == ("engine", 8000, "/alerts/webhook")
    # the engine serves on 0.0.0.0:8000 in its container (the port the webhook is sent to)
    engine = compose["engine"]
    assert engine["environment"]["ENGINE_HTTP__HOST"] == "0.0.0.0"
    assert "ENGINE_HTTP__PORT" not in engine["environment"]  # the default, 8000
    # the same route and receivers, the webhook's address aside
    for receiver in shipped["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            assert urlsplit(hook["url"]).hostname == "127.0.0.1"  # the local stack's, next to the engine
            hook["url"] = hook["url"].replace("127.0.0.1", "engine", 1)
    assert mine == shipped


def test_amtool_accepts_the_compose_config() -> None:
    amtool = shutil.which("amtool")
    assert amtool, "amtool is required (Debian: apt-get install prometheus-alertmanager)"
    out = subprocess.run([amtool, "check-config", str(COMPOSE_ONLY)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
