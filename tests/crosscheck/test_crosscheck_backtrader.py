"""candleflow against backtrader on backtesting.py's GOOG daily candles: SMA(10/20) crossover.

backtrader set to candleflow's conventions (README "How orders fill"):

* Market orders: backtrader fills an order placed in ``next()`` at the next bar's open
  (``fill: next_open``); with ``broker.set_coc(True)`` (cheat-on-close) at the close of the
  bar that placed it (``fill: close``).
* ``broker.setcommission(commission=c)``: stock-like, a fraction of notional on each side.
* Sizing: fixed units on both sides.  backtrader's sizers (``PercentSizer``) size an order
  from the close of the bar that places it and ignore commission; candleflow sizes fractions
  from the fill price with commission, and has no option to size from the signal bar.
* ``broker.set_checksubmit(False)``: no cash check at submission, as candleflow's fixed sizing
  does not model margin.
* Reversal: ``order_target_size(+-units)`` is one order of twice the size at one price;
  candleflow books it as an exit and an entry at that price, so fills are compared per bar.
* End of data: backtrader leaves the last position open and values it at the last close,
  like candleflow.
* Signals: ``next()`` applies candleflow's crossing rule to ``bt.ind.SMA``
  (backtrader's own ``CrossOver`` indicator counts a cross after equal values differently).
"""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from crosscheck_support import assert_frames_equal, closed_trades, fills, run_candleflow

pytestmark = pytest.mark.crosscheck

FAST, SLOW = 10, 20
CASH = 10_000.0
COMMISSION = 0.002
UNITS = 10


class SmaCross(bt.Strategy):
    """Golden cross -> target +units; death cross -> target -units (long/short) or 0 (long only)."""

    params = dict(units=UNITS, allow_short=False)

    def __init__(self):
        self.fast = bt.ind.SMA(self.data.close, period=FAST)
        self.slow = bt.ind.SMA(self.data.close, period=SLOW)
        self.fills: list[tuple] = []
        self.closed: list[tuple] = []
        self.values: list[float] = []

    def prenext(self):
        self.values.append(self.broker.getvalue())

    def next(self):
        self.values.append(self.broker.getvalue())
        f, s = self.fast, self.slow
        if f[-1] <= s[-1] and f[0] > s[0]:
            self.order_target_size(target=self.p.units)
        elif f[-1] >= s[-1] and f[0] < s[0]:
            self.order_target_size(target=-self.p.units if self.p.allow_short else 0)

    def notify_order(self, order):
        if order.status == order.Completed:
            # executed.price is recomputed as value / size (off by an ulp at times): take the
            # execution bits' own prices, one price per market order
            prices = {bit.price for bit in order.executed.exbits}
            assert len(prices) == 1, prices
            self.fills.append((bt.num2date(order.executed.dt), prices.pop(), order.executed.size,
                               order.executed.comm))

    def notify_trade(self, trade):
        if trade.isclosed:
            self.closed.append((bt.num2date(trade.dtopen), bt.num2date(trade.dtclose), trade.price, trade.pnlcomm))


def run_peer(data: pd.DataFrame, *, allow_short: bool, cheat_on_close: bool):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=data))
    cerebro.addstrategy(SmaCross, allow_short=allow_short)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=COMMISSION)
    cerebro.broker.set_checksubmit(False)
    cerebro.broker.set_coc(cheat_on_close)
    strategy = cerebro.run()[0]
    return strategy, cerebro.broker.getvalue()


@pytest.mark.parametrize("fill", ["next_open", "close"])
@pytest.mark.parametrize("allow_short", [False, True], ids=["long_only", "long_short"])
def test_sma_crossover_matches_backtrader(goog, fill, allow_short):
    result = run_candleflow("sma_crossover.yaml", goog, fast=FAST, slow=SLOW, fill=fill, commission=COMMISSION,
                            sizing_method="fixed", sizing_value=UNITS, whole_units=False,
                            allow_short=allow_short, cash=CASH)
    peer, peer_value = run_peer(goog, allow_short=allow_short, cheat_on_close=fill == "close")
    times = result.candles.index

    # every order: same bar, same price, same signed size; commission up to float rounding
    mine = fills(result.trades)
    theirs = pd.DataFrame(peer.fills, columns=["time", "price", "size", "commission"])
    theirs["bar"] = times.get_indexer(pd.DatetimeIndex(theirs["time"]).tz_localize("UTC"))
    assert len(mine) >= 40
    assert_frames_equal(mine, theirs, exact=["bar", "price", "size"], close=[])
    np.testing.assert_allclose(theirs["commission"], np.abs(mine["size"] * mine["price"]) * COMMISSION,
                               rtol=1e-9, atol=0)

    # every finished trade: same entry and exit bar, entry price and net P&L.  backtrader stamps a
    # trade with the bar on which its broker books the fill: under cheat-on-close that is the bar
    # after the fill (whose own time the order carries, as compared above).  Its trade price is
    # recomputed as value / size, so it is compared up to rounding (the exact fill price is above).
    done = closed_trades(result.trades)
    peer_closed = pd.DataFrame(peer.closed, columns=["entry_time", "exit_time", "entry_price", "pnl"])
    booked_late = 1 if fill == "close" else 0
    for column in ("entry", "exit"):
        booked = times.get_indexer(pd.DatetimeIndex(peer_closed[f"{column}_time"]).tz_localize("UTC"))
        peer_closed[f"{column}_bar"] = booked - booked_late
    assert_frames_equal(done, peer_closed, exact=["entry_bar", "exit_bar"], close=["entry_price", "pnl"])

    assert result.metrics["final_equity"] == pytest.approx(peer_value, rel=1e-6, abs=0)
    if fill == "next_open":
        # backtrader's value in next() is after that bar's open fills, as candleflow's equity;
        # cheat-on-close books a close fill only when the next bar starts, so there only the end is compared
        np.testing.assert_allclose(result.equity.to_numpy(), peer.values, rtol=1e-9, atol=0)
