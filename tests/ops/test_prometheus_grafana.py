"""The Prometheus rules, Alertmanager config and Grafana dashboards are valid, and speak only of metrics the
engine really exports."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from prometheus_client import REGISTRY

import adapters.telemetry
import projections.lag
import projections.metrics
from engine.__main__ import _parser
from engine.config import KafkaSettings, StackSettings
from tests.support import REPO

OPS = REPO / "ops"
_ = (adapters.telemetry, projections.lag, projections.metrics)  # imported for their metrics


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is required (Debian: apt-get install prometheus prometheus-alertmanager)"
    return path


def run(*args: str) -> str:
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def exported() -> set[str]:
    names = {"up"}
    for collector in list(REGISTRY._collector_to_names):
        for family in collector.describe() if hasattr(collector, "describe") else collector.collect():
            kind = family.type
            if kind == "counter":
                names |= {family.name + "_total", family.name}
            elif kind == "histogram":
                names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
            else:
                names.add(family.name)
    return names


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:engine|process)_[a-z0-9_]+|up)\b(?=\s*[\[{)\s,]|$)", expr))


def test_alert_rules_pass_promtool_check_and_unit_tests() -> None:
    promtool = tool("promtool")
    assert "SUCCESS" in run(promtool, "check", "rules", str(OPS / "prometheus" / "alerts.yml"))
    assert "SUCCESS" in run(promtool, "test", "rules", str(OPS / "prometheus" / "alerts_test.yml"))


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((OPS / "prometheus" / "alerts.yml").read_text())
    tests = (OPS / "prometheus" / "alerts_test.yml").read_text()
    names = [r["alert"] for g in rules["groups"] for r in g["rules"]]
    assert len(names) >= 11
    for name in names:
        assert re.search(rf"alertname: {name}\b", tests), f"alert {name} has no promtool test"


def test_prometheus_and_alertmanager_configs_are_valid() -> None:
    run(tool("promtool"), "check", "config", str(OPS / "prometheus" / "prometheus.yml"))
    run(tool("amtool"), "check-config", str(OPS / "alertmanager" / "alertmanager.yml"))


@pytest.mark.parametrize("dashboard", ["event-lag", "trading", "system"])
def test_every_dashboard_query_uses_only_exported_metrics(dashboard: str) -> None:
    board = json.loads((OPS / "grafana" / "dashboards" / f"{dashboard}.json").read_text())
    known = exported()
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    # and the template variables' label_values(...) queries
    exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    assert exprs
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - known
        assert not unknown, f"{dashboard}: {expr!r} uses metrics the engine does not export: {unknown}"


def test_every_alert_uses_only_exported_metrics() -> None:
    rules = yaml.safe_load((OPS / "prometheus" / "alerts.yml").read_text())
    known = exported()
    for group in rules["groups"]:
        for rule in group["rules"]:
            unknown = metric_names(rule["expr"]) - known
            assert not unknown, f"alert {rule['alert']} uses metrics the engine does not export: {unknown}"


def test_the_metric_check_would_catch_a_typo() -> None:
    assert metric_names("sum(rate(engine_fils_total[5m]))") - exported() == {"engine_fils_total"}


def test_compose_runs_the_same_stack_with_health_checks_on_loopback() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    assert {"kafka", "postgres", "engine", "prometheus", "alertmanager", "grafana"} <= set(services)
    for name, svc in services.items():
        assert "healthcheck" in svc, f"{name} has no health check"
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for dep in svc.get("depends_on", {}).values():
            assert dep["condition"] == "service_healthy"
    assert services["engine"]["depends_on"].keys() == {"kafka", "postgres"}
    assert all(services[s].get("profiles") == ["monitoring"] for s in ("prometheus", "alertmanager", "grafana"))
    # the provisioned dashboards are the ones in the repository
    mounts = " ".join(services["grafana"]["volumes"])
    assert "./ops/grafana/dashboards" in mounts and "./ops/grafana/provisioning" in mounts


def _listeners(text: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` as {name: (host, port)}."""
    out = {}
    for item in text.split(","):
        name, address = item.split("://")
        host, port = address.rsplit(":", 1)
        out[name] = (host, int(port))
    return out


