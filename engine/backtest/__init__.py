"""``python -m engine backtest``: a strategy on recorded trades, through the real pipeline, in a run of its own.

A run named R is the topics prefixed ``bt_R.`` and the audit schema ``bt_R`` (:class:`Run`): the feed publishes the
file's trades to Kafka, the engine trades them on the paper venue and publishes its decisions, the audit projection
folds them into PostgreSQL, all as ``python -m engine run`` does, as fast as it goes and apart from production and
from any other run. The report reads the schema's views (``performance``, ``rejections_by_rule``, ``equity_1m``:
the figures are computed there and only there), prints them and writes an HTML page that opens offline.
"""

from engine.backtest._html import read_series, render, write
from engine.backtest._report import FIGURES, SORTABLE, Report, format_compare, format_report, read_report, table, value
from engine.backtest._runs import Run, RunInfo, RunNameError, default_name, drop, exists, list_runs
from engine.backtest._sweep import ASCENDING, Outcome, combinations, run_all, sort_key, split_params

__all__ = [
    "ASCENDING",
    "FIGURES",
    "SORTABLE",
    "Outcome",
    "Report",
    "Run",
    "RunInfo",
    "RunNameError",
    "combinations",
    "default_name",
    "drop",
    "exists",
    "format_compare",
    "format_report",
    "list_runs",
    "read_report",
    "read_series",
    "render",
    "run_all",
    "sort_key",
    "split_params",
    "table",
    "value",
    "write",
]
