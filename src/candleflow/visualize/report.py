"""The HTML report of a run: one self-contained file that works offline.

``write_report`` takes an in-memory :class:`~candleflow.backtest.BacktestResult`
or a results folder written by ``candleflow run --out`` (read back with
:func:`~candleflow.results.read_results`), gathers both into a :class:`ReportData`
and renders ``templates/report.html.j2``: a summary header with the headline
metrics as cards; one chart of price and trades, volume, oscillators, equity
and drawdown on a shared time axis (:mod:`candleflow.visualize.charts`, with
plotly.js's finance bundle embedded once, ``vendor/``); the metrics table, the
strategy YAML, the strategy graph as inline SVG and the trade table (prices at
the instrument's decimals, duration, costs).  Metric labels, formats, colours
and which metrics are cards come from :mod:`candleflow.portfolio.catalog`.

The strategy is compiled (a result's own, a results folder's again) for the
chart's indicator labels and levels (:mod:`candleflow.visualize.annotate`) and
for the graph: a results folder's ``graph.svg`` when it has one, otherwise
drawn with :func:`~candleflow.visualize.graph.render_graph` (annotated with
the run's node stats), which needs graphviz's ``dot``; without it, or when a
results folder's strategy no longer compiles, the report says why instead.

The page's ``#report`` element carries ``data-trades`` and
``data-expected-markers`` (two per trade); after plotly has drawn the chart, a
small script writes what is really in the chart's DOM: the trade markers
(``data-rendered-markers``), the markers per trace (``data-marker-traces``,
``trade-exit-stop_loss=3 ...``) and each x axis with the axis it follows
(``data-x-axes``), checked by ``tests/test_report_browser.py``.
"""

from __future__ import annotations

import functools
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import pandas as pd
import yaml
from markupsafe import Markup

from candleflow import __version__
from candleflow._atomic import write_text_atomic
from candleflow.backtest import BacktestResult
from candleflow.config import parse_strategy
from candleflow.dag.compiler import compile_strategy, find_workspace
from candleflow.dag.draw import render_graph
from candleflow.errors import CandleflowError
from candleflow.portfolio.catalog import CATALOG, METRICS, Metric, format_metric, label
from candleflow.results import read_results
from candleflow.visualize import charts
from candleflow.visualize.annotate import ChartNotes, chart_notes
from candleflow.vocab import NodeStats

if TYPE_CHECKING:
    from candleflow.dag.compiler import CompiledStrategy

TEMPLATES = Path(__file__).parent / "templates"
VENDOR = Path(__file__).parent / "vendor"
MAX_TRADE_ROWS = 1000

@dataclass
class ReportData:
    """Everything the report shows, whether it came from memory or from a results folder."""

    info: dict[str, Any]  # strategy, symbol, timeframe, file, candles, start, end
    metrics: dict[str, Any]
    candles: pd.DataFrame
    indicators: pd.DataFrame  # one column per indicator output: "sma_fast", "bb.upper"
    equity: pd.Series
    trades: pd.DataFrame
    strategy_text: str
    graph_svg: str | None
    graph_note: str | None
    notes: ChartNotes = field(default_factory=ChartNotes)  # indicator labels and levels, initial cash


def write_report(source: "BacktestResult | Path", output: Path) -> Path:
    """Write the HTML report of ``source`` (a result, or a results folder) to ``output``, atomically."""
    data = report_from_result(source) if isinstance(source, BacktestResult) else report_from_folder(Path(source))
    output = Path(output)
    write_text_atomic(output, render_report(data))
    return output


def report_from_result(result: "BacktestResult") -> ReportData:
    """The report's data from an in-memory run; the graph is drawn with the run's node stats."""
    strategy, candles = result.strategy, result.candles
    columns = {}
    for name, value in result.indicators().items():
        if isinstance(value, pd.DataFrame):
            columns.update({f"{name}.{column}": value[column] for column in value.columns})
        else:
            columns[name] = value
    text = result.source_text or yaml.safe_dump(strategy.model_dump(exclude_defaults=True), sort_keys=False)
    svg, note = _draw_graph(result.compiled, result.stats)
    return ReportData(
        info={"strategy": strategy.name, "symbol": strategy.symbol, "timeframe": strategy.timeframe,
              "file": result.compiled.file, "candles": len(candles), "start": candles.index[0],
              "end": candles.index[-1]},
        metrics=dict(result.metrics), candles=candles, indicators=pd.DataFrame(columns, index=candles.index),
        equity=result.equity, trades=result.trades, strategy_text=text, graph_svg=svg, graph_note=note,
        notes=chart_notes(result.compiled))


def report_from_folder(folder: Path) -> ReportData:
    """The report's data from a results folder; the graph is its ``graph.svg``, or drawn again."""
    files = read_results(folder)
    info = dict(files["metrics"]["run"])
    info["start"], info["end"] = pd.Timestamp(info["start"]), pd.Timestamp(info["end"])
    compiled, problem = _compile_saved(files["strategy"], info["file"])
    if files["graph"] is not None:
        svg, note = _inline_svg(files["graph"]), None
    elif compiled is None:
        svg, note = None, f"The strategy graph is not drawn: its strategy no longer compiles here ({problem})."
    else:
        svg, note = _draw_graph(compiled, {row["name"]: NodeStats(**row) for row in files["nodes"]})
    return ReportData(info=info, metrics=files["metrics"]["metrics"], candles=files["candles"],
                      indicators=files["indicators"], equity=files["equity"]["equity"], trades=files["trades"],
                      strategy_text=files["strategy"], graph_svg=svg, graph_note=note, notes=chart_notes(compiled))


