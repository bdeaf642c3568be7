"""Helpers of the cross-checks: run a strategy template, reshape candleflow's trade log, compare.

Every cross-check runs candleflow on a YAML template in ``strategies/`` (``data`` replaced by
the peer's own candles through ``run_backtest(..., data=frame)``) and the peer on the same
candles with its options set to candleflow's conventions; README "How orders fill" lists
the conventions and where each peer differs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from candleflow.backtest import run_backtest

STRATEGIES = Path(__file__).resolve().parent / "strategies"


def run_candleflow(template: str, data: pd.DataFrame, **variables):
    """Run ``strategies/<template>`` on ``data`` with the jinja2 ``variables``; no node cache."""
    return run_backtest(STRATEGIES / template, data=data, variables=variables, cache=None, scheduler="sync")


def utc(times) -> pd.DatetimeIndex:
    """A peer's naive timestamps as candleflow's UTC ones."""
    index = pd.DatetimeIndex(times)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def closed_trades(trades: pd.DataFrame) -> pd.DataFrame:
    """candleflow's finished trades (the still-open one, ``exit_reason == "open"``, left out)."""
    return trades[trades["exit_reason"] != "open"].reset_index(drop=True)


def open_trade(trades: pd.DataFrame) -> pd.DataFrame:
    return trades[trades["exit_reason"] == "open"].reset_index(drop=True)


def fills(trades: pd.DataFrame) -> pd.DataFrame:
    """candleflow's trades as the orders that made them: one row per fill bar.

    Columns ``bar``, ``price``, ``size`` (signed units bought, + buy / - sell).  A reversal
    (exit and entry at the same bar and price) is one row, as one order of twice the size,
    which is how backtrader and vectorbt book it.  The still-open trade has no exit fill.
    """
    sign = np.where(trades["side"] == "long", 1.0, -1.0)
    done = (trades["exit_reason"] != "open").to_numpy()
    rows = pd.concat([
        pd.DataFrame({"bar": trades["entry_bar"], "price": trades["entry_price"], "size": sign * trades["size"]}),
        pd.DataFrame({"bar": trades["exit_bar"][done], "price": trades["exit_price"][done],
                      "size": -(sign * trades["size"])[done]}),
    ], ignore_index=True)
    grouped = rows.groupby("bar", sort=True)
    if (grouped["price"].nunique() > 1).any():
        raise AssertionError("candleflow filled two orders at different prices on one bar")
    return pd.DataFrame({"price": grouped["price"].first(), "size": grouped["size"].sum()}).reset_index()


def assert_frames_equal(ours: pd.DataFrame, theirs: pd.DataFrame, *, exact: list[str], close: list[str],
                        rtol: float = 1e-9) -> None:
    """Same rows; ``exact`` columns identical, ``close`` columns equal up to float rounding (``rtol``).

    ``rtol`` only absorbs the different order of float operations in two implementations of
    the same arithmetic (1e-9 is about a million times the rounding error seen); every
    timestamp, bar, size and fill price is compared exactly.
    """
    assert len(ours) == len(theirs), f"{len(ours)} candleflow rows vs {len(theirs)} peer rows"
    for column in exact:
        a, b = ours[column].to_numpy(), theirs[column].to_numpy()
        bad = np.flatnonzero(a != b)
        assert not len(bad), (f"column {column!r} differs first at row {bad[0]}: candleflow {a[bad[0]]!r}, "
                              f"peer {b[bad[0]]!r}\ncandleflow:\n{ours.iloc[bad[0]]}\npeer:\n{theirs.iloc[bad[0]]}")
    for column in close:
        np.testing.assert_allclose(ours[column].to_numpy(dtype=float), theirs[column].to_numpy(dtype=float),
                                   rtol=rtol, atol=0, err_msg=f"column {column!r}")


def peer_trades(stats) -> pd.DataFrame:
    """backtesting.py's closed trades in candleflow's column names (``size`` signed)."""
    t = stats._trades
    return pd.DataFrame({
        "entry_time": utc(t["EntryTime"]), "exit_time": utc(t["ExitTime"]),
        "entry_bar": t["EntryBar"].to_numpy(), "exit_bar": t["ExitBar"].to_numpy(),
        "entry_price": t["EntryPrice"].to_numpy(), "exit_price": t["ExitPrice"].to_numpy(),
        "signed_size": t["Size"].to_numpy(dtype=float), "pnl": t["PnL"].to_numpy(),
        "commission": t["Commission"].to_numpy(),
    })
