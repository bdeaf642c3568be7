"""The example strategies in strategies/ run on the bundled data, and enter only where their conditions hold.

Each long (short) entry fills at the open after its decision candle; at that candle the rule's comparisons are
recomputed here with pandas from the run's own indicator values (the daily SMA aligned by its close).
"""

from __future__ import annotations

import numpy as np
import pytest

from candleflow import run_backtest
from candleflow.data import resample


def _decisions(result, side: str) -> np.ndarray:
    trades = result.trades[(result.trades["side"] == side) & (result.trades["exit_reason"] != "reversal")]
    return trades["entry_bar"].to_numpy() - 1  # fill: next_open


@pytest.fixture(scope="module")
def trend(repo):
    return run_backtest(repo / "strategies" / "trend_daily_filter.yaml")


@pytest.fixture(scope="module")
def reversion(repo):
    return run_backtest(repo / "strategies" / "mean_reversion.yaml")


def test_trend_entries_follow_the_daily_filter(trend):
    candles, values = trend.candles, trend.values
    daily = resample.align(values["daily_sma"], candles.index, 3600, 86400)
    fast, slow, adx, close = values["ema_fast"], values["ema_slow"], values["trend"]["adx"], candles["close"]
    up = (fast.shift(1) <= slow.shift(1)) & (fast > slow) & (close > daily) & (adx > 20)
    down = (fast.shift(1) >= slow.shift(1)) & (fast < slow) & (close < daily) & (adx > 20)
    longs, shorts = _decisions(trend, "long"), _decisions(trend, "short")
    assert len(longs) + len(shorts) >= 5
    assert up.to_numpy()[longs].all() and down.to_numpy()[shorts].all()
    assert daily.notna().sum() > 0 and daily.isna().iloc[:24].all()  # no daily value before the first day closed


def test_mean_reversion_entries_follow_the_bands_and_rsi(reversion):
    candles, values = reversion.candles, reversion.values
    bb, rsi, close = values["bb"], values["rsi"], candles["close"]
    oversold = (rsi < 30).astype(float).rolling(3, min_periods=1).max() > 0
    overbought = (rsi > 70).astype(float).rolling(3, min_periods=1).max() > 0
    up = (close.shift(1) <= bb["lower"].shift(1)) & (close > bb["lower"]) & oversold & (rsi < 35)
    down = (close.shift(1) >= bb["upper"].shift(1)) & (close < bb["upper"]) & overbought & (rsi > 65)
    longs, shorts = _decisions(reversion, "long"), _decisions(reversion, "short")
    assert len(longs) >= 5 and len(shorts) >= 5
    assert up.to_numpy()[longs].all() and down.to_numpy()[shorts].all()
    assert int(up.sum()) >= len(longs)  # every entry is one of these candles (some fall while already long)


def test_breakout_entries_are_closing_extremes_in_a_trend(repo):
    result = run_backtest(repo / "strategies" / "donchian_breakout.yaml")
    values, close = result.values, result.candles["close"]
    trending = values["trend"]["adx"] > 25
    up = (close >= close.rolling(20).max()) & trending
    down = (close <= close.rolling(20).min()) & trending
    longs, shorts = _decisions(result, "long"), _decisions(result, "short")
    assert len(longs) >= 5 and len(shorts) >= 5
    assert up.to_numpy()[longs].all() and down.to_numpy()[shorts].all()
    assert {"stop_loss", "trailing_stop"} <= set(result.trades["exit_reason"])


def test_breakout_risks_half_a_percent_of_equity_two_atr_away(repo):
    result = run_backtest(repo / "strategies" / "donchian_breakout.yaml")
    trades, atr = result.trades, result.values["atr"].to_numpy()
    equity, position = result.simulation.equity.to_numpy(), result.simulation.position
    decided = trades["entry_bar"].to_numpy() - 1
    flat = position[decided] == 0  # equity is all cash then: the sizing's equity
    expected = 0.005 * equity[decided] / (2 * atr[decided])
    assert flat.sum() >= 20
    np.testing.assert_allclose(trades["size"].to_numpy()[flat], expected[flat], rtol=1e-9)
