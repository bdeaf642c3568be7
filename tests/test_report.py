"""write_report: one self-contained HTML file from a BacktestResult or a results folder."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from candleflow.backtest import run_backtest
from candleflow.portfolio.catalog import METRICS, format_metric
from candleflow.visualize import write_report
from candleflow.dag.draw import DOT_MISSING


@pytest.fixture(scope="module")
def result(repo):
    return run_backtest(repo / "strategies" / "ma_crossover.yaml", cache=None, scheduler="sync")


@pytest.fixture(scope="module")
def results_folder(result, tmp_path_factory):
    return result.write(tmp_path_factory.mktemp("run") / "out")


def missing(text: str, *needles: str) -> list[str]:
    """The needles not in ``text`` (asserting on this keeps pytest from diffing megabytes of HTML)."""
    return [needle for needle in needles if needle not in text]


def check_report(text: str, result) -> None:
    n = len(result.trades)
    assert text.startswith("<!DOCTYPE html>")
    rows = re.findall(r'<tr class="trade">(.*?)</tr>', text, re.S)
    assert len(rows) == n > 0
    first = result.trades.iloc[0]
    assert not missing(rows[0], first["entry_time"].strftime("%Y-%m-%d %H:%M"), first["side"])
    assert len(re.findall(r'<div id="[^"]+" class="plotly-graph-div"', text)) == 1  # one chart, one time axis
    assert text.count("Plotly.newPlot(") == 1
    assert text.count("candleflowAfterPlot(") == 2  # defined once, called once by the chart
    assert text.count("plotly.js (finance - minified)") == 1  # plotly.js embedded once
    assert not re.search(r"<(script|link|img)[^>]*\b(src|href)=", text)  # nothing to fetch: works offline
    assert not missing(
        text, f'data-trades="{n}" data-expected-markers="{2 * n}"',
        "<svg", f"{n} trades",  # the annotated graph
        "golden_cross: buy", "name: ma_crossover",  # the strategy YAML
        "Total return", "Sharpe", "Max drawdown", "Win rate", "Profit factor", "Final equity",
        "<th class=\"num\">Duration</th>", "<th class=\"num\">Commission</th>",
        "<th class=\"num\">Spread &amp; slippage</th>",
        "EURUSD", "2023-01-02 00:00 → 2023-12-31 23:00 UTC")


def test_report_from_a_result(result, tmp_path):
    out = write_report(result, tmp_path / "report.html")
    assert out == tmp_path / "report.html"
    text = out.read_text(encoding="utf-8")
    check_report(text, result)
    assert len(text.encode()) <= 3_000_000  # one year of hourly candles
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # written atomically, nothing left over


def test_report_from_a_results_folder_redraws_the_graph(result, results_folder, tmp_path):
    text = write_report(results_folder, tmp_path / "report.html").read_text(encoding="utf-8")
    check_report(text, result)


def test_report_prefers_a_saved_graph_svg(result, results_folder, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    for path in results_folder.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "graph.svg").write_text('<?xml version="1.0"?>\n<svg id="saved-graph"><text>sma_fast 76 trades</text></svg>')
    text = write_report(folder, tmp_path / "report.html").read_text(encoding="utf-8")
    assert not missing(text, '<svg id="saved-graph">') and text.count('<?xml version="1.0"?>') == 0


def test_report_without_dot_says_why_and_keeps_the_rest(result, tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    text = write_report(result, tmp_path / "report.html").read_text(encoding="utf-8")
    assert not missing(text, DOT_MISSING.replace("'", "&#39;"))
    assert len(re.findall(r'<tr class="trade">', text)) == len(result.trades)


def metric_rows(text: str) -> list[tuple[str, str, str]]:
    """(label, colour class, value) of every row of the report's metrics table."""
    return re.findall(r'<tr><th>([^<]*)</th><td class="num ?([a-z]*)">([^<]*)</td></tr>', text)


def cards(text: str) -> list[tuple[str, str, str]]:
    return re.findall(r'<div class="card-label">([^<]*)</div>\s*<div class="card-value ?([a-z]*)">([^<]*)</div>', text)


