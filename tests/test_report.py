"""write_report: one self-contained HTML file from a BacktestResult or a results folder."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from candleflow.backtest import run_backtest
from candleflow.portfolio.catalog import METRICS, format_metric
from candleflow.visualize import write_report
from candleflow.visualize.charts import MAX_POINTS, decimate, price_figure, split_indicators
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
    assert len(re.findall(r'<div id="[^"]+" class="plotly-graph-div"', text)) == 2
    assert text.count("Plotly.newPlot(") == 2
    assert text.count("candleflowCountMarkers(") == 2  # defined once, called once by the price chart
    assert not re.search(r"<(script|link|img)[^>]*\b(src|href)=", text)  # nothing to fetch: works offline
    assert not missing(
        text, f'data-trades="{n}" data-expected-markers="{2 * n}"',
        "<svg", f"{n} trades",  # the annotated graph
        "golden_cross: buy", "name: ma_crossover",  # the strategy YAML
        "Total return", "Sharpe", "Max drawdown", "Win rate", "Profit factor", "Final equity",
        "EURUSD", "2023-01-02 00:00 → 2023-12-31 23:00 UTC")


def test_report_from_a_result(result, tmp_path):
    out = write_report(result, tmp_path / "report.html")
    assert out == tmp_path / "report.html"
    text = out.read_text(encoding="utf-8")
    check_report(text, result)
    assert len(text) < 8_000_000
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


def test_indicators_on_the_price_scale_overlay_it_others_get_panels():
    index = pd.date_range("2024-01-01", periods=300, freq="h", tz="UTC")
    close = pd.Series(1.1 + 0.01 * np.sin(np.arange(300) / 20), index=index)
    indicators = pd.DataFrame({
        "sma": close.rolling(10).mean(), "bb.upper": close + 0.004, "bb.lower": close - 0.004,
        "rsi": 50 + 20 * np.sin(np.arange(300) / 7), "macd.macd": close.diff(12), "macd.signal": close.diff(20),
        "empty": np.nan}, index=index)
    overlays, panels = split_indicators(close, indicators)
    assert overlays == ["sma", "bb.upper", "bb.lower"]
    assert panels == {"rsi": ["rsi"], "macd": ["macd.macd", "macd.signal"]}


def test_long_series_are_thinned_keeping_their_extremes():
    rng = np.random.default_rng(3)
    series = pd.Series(rng.normal(size=200_000).cumsum())
    thinned = decimate(series)
    assert len(thinned) <= MAX_POINTS
    assert thinned.max() == series.max() and thinned.min() == series.min()
    assert thinned.index.is_monotonic_increasing
    assert decimate(series.head(100)).equals(series.head(100))


def test_long_price_chart_is_a_thinned_close_line_with_every_trade_marker():
    index = pd.date_range("2020-01-01", periods=100_000, freq="min", tz="UTC")
    close = pd.Series(100 + np.random.default_rng(1).normal(size=len(index)).cumsum() * 0.01, index=index)
    candles = pd.DataFrame({"open": close, "high": close + 0.01, "low": close - 0.01, "close": close})
    trades = pd.DataFrame({"side": ["long", "short"], "entry_time": index[[10, 500]], "entry_price": [100.0, 101.0],
                           "exit_time": index[[400, 900]], "exit_price": [100.5, 100.2], "pnl": [5.0, 8.0],
                           "exit_reason": ["signal", "stop_loss"]})
    figure = price_figure(candles, pd.DataFrame({"sma": close.rolling(50).mean()}), trades)
    lines = [t for t in figure.data if t.mode == "lines"]
    assert [t.name for t in lines] == ["Close", "sma"] and all(len(t.x) <= MAX_POINTS for t in lines)
    markers = {t.uid: len(t.x) for t in figure.data if t.mode == "markers"}
    assert markers == {"trade-long-entry": 1, "trade-short-entry": 1, "trade-long-exit": 1, "trade-short-exit": 1}


def test_short_price_chart_is_candlesticks(candles_500):
    figure = price_figure(candles_500, pd.DataFrame(index=candles_500.index), pd.DataFrame(
        {"side": pd.Series([], dtype=str), "pnl": pd.Series([], dtype=float)}))
    assert [t.type for t in figure.data] == ["candlestick"]
    assert len(figure.data[0].x) == len(candles_500)