def render_report(data: ReportData) -> str:
    """The report's HTML text."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    figure = charts.report_figure(data.candles, data.indicators, data.equity, data.trades, notes=data.notes)
    metrics = _metric_rows(data.metrics)
    decimals = charts.decimals_of(data.candles["close"].to_numpy())
    return environment.get_template("report.html.j2").render(
        info=data.info, period=_period(data.info), version=__version__,
        cards=[row for row in metrics if row["card"]], metrics=metrics, plotly_js=_markup(plotly_js()),
        chart=_markup(charts.to_html(figure)), caption=charts.caption(len(data.candles)),
        trades=_trade_rows(data.trades.head(MAX_TRADE_ROWS), decimals=decimals), n_trades=len(data.trades),
        max_trade_rows=MAX_TRADE_ROWS, strategy_text=data.strategy_text,
        graph_svg=_markup(data.graph_svg) if data.graph_svg else None, graph_note=data.graph_note)


@functools.lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js's finance bundle (scatter, bar, candlestick), vendored: see ``vendor/README.md``."""
    return (VENDOR / "plotly-finance.min.js").read_text(encoding="utf-8")


def _draw_graph(compiled: "CompiledStrategy", stats: dict[str, "NodeStats"] | None) -> tuple[str | None, str | None]:
    """(inline SVG, None), or (None, why not) when graphviz's ``dot`` is missing."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = render_graph(compiled, Path(tmp) / "graph.svg", stats=stats)
        except CandleflowError as exc:
            return None, f"The strategy graph is not drawn: {exc}."
        return _inline_svg(path.read_text(encoding="utf-8")), None


def _compile_saved(text: str, file: str) -> tuple["CompiledStrategy | None", CandleflowError | None]:
    """A results folder's strategy compiled again (its labels, levels and graph), or why it no longer does."""
    path = Path(file)
    try:
        return compile_strategy(parse_strategy(text, file=file),
                                workspace=find_workspace(path) if path.is_file() else Path.cwd(), file=file), None
    except CandleflowError as exc:
        return None, exc


def _inline_svg(svg: str) -> str:
    """The ``<svg>`` element alone, without the XML declaration and doctype."""
    return svg[svg.find("<svg"):]


def _markup(html: str):
    return Markup(html)


def _metric_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The catalog's metrics in its order, then any it does not know (an older results folder's)."""
    keys = [m.key for m in METRICS if m.key in metrics] + [key for key in metrics if key not in CATALOG]
    return [{"key": key, "label": label(key), "value": format_metric(key, metrics[key]),
             "tone": _tone(CATALOG.get(key), metrics[key]), "card": key in CATALOG and CATALOG[key].card}
            for key in keys]


def _tone(metric: Metric | None, value: Any) -> str:
    """The value's colour class: "up" on the better side of the metric's neutral value, "down" on the other."""
    if metric is None or metric.neutral is None or value is None or math.isnan(value) or value == metric.neutral:
        return ""
    return "up" if (value > metric.neutral) == (metric.better != "min") else "down"


def _trade_rows(trades: pd.DataFrame, *, decimals: int) -> list[dict[str, Any]]:
    """The trade table: prices at the instrument's decimals, sizes at theirs, money at 2 (an older results
    folder's trades have no spread and slippage column: shown as n/a)."""
    size_decimals = charts.decimals_of(trades["size"].to_numpy(), most=6) if len(trades) else 0
    spread = trades["spread_slippage"] if "spread_slippage" in trades.columns else pd.Series(math.nan, index=trades.index)
    rows = []
    for number, (trade, paid) in enumerate(zip(trades.itertuples(index=False), spread), start=1):
        pnl = float(trade.pnl)
        rows.append({
            "number": number, "side": trade.side, "entry_time": _time(trade.entry_time),
            "entry_price": f"{trade.entry_price:,.{decimals}f}", "exit_time": _time(trade.exit_time),
            "exit_price": f"{trade.exit_price:,.{decimals}f}", "size": f"{trade.size:,.{size_decimals}f}",
            "duration": charts.duration_text(pd.Timestamp(trade.exit_time) - pd.Timestamp(trade.entry_time)),
            "pnl": f"{pnl:+,.2f}", "return": f"{float(trade.return_pct):+.2%}",
            "commission": f"{float(trade.commission):,.2f}", "spread": format_metric("costs", paid),
            "reason": charts.EXITS.get(trade.exit_reason, (trade.exit_reason,))[0],
            "tone": "up" if pnl > 0 else "down" if pnl < 0 else ""})
    return rows


def _time(value: Any) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def _period(info: dict[str, Any]) -> str:
    return f"{_time(info['start'])} → {_time(info['end'])} UTC"

