"""Metrics on tiny equity curves, checked against hand arithmetic and direct numpy formulas."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from candleflow.portfolio.metrics import compute_metrics, infer_periods_per_year


def daily(values) -> pd.Series:
    index = pd.date_range("2024-01-01", periods=len(values), freq="1D", tz="UTC", name="time")
    return pd.Series(values, index=index, dtype=float)


def trades(pnl, return_pct, exit_reason=None, side=None) -> pd.DataFrame:
    """A trade log: trade k is entered on day k and left on day k + 1, commission 1 and spread and slippage 0.5
    each (side long unless told)."""
    n = len(pnl)
    return pd.DataFrame({"pnl": pd.Series(pnl, dtype=float), "return_pct": pd.Series(return_pct, dtype=float),
                         "exit_reason": pd.Series(exit_reason or ["signal"] * n, dtype=object),
                         "side": pd.Series(side or ["long"] * n, dtype=object),
                         "entry_time": pd.date_range("2024-01-01", periods=n, freq="1D", tz="UTC"),
                         "exit_time": pd.date_range("2024-01-02", periods=n, freq="1D", tz="UTC"),
                         "commission": np.ones(n), "spread_slippage": np.full(n, 0.5)})


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
    # drawdowns: peak 110 on day 1, 99 on day 2, regained on day 3 (2 days); peak 121 on day 3, 96.8 on day 4,
    # still below at the end (1 day)
    assert m["avg_drawdown"] == pytest.approx((-0.1 - 0.2) / 2)
    assert m["max_drawdown_duration"] == 2.0 and m["avg_drawdown_duration"] == 1.5
    assert m["equity_peak"] == 121.0 and m["best_trade"] == 0.2 and m["worst_trade"] == -0.1
    assert m["expectancy"] == pytest.approx(15 / 4) and m["commissions"] == 5.0  # the open trade's included
    assert m["costs"] == 2.5  # 5 x 0.5, the open trade's included
    assert m["kelly"] == pytest.approx(0.5 - 0.5 / (15 / 7.5))
    assert m["sqn"] == pytest.approx(2 * np.mean([10, -5, 20, -10]) / np.std([10, -5, 20, -10], ddof=1))
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
    for key in ("win_rate", "profit_factor", "avg_trade_return", "sharpe", "sortino", "calmar", "best_trade",
                "worst_trade", "expectancy", "sqn", "kelly", "max_trade_duration", "avg_trade_duration",
                "long_win_rate", "short_win_rate", "buy_hold_return"):  # no closes given: no buy & hold
        assert math.isnan(m[key]), key
    assert m["avg_drawdown"] == m["max_drawdown_duration"] == m["avg_drawdown_duration"] == 0.0
    assert m["return_ann"] == m["volatility_ann"] == m["commissions"] == m["costs"] == m["long_pnl"] == 0.0
    assert m["long_trades"] == m["short_trades"] == 0 and m["duration_days"] == 4.0


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


# --- the statistics against a slow, obvious reference: one loop per definition of the catalog ----------------


def reference_drawdowns(curve: list[float], times: list[pd.Timestamp]) -> tuple[list[float], list[float]]:
    """(depth, duration in days) of each drawdown, walking the curve bar by bar; times[0] is the first bar's
    time, which the point before it (initial_cash) shares."""
    depths, durations = [], []
    peak, peak_time, depth = curve[0], times[0], None
    for value, time in zip(curve, times):
        if value >= peak:
            if depth is not None:  # the peak is regained: the drawdown ends at this bar
                depths.append(depth)
                durations.append((time - peak_time) / pd.Timedelta(days=1))
                depth = None
            peak, peak_time = value, time
        else:
            depth = min(depth if depth is not None else 0.0, value / peak - 1)
    if depth is not None:  # still below the peak at the last bar
        depths.append(depth)
        durations.append((times[-1] - peak_time) / pd.Timedelta(days=1))
    return depths, durations


def reference_statistics(values, index, log, initial_cash, close, periods_per_year) -> dict[str, float]:
    import statistics

    curve = [initial_cash, *values]
    r = [curve[i + 1] / curve[i] - 1 for i in range(len(values))]
    growth = 1.0
    for x in r:
        growth *= 1 + x
    depths, durations = reference_drawdowns(curve, [index[0], *index])
    closed = [t for t in log if t["exit_reason"] != "open"]
    pnl = [t["pnl"] for t in closed]
    wins, losses = [p for p in pnl if p > 0], [-p for p in pnl if p < 0]
    win_rate = len(wins) / len(pnl) if pnl else math.nan
    lengths = [(t["exit_time"] - t["entry_time"]) / pd.Timedelta(days=1) for t in closed]
    maxdd = min(v / max(curve[:i + 1]) - 1 for i, v in enumerate(curve))
    try:
        ann = growth ** (periods_per_year / len(r)) - 1
    except OverflowError:
        ann = math.inf
    expected = {
        "duration_days": (index[-1] - index[0]) / pd.Timedelta(days=1), "equity_peak": max(curve),
        "buy_hold_return": close[-1] / close[0] - 1, "return_ann": ann,
        "volatility_ann": statistics.stdev(r) * math.sqrt(periods_per_year),
        "calmar": ann / -maxdd if maxdd < 0 else math.nan,
        "avg_drawdown": statistics.fmean(depths) if depths else 0.0,
        "max_drawdown_duration": max(durations, default=0.0),
        "avg_drawdown_duration": statistics.fmean(durations) if durations else 0.0,
        "best_trade": max((t["return_pct"] for t in closed), default=math.nan),
        "worst_trade": min((t["return_pct"] for t in closed), default=math.nan),
        "expectancy": statistics.fmean(pnl) if pnl else math.nan,
        "sqn": math.sqrt(len(pnl)) * statistics.fmean(pnl) / statistics.stdev(pnl)
        if len(pnl) > 1 and statistics.stdev(pnl) > 0 else math.nan,
        "kelly": win_rate - (1 - win_rate) / (statistics.fmean(wins) / statistics.fmean(losses))
        if wins and losses else math.nan,
        "max_trade_duration": max(lengths, default=math.nan),
        "avg_trade_duration": statistics.fmean(lengths) if lengths else math.nan,
        "commissions": sum(t["commission"] for t in log),
        "costs": sum(t["spread_slippage"] for t in log),
    }
    for side in ("long", "short"):
        mine = [t["pnl"] for t in closed if t["side"] == side]
        expected |= {f"{side}_trades": len(mine), f"{side}_pnl": sum(mine),
                     f"{side}_win_rate": sum(p > 0 for p in mine) / len(mine) if mine else math.nan}
    return expected


TRADE = st.fixed_dictionaries({
    "pnl": st.sampled_from([0.0, -3.0]) | st.floats(-50, 50).map(lambda x: round(x, 2)),  # cents: no subnormals
    "return_pct": st.floats(-0.5, 0.5),
    "side": st.sampled_from(["long", "short"]), "exit_reason": st.sampled_from(["signal", "stop_loss", "open"]),
    "start": st.integers(0, 10), "bars": st.integers(0, 10), "commission": st.floats(0, 2),
    "spread_slippage": st.floats(0, 2),
})


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(1, 200) | st.sampled_from([100.0, 150.0]), min_size=2, max_size=40),
       hours=st.lists(st.integers(1, 72), min_size=40, max_size=40), log=st.lists(TRADE, max_size=12),
       initial_cash=st.sampled_from([100.0, 120.0, 50.0]), periods_per_year=st.sampled_from([None, 252.0]))
def test_statistics_match_a_slow_reference(values, hours, log, initial_cash, periods_per_year):
    index = pd.DatetimeIndex(pd.Timestamp("2024-01-05", tz="UTC") + pd.to_timedelta(np.cumsum(hours), "h"))
    index = index[:len(values)]
    for t in log:  # entry and exit at bars of the index
        t["entry_time"] = index[min(t["start"], len(values) - 1)]
        t["exit_time"] = index[min(t["start"] + t["bars"], len(values) - 1)]
    frame = pd.DataFrame(log, columns=[*TRADE_COLUMNS_USED])
    close = np.linspace(10.0, 12.0, len(values))[::-1 if len(log) % 2 else 1]
    m = compute_metrics(pd.Series(values, index=index), frame, np.zeros(len(values)), initial_cash=initial_cash,
                        close=close, periods_per_year=periods_per_year)
    expected = reference_statistics(values, index, log, initial_cash, close,
                                    periods_per_year or infer_periods_per_year(index))
    for key, value in expected.items():
        # abs: a return near 0 compounded over periods_per_year bars keeps that many roundings
        assert m[key] == pytest.approx(value, rel=1e-9, abs=1e-9, nan_ok=True), key
        assert isinstance(m[key], (int, float)) and not isinstance(m[key], np.generic), key


TRADE_COLUMNS_USED = ("pnl", "return_pct", "side", "exit_reason", "entry_time", "exit_time", "commission",
                      "spread_slippage")
