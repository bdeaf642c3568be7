"""The report's chart (visualize.charts, visualize.annotate): its rows, thinning, trades, levels and names."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from candleflow.config import parse_strategy
from candleflow.dag.compiler import compile_strategy
from candleflow.errors import CompileError
from candleflow.visualize import charts
from candleflow.visualize.annotate import ChartNotes, chart_notes

HEADER = """
name: demo
symbol: X
timeframe: 1h
data: {sample: eurusd_1h}
"""


def compiled(body: str, workspace=None):
    return compile_strategy(parse_strategy(HEADER + body), workspace=workspace)


def hourly(n: int, *, seed: int = 1, start: str = "2024-01-01") -> pd.DataFrame:
    index = pd.date_range(start, periods=n, freq="h", tz="UTC")
    close = 1.1 + np.random.default_rng(seed).normal(size=n).cumsum() * 0.001
    opens = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(np.random.default_rng(seed + 1).normal(size=n)) * 0.0005
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, close) + spread,
                         "low": np.minimum(opens, close) - spread, "close": close,
                         "volume": np.random.default_rng(seed + 2).integers(1, 1000, n).astype(float)}, index=index)


def trade_frame(index: pd.DatetimeIndex, rows: list[tuple]) -> pd.DataFrame:
    """rows: (side, entry bar, exit bar, pnl, exit reason)."""
    frame = pd.DataFrame(rows, columns=["side", "entry_bar", "exit_bar", "pnl", "exit_reason"])
    frame = frame.astype({"entry_bar": np.int64, "exit_bar": np.int64, "pnl": float})
    frame["entry_time"], frame["exit_time"] = index[frame["entry_bar"]], index[frame["exit_bar"]]
    frame["entry_price"], frame["exit_price"] = 1.1, 1.1 + frame["pnl"] / 1e4
    frame["return_pct"], frame["size"], frame["commission"] = frame["pnl"] / 1e4, 1e4, 0.5
    return frame


def figure_json(figure) -> dict:
    return json.loads(figure.to_json())


def test_rows_share_one_time_axis_and_zoom_together():
    candles = hourly(300)
    indicators = pd.DataFrame({"sma": candles["close"].rolling(10).mean(), "rsi": np.linspace(20, 80, 300),
                               "macd.macd": candles["close"].diff(12), "macd.signal": candles["close"].diff(20),
                               "macd.hist": candles["close"].diff(3)}, index=candles.index)
    equity = pd.Series(np.linspace(1e4, 1.1e4, 300), index=candles.index)
    figure = charts.report_figure(candles, indicators, equity, trade_frame(candles.index, []))
    layout = figure_json(figure)["layout"]
    axes = sorted(key for key in layout if re.fullmatch(r"xaxis\d*", key))
    assert len(axes) == 6  # price, volume, rsi, macd, equity, drawdown
    followed = {layout[key].get("matches") for key in axes} - {None}
    assert len(followed) == 1 and f"xaxis{followed.pop()[1:]}" in axes  # all follow one of them
    assert sum(1 for key in axes if layout[key].get("matches") is None) == 1
    titles = [layout[f"yaxis{i if i > 1 else ''}"]["title"]["text"] for i in range(1, 7)]
    assert titles == ["price", "volume", "rsi", "macd", "equity", "drawdown"]


def test_panels_hold_bars_for_histograms_lines_for_the_rest_and_readable_names():
    candles = hourly(300)
    indicators = pd.DataFrame({"bb.upper": candles["close"] + 0.004, "macd.macd": candles["close"].diff(12),
                               "macd.signal": candles["close"].diff(20), "macd.hist": candles["close"].diff(3)},
                              index=candles.index)
    notes = ChartNotes(labels={"macd": "macd · macd(12, 26, 9)", "bb": "bb · bollinger(20)"})
    figure = charts.report_figure(candles, indicators, pd.Series(1e4, index=candles.index),
                                  trade_frame(candles.index, []), notes=notes)
    by_name = {trace.name: trace for trace in figure.data}
    assert by_name["hist"].type == "bar" and by_name["macd"].type == "scatter" and by_name["signal"].mode == "lines"
    assert "bb upper" in by_name and "macd.macd" not in by_name  # no dotted column names in the legend
    colours = np.asarray(by_name["hist"].marker.color)
    values = np.asarray(by_name["hist"].y)
    assert np.array_equal(colours[~np.isnan(values)], (values[~np.isnan(values)] >= 0).astype(np.int8))
    legend = figure_json(figure)["layout"][by_name["hist"].legend]
    assert legend["title"]["text"] == "macd · macd(12, 26, 9):"


def test_buy_and_hold_starts_with_the_initial_cash():
    candles = hourly(200)
    equity = pd.Series(np.linspace(1e4, 9e3, 200), index=candles.index)
    figure = charts.report_figure(candles, pd.DataFrame(index=candles.index), equity,
                                  trade_frame(candles.index, []), notes=ChartNotes(initial_cash=5000.0))
    hold = next(trace for trace in figure.data if trace.name == "Buy and hold")
    expected = 5000.0 * candles["close"].to_numpy() / candles["close"].iloc[0]
    np.testing.assert_allclose(np.asarray(hold.y), expected, rtol=1e-12)


def test_markers_by_side_and_exit_reason_winners_and_losers_apart():
    candles = hourly(400)
    trades = trade_frame(candles.index, [("long", 10, 50, 12.0, "signal"), ("short", 50, 80, -3.0, "reversal"),
                                         ("long", 100, 120, -8.0, "stop_loss"), ("long", 130, 160, 5.0, "take_profit"),
                                         ("short", 200, 399, 1.0, "open")])
    traces = charts.trade_traces(trades, decimals=5)
    uids = [t.uid for t in traces]
    assert uids == ["path-win", "path-loss", "trade-exit-signal", "trade-exit-reversal", "trade-exit-stop_loss",
                    "trade-exit-take_profit", "trade-exit-open", "trade-entry-long", "trade-entry-short"]
    markers = {t.uid: t for t in traces if t.uid.startswith("trade-")}
    assert sum(len(t.x) for t in markers.values()) == 2 * len(trades)
    assert list(markers["trade-exit-stop_loss"].marker.color) == [charts.LOSS]
    assert list(markers["trade-exit-take_profit"].marker.color) == [charts.WIN]
    assert markers["trade-exit-stop_loss"].name == "Exit: stop loss"
    assert len({markers[u].marker.symbol for u in markers}) == len(markers)  # each reason and side its own symbol
    wins = next(t for t in traces if t.uid == "path-win")
    assert np.isnan(np.asarray(wins.x)[2::3]).all() and len(wins.x) == 3 * 3  # one segment per winning trade
    text = markers["trade-exit-stop_loss"].text[0]
    assert "#3 long" in text and "P&L -8.00" in text and "held 20h" in text and "stop loss" in text


def test_every_exit_reason_of_the_kernel_has_a_name_and_symbol():
    from candleflow.portfolio.kernel import REASONS

    assert set(REASONS) == set(charts.EXITS)


@pytest.mark.parametrize("days, hours, minutes, text", [(3, 4, 5, "3d 4h"), (0, 5, 30, "5h 30m"), (0, 0, 45, "45m"),
                                                        (2, 0, 7, "2d"), (0, 0, 0, "0m"), (1, 0, 0, "1d")])
def test_duration_text(days, hours, minutes, text):
    assert charts.duration_text(pd.Timedelta(days=days, hours=hours, minutes=minutes)) == text


@given(n=st.integers(1, 400), max_bars=st.integers(1, 60), seed=st.integers(0, 10_000))
@settings(max_examples=60, deadline=None)
def test_thinned_bars_are_each_groups_open_high_low_close_and_volume(n, max_bars, seed):
    candles = hourly(n, seed=seed)
    bars, k = charts.thin_ohlc(candles, max_bars)
    assert len(bars) <= max_bars and k == max(1, -(-n // max_bars))
    for b, (time, bar) in enumerate(bars.iterrows()):  # the slow obvious way: slice each group
        group = candles.iloc[b * k:(b + 1) * k]
        assert time == group.index[0]
        assert (bar.open, bar.high, bar.low, bar.close) == (group.open.iloc[0], group.high.max(), group.low.min(),
                                                             group.close.iloc[-1])
        assert bar.volume == pytest.approx(group.volume.sum())


def test_long_series_are_thinned_keeping_their_extremes():
    rng = np.random.default_rng(3)
    series = pd.Series(rng.normal(size=200_000).cumsum())
    thinned = charts.decimate(series)
    assert len(thinned) <= charts.MAX_BARS
    assert thinned.max() == series.max() and thinned.min() == series.min()
    assert thinned.index.is_monotonic_increasing
    assert charts.decimate(series.head(100)).equals(series.head(100))


def test_a_long_run_is_drawn_as_merged_candles_and_says_so():
    candles = hourly(25_000)
    figure = charts.report_figure(candles, pd.DataFrame({"sma": candles["close"].rolling(50).mean()}),
                                  pd.Series(1e4, index=candles.index), trade_frame(candles.index, []))
    price = figure.data[0]
    assert price.type == "candlestick" and len(price.x) == 8334  # bars of 3
    assert max(price.high) == candles["high"].max() and min(price.low) == candles["low"].min()
    assert all(len(t.x) <= charts.MAX_BARS for t in figure.data)
    assert charts.caption(25_000).startswith("25,000 candles, drawn as 8,334 bars of 3")
    assert charts.caption(6_240) == "6,240 candles"


def test_hours_without_candles_are_hidden_weekends_grouped_by_length():
    weekdays = hourly(24 * 28)
    weekdays = weekdays[weekdays.index.day_of_week < 5]
    breaks = charts.time_gaps(weekdays.index)
    assert len(breaks) == 1 and breaks[0]["dvalue"] == 48 * 3_600_000
    assert breaks[0]["values"][0] == "2024-01-06 00:00:00"  # Saturday 00:00, after Friday 23:00
    assert charts.time_gaps(hourly(100).index) == []  # no gaps
    irregular = pd.DatetimeIndex(pd.Timestamp("2024-01-01", tz="UTC")
                                 + pd.to_timedelta(np.cumsum(np.arange(1, 120) ** 2), unit="min"))
    assert charts.time_gaps(irregular) == []  # every step a different length: irregular, not gapped


@pytest.mark.parametrize("values, decimals", [([1.07001, 1.1], 5), ([101.25, 99.5], 2), ([20000.0, 19999.0], 0),
                                              ([0.000123456789], 8), ([1.1, np.nan], 1)])
def test_decimals_of_an_instrument(values, decimals):
    assert charts.decimals_of(np.array(values)) == decimals


def test_arrays_several_traces_hold_are_written_once_and_handed_to_each():
    candles = hourly(2000)
    figure = charts.report_figure(candles, pd.DataFrame({"sma": candles["close"].rolling(5).mean()}),
                                  pd.Series(1e4, index=candles.index), trade_frame(candles.index, []))
    html = charts.to_html(figure)
    times = figure.to_plotly_json()["data"][0]["x"]["bdata"]
    assert html.count(times) == 1  # candles, volume, sma, buy and hold, equity, drawdown share it
    spec = figure.to_plotly_json()
    arrays, shared = charts._hoist_shared_arrays(spec["data"])
    for trace, key, k in shared:  # what the page's script does, then the figure is whole again
        spec["data"][trace][key] = arrays[k]
    assert spec["data"] == figure.to_plotly_json()["data"]
    from plotly.io.json import to_json_plotly

    assert json.loads(charts._json(arrays)) == json.loads(to_json_plotly(arrays))  # "/" unescaped, same JSON
    assert "</" not in charts._json({"t": "</script>"})  # a string never closes the page's script


def test_levels_come_from_conditions_and_declared_signal_params():
    notes = chart_notes(compiled("""
