"""The Grafana dashboards in ops/grafana/dashboards, built with Grafana's own typed builders (grafana-foundation-sdk).

    python ops/grafana/build.py           # writes event-lag.json, system.json, trading.json
    python ops/grafana/build.py --check   # exits 1, one line per file, when a committed file differs

The JSON files are generated: edit this file, never them. Each dashboard imports into any Grafana: no datasource uid
is written anywhere, every panel and query reads the `datasource` variable (`${datasource}`, of type datasource,
Prometheus), and `__inputs` asks the import dialog for the Prometheus datasource (DS_PROMETHEUS), which becomes that
variable's default. Provisioned from files (compose's monitoring profile) nothing replaces `${DS_PROMETHEUS}`: the
variable's default then falls back to its text, the name of the datasource ops/grafana/provisioning provides
(`PROVISIONED_DATASOURCE`). Template variables `instance`, `instrument`, `strategy` and `currency` filter the queries
of the metrics that carry those labels; "All" is `.*`, which also matches a series without the label.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import BigValueColorMode, BigValueGraphMode
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"

# What the import dialog asks for, and the name of the datasource compose provisions (provisioning/datasources).
INPUT = "DS_PROMETHEUS"
PROVISIONED_DATASOURCE = "Prometheus"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
GRAFANA_VERSION = "11.6.0"  # the SDK's schema (schemaVersion 41); newer Grafana migrates it on load

# label -> the metric whose label values fill the variable's list (each chained on the ones before it)
VARIABLES: dict[str, str] = {
    "instance": "engine_build_info",
    "instrument": 'engine_last_price{instance=~"$instance"}',
    "strategy": 'engine_position{instance=~"$instance", instrument=~"$instrument"}',
    "currency": 'engine_account_balance{instance=~"$instance"}',
}
LABELS = {"instance": "Instance", "instrument": "Instrument", "strategy": "Strategy", "currency": "Currency"}

# Latency of the trading loop (adapters/telemetry.py), drawn on the system dashboard.
LATENCY = ("engine_tick_to_decision_seconds", "engine_decision_to_ack_seconds")


def where(*labels: str) -> str:
    """A selector that filters on the dashboard's variables: ``where("instance", "instrument")``."""
    return "{" + ", ".join(f'{label}=~"${label}"' for label in labels) + "}"


def query(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)


def instant(expr: str, ref: str) -> prometheus.Dataquery:
    """A table query: the value now, one row per series, its labels as columns."""
    return (
        prometheus.Dataquery()
        .expr(expr)
        .instant()
        .format(PromQueryFormat.TABLE)
        .legend_format("__auto")
        .ref_id(ref)
        .datasource(DATASOURCE)
    )


def series(
    title: str, unit: str, targets: Sequence[prometheus.Dataquery], description: str = "", width: int = 12
) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).height(8).span(width)
    if description:
        panel = panel.description(description)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def unit_of_query(ref: str, unit: str) -> tuple[str, list[model.DynamicConfigValue]]:
    return ref, [model.DynamicConfigValue(id_val="unit", value=unit)]


def datasource_variable() -> db.DatasourceVariable:
    return (
        db.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(model.VariableOption(selected=True, text=PROVISIONED_DATASOURCE, value="${" + INPUT + "}"))
    )


def label_variable(label: str) -> db.QueryVariable:
    return (
        db.QueryVariable(label)
        .label(LABELS[label])
        .datasource(DATASOURCE)
        .query(f"label_values({VARIABLES[label]}, {label})")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )


PanelBuilder = timeseries.Panel | stat.Panel | table.Panel


def board(uid: str, title: str, labels: Sequence[str], panels: Sequence[PanelBuilder]) -> db.Dashboard:
    out = (
        db.Dashboard(title)
        .uid(uid)
        .tags(["trading-engine"])
        .readonly()
        .refresh("5s")
        .time("now-30m", "now")
        .timezone("browser")
        .version(1)
        .with_variable(datasource_variable())
    )
    for label in labels:
        out = out.with_variable(label_variable(label))
    for number, panel in enumerate(panels, start=1):
        out = out.with_panel(panel.id(number))
    return out


