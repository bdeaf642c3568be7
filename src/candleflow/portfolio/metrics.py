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


def compute_metrics(
    equity: pd.Series,
    trades: pd.DataFrame,
    position: np.ndarray,
    *,
    initial_cash: float,
    periods_per_year: float | None = None,
) -> dict[str, float]:
    """Every metric of :data:`candleflow.portfolio.catalog.METRICS`, keyed like it."""
    curve = np.concatenate([[float(initial_cash)], equity.to_numpy(dtype=np.float64)])
    final_equity = float(curve[-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = curve[1:] / curve[:-1] - 1
    if periods_per_year is None:
        periods_per_year = infer_periods_per_year(equity.index)
    peaks = np.maximum.accumulate(curve)

    closed = trades[trades["exit_reason"] != "open"]
    pnl = closed["pnl"].to_numpy(dtype=np.float64)
    gross_profit = float(pnl[pnl > 0].sum())
    gross_loss = float(-pnl[pnl < 0].sum())
    if len(pnl) == 0 or (gross_loss == 0 and gross_profit == 0):
        profit_factor = math.nan
    elif gross_loss == 0:
        profit_factor = math.inf
    else:
        profit_factor = gross_profit / gross_loss

    return {
        "total_return": final_equity / initial_cash - 1,
        "cagr": _cagr(final_equity / initial_cash, equity.index),
        "sharpe": _sharpe(returns, periods_per_year),
        "sortino": _sortino(returns, periods_per_year),
        "max_drawdown": float(np.min(curve / peaks - 1)),
        "win_rate": float(np.mean(pnl > 0)) if len(pnl) else math.nan,
        "profit_factor": profit_factor,
        "exposure": float(np.count_nonzero(position) / len(position)) if len(position) else math.nan,
        "n_trades": int(len(pnl)),
        "final_equity": final_equity,
        "avg_trade_return": float(closed["return_pct"].mean()) if len(pnl) else math.nan,
    }


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