indicators:
  - {name: rsi, component: rsi, params: {period: 14}}
  - {name: fast, component: sma, params: {period: 5}}
signals:
  - {name: th, component: rsi_threshold, inputs: [rsi], params: {lower: 25}}
rules:
  entry: {buy: {all: [th.oversold, {between: [rsi, 40, 60]}, {above: [close, fast]}]}}
  exit: {close: {crosses_above: [rsi, 75]}}
"""))
    assert notes.levels == {"rsi": (25.0, 40.0, 60.0, 70.0, 75.0)}  # 70: rsi_threshold's default upper
    assert notes.labels == {"rsi": "rsi · rsi(14)", "fast": "fast · sma(5)"}
    assert notes.initial_cash == 10_000.0


def test_levels_are_drawn_on_their_panel():
    candles = hourly(300)
    indicators = pd.DataFrame({"rsi": np.linspace(20, 80, 300)}, index=candles.index)
    figure = charts.report_figure(candles, indicators, pd.Series(1e4, index=candles.index),
                                  trade_frame(candles.index, []), notes=ChartNotes(levels={"rsi": (30.0, 70.0)}))
    shapes = figure_json(figure)["layout"]["shapes"]
    assert sorted((s["y0"], s["yref"]) for s in shapes) == [(30.0, "y3"), (70.0, "y3")]  # row 3: after volume


def test_a_level_naming_no_param_is_a_one_line_error(tmp_path):
    folder = tmp_path / "components"
    folder.mkdir()
    (folder / "mine.py").write_text(
        "from candleflow import signal\n\n"
        "@signal('band', signal_types=('low',), levels=('floor',))\n"
        "def band(x, *, lower: float = 1.0):\n    return {'low': x < lower}\n")
    (tmp_path / "s.yaml").write_text(HEADER)
    with pytest.raises(CompileError, match=r"signal 'band': levels=\['floor'\] name no keyword param "
                                           r"\(its params: lower\) \(.*mine\.py\)"):
        compiled("indicators: [{name: r, component: rsi}]\nsignals: [{name: b, component: band, inputs: [r]}]\n"
                 "rules: {entry: {buy: b.low}}\ncomponents: [components]\n", workspace=tmp_path)
