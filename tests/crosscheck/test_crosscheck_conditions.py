"""A multi-condition, multi-timeframe strategy against backtesting.py on GOOG, trade for trade.

candleflow: ``all`` of a golden cross, RSI(14) < 70 and close above a *weekly* SMA(5) node
(``timeframe: 1w``) to buy; ``any`` of a death cross and close below that SMA to close.
backtesting.py's ``resample_apply`` would show a week's value on the week's own last day, before the
week has closed, so the test computes the weekly series causally itself and hands it to the peer: a
week (Monday 00:00 UTC to the next Monday) is seen from the first daily candle whose close reaches the
week's close, i.e. from the next Monday's candle.  RSI comes from TA-Lib (Wilder's), the SMAs from
backtesting.py.  The peer is set to candleflow's conventions as in test_crosscheck_backtesting_py.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import talib
from backtesting import Backtest, Strategy
from backtesting.test import SMA

from candleflow.data import resample
from crosscheck_support import assert_frames_equal, closed_trades, run_candleflow, utc

pytestmark = pytest.mark.crosscheck

DAY = 86400


def causal_weekly_sma(close: pd.Series, period: int = 5) -> np.ndarray:
    """For each daily candle, the SMA of weekly closes over the weeks that had closed by its own close."""
    days = close.index.normalize()
    week_start = days - pd.to_timedelta(days.dayofweek, unit="D")
    weekly_close = close.groupby(week_start).last()
    sma = weekly_close.rolling(period, min_periods=period).mean()
    candle_close = days + pd.Timedelta(days=1)
    visible = np.searchsorted((sma.index + pd.Timedelta(days=7)).to_numpy(), candle_close.to_numpy(),
                              side="right") - 1
    return np.where(visible >= 0, sma.to_numpy()[np.maximum(visible, 0)], np.nan)


def peer_strategy(weekly: np.ndarray) -> type[Strategy]:
    class Filtered(Strategy):
        def init(self):
            self.fast = self.I(SMA, self.data.Close, 10)
            self.slow = self.I(SMA, self.data.Close, 20)
            self.rsi = self.I(talib.RSI, self.data.Close, 14)
            self.weekly = self.I(lambda: weekly)

        def next(self):
            f, s, close, week = self.fast, self.slow, self.data.Close[-1], self.weekly[-1]
            golden = f[-2] <= s[-2] and f[-1] > s[-1]
            death = f[-2] >= s[-2] and f[-1] < s[-1]
            if not self.position and golden and self.rsi[-1] < 70 and close > week:
                self.buy(size=0.99)
            elif self.position and (death or close < week):
                self.position.close()

    return Filtered


def test_multi_condition_weekly_filter_matches_backtesting_py(goog):
    result = run_candleflow("multi_condition.yaml", goog)
    weekly = causal_weekly_sma(goog["Close"].set_axis(utc(goog.index)))
    ours_weekly = resample.align(result.values["weekly"], result.candles.index, DAY, 7 * DAY)
    np.testing.assert_allclose(ours_weekly.to_numpy(), weekly, rtol=1e-12, atol=0)  # same visible series

    backtest = Backtest(goog, peer_strategy(weekly), cash=10_000, commission=0.002, spread=0.0,
                        exclusive_orders=True, trade_on_close=False, finalize_trades=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = backtest.run()
    t = stats._trades
    theirs = pd.DataFrame({"entry_time": utc(t["EntryTime"]), "exit_time": utc(t["ExitTime"]),
                           "entry_price": t["EntryPrice"].to_numpy(), "exit_price": t["ExitPrice"].to_numpy(),
                           "size": t["Size"].to_numpy(dtype=float), "pnl": t["PnL"].to_numpy()})
    mine = closed_trades(result.trades).assign(entry_time=lambda f: utc(f["entry_time"]),
                                               exit_time=lambda f: utc(f["exit_time"]))
    plain = (result.values["sma_fast"].shift(1) <= result.values["sma_slow"].shift(1)) & \
        (result.values["sma_fast"] > result.values["sma_slow"])
    assert 10 <= len(mine) < int(plain.sum())  # the filters really remove some golden crosses
    assert_frames_equal(mine, theirs, exact=["entry_time", "exit_time", "entry_price", "exit_price", "size"],
                        close=["pnl"])
    assert result.metrics["final_equity"] == pytest.approx(stats["Equity Final [$]"], rel=1e-6, abs=0)
