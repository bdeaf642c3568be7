"""Higher timeframes: resampling, the visibility rule (no look-ahead), compile errors, a CLI run.

The visibility property is checked against an independent computation written here with pandas:
for every base candle i, the value a node shows equals the value computed from base candles 0..i
alone (resample the prefix with ``DataFrame.resample``, keep the higher candles closed by candle
i's close, compute, take the last one).  This is the bug of backtesting.py issue 1243 and
freqtrade issue 12507 (a daily value visible during its own day).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import HealthCheck, given, settings, strategies as st

from candleflow.cli import main
from candleflow.config import parse_strategy
from candleflow.dag.build import node_keys
from candleflow.dag.compiler import compile_strategy
from candleflow.data import generate_candles, resample
from candleflow.errors import CompileError, ComponentError
from candleflow.nodes.compute import base_aligned, run_node
from candleflow.results import read_results
from candleflow.vocab import CANDLES, EVALUATOR

HOUR = 3600
AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
TIMEFRAMES = {"4h": 4 * HOUR, "1d": 24 * HOUR, "1w": 7 * 24 * HOUR}


def _strategy(nodes: str, signals: str = "", timeframe: str = "1h", rules: str = "{entry: {golden_cross: buy}}"):
    signals = signals or "  - {name: zz, component: ma_crossover, inputs: [close, close]}\n"
    text = (f"name: t\nsymbol: X\ntimeframe: {timeframe}\ndata: {{sample: eurusd_1h}}\n"
            f"indicators:\n{nodes}signals:\n{signals}rules: {rules}\n")
    return parse_strategy(text)


def _compile(nodes: str, signals: str = "", **kwargs):
    return compile_strategy(_strategy(nodes, signals, **kwargs))


def _run_all(compiled, candles: pd.DataFrame, timeframe: str = "1h") -> dict:
    values = {}
    for name in compiled.order():
        if name in (CANDLES, EVALUATOR):
            continue
        upstream = {p: values[p] for p in compiled.graph.predecessors(name) if p != CANDLES}
        values[name] = run_node(compiled.plans[name], candles, upstream, symbol="X", timeframe=timeframe)
    return values


def _pandas_higher(candles: pd.DataFrame, period: int, offset: int, base: int) -> pd.DataFrame:
    """Complete higher candles by pandas alone: days on the epoch, weeks from Monday, shifted by offset."""
    monday = pd.Timestamp("1970-01-05", tz="UTC")
    origin = (monday if period % (7 * 86400) == 0 else pd.Timestamp(0, tz="UTC")) + pd.Timedelta(seconds=offset)
    frame = candles.resample(pd.Timedelta(seconds=period), origin=origin).agg(AGG).dropna(subset=["close"])
    last_close = candles.index[-1] + pd.Timedelta(seconds=base)
    return frame[frame.index + pd.Timedelta(seconds=period) <= last_close]


def _gappy_candles(n: int, seed: int, drop: float) -> pd.DataFrame:
    candles = generate_candles(n, seed=seed)
    keep = np.random.default_rng(seed).random(n) >= drop
    keep[0] = True
    return candles[keep]


# --- resampling against pandas -------------------------------------------------------------------


@pytest.mark.parametrize("tf", sorted(TIMEFRAMES))
@pytest.mark.parametrize("offset_hours", [0, 17])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 600), seed=st.integers(0, 10_000), drop=st.sampled_from([0.0, 0.3, 0.8]))
def test_resample_matches_pandas_on_complete_periods(tf, offset_hours, n, seed, drop):
    period, offset = TIMEFRAMES[tf], offset_hours * HOUR
    if offset >= period:
        offset %= period
    candles = _gappy_candles(n, seed, drop)
    ours = resample.resample(candles, period, offset, HOUR)
    expected = _pandas_higher(candles, period, offset, HOUR)
    pd.testing.assert_frame_equal(ours, expected, check_freq=False, check_names=False)


def test_weeks_start_monday_and_days_at_the_offset():
    candles = generate_candles(24 * 14, start="2024-01-03T00:00:00Z")  # a Wednesday
    weeks = resample.resample(candles, 7 * 86400, 0, HOUR)
    # the first week has data from Wednesday on and is complete (it ended); the third is still running
    assert list(weeks.index) == [pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-08", tz="UTC")]
    assert weeks["open"].iloc[0] == candles["open"].iloc[0]
    days = resample.resample(candles, 86400, 17 * HOUR, HOUR)
    assert days.index[0] == pd.Timestamp("2024-01-02T17:00", tz="UTC")
    assert days["open"].iloc[1] == candles.loc["2024-01-03T17:00", "open"]


def test_the_worked_example_of_the_readme():
    """Hourly candles, a 1d node: the Monday value is first seen at Monday 23:00 (it closes at Tuesday 00:00)."""
    candles = generate_candles(72, start="2024-01-01T00:00:00Z")
    compiled = _compile("  - {name: d, component: sma, params: {period: 1}, timeframe: 1d}\n")
    seen = base_aligned(compiled.plans["d"], _run_all(compiled, candles)["d"], candles, "1h")
    assert seen.loc[:"2024-01-01T22:00"].isna().all()
    assert seen.loc["2024-01-01T23:00"] == candles.loc["2024-01-01T23:00", "close"]  # Monday's close
    assert seen.loc["2024-01-02T22:00"] == candles.loc["2024-01-01T23:00", "close"]
    assert seen.loc["2024-01-03T23:00"] == candles["close"].iloc[-1]  # the last day closed with the last candle


def test_the_incomplete_last_higher_candle_is_never_visible():
    candles = generate_candles(30, start="2024-01-01T00:00:00Z")  # Monday 00:00 to Tuesday 05:00
    compiled = _compile("  - {name: d, component: sma, params: {period: 1}, timeframe: 1d}\n")
    raw = _run_all(compiled, candles)["d"]
    assert list(raw.index) == [pd.Timestamp("2024-01-01", tz="UTC")]  # Tuesday is not computed
    seen = base_aligned(compiled.plans["d"], raw, candles, "1h")
    assert (seen.iloc[23:] == candles["close"].iloc[23]).all()


# --- the visibility property -------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(tf=st.sampled_from(["4h", "1d"]), offset_hours=st.sampled_from([0, 1, 3]), n=st.integers(2, 400),
       seed=st.integers(0, 10_000), drop=st.sampled_from([0.0, 0.2, 0.7]), period=st.integers(1, 6),
       data=st.data())
def test_visible_value_equals_the_value_from_the_prefix(tf, offset_hours, n, seed, drop, period, data):
    offset = f", timeframe_offset: {offset_hours}h" if offset_hours else ""
    nodes = (f"  - {{name: d_sma, component: sma, params: {{period: {period}}}, timeframe: {tf}{offset}}}\n"
             f"  - {{name: d_ema, component: ema, params: {{period: 2}}, inputs: [d_sma], timeframe: {tf}{offset}}}\n"
             f"  - {{name: gap, component: sma, params: {{period: 1}}, inputs: [d_ema]}}\n")
    signals = (f"  - {{name: d_cross, component: ma_crossover, inputs: [close, d_sma], timeframe: {tf}{offset}}}\n"
               f"  - {{name: h_cross, component: ma_crossover, inputs: [close, d_ema]}}\n")
    compiled = _compile(nodes, signals, rules="{entry: {golden_cross: buy}}")
    candles = _gappy_candles(n, seed, drop)
    values = _run_all(compiled, candles)
    seen = {name: base_aligned(compiled.plans[name], values[name], candles, "1h") for name in ("d_sma", "d_ema")}
    periods = TIMEFRAMES[tf]
    for i in sorted(set(data.draw(st.lists(st.integers(0, len(candles) - 1), min_size=1, max_size=8)))):
        prefix = candles.iloc[: i + 1]
        higher = _pandas_higher(prefix, periods, offset_hours * HOUR, HOUR)
        closes = higher["close"].to_numpy()
        sma = talib.SMA(closes, timeperiod=period) if period > 1 else closes
        expected = sma[-1] if len(higher) else np.nan
        np.testing.assert_allclose(seen["d_sma"].iloc[i], expected, rtol=1e-12, equal_nan=True, err_msg=f"i={i}")
        # a chain on the higher timeframe, and base nodes reading it, agree with a run on the prefix alone
        prefix_values = _run_all(compiled, prefix)
        np.testing.assert_array_equal(seen["d_ema"].iloc[: i + 1],
                                      base_aligned(compiled.plans["d_ema"], prefix_values["d_ema"], prefix, "1h"))
        np.testing.assert_array_equal(values["gap"].iloc[: i + 1], prefix_values["gap"])
        for name in ("d_cross", "h_cross"):
            full = values[name][values[name]["bar"] <= i].reset_index(drop=True)
            pd.testing.assert_frame_equal(full, prefix_values[name].reset_index(drop=True))
        # the higher signal's events: one per event on the pandas higher candles closed by candle i
        d_cross = values["d_cross"]
        level = higher["close"].rolling(period).mean().to_numpy()  # the sma's textbook formula, as ma_crossover sees it
        assert (d_cross["bar"] <= i).sum() == _cross_events(higher["close"].to_numpy(), level)


def _cross_events(close: np.ndarray, level: np.ndarray) -> int:
    """Crossings by the seed's rule: up when close[i-1] <= level[i-1] and close[i] > level[i]; down mirrored."""
    before_close, before_level = np.r_[np.nan, close[:-1]], np.r_[np.nan, level[:-1]]
    with np.errstate(invalid="ignore"):
        up = (before_close <= before_level) & (close > level)
        down = (before_close >= before_level) & (close < level)
    return int(up.sum() + down.sum())


