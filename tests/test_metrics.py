"""Metrics on tiny equity curves, checked against hand arithmetic and direct numpy formulas."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from candleflow.portfolio.metrics import compute_metrics, infer_periods_per_year


def daily(values) -> pd.Series:
    index = pd.date_range("2024-01-01", periods=len(values), freq="1D", tz="UTC", name="time")
    return pd.Series(values, index=index, dtype=float)


def trades(pnl, return_pct, exit_reason=None, side=None) -> pd.DataFrame:
    """A trade log: trade k is entered on day k and left on day k + 1, commission 1 each (side long unless told)."""
    n = len(pnl)
    return pd.DataFrame({"pnl": pd.Series(pnl, dtype=float), "return_pct": pd.Series(return_pct, dtype=float),
                         "exit_reason": pd.Series(exit_reason or ["signal"] * n, dtype=object),
                         "side": pd.Series(side or ["long"] * n, dtype=object),
                         "entry_time": pd.date_range("2024-01-01", periods=n, freq="1D", tz="UTC"),
                         "exit_time": pd.date_range("2024-01-02", periods=n, freq="1D", tz="UTC"),
                         "commission": np.ones(n)})


EQUITY = daily([110.0, 99.0, 121.0, 96.8])
TRADES = trades([10.0, -5.0, 20.0, -10.0, 3.0], [0.1, -0.05, 0.2, -0.1, 0.03],
                ["signal", "stop_loss", "take_profit", "reversal", "open"])
POSITION = np.array([0.0, 1.0, -2.0, 0.0])


def test_hand_computed_metrics():
    m = compute_metrics(EQUITY, TRADES, POSITION, initial_cash=100.0)
    # curve 100, 110, 99, 121, 96.8; peaks 100, 110, 110, 121, 121
    # drawdowns 0, 0, 99/110-1 = -0.1, 0, 96.8/121-1 = -0.2
    assert m["max_drawdown"] == pytest.approx(-0.2)
    assert m["total_return"] == pytest.approx(-0.032)
    assert m["final_equity"] == pytest.approx(96.8)
    # the open trade (pnl 3) is left out: closed pnl 10, -5, 20, -10
    assert m["n_trades"] == 4
    assert m["win_rate"] == pytest.approx(0.5)
    assert m["profit_factor"] == pytest.approx(30 / 15)
    assert m["avg_trade_return"] == pytest.approx((0.1 - 0.05 + 0.2 - 0.1) / 4)
    # 2 of 4 bars end with a position
    assert m["exposure"] == pytest.approx(0.5)
    # first to last timestamp is 3 days
    assert m["cagr"] == pytest.approx(0.968 ** (365.25 / 3) - 1)
    assert all(isinstance(v, (int, float)) and not isinstance(v, np.generic) for v in m.values())
    json.dumps(m)


def test_sharpe_and_sortino_match_numpy():
    curve = np.array([100.0, 110.0, 99.0, 121.0, 96.8])
    r = curve[1:] / curve[:-1] - 1
    m = compute_metrics(EQUITY, TRADES, POSITION, initial_cash=100.0)
    # daily bars -> 365.25 periods a year
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(365.25))
    assert m["sortino"] == pytest.approx(r.mean() / np.sqrt(np.mean(np.minimum(r, 0) ** 2)) * np.sqrt(365.25))
    m252 = compute_metrics(EQUITY, TRADES, POSITION, initial_cash=100.0, periods_per_year=252)
    assert m252["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252))


def test_no_trades_and_flat_equity():
    m = compute_metrics(daily([100.0] * 5), trades([], []), np.zeros(5), initial_cash=100.0)
    assert m["n_trades"] == 0
    assert m["max_drawdown"] == 0.0
    assert m["exposure"] == 0.0
    assert m["total_return"] == 0.0
    for key in ("win_rate", "profit_factor", "avg_trade_return", "sharpe", "sortino"):
        assert math.isnan(m[key]), key


def test_only_winners():
    m = compute_metrics(daily([101.0, 102.0, 104.0]), trades([1.0, 2.0], [0.01, 0.02]), np.ones(3),
                        initial_cash=100.0)
    assert m["profit_factor"] == math.inf
    assert m["win_rate"] == 1.0
    assert m["sortino"] == math.inf  # no negative return, positive mean
    assert m["max_drawdown"] == 0.0
    assert m["exposure"] == 1.0


def test_periods_per_year_from_median_spacing():
    hourly = pd.DatetimeIndex(["2024-01-05 22:00", "2024-01-05 23:00", "2024-01-08 00:00", "2024-01-08 01:00"],
                              tz="UTC")
    # spacings 1h, 49h, 1h -> median 1h -> 365.25 * 24
    assert infer_periods_per_year(hourly) == pytest.approx(8766.0)
    assert math.isnan(infer_periods_per_year(hourly[:1]))


def test_cagr_of_huge_growth_over_minutes_is_inf_not_an_error():
    import math

    import numpy as np
    import pandas as pd

    from candleflow.portfolio.metrics import compute_metrics

    index = pd.date_range("2024-01-01", periods=3, freq="min", tz="UTC")
    equity = pd.Series([100.0, 1e6, 1e9], index=index)
    metrics = compute_metrics(equity, trades([], []), np.zeros(3), initial_cash=100.0)
    assert metrics["cagr"] == math.inf