def _properties(path: Path) -> dict[str, str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_compose_runs_kafka_as_one_kraft_node_like_the_local_stack() -> None:
    """The kafka service is its own controller (KRaft: no ZooKeeper), with a quorum of itself that it can reach on
    its controller listener, advertises what the engine and the host use, and is set up as the local stack's
    broker (ops/kafka/server.properties), same Kafka version included."""
    services = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    kafka = services["kafka"]
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert env["KAFKA_PROCESS_ROLES"].split(",") == ["broker", "controller"]
    assert not [k for k in env if "ZOOKEEPER" in k]

    listeners = _listeners(env["KAFKA_LISTENERS"])
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols) == set(listeners)
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners
    # a quorum of one voter: this node, reached on its controller listener
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == 1
    node_id, address = voters[0].split("@")
    host, port = address.rsplit(":", 1)
    assert node_id == env["KAFKA_NODE_ID"] and host == "kafka" and int(port) == listeners[controller][1]

    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    assert controller not in advertised and set(advertised) <= set(listeners)
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    for name, (_, port) in advertised.items():
        assert listeners[name][1] == port, f"listener {name} is advertised on another port than it listens on"
    # the engine's container and the health check use the internal listener; the host uses the published one
    inside = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert services["engine"]["environment"]["ENGINE_KAFKA__BOOTSTRAP"] == "{}:{}".format(*advertised[inside])
    assert "--bootstrap-server {}:{}".format(*advertised[inside]) in " ".join(kafka["healthcheck"]["test"])
    # the host reaches it at the local stack's address (the default kafka.bootstrap), published on loopback only
    outside = [name for name, (host, _) in advertised.items() if host == "127.0.0.1"]
    assert len(outside) == 1
    port = advertised[outside[0]][1]
    assert f"127.0.0.1:{port}" == KafkaSettings().bootstrap
    assert kafka["ports"] == [f"127.0.0.1:{port}:{listeners[outside[0]][1]}"]

    # the local stack's broker settings, the same in compose (the listeners' names differ, not what they do)
    local = _properties(OPS / "kafka" / "server.properties")
    compose = {k.removeprefix("KAFKA_").lower().replace("_", "."): v for k, v in env.items()}
    same = {
        "process.roles",
        "node.id",
        "controller.listener.names",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "auto.create.topics.enable",
        "group.initial.rebalance.delay.ms",
    }
    assert {key: compose.get(key) for key in same} == {key: local[key] for key in same}
    assert kafka["image"] == f"apache/kafka:{StackSettings().kafka_version}"


def test_compose_is_valid_against_the_compose_specification_schema() -> None:
    """The strictest check there is without a Docker engine: the Compose Specification's own JSON schema
    (tests/data/compose-spec.json, from compose-spec/compose-spec, see tests/data/README.md). It refuses an unknown
    key, so a misspelt one cannot pass as ignored."""
    schema = json.loads((REPO / "tests" / "data" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors
    compose["services"]["engine"]["stop_grace_perod"] = "150s"
    assert list(validator.iter_errors(compose)), "the schema would let a misspelt key through"


def _seconds(duration: str) -> float:
    """A compose duration (``1m30s``, ``150s``, ``500ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_keeps_the_event_log_and_lets_the_engine_drain() -> None:
    services = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    # Kafka writes where KAFKA_LOG_DIRS says (the apache/kafka image's default is /tmp/kraft-combined-logs, in the
    # container): on its named volume, so `docker compose down` keeps the log PostgreSQL's offsets refer to
    kafka = services["kafka"]
    mounts = dict(v.split(":", 1) for v in kafka["volumes"])
    assert set(mounts) == {"kafka-data"}
    for log_dir in str(kafka["environment"]["KAFKA_LOG_DIRS"]).split(","):
        assert Path(log_dir) == Path(mounts["kafka-data"]) or Path(mounts["kafka-data"]) in Path(log_dir).parents
    # docker compose stop sends SIGTERM, then SIGKILL after stop_grace_period (10 s by default): the engine drains
    # for up to --drain-timeout first
    drain = _parser().parse_args(["run"]).drain_timeout
    assert drain == 120.0
    assert _seconds(services["engine"]["stop_grace_period"]) > drain
    # the local stack's PostgreSQL: Debian 12's, major version 15
    assert services["postgres"]["image"] == "postgres:15"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` (or a folder above it) out of the build context: its patterns, read as
    Docker reads them (relative to the context, ``**`` any depth, a trailing ``/`` ignored, ``!`` re-includes)."""
    out = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.removeprefix("!").rstrip("/")
        anywhere = pattern.removeprefix("**/")
        if any(
            fnmatch.fnmatchcase(p, pattern) or (anywhere != pattern and fnmatch.fnmatchcase(p.split("/")[-1], anywhere))
            for p in prefixes
        ):
            out = not negate
    return out


def test_dockerignore_keeps_state_history_and_caches_out_of_the_build_context() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for path in [
        ".state/postgres/data/base/1/1259",
        ".state/kafka/log/market.ticks-0/00000000000000000000.log",
        ".git/objects/pack/x.pack",
        "engine/__pycache__/app.cpython-311.pyc",
        "adapters/venues/ccxt/__pycache__/_venue.cpython-311.pyc",
        ".mypy_cache/3.11/engine/app.data.json",
        ".ruff_cache/content",
        ".pytest_cache/v/cache/lastfailed",
        ".hypothesis/constants/x",
        "trading_engine.egg-info/PKG-INFO",
    ]:
        assert _ignored(path, patterns), f"{path} would be sent to the Docker daemon"
    # and nothing the Dockerfile copies
    dockerfile = (OPS / "docker" / "Dockerfile").read_text()
    copied = [src for line in dockerfile.splitlines() if line.startswith("COPY ") for src in line.split()[1:-1]]
    assert {"requirements.lock", "pyproject.toml", "README.md", "engine", "ops"} <= set(copied)
    for src in copied:
        assert not _ignored(src, patterns), f"the Dockerfile copies {src}, which .dockerignore leaves out"
    for kept in ["engine/app.py", "ops/prometheus/alerts.yml", "adapters/dashboard.html", "events/__init__.py"]:
        assert not _ignored(kept, patterns), kept