# --- compile errors and keys ---------------------------------------------------------------------


@pytest.mark.parametrize("extra, path, words", [
    ("timeframe: 30m", "indicators[0].timeframe", "finer than the data's 1h"),
    ("timeframe: 90m", "indicators[0].timeframe", "not a whole multiple of the data's 1h"),
    ("timeframe: 1d, timeframe_offset: 30m", "indicators[0].timeframe_offset", "must be a multiple"),
    ("timeframe: 4h, timeframe_offset: 4h", "indicators[0].timeframe_offset", "less than 4h"),
])
def test_bad_timeframe_is_one_error_with_its_path(extra, path, words):
    with pytest.raises(CompileError) as caught:
        _compile(f"  - {{name: d, component: sma, {extra}}}\n")
    assert caught.value.path == path and words in str(caught.value)


def test_a_higher_node_cannot_read_a_node_on_another_timeframe():
    nodes = ("  - {name: h, component: sma}\n"
             "  - {name: d, component: sma, inputs: [h], timeframe: 1d}\n"
             "  - {name: w, component: sma, inputs: [d], timeframe: 1w}\n")
    with pytest.raises(CompileError) as caught:
        _compile(nodes)
    assert caught.value.path == "indicators[1].inputs[0]"
    assert "'h' is on the data's timeframe, this node on timeframe 1d" in str(caught.value)
    assert "indicators[2].inputs[0]: 'd' is on timeframe 1d, this node on timeframe 1w" in str(caught.value)