def event_lag() -> db.Dashboard:
    i = where("instance")
    return board(
        "engine-lag",
        "Event lag",
        ["instance"],
        [
            series(
                "Lag, events behind the log",
                "short",
                [query(f"sum by (projection, topic, partition) (engine_projection_lag_events{i})", LAG_LEGEND)],
            ),
            series(
                "Lag, seconds behind",
                "s",
                [query(f"max by (projection, topic, partition) (engine_projection_lag_seconds{i})", LAG_LEGEND)],
            ),
            series(
                "Produce vs consume rate",
                "ops",
                [
                    query(
                        f"sum by (projection) (rate(engine_projection_log_end_offset{i}[1m]))",
                        "produced ({{projection}}'s topics)",
                    ),
                    query(
                        f"sum by (projection) (rate(engine_projection_applied_events_total{i}[1m]))",
                        "applied by {{projection}}",
                        "B",
                    ),
                ],
            ),
            series(
                "Growing or draining (lag change per second)",
                "ops",
                [query(f"sum by (projection) (deriv(engine_projection_lag_events{i}[2m]))", "{{projection}}")],
            ),
            series(
                "Dead-lettered records",
                "short",
                [query(f"sum by (consumer) (increase(engine_dead_lettered_total{i}[5m]))", "{{consumer}}")],
                "Records parked on the dead-letter topic in the last 5 minutes",
            ),
            series(
                "Projection write latency p99",
                "s",
                [
                    query(
                        "histogram_quantile(0.99, sum by (le, projection) "
                        f"(rate(engine_postgres_write_duration_seconds_bucket{i}[5m])))",
                        "{{projection}}",
                    )
                ],
            ),
        ],
    )


LAG_LEGEND = "{{projection}} {{topic}}[{{partition}}]"


def latency(metric: str, title: str) -> timeseries.Panel:
    sel = where("instance", "instrument")
    return series(
        title,
        "s",
        [
            query(
                f"histogram_quantile({q}, sum by (le, instrument) (rate({metric}_bucket{sel}[5m])))",
                f"p{round(q * 100)} {{{{instrument}}}}",
                ref,
            )
            for q, ref in ((0.5, "A"), (0.99, "B"))
        ],
        "Median and 99th percentile over 5 minutes, one observation per order decision",
    )


def system() -> db.Dashboard:
    i = where("instance")
    return board(
        "engine-system",
        "System",
        ["instance", "instrument"],
        [
            series(
                "Exchange API latency p99",
                "s",
                [
                    query(
                        "histogram_quantile(0.99, sum by (le, venue) "
                        f"(rate(engine_exchange_request_duration_seconds_bucket{i}[5m])))",
                        "{{venue}}",
                    )
                ],
            ),
            series(
                "Exchange API requests and errors",
                "reqps",
                [
                    query(f"sum by (venue) (rate(engine_exchange_requests_total{i}[5m]))", "requests {{venue}}"),
                    query(f"sum by (venue) (rate(engine_exchange_errors_total{i}[5m]))", "errors {{venue}}", "B"),
                ],
            ),
            series(
                "Kafka and PostgreSQL up",
                "none",
                [
                    query(f"min by (instance) (engine_kafka_up{i})", "Kafka {{instance}}"),
                    query(f"min by (instance) (engine_postgres_up{i})", "PostgreSQL {{instance}}", "B"),
                ],
                "1 when the last call succeeded (a background probe keeps it current), 0 when it failed",
            )
            .min(0)
            .max(1),
            series(
                "Kafka messages",
                "ops",
                [
                    query(f"sum by (topic) (rate(engine_kafka_messages_produced_total{i}[1m]))", "produced {{topic}}"),
                    query(
                        f"sum by (consumer) (rate(engine_kafka_messages_consumed_total{i}[1m]))",
                        "consumed {{consumer}}",
                        "B",
                    ),
                ],
            ),
            series(
                "PostgreSQL writes",
                "ops",
                [query(f"sum by (projection) (rate(engine_postgres_writes_total{i}[1m]))", "{{projection}}")],
            ),
            series(
                "Process CPU",
                "percentunit",
                [query(f"rate(process_cpu_seconds_total{i}[1m])", "{{job}} {{instance}}")],
                "CPU seconds per second: 1 is one core",
            ),
            series(
                "Process memory",
                "bytes",
                [query(f"process_resident_memory_bytes{i}", "{{job}} {{instance}}")],
            ),
            series("Scrape up", "none", [query(f"up{i}", "{{job}} {{instance}}")]).min(0).max(1),
            latency(LATENCY[0], "Tick to decision (trading loop)"),
            latency(LATENCY[1], "Decision to Kafka ack"),
        ],
    )


