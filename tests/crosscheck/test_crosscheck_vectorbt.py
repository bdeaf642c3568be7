"""candleflow against vectorbt's ``Portfolio.from_signals`` on backtesting.py's EURUSD hourly candles.

Strategy: RSI(14) 30/70 reversal (``strategies/rsi_reversal.yaml``).  Events, decided on a
candle's close, with Wilder's RSI:

* ``oversold``   at candle i: RSI crosses below 30 (``RSI[i-1] >= 30 and RSI[i] < 30``) -> buy;
* ``overbought`` at candle i: RSI crosses above 70 (``RSI[i-1] <= 70 and RSI[i] > 70``) -> sell.

vectorbt gets the same events from its own ``crossed_below(30)`` / ``crossed_above(70)`` on
Wilder's RSI written out below (the test asserts the two event sets are equal), as
``entries`` (oversold) and ``exits`` (overbought) for long only, or ``entries`` and
``short_entries`` for long/short, where an opposite entry reverses the position
(vectorbt's default ``upon_opposite_entry``).

vectorbt set to candleflow's conventions (README "How orders fill"):

* RSI: vectorbt's ``vbt.RSI`` averages gains and losses with a rolling mean (``ewm=False``) or
  an EMA of span ``window`` (``ewm=True``), never Wilder's smoothing; candleflow's ``rsi`` is
  Wilder's only.  So vectorbt is handed Wilder's RSI.
* Fills: vectorbt fills a signal at ``price`` on the signal's own bar.  ``fill: close`` ->
  ``price=close``; ``fill: next_open`` -> signals shifted one bar later and ``price=open``.
* ``fees=c``: a fraction of notional on each side, as candleflow's commission.  Spread and
  slippage are 0 on both sides (vectorbt's slippage is relative, candleflow's in price units).
* Sizing: long only, ``size=inf`` (all cash, fees included) = candleflow ``fraction`` 1.0.
  vectorbt cannot reverse into a short with ``size=inf`` (nor with ``size_type="percent"``),
  so long/short uses fixed units on both sides.
* End of data: vectorbt leaves the position open, valued at the last close, and reports it as
  an open trade without exit fees, like candleflow's ``exit_reason == "open"``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import vectorbt as vbt

from crosscheck_support import assert_frames_equal, fills, run_candleflow, utc

pytestmark = [
    pytest.mark.crosscheck,
    # vectorbt 1.2 under pandas 3: DataFrame.rename(inplace=True) in its record formatting
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.rename is deprecated"),
]

PERIOD, LOWER, UPPER = 14, 30.0, 70.0
CASH = 10_000.0
COMMISSION = 0.0002
UNITS = 5_000.0


def wilder_rsi(close: list[float], period: int) -> list[float]:
    """Wilder's RSI: averages of the first ``period`` gains/losses, then ``avg = (avg*(n-1) + x) / n``."""
    out = [math.nan] * len(close)
    avg_gain = avg_loss = 0.0
    for i in range(1, len(close)):
        change = close[i] - close[i - 1]
        gain, loss = max(change, 0.0), max(-change, 0.0)
        if i < period:
            avg_gain += gain
            avg_loss += loss
            continue
        if i == period:
            avg_gain = (avg_gain + gain) / period
            avg_loss = (avg_loss + loss) / period
        else:
            avg_gain = (avg_gain * (period - 1) + gain) / period
            avg_loss = (avg_loss * (period - 1) + loss) / period
        out[i] = 100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return out


@pytest.fixture(scope="module")
def events(eurusd):
    """vectorbt's crossing events on Wilder's RSI: (oversold, overbought) boolean Series."""
    rsi = pd.Series(wilder_rsi(eurusd["Close"].tolist(), PERIOD), index=eurusd.index)
    return rsi.vbt.crossed_below(LOWER), rsi.vbt.crossed_above(UPPER)


def run_peer(eurusd: pd.DataFrame, oversold: pd.Series, overbought: pd.Series, *, fill: str, allow_short: bool):
    if fill == "next_open":
        oversold, overbought = oversold.shift(1, fill_value=False), overbought.shift(1, fill_value=False)
        price = eurusd["Open"]
    else:
        price = eurusd["Close"]
    none = pd.Series(False, index=eurusd.index)
    # the same argument types in every call, so numba compiles the simulation once
    return vbt.Portfolio.from_signals(
        close=eurusd["Close"], price=price,
        entries=oversold, exits=none if allow_short else overbought,
        short_entries=overbought if allow_short else none, short_exits=none,
        size=UNITS if allow_short else np.inf, fees=COMMISSION, init_cash=CASH, freq="1h")


@pytest.mark.parametrize("fill", ["next_open", "close"])
@pytest.mark.parametrize("allow_short", [False, True], ids=["long_only", "long_short"])
def test_rsi_reversal_matches_vectorbt(eurusd, events, fill, allow_short):
    result = run_candleflow("rsi_reversal.yaml", eurusd, period=PERIOD, lower=LOWER, upper=UPPER, fill=fill,
                            commission=COMMISSION, sizing_method="fixed" if allow_short else "fraction",
                            sizing_value=UNITS if allow_short else 1.0, allow_short=allow_short, cash=CASH)
    oversold, overbought = events

    # the same events on both sides
    frame = result.signals()["extremes"]
    for name, mask in (("oversold", oversold), ("overbought", overbought)):
        assert sorted(frame.loc[frame["signal_type"] == name, "bar"]) == np.flatnonzero(mask.to_numpy()).tolist()
    assert oversold.sum() >= 20 and overbought.sum() >= 20

    pf = run_peer(eurusd, oversold, overbought, fill=fill, allow_short=allow_short)

    # every order: same bar and price exactly; sizes and fees up to float rounding
    orders = pf.orders.records_readable
    theirs = pd.DataFrame({
        "bar": result.candles.index.get_indexer(utc(orders["Timestamp"])),
        "price": orders["Price"].to_numpy(),
        "size": np.where(orders["Side"] == "Buy", 1.0, -1.0) * orders["Size"].to_numpy(),
        "fees": orders["Fees"].to_numpy(),
    })
    mine = fills(result.trades)
    assert_frames_equal(mine, theirs, exact=["bar", "price"], close=["size"])
    np.testing.assert_allclose(theirs["fees"], np.abs(mine["size"] * mine["price"]) * COMMISSION, rtol=1e-9, atol=0)

    # every trade, the still-open one included: same count, times, direction, status and P&L
    trades = pf.trades.records_readable
    assert len(result.trades) == len(trades) >= 20
    peer = pd.DataFrame({
        "entry_time": utc(trades["Entry Timestamp"]), "exit_time": utc(trades["Exit Timestamp"]),
        "side": trades["Direction"].str.lower().to_numpy(),
        "open": (trades["Status"] == "Open").to_numpy(),
        "size": trades["Size"].to_numpy(), "pnl": trades["PnL"].to_numpy(),
    })
    ours = result.trades.assign(open=result.trades["exit_reason"] == "open")
    assert_frames_equal(ours, peer, exact=["entry_time", "exit_time", "side", "open"], close=["size", "pnl"])

    assert result.metrics["final_equity"] == pytest.approx(pf.final_value(), rel=1e-6, abs=0)
    np.testing.assert_allclose(result.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-9, atol=0)
