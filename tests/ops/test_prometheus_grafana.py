"""The Prometheus rules, Alertmanager config and Grafana dashboards are valid, and speak only of metrics the
engine really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import adapters.telemetry
import projections.lag
import projections.metrics
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
    return set(re.findall(r"\b((?:engine|process)_[a-z0-9_]+|up)\b(?=\s*[\[{)\s]|$)", expr))


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
        assert "healthcheck" in svc or name == "grafana", f"{name} has no health check"
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