def test_metrics_table_and_cards_follow_the_catalog(result, results_folder, tmp_path):
    expected = []
    for m in METRICS:
        value = result.metrics[m.key]
        tone = "" if m.neutral is None or value == m.neutral else "up" if value > m.neutral else "down"
        expected.append((m.label, tone, format_metric(m.key, value)))
    from_result = write_report(result, tmp_path / "a.html").read_text(encoding="utf-8")
    from_folder = write_report(results_folder, tmp_path / "b.html").read_text(encoding="utf-8")
    for text in (from_result, from_folder):  # the same text whether the metrics come from memory or metrics.json
        assert metric_rows(text) == expected
        assert cards(text) == [row for m, row in zip(METRICS, expected) if m.card]


def test_undefined_metrics_of_a_results_folder_read_as_n_a_and_inf(results_folder, tmp_path):
    import json
    import shutil

    folder = shutil.copytree(results_folder, tmp_path / "out")
    saved = json.loads((folder / "metrics.json").read_text())
    saved["metrics"].update(sharpe=None, profit_factor="inf", sortino="-inf")  # as json_safe writes NaN and inf
    (folder / "metrics.json").write_text(json.dumps(saved))
    rows = {label: (tone, value) for label, tone, value in metric_rows(
        write_report(folder, tmp_path / "report.html").read_text(encoding="utf-8"))}
    assert rows["Sharpe"] == ("", "n/a")
    assert rows["Profit factor"] == ("up", "inf") and rows["Sortino"] == ("down", "-inf")


def test_a_year_of_hourly_candles_with_five_indicators_stays_under_3_mb(repo, tmp_path):
    rich = run_backtest(repo / "strategies" / "ma_crossover_filtered.yaml", cache=None, scheduler="sync")
    assert len(rich.candles) > 6000 and rich.indicators()  # a year of hourly candles (weekdays), 5 indicators
    assert write_report(rich, tmp_path / "report.html").stat().st_size <= 3_000_000


def table_cells(text: str) -> list[list[str]]:
    rows = re.findall(r'<tr class="trade">(.*?)</tr>', text, re.S)
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in rows]


def test_trade_table_has_consistent_precision_duration_and_costs(result, tmp_path):
    cells = table_cells(write_report(result, tmp_path / "report.html").read_text(encoding="utf-8"))
    trades = result.trades
    assert len(cells) == len(trades)
    for row, (_, trade) in zip(cells, trades.iterrows()):
        number, side, entry_time, entry, exit_time, exit_, size, held, pnl, ret, commission, spread, reason = row
        assert re.fullmatch(r"\d\.\d{5}", entry) and re.fullmatch(r"\d\.\d{5}", exit_)  # EURUSD: 5 decimals
        assert float(entry) == pytest.approx(trade.entry_price, abs=5e-6)
        parts = (trade.exit_time - trade.entry_time).components
        units = [(parts.days, "d"), (parts.hours, "h"), (parts.minutes, "m")]
        first = next(i for i, (value, _) in enumerate(units) if value)
        assert held == " ".join(f"{v}{u}" for v, u in units[first:first + 2] if v)
        assert commission == f"{trade.commission:,.2f}" and spread == f"{trade.spread_slippage:,.2f}"
        assert trade.spread_slippage > 0  # the example pays a spread and slippage on every fill
        assert pnl == f"{trade.pnl:+,.2f}" and ret == f"{trade.return_pct:+.2%}"
        assert reason in ("signal", "stop loss", "take profit", "closed at end", "open at end", "reversal")


def test_the_vendored_plotly_js_matches_the_version_plotly_py_writes_figures_for():
    from plotly.offline import get_plotlyjs_version

    from candleflow.visualize.report import plotly_js

    vendored = re.search(r"plotly\.js \(finance - minified\) v(\d+)\.\d+\.\d+", plotly_js()[:300])
    assert vendored and vendored.group(1) == get_plotlyjs_version().split(".")[0]  # figure JSON: stable in a major


def test_an_older_results_folder_without_spread_and_slippage_shows_n_a(results_folder, tmp_path):
    import shutil

    folder = shutil.copytree(results_folder, tmp_path / "out")
    trades = pd.read_csv(folder / "trades.csv")
    trades.drop(columns=["spread_slippage"]).to_csv(folder / "trades.csv", index=False)
    cells = table_cells(write_report(folder, tmp_path / "report.html").read_text(encoding="utf-8"))
    assert cells and {row[11] for row in cells} == {"n/a"}  # unknown, not zero
    assert [row[10] for row in cells] == [f"{c:,.2f}" for c in trades["commission"]]