def breaker() -> stat.Panel:
    return (
        stat.Panel()
        .title("Circuit breaker")
        .description("0 = trading, 1 = halted (python -m engine halt / resume)")
        .datasource(DATASOURCE)
        .height(8)
        .span(12)
        .unit("none")
        .with_target(query(f"max(engine_circuit_breaker_state{where('instance')})", "breaker"))
        .mappings(
            [
                model.ValueMap(
                    options={
                        "0": model.ValueMappingResult(text="trading", color="green", index=0),
                        "1": model.ValueMappingResult(text="halted", color="red", index=1),
                    }
                )
            ]
        )
        .thresholds(
            db.ThresholdsConfig()
            .mode(model.ThresholdsMode.ABSOLUTE)
            .steps([model.Threshold(value=None, color="green"), model.Threshold(value=1, color="red")])
        )
        .color_mode(BigValueColorMode.BACKGROUND)
        .graph_mode(BigValueGraphMode.NONE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


POSITION_COLUMNS = {  # table column -> header, in this order
    "instrument": "Instrument",
    "strategy": "Strategy",
    "Value #POSITION": "Position",
    "base": "Base",
    "Value #REALIZED": "Realized PnL",
    "Value #UNREALIZED": "Unrealized PnL",
    "quote": "Quote",
}


def positions_table() -> table.Panel:
    """Now, one row per (instrument, strategy): the position in its base currency, realized and unrealized PnL in
    the quote currency. The currency label is renamed base or quote so the three queries share only instrument and
    strategy, on which the merge transformation joins them."""
    money = where("instance", "instrument", "strategy", "currency")

    def as_(label: str, metric: str, selector: str) -> str:
        renamed = f'label_replace({metric}{selector}, "{label}", "$1", "currency", "(.*)")'
        return f"sum by (instrument, strategy, {label}) ({renamed})"

    return (
        table.Panel()
        .title("Positions now")
        .description("A strategy's position per instrument, with its realized (gross of fees) and unrealized PnL")
        .datasource(DATASOURCE)
        .height(8)
        .span(24)
        .unit("short")
        .with_target(instant(as_("base", "engine_position", money), "POSITION"))
        .with_target(instant(as_("quote", "engine_realized_pnl", money), "REALIZED"))
        .with_target(instant(as_("quote", "engine_unrealized_pnl", money), "UNREALIZED"))
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "indexByName": {name: index for index, name in enumerate(POSITION_COLUMNS)},
                    "renameByName": POSITION_COLUMNS,
                },
            )
        )
        .override_by_name("Base", [model.DynamicConfigValue(id_val="unit", value="none")])
        .override_by_name("Quote", [model.DynamicConfigValue(id_val="unit", value="none")])
    )


