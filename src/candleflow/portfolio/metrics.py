"""Performance metrics of a simulation, as a flat dict of plain Python numbers.

What each metric means, and the conventions they share (``initial_cash`` is the
equity just before the first bar; ``r`` the per-bar simple returns; Sharpe and
Sortino annualised with :func:`infer_periods_per_year`; trade statistics over
closed trades only), is defined once, in :mod:`candleflow.portfolio.catalog`
(README's "Metrics" table is checked against it).  :func:`compute_metrics`
returns exactly the catalog's keys.

Undefined values are kept as ``float("nan")`` / ``float("inf")``; whoever writes
JSON decides how to spell them (Python's ``json`` writes ``NaN``/``Infinity``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SECONDS_PER_YEAR = 365.25 * 86400
DAY = pd.Timedelta(days=1)


def compute_metrics(
    equity: pd.Series,
    trades: pd.DataFrame,
    position: np.ndarray,
    *,
    initial_cash: float,
    close: np.ndarray | None = None,
    periods_per_year: float | None = None,
) -> dict[str, float]:
    """Every metric of :data:`candleflow.portfolio.catalog.METRICS`, keyed like it.

    ``trades`` has the columns of :data:`candleflow.portfolio.simulate.TRADE_COLUMNS`; ``close`` are the
    candles' closes (``buy_hold_return``; NaN without them).
    """
    curve = np.concatenate([[float(initial_cash)], equity.to_numpy(dtype=np.float64)])
    final_equity = float(curve[-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = curve[1:] / curve[:-1] - 1
    if periods_per_year is None:
        periods_per_year = infer_periods_per_year(equity.index)
    peaks = np.maximum.accumulate(curve)
    closed = trades[trades["exit_reason"] != "open"]
    index = equity.index
    span = (index[-1] - index[0]) / DAY if len(index) else math.nan
    return_ann = _return_ann(curve, returns, periods_per_year)
    max_drawdown = float(np.min(curve / peaks - 1))
    return {
        "total_return": final_equity / initial_cash - 1,
        "cagr": _cagr(final_equity / initial_cash, equity.index),
        "sharpe": _sharpe(returns, periods_per_year),
        "sortino": _sortino(returns, periods_per_year),
        "max_drawdown": max_drawdown,
        "exposure": float(np.count_nonzero(position) / len(position)) if len(position) else math.nan,
        "final_equity": final_equity,
        "duration_days": float(span),
        "equity_peak": float(np.max(curve)),
        "buy_hold_return": float(close[-1] / close[0] - 1) if close is not None and len(close) else math.nan,
        "return_ann": return_ann,
        "volatility_ann": float(np.std(returns, ddof=1) * math.sqrt(periods_per_year)) if len(returns) > 1
        else math.nan,
        "calmar": return_ann / -max_drawdown if max_drawdown < 0 else math.nan,
        **_drawdowns(curve, peaks, index),
        **_trade_metrics(closed),
        "commissions": float(trades["commission"].sum()),
        "costs": float(trades["spread_slippage"].sum()),
        **_side_metrics(closed),
    }


def _trade_metrics(closed: pd.DataFrame) -> dict[str, float]:
    """The statistics of the closed trades: counts, win rate, P&L and return shape, durations."""
    pnl = closed["pnl"].to_numpy(dtype=np.float64)
    returns = closed["return_pct"].to_numpy(dtype=np.float64)
    n = len(pnl)
    gross_profit, gross_loss = float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum())
    if n == 0 or (gross_loss == 0 and gross_profit == 0):
        profit_factor = math.nan
    elif gross_loss == 0:
        profit_factor = math.inf
    else:
        profit_factor = gross_profit / gross_loss
    win_rate = float(np.mean(pnl > 0)) if n else math.nan
    std = float(np.std(pnl, ddof=1)) if n > 1 else math.nan
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    durations = ((closed["exit_time"] - closed["entry_time"]) / DAY).to_numpy(dtype=np.float64)
    return {
        "n_trades": int(n),
        "win_rate": win_rate,
        "profit_factor": profit_factor,
        "avg_trade_return": float(np.mean(returns)) if n else math.nan,
        "best_trade": float(np.max(returns)) if n else math.nan,
        "worst_trade": float(np.min(returns)) if n else math.nan,
        "expectancy": float(np.mean(pnl)) if n else math.nan,
        "sqn": float(math.sqrt(n) * np.mean(pnl) / std) if std > 0 else math.nan,
        "kelly": float(win_rate - (1 - win_rate) / (np.mean(wins) / -np.mean(losses)))
        if len(wins) and len(losses) else math.nan,
        "max_trade_duration": float(np.max(durations)) if n else math.nan,
        "avg_trade_duration": float(np.mean(durations)) if n else math.nan,
    }


def _side_metrics(closed: pd.DataFrame) -> dict[str, float]:
    """Trades, win rate and P&L of the closed long and short trades separately."""
    metrics: dict[str, float] = {}
    for side in ("long", "short"):
        pnl = closed.loc[closed["side"] == side, "pnl"].to_numpy(dtype=np.float64)
        metrics[f"{side}_trades"] = int(len(pnl))
        metrics[f"{side}_win_rate"] = float(np.mean(pnl > 0)) if len(pnl) else math.nan
        metrics[f"{side}_pnl"] = float(pnl.sum())
    return metrics


def _drawdowns(curve: np.ndarray, peaks: np.ndarray, index: pd.DatetimeIndex) -> dict[str, float]:
    """Average depth, longest and average duration (days) of the drawdowns: maximal runs of bars below the peak.

    A drawdown lasts from its peak's bar to the bar that regains the peak (or the last bar); the
    point before the first bar (``initial_cash``) counts at the first bar's time.
    """
    below = curve / peaks - 1 < 0
    if not below.any():
        return {"avg_drawdown": 0.0, "max_drawdown_duration": 0.0, "avg_drawdown_duration": 0.0}
    edges = np.diff(np.concatenate([[0], below.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # run = curve[start:stop]
    depths = np.minimum.reduceat(curve / peaks - 1, starts)  # a run's deepest point: after it the curve is at a peak
    utc = (index.tz_convert(None) if index.tz is not None else index).to_numpy()  # datetime64, the index's unit
    times = np.concatenate([utc[:1], utc])
    ends = np.minimum(stops, len(curve) - 1)
    durations = (times[ends] - times[starts - 1]) / np.timedelta64(1, "D")
    return {"avg_drawdown": float(np.mean(depths)), "max_drawdown_duration": float(np.max(durations)),
            "avg_drawdown_duration": float(np.mean(durations))}


def _return_ann(curve: np.ndarray, returns: np.ndarray, periods_per_year: float) -> float:
    if len(returns) == 0:
        return math.nan
    if np.any(curve <= 0):
        return -1.0
    try:
        return float(math.exp(periods_per_year * float(np.mean(np.log1p(returns)))) - 1)
    except OverflowError:  # as for CAGR: not representable
        return math.inf


def infer_periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per calendar year from the median spacing of ``index``; nan if unknown.

    >>> infer_periods_per_year(pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC"))
    8766.0
    """
    if len(index) < 2:
        return math.nan
    seconds = float(np.median((index[1:] - index[:-1]).total_seconds()))
    return SECONDS_PER_YEAR / seconds if seconds > 0 else math.nan


def _cagr(growth: float, index: pd.DatetimeIndex) -> float:
    if len(index) < 2:
        return math.nan
    years = (index[-1] - index[0]).total_seconds() / SECONDS_PER_YEAR
    if years <= 0:
        return math.nan
    if growth <= 0:
        return -1.0
    try:
        return float(growth ** (1 / years) - 1)
    except OverflowError:  # huge growth over a very short span: the annualised rate is not representable
        return math.inf


def _sharpe(returns: np.ndarray, periods_per_year: float) -> float:
    if len(returns) < 2:
        return math.nan
    std = float(np.std(returns, ddof=1))
    if not std > 0:
        return math.nan
    return float(np.mean(returns) / std * math.sqrt(periods_per_year))


def _sortino(returns: np.ndarray, periods_per_year: float) -> float:
    if len(returns) < 2:
        return math.nan
    mean = float(np.mean(returns))
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0) ** 2)))
    if downside == 0:
        return math.inf if mean > 0 else math.nan
    return float(mean / downside * math.sqrt(periods_per_year))