def test_the_data_timeframe_is_the_base():
    compiled = _compile("  - {name: d, component: sma, timeframe: 1h}\n")
    assert compiled.plans["d"].timeframe is None


def test_cli_reports_a_bad_timeframe_in_one_line(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(
        "name: t\nsymbol: X\ntimeframe: 1h\ndata: {sample: eurusd_1h}\n"
        "indicators:\n  - {name: d, component: sma, timeframe: 2q}\n"
        "signals:\n  - {name: c, component: ma_crossover, inputs: [close, d]}\n"
        "rules: {entry: {golden_cross: buy}}\n")
    assert main(["validate", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "indicators[0].timeframe" in err and "'2q' not understood" in err


def test_memo_keys_include_timeframe_and_offset():
    def key(extra):
        return node_keys(_compile(f"  - {{name: d, component: sma{extra}}}\n"), "candles-k")["d"]
    keys = {key(""), key(", timeframe: 4h"), key(", timeframe: 1d"), key(", timeframe: 1d, timeframe_offset: 17h")}
    assert len(keys) == 4


# --- end to end ----------------------------------------------------------------------------------

DAILY_FILTER = """\
name: daily_filter
symbol: EURUSD
timeframe: 1h
data: {path: DATA}
indicators:
  - {name: sma_fast, component: sma, params: {period: 20}}
  - {name: sma_slow, component: sma, params: {period: 50}}
  - {name: daily_sma, component: sma, params: {period: 5}, timeframe: 1d, timeframe_offset: 22h}
signals:
  - {name: cross, component: ma_crossover, inputs: [sma_fast, sma_slow]}
  - {name: trend, component: ma_crossover, inputs: [close, daily_sma]}
rules:
  entry: {cross.golden_cross: buy}
  exit: {cross.death_cross: close, trend.death_cross: close}
"""


def test_a_daily_filter_on_hourly_candles_runs_through_the_cli(tmp_path, repo):
    data = repo / "data" / "EURUSD_1h.csv"
    (tmp_path / "s.yaml").write_text(DAILY_FILTER.replace("DATA", str(data)))
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(out), "--no-cache", "--graph",
                 str(tmp_path / "g.dot")]) == 0
    indicators = read_results(out)["indicators"]
    candles = pd.read_csv(data, index_col="time", parse_dates=True)
    days = _pandas_higher(candles, 86400, 22 * HOUR, HOUR)
    expected = days["close"].rolling(5).mean()
    # each daily value is first seen at the candle whose close is the day's close (22:00 UTC: the 21:00 candle)
    for start, value in expected.dropna().iloc[:10].items():
        seen_at = start + pd.Timedelta(hours=23)
        assert indicators.loc[seen_at, "daily_sma"] == pytest.approx(value, rel=1e-12)
        before = indicators.loc[:seen_at - pd.Timedelta(hours=1), "daily_sma"].dropna()
        assert before.empty or before.iloc[-1] != pytest.approx(value, rel=1e-12)
    assert "timeframe 1d +22h" in (tmp_path / "g.dot").read_text()


def test_candles_off_their_grid_fail_at_the_higher_node():
    candles = generate_candles(48, start="2024-01-01T00:30:00Z")  # hourly, but opening at half past
    compiled = _compile("  - {name: d, component: sma, params: {period: 1}, timeframe: 1d}\n")
    with pytest.raises(ComponentError) as caught:
        _run_all(compiled, candles)
    assert caught.value.candle == 0 and "not on the grid of the data's timeframe" in str(caught.value)


def test_a_condition_reads_a_higher_timeframe_node_aligned():
    """``above: [close, daily]`` compares each hourly close with the last daily SMA that has closed."""
    compiled = _compile("  - {name: daily, component: sma, params: {period: 3}, timeframe: 1d}\n",
                        rules="{entry: {buy: {above: [close, daily]}}}")
    candles = generate_candles(24 * 12, seed=11)
    values = _run_all(compiled, candles)
    condition = next(name for name, plan in compiled.plans.items() if plan.kind == "condition")
    aligned = resample.align(values["daily"], candles.index, 3600, 86400)
    expected = (candles["close"] > aligned).astype("float64")
    assert aligned.notna().sum() > 0 and expected.sum() > 0
    np.testing.assert_array_equal(values[condition].to_numpy(dtype="float64"), expected.to_numpy())