def trading() -> db.Dashboard:
    i = where("instance")
    pos = where("instance", "instrument", "strategy")
    money = where("instance", "instrument", "strategy", "currency")
    account = where("instance", "currency")
    priced = where("instance", "instrument", "currency")
    per_instrument = where("instance", "instrument")
    return board(
        "engine-trading",
        "Trading",
        ["instance", "instrument", "strategy", "currency"],
        [
            series(
                "Realized and unrealized PnL",
                "short",
                [
                    query(
                        f"sum by (instrument, currency) (engine_realized_pnl{money})",
                        "realized {{instrument}} ({{currency}})",
                    ),
                    query(
                        f"sum by (instrument, currency) (engine_unrealized_pnl{money})",
                        "unrealized {{instrument}} ({{currency}})",
                        "B",
                    ),
                ],
                "In each instrument's quote currency (the legend says which)",
            ),
            series(
                "Equity and today's PnL",
                "short",
                [
                    query(f"sum by (currency) (engine_equity{account})", "equity {{currency}}"),
                    query(f"min by (currency) (engine_daily_pnl_ratio{account})", "today {{currency}}", "B"),
                ],
                "Equity in its currency; today's PnL as a share of the start-of-day equity",
            ).override_by_query(*unit_of_query("B", "percentunit")),
            series(
                "Order flow",
                "ops",
                [query(f"sum by (type) (rate(engine_order_events_total{per_instrument}[5m]))", "{{type}}")],
            ),
            series(
                "Rejections by rule",
                "short",
                [query(f"sum by (rule) (increase(engine_orders_rejected_total{pos}[15m]))", "{{rule}}")],
                "Orders refused in the last 15 minutes, by the rule that refused them",
            ),
            series(
                "Positions",
                "short",
                [
                    query(f"sum by (instrument, currency) (engine_position{money})", "{{instrument}} ({{currency}})"),
                    query(f"sum(engine_open_positions{i})", "open positions", "B"),
                ],
                "Each instrument's position in its base currency; the number of open (strategy, instrument) positions",
            ),
            breaker(),
            series(
                "Win rate, Sharpe, max drawdown",
                "percentunit",
                [
                    query(f"max(engine_win_rate_ratio{i})", "win rate"),
                    query(f"max by (currency) (engine_sharpe_ratio{account})", "Sharpe {{currency}}", "B"),
                    query(f"max by (currency) (engine_max_drawdown_ratio{account})", "max drawdown {{currency}}", "C"),
                ],
                "Win rate and drawdown as shares; the Sharpe ratio is a plain number",
            ).override_by_query(*unit_of_query("B", "none")),
            series(
                "Round trips: median win and median loss",
                "short",
                [
                    query(
                        f"histogram_quantile(0.5, sum by (currency, le) (rate(engine_trade_profit_bucket{money}[1h])))",
                        "median win {{currency}}",
                    ),
                    query(
                        f"-histogram_quantile(0.5, sum by (currency, le) (rate(engine_trade_loss_bucket{money}[1h])))",
                        "median loss {{currency}}",
                        "B",
                    ),
                ],
                "Net PnL of the round trips closed in the last hour, in their quote currency",
            ),
            series(
                "Last price",
                "short",
                [query(f"max by (instrument, currency) (engine_last_price{priced})", "{{instrument}} ({{currency}})")],
                "In the quote currency",
            ),
            series(
                "Fills and signals per minute",
                "opm",
                [
                    query(f"sum by (instrument) (rate(engine_fills_total{pos}[5m])) * 60", "fills {{instrument}}"),
                    query(
                        f"sum by (instrument) (rate(engine_signals_total{pos}[5m])) * 60", "signals {{instrument}}", "B"
                    ),
                ],
            ),
            positions_table(),
        ],
    )


register_default_plugins()  # so that from_json decodes panel options and queries into their types
BUILDERS: dict[str, Callable[[], db.Dashboard]] = {"event-lag": event_lag, "system": system, "trading": trading}


def render(build: Callable[[], db.Dashboard]) -> str:
    """The dashboard's JSON as written to its file: the SDK's model, with what the import dialog reads."""
    built = json.loads(JSONEncoder().encode(build().build()))
    # decoded into Grafana's typed model and encoded again: the file is what the model holds, defaults included, so
    # that reading it back (tests/ops/test_grafana_dashboards.py) loses or adds nothing
    out = json.loads(JSONEncoder().encode(model.Dashboard.from_json(built)))
    out["__inputs"] = [
        {
            "name": INPUT,
            "label": "Prometheus",
            "description": "The Prometheus that scrapes the engine",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    out["__requires"] = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
    ] + [
        {"type": "panel", "id": kind, "name": kind.capitalize(), "version": ""}
        for kind in sorted({p["type"] for p in out["panels"]})
    ]
    return json.dumps(out, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard is not what this writes")
    args = parser.parse_args(argv)
    stale = []
    for name, build in BUILDERS.items():
        path = DASHBOARDS / f"{name}.json"
        text = render(build)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(f"{path}: differs from what ops/grafana/build.py writes (run it)")
        else:
            path.write_text(text)
    for line in stale:
        print(line)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
