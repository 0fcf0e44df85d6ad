"""Debian's Prometheus and Alertmanager for the local stack (``stack up --with-prometheus``).

Prometheus scrapes the engine's /metrics, loads ``ops/prometheus/alerts.yml`` and sends alerts to the local
Alertmanager. Both listen on 127.0.0.1 only; their data lives under ``<state>/prometheus`` and
``<state>/alertmanager``.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from pathlib import Path

from ops._proc import alive, read_pid, terminate, wait_until

OPS = Path(__file__).resolve().parent


class MonitoringError(Exception):
    pass


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MonitoringError(f"{name} is not installed: apt-get install prometheus prometheus-alertmanager")
    return path


def render_config(state: Path, engine_target: str, alertmanager_port: int) -> Path:
    state.mkdir(parents=True, exist_ok=True)
    shutil.copy(OPS / "prometheus" / "alerts.yml", state / "alerts.yml")
    conf = state / "prometheus.yml"
    conf.write_text(
        "# rendered by `python -m engine stack up --with-prometheus`\n"
        "global: {scrape_interval: 5s, evaluation_interval: 15s}\n"
        "rule_files: [alerts.yml]\n"
        f"alerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:{alertmanager_port}']}}]}}]}}\n"
        "scrape_configs:\n"
        f"  - {{job_name: engine, static_configs: [{{targets: ['{engine_target}']}}]}}\n"
    )
    return conf


def _start(name: str, args: list[str], state: Path) -> int:
    pid = read_pid(state / f"{name}.pid")
    if alive(pid):
        assert pid is not None
        return pid
    out = (state / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    (state / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - a fixed loopback URL
            return bool(r.status == 200)
    except OSError:
        return False


def start(base: Path, engine_target: str, prometheus_port: int, alertmanager_port: int, seconds: float) -> None:
    pstate, astate = base / "prometheus", base / "alertmanager"
    astate.mkdir(parents=True, exist_ok=True)
    conf = render_config(pstate, engine_target, alertmanager_port)
    _start(
        "alertmanager",
        [
            _binary("prometheus-alertmanager"),
            f"--config.file={OPS / 'alertmanager' / 'alertmanager.yml'}",
            f"--storage.path={astate / 'data'}",
            f"--web.listen-address=127.0.0.1:{alertmanager_port}",
            "--cluster.listen-address=",
        ],
        astate,
    )
    _start(
        "prometheus",
        [
            _binary("prometheus"),
            f"--config.file={conf}",
            f"--storage.tsdb.path={pstate / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--storage.tsdb.retention.time=7d",
        ],
        pstate,
    )
    for name, url, state in (
        ("Prometheus", f"http://127.0.0.1:{prometheus_port}/-/ready", pstate),
        ("Alertmanager", f"http://127.0.0.1:{alertmanager_port}/-/ready", astate),
    ):
        if not wait_until(lambda u=url: _ready(u), seconds):  # type: ignore[misc]
            log = state / f"{name.lower()}.log"
            raise MonitoringError(f"{name} did not answer in time; read {log}")


def running(base: Path, name: str) -> int | None:
    pid = read_pid(base / name / f"{name}.pid")
    return pid if alive(pid) else None


def stop(base: Path) -> None:
    for name in ("prometheus", "alertmanager"):
        pid = running(base, name)
        if pid is not None:
            terminate(pid, grace=20)
        (base / name / f"{name}.pid").unlink(missing_ok=True)
