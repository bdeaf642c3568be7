"""The order model against backtesting.py (GOOG daily) and vectorbt (EURUSD hourly); risk sizing by hand.

Strategy: ``strategies/sma_crossover_orders.yaml``, the SMA(10/20) crossover of the other checks with
a golden cross placing the entry order and a death cross closing (``short``: mirrored; ``pyramid``: a buy
on every candle the fast SMA is above the slow one), and the ``orders``/``risk``/``sizing``/costs blocks
passed in by each test.

backtesting.py set to candleflow's conventions (besides those of ``test_crosscheck_backtesting_py.py``):

* Entry orders: ``buy(limit=L)``/``buy(stop=S)``/both for a stop-limit, placed in ``next()`` of the
  signal candle with the level candleflow computes there (``close x (1 -+ offset)`` or the indicator's
  value); so they work from the next candle, its open included, as candleflow's.
* ``valid_for: n``: ``next()`` cancels the order once ``n`` candles have been processed after it.
* A death cross cancels the working order and closes the trade; the trade's ``sl``/``tp`` are removed
  first, since backtesting.py processes a stop-loss order before the closing market order of the
  same candle, while candleflow's signal exit comes first (at the open, or at the close with ``close``).
* Stops of a trade opened by a working order are set in ``next()`` of its fill candle, from its fill
  price: they act from the next candle on, as candleflow's.
* The trailing stop is ``lib.TrailingStrategy`` (``sl = max(sl, close - n x atr)`` at each close) with
  the initial stop passed with the order, so ``fill: close`` / ``trade_on_close=True``: with next-open
  fills the peer could not know the fill price the first stop is measured from.  It is handed
  candleflow's Wilder ATR (its own is a simple mean of true ranges), checked against TA-Lib first.
* ``max_bars: n`` and ``break_even: x`` applied in ``next()``: ``trade.close()`` on the right close, ``sl``
  moved to the entry price after a close ``x`` beyond it.
* Pyramiding: ``buy()`` while fewer than ``max_entries`` trades are open (no ``exclusive_orders``);
  ``max_leverage: k`` is ``margin=1/k``.
* ``commission`` as a callable ``max(minimum, fraction x |size| x price + per_order)``, per fill.

vectorbt: ``from_signals(..., open, high, low, sl_stop, tp_stop, sl_trail)`` with ``price=close``
(``fill: close``); fixed units.  Its stops are fractions of the entry price, checked from the candle
after the entry, a gap filling at the open: candleflow's rules, except the two differences pinned below.
Its ``slippage`` is relative: candleflow's ``bps``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import talib
import vectorbt as vbt
from backtesting import Backtest, Strategy
from backtesting.lib import TrailingStrategy
from backtesting.test import SMA
from crosscheck_support import assert_frames_equal, closed_trades, peer_trades, run_candleflow, utc

pytestmark = [
    pytest.mark.crosscheck,
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.rename is deprecated"),
]

FAST, SLOW, BAND, ATR_PERIOD = 10, 20, 5, 14
CASH = 10_000.0
COMMISSION = 0.002
FRACTION = 0.99
TEMPLATE = "sma_crossover_orders.yaml"
EXACT = ["entry_time", "exit_time", "entry_bar", "exit_bar", "entry_price", "exit_price", "signed_size"]


def candleflow(data: pd.DataFrame, *, fill: str = "next_open", short: bool = False, orders: str = "{}",
               risk: str = "{}", sizing: str = f"{{method: fraction, value: {FRACTION}, whole_units: true}}",
               commission=COMMISSION, spread=0, slippage=0, timeframe: str = "1d", pyramid: bool = False):
    return run_candleflow(TEMPLATE, data, fast=FAST, slow=SLOW, band=BAND, atr_period=ATR_PERIOD, fill=fill,
                          short=short, pyramid=pyramid, orders=orders, risk=risk, sizing=sizing, commission=commission,
                          spread=spread, slippage=slippage, cash=CASH, timeframe=timeframe)


def ours(trades: pd.DataFrame) -> pd.DataFrame:
    frame = closed_trades(trades)
    frame["signed_size"] = np.where(frame["side"] == "long", 1.0, -1.0) * frame["size"]
    frame["entry_time"], frame["exit_time"] = utc(frame["entry_time"]), utc(frame["exit_time"])
    return frame


# -- backtesting.py -------------------------------------------------------------------------------------
def rolling_band(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The lowest low and highest high of the last BAND candles: candleflow's ``lowest``/``highest``."""
    return (data["Low"].rolling(BAND).min().to_numpy(), data["High"].rolling(BAND).max().to_numpy())


def peer_strategy(*, kind: str, short: bool = False, offset: float | None = None, price=None,
                  limit_offset: float | None = None, valid_for: int | None = None, size: float = FRACTION,
                  stop_loss: float | None = None, take_profit: float | None = None, base=Strategy):
    """The crossover with candleflow's entry order of ``kind``; ``price``: the level array read at the signal."""
    side = -1 if short else 1

    class Orders(base):
        def init(self):
            super().init()
            self.fast = self.I(SMA, self.data.Close, FAST)
            self.slow = self.I(SMA, self.data.Close, SLOW)
            self.placed = -1

        def next(self):
            super().next()
            i, close = len(self.data) - 1, self.data.Close[-1]
            f, s = self.fast, self.slow
            golden, death = f[-2] <= s[-2] and f[-1] > s[-1], f[-2] >= s[-2] and f[-1] < s[-1]
            enter, leave = (death, golden) if short else (golden, death)
            for trade in self.trades:  # protective exits of a trade filled on this candle
                if trade.entry_bar == i and kind != "market" and stop_loss and trade.sl is None:
                    trade.sl = trade.entry_price * (1 - side * stop_loss)
                if trade.entry_bar == i and kind != "market" and take_profit and trade.tp is None:
                    trade.tp = trade.entry_price * (1 + side * take_profit)
            if valid_for and i - self.placed >= valid_for:
                self.cancel_orders()
            if leave:
                self.cancel_orders()
                for trade in self.trades:
                    trade.sl = trade.tp = None
                    trade.close()
            if enter and not self.position:
                self.cancel_orders()
                (self.sell if short else self.buy)(size=size, **self.levels(i, close))
                self.placed = i

        def cancel_orders(self):
            for order in self.orders:
                if not order.is_contingent:
                    order.cancel()

        def levels(self, i: int, close: float) -> dict:
            if kind == "market":
                return {}
            level = price[i] if price is not None else close * (1 + (side if kind != "limit" else -side) * offset)
            if kind == "limit":
                return {"limit": level}
            if kind == "stop":
                return {"stop": level}
            return {"stop": level, "limit": level * (1 + side * limit_offset)}

    return Orders


def run_peer(data: pd.DataFrame, strategy: type[Strategy], *, trade_on_close: bool = False,
             commission=COMMISSION):
    backtest = Backtest(data, strategy, cash=CASH, commission=commission, spread=0.0, exclusive_orders=False,
                        trade_on_close=trade_on_close, finalize_trades=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # open trades at the end; SL/TP set on a fill candle
        return backtest.run()


def assert_same_trades(result, stats, *, at_least: int = 15) -> pd.DataFrame:
    """Every closed trade identical (times, bars, prices, size), P&L and commission; final equity."""
    mine, theirs = ours(result.trades), peer_trades(stats)
    assert len(mine) >= at_least  # a real comparison, not two empty logs
    assert_frames_equal(mine, theirs, exact=EXACT, close=["pnl", "commission"])
    assert result.metrics["final_equity"] == pytest.approx(stats["Equity Final [$]"], rel=1e-9, abs=0)
    return mine


ENTRY_CASES = {
    # id: (candleflow order, peer_strategy kwargs, fill)
    "limit_offset": ("{type: limit, offset: 0.01}", {"kind": "limit", "offset": 0.01}, "next_open"),
    "limit_offset_short": ("{type: limit, offset: 0.01}", {"kind": "limit", "offset": 0.01, "short": True},
                           "next_open"),
    "limit_offset_close_fill": ("{type: limit, offset: 0.01}", {"kind": "limit", "offset": 0.01}, "close"),
    "limit_valid_for_3": ("{type: limit, offset: 0.01, valid_for: 3}",
                          {"kind": "limit", "offset": 0.01, "valid_for": 3}, "next_open"),
    "limit_at_lowest_low": ("{type: limit, price: low_band}", {"kind": "limit", "price": "low"}, "next_open"),
    "stop_offset": ("{type: stop, offset: 0.01}", {"kind": "stop", "offset": 0.01}, "next_open"),
    "stop_offset_short_valid_for_2": ("{type: stop, offset: 0.01, valid_for: 2}",
                                      {"kind": "stop", "offset": 0.01, "short": True, "valid_for": 2}, "next_open"),
    "stop_at_highest_high": ("{type: stop, price: high_band}", {"kind": "stop", "price": "high"}, "next_open"),
}


@pytest.mark.parametrize("case", list(ENTRY_CASES))
def test_entry_orders_match_backtesting_py(goog, case):
    """Limit and stop entries (offset or indicator price, with or without ``valid_for``): every trade agrees."""
    order, peer, fill = ENTRY_CASES[case]
    low, high = rolling_band(goog)
    peer = {**peer, "price": {"low": low, "high": high}[peer["price"]]} if "price" in peer else peer
    short = peer.get("short", False)
    result = candleflow(goog, fill=fill, short=short, orders=f"{{entry: {order}}}")
    stats = run_peer(goog, peer_strategy(**peer), trade_on_close=fill == "close")
    mine = assert_same_trades(result, stats)

    # the orders' two fill rules are both exercised: at the level, and at a gapped open
    opens = goog["Open"].to_numpy()[mine["entry_bar"]]
    assert 1 <= (mine["entry_price"] == opens).sum() < len(mine)
    if "valid_for" in peer:  # and some orders expired unfilled
        crosses = result.signals()["cross"]["signal_type"]
        assert (crosses == ("death_cross" if short else "golden_cross")).sum() > len(mine) + 3


def test_entry_orders_with_stops_match_backtesting_py(goog):
    """A limit entry with a stop-loss and a take-profit measured from its fill, set on the fill candle."""
    result = candleflow(goog, orders="{entry: {type: limit, offset: 0.005}}",
                        risk="{stop_loss: 0.03, take_profit: 0.05}")
    stats = run_peer(goog, peer_strategy(kind="limit", offset=0.005, stop_loss=0.03, take_profit=0.05))
    mine = assert_same_trades(result, stats)
    reasons = mine["exit_reason"].value_counts()
    assert reasons.get("stop_loss", 0) >= 3 and reasons.get("take_profit", 0) >= 3


@pytest.mark.parametrize("short", [False, True], ids=["buy", "sell"])
def test_stop_limit_gap_differs_by_design(goog, short):
    """Stop-limit entries agree except on a candle that opens beyond the stop: backtesting.py fills at the stop.

    candleflow reads the open first: triggered there, the order fills at the open if it is within the
    limit, else at the limit if the candle comes back to it (else it works on as a limit order).
    backtesting.py fills a stop-limit triggered on a candle at ``min(stop, limit)`` (a buy), the stop,
    even when no trade happened there.  Fixed units keep the two runs in step after such a candle.
    """
    units, offset, limit_offset = 10, 0.005, 0.01
    result = candleflow(goog, short=short, sizing=f"{{method: fixed, value: {units}}}",
                        orders=f"{{entry: {{type: stop_limit, offset: {offset}, limit_offset: {limit_offset}}}}}")
    stats = run_peer(goog, peer_strategy(kind="stop_limit", short=short, offset=offset, limit_offset=limit_offset,
                                         size=units))
    mine, theirs = ours(result.trades), peer_trades(stats)
    assert len(mine) >= 15
    assert_frames_equal(mine, theirs, exact=["entry_bar", "exit_bar", "exit_price", "signed_size"], close=[])

    side = -1 if short else 1
    crosses = result.signals()["cross"]
    placed = crosses.loc[crosses["signal_type"] == ("death_cross" if short else "golden_cross"), "bar"].to_numpy()
    decided = placed[np.searchsorted(placed, mine["entry_bar"].to_numpy()) - 1]  # the signal before each entry
    stop = goog["Close"].to_numpy()[decided] * (1 + side * offset)
    limit = stop * (1 + side * limit_offset)
    opens = goog["Open"].to_numpy()[mine["entry_bar"]]
    favourable = goog["High" if side > 0 else "Low"].to_numpy()
    # the candle that triggered each order: the first after its signal to reach the stop
    trigger = np.array([d + 1 + np.flatnonzero(side * favourable[d + 1:] >= side * s)[0]
                        for d, s in zip(decided, stop)])
    by_design = (trigger == mine["entry_bar"].to_numpy()) & (side * opens > side * stop)
    differs = (mine["entry_price"] != theirs["entry_price"]).to_numpy()
    assert by_design.sum() >= 2
    np.testing.assert_array_equal(differs, by_design)  # they differ exactly there, and nowhere else
    np.testing.assert_array_equal(theirs["entry_price"][by_design], stop[by_design])
    expected = np.where(side * opens <= side * limit, opens, limit)
    np.testing.assert_array_equal(mine["entry_price"][by_design], expected[by_design])


@pytest.fixture(scope="module")
def atr(goog):
    """candleflow's ATR(14) on GOOG, checked against TA-Lib's (Wilder's, the same warm-up)."""
    values = candleflow(goog).indicators()["atr"].to_numpy()
    reference = talib.ATR(*(goog[c].to_numpy() for c in ("High", "Low", "Close")), ATR_PERIOD)
    np.testing.assert_allclose(values, reference, rtol=1e-12, atol=0, equal_nan=True)
    return values


def trailing_peer(atr: np.ndarray, multiple: float, short: bool) -> type[Strategy]:
    """``lib.TrailingStrategy`` with candleflow's ATR and the initial stop passed with the entry order."""
    side = -1 if short else 1

    class Trailing(peer_strategy(kind="market", short=short, base=TrailingStrategy)):
        def init(self):
            super().init()
            self._TrailingStrategy__atr = atr  # its own ATR is a plain mean of true ranges
            self.set_trailing_sl(multiple)

        def levels(self, i: int, close: float) -> dict:
            return {"sl": close - side * multiple * atr[i]}

    return Trailing


@pytest.mark.parametrize("short", [False, True], ids=["long", "short"])
def test_atr_trailing_stop_matches_backtesting_py(goog, atr, short):
    """``trailing_stop: {atr: atr, multiple: 3}``: every trade, exit levels included, agrees."""
    multiple = 3.0
    result = candleflow(goog, fill="close", short=short, risk=f"{{trailing_stop: {{atr: atr, multiple: {multiple}}}}}")
    stats = run_peer(goog, trailing_peer(atr, multiple, short), trade_on_close=True)
    mine = assert_same_trades(result, stats)
    trailed = mine[mine["exit_reason"] == "trailing_stop"]
    assert len(trailed) >= 10
    # the stop really moved: most exits are above (a long's) initial stop
    initial = trailed["entry_price"] - (-1 if short else 1) * multiple * atr[trailed["entry_bar"]]
    assert ((-1 if short else 1) * (trailed["exit_price"] - initial) > 0).mean() > 0.5


@pytest.mark.parametrize("short", [False, True], ids=["long", "short"])
def test_indicator_stop_and_atr_target_match_backtesting_py(goog, atr, short):
    """``stop_loss: {price: low_band}`` (a short: ``high_band``) and ``take_profit: {atr: atr, multiple: 2}``,
    both read on the signal candle (``fill: close``): the peer passes the same ``sl``/``tp`` with the order."""
    side = -1 if short else 1
    band = rolling_band(goog)[1 if short else 0]

    class Levels(peer_strategy(kind="market", short=short)):
        def levels(self, i: int, close: float) -> dict:
            return {"sl": band[i], "tp": close + side * 2 * atr[i]}

    result = candleflow(goog, fill="close", short=short,
                        risk=f"{{stop_loss: {{price: {'high_band' if short else 'low_band'}}}, "
                             "take_profit: {atr: atr, multiple: 2}}")
    stats = run_peer(goog, Levels, trade_on_close=True)
    mine = assert_same_trades(result, stats)
    reasons = mine["exit_reason"].value_counts()
    assert reasons.get("stop_loss", 0) >= 10 and reasons.get("take_profit", 0) >= 10


def exits_peer(*, short: bool, close_fill: bool, max_bars: int | None = None, break_even: float | None = None,
               stop_loss: float | None = None) -> type[Strategy]:
    """Market entries with candleflow's time exit and break-even move, applied in ``next()`` at each close.

    ``max_bars: n`` closes the trade on the close ``n - 1`` candles after its fill (it then fills at the
    next open), or ``n`` with ``trade_on_close`` (it then fills at that close).
    """
    side = -1 if short else 1

    class Exits(peer_strategy(kind="market", short=short)):
        def next(self):
            i, close = len(self.data) - 1, self.data.Close[-1]
            for trade in self.trades:
                if break_even and side * close >= side * trade.entry_price * (1 + side * break_even):
                    trade.sl = (max if side > 0 else min)(trade.sl or -side * math.inf, trade.entry_price)
                if max_bars and i - trade.entry_bar == max_bars - (0 if close_fill else 1):
                    trade.sl = trade.tp = None
                    trade.close()
            super().next()

        def levels(self, i: int, close: float) -> dict:
            return {"sl": close * (1 - side * stop_loss)} if stop_loss else {}

    return Exits


@pytest.mark.parametrize("short", [False, True], ids=["long", "short"])
@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_time_exit_matches_backtesting_py(goog, fill, short):
    """``max_bars: 5``: out 5 candles after the fill candle, at its open (``next_open``) or its close."""
    result = candleflow(goog, fill=fill, short=short, risk="{max_bars: 5}")
    stats = run_peer(goog, exits_peer(short=short, close_fill=fill == "close", max_bars=5),
                     trade_on_close=fill == "close")
    mine = assert_same_trades(result, stats)
    timed = mine[mine["exit_reason"] == "max_bars"]
    assert len(timed) >= 30 and (timed["exit_bar"] - timed["entry_bar"] == 5).all()


@pytest.mark.parametrize("short", [False, True], ids=["long", "short"])
def test_break_even_matches_backtesting_py(goog, short):
    """``break_even: 0.02`` with ``stop_loss: 0.05`` (``fill: close``): the peer moves ``sl`` to the entry price
    after a close 2 % beyond it; the stop-loss goes with the order, as the first trailing stop does."""
    result = candleflow(goog, fill="close", short=short, risk="{break_even: 0.02, stop_loss: 0.05}")
    stats = run_peer(goog, exits_peer(short=short, close_fill=True, break_even=0.02, stop_loss=0.05),
                     trade_on_close=True)
    mine = assert_same_trades(result, stats)
    reasons = mine["exit_reason"].value_counts()
    assert reasons.get("break_even", 0) >= 10 and reasons.get("stop_loss", 0) >= 5


def pyramid_peer(data: pd.DataFrame, *, entries: int, size: float) -> type[Strategy]:
    """Buy while the fast SMA is above the slow one and fewer than ``entries`` trades are open; close all on
    a death cross.  The SMAs are plain arrays: a ``self.I`` indicator would start ``next()`` after its warm-up,
    one candle after candleflow's first ``above``."""
    fast, slow = (data["Close"].rolling(n).mean().to_numpy() for n in (FAST, SLOW))

    class Pyramid(Strategy):
        def init(self):
            pass

        def next(self):
            i = len(self.data) - 1
            if fast[i - 1] >= slow[i - 1] and fast[i] < slow[i]:
                for trade in self.trades:
                    trade.close()
            elif fast[i] > slow[i] and len(self.trades) < entries:
                self.buy(size=size)

    return Pyramid


PYRAMID_CASES = {
    # id: (max_entries, sizing, peer size, margin, fill)
    "fixed_units": (3, "{method: fixed, value: 10}", 10, 1.0, "next_open"),
    "fixed_units_close_fill": (3, "{method: fixed, value: 5}", 5, 1.0, "close"),
    "fraction_of_room": (3, "{method: fraction, value: 0.3, whole_units: true}", 0.3, 1.0, "next_open"),
    "leverage_2": (1, "{method: fraction, value: 0.99, whole_units: true, max_leverage: 2}", 0.99, 0.5, "next_open"),
}


@pytest.mark.parametrize("case", list(PYRAMID_CASES))
def test_pyramiding_and_leverage_match_backtesting_py(goog, case):
    """``orders.max_entries`` (each entry a trade of its own) and ``max_leverage`` (backtesting.py's ``margin``).

    A fraction is of the room left (``max_leverage x equity - open notional``), as backtesting.py's
    ``margin_available``.  Trades are compared in the order they closed, ties by entry.
    """
    entries, sizing, size, margin, fill = PYRAMID_CASES[case]
    result = candleflow(goog, fill=fill, pyramid=True, sizing=sizing, orders=f"{{max_entries: {entries}}}")
    backtest = Backtest(goog, pyramid_peer(goog, entries=entries, size=size), cash=CASH, commission=COMMISSION,
                        margin=margin, trade_on_close=fill == "close", finalize_trades=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = backtest.run()
    order = ["exit_bar", "entry_bar"]
    mine = ours(result.trades).sort_values(order, kind="stable").reset_index(drop=True)
    theirs = peer_trades(stats).sort_values(order, kind="stable").reset_index(drop=True)
    assert len(mine) >= 40
    assert_frames_equal(mine, theirs, exact=EXACT, close=["pnl", "commission"])
    assert result.metrics["final_equity"] == pytest.approx(stats["Equity Final [$]"], rel=1e-9, abs=0)
    if entries > 1:
        assert (mine.groupby("exit_bar").size() == entries).mean() > 0.8  # mostly full pyramids
    else:
        assert (mine["size"] * mine["entry_price"] > CASH).all()  # leveraged


def test_commission_per_order_and_minimum_match_backtesting_py(goog):
    """``commission: {fraction, per_order, minimum}`` as backtesting.py's callable commission, per fill."""
    fraction, per_order, minimum, units = 0.001, 1.0, 4.0, 7
    result = candleflow(goog, sizing=f"{{method: fixed, value: {units}}}",
                        commission=f"{{fraction: {fraction}, per_order: {per_order}, minimum: {minimum}}}")

    def commission(size: float, price: float) -> float:
        return max(minimum, fraction * abs(size) * price + per_order)

    stats = run_peer(goog, peer_strategy(kind="market", size=units), commission=commission)
    mine = assert_same_trades(result, stats)
    notional = units * np.concatenate([mine["entry_price"], mine["exit_price"]])
    assert (fraction * notional + per_order < minimum).any() and (fraction * notional + per_order > minimum).any()


# -- vectorbt ------------------------------------------------------------------------------------------
UNITS = 5_000.0
FX_COMMISSION = 0.0002


def vectorbt_run(data: pd.DataFrame, result, *, short: bool, units: float = UNITS, **stops):
    """vectorbt on candleflow's own crossing events (``price=close``), with ``stops`` (sl_stop, tp_stop...)."""
    crosses = result.signals()["cross"]
    events = {}
    for name in ("golden_cross", "death_cross"):
        mask = np.zeros(len(data), dtype=bool)
        mask[crosses.loc[crosses["signal_type"] == name, "bar"].to_numpy()] = True
        events[name] = pd.Series(mask, index=data.index)
    none = pd.Series(False, index=data.index)
    enter, leave = (events["death_cross"], events["golden_cross"]) if short else (events["golden_cross"],
                                                                                  events["death_cross"])
    return vbt.Portfolio.from_signals(
        close=data["Close"], open=data["Open"], high=data["High"], low=data["Low"], price=data["Close"],
        entries=none if short else enter, exits=none if short else leave,
        short_entries=enter if short else none, short_exits=leave if short else none,
        size=units, fees=FX_COMMISSION, init_cash=CASH, freq="1h", **stops)


def vectorbt_trades(pf) -> pd.DataFrame:
    """vectorbt's closed trades, their prices read from its order records (its trade records average them)."""
    orders = pf.orders.records
    assert orders["idx"].is_unique  # one order per candle: no reversals here
    price = pd.Series(orders["price"].to_numpy(), index=orders["idx"].to_numpy())
    trades = pf.trades.records
    trades = trades[trades["status"] == 1].reset_index(drop=True)  # closed
    return pd.DataFrame({
        "entry_bar": trades["entry_idx"].to_numpy(), "exit_bar": trades["exit_idx"].to_numpy(),
        "entry_price": price[trades["entry_idx"]].to_numpy(), "exit_price": price[trades["exit_idx"]].to_numpy(),
        "side": np.where(trades["direction"] == 0, "long", "short"),
        "size": trades["size"].to_numpy(), "pnl": trades["pnl"].to_numpy(),
    })


def fx_run(data: pd.DataFrame, *, short: bool, risk: str):
    return candleflow(data, fill="close", short=short, risk=risk, sizing=f"{{method: fixed, value: {UNITS}}}",
                      commission=FX_COMMISSION, timeframe="1h")


@pytest.mark.parametrize("short", [False, True], ids=["long", "short"])
def test_fraction_stops_match_vectorbt(eurusd, short):
    """``stop_loss: 0.002, take_profit: 0.004`` = vectorbt's ``sl_stop``/``tp_stop``: every trade agrees."""
    result = fx_run(eurusd, short=short, risk="{stop_loss: 0.002, take_profit: 0.004}")
    pf = vectorbt_run(eurusd, result, short=short, sl_stop=0.002, tp_stop=0.004)
    mine = closed_trades(result.trades)
    assert_frames_equal(mine, vectorbt_trades(pf),
                        exact=["entry_bar", "exit_bar", "entry_price", "exit_price", "side", "size"], close=["pnl"])
    reasons = mine["exit_reason"].value_counts()
    assert reasons.get("stop_loss", 0) >= 20 and reasons.get("take_profit", 0) >= 20
    assert result.metrics["final_equity"] == pytest.approx(pf.final_value(), rel=1e-9, abs=0)


@pytest.mark.parametrize("short", [False, True], ids=["long", "short"])
def test_bps_costs_and_fixed_fee_match_vectorbt(eurusd, short):
    """``spread: {bps: 1}, slippage: {bps: 0.5}`` (1 bp a fill) and ``commission: {fraction, per_order}`` =
    vectorbt's relative ``slippage=0.0001``, ``fees`` and ``fixed_fees``, with stops measured from the fill
    (``stop_entry_price="fillprice"``; its default is the close) and slipped too (``stop_exit_price="stopmarket"``).
    """
    result = candleflow(eurusd, fill="close", short=short, risk="{stop_loss: 0.002, take_profit: 0.004}",
                        sizing=f"{{method: fixed, value: {UNITS}}}", timeframe="1h", spread="{bps: 1}",
                        slippage="{bps: 0.5}", commission=f"{{fraction: {FX_COMMISSION}, per_order: 0.5}}")
    pf = vectorbt_run(eurusd, result, short=short, sl_stop=0.002, tp_stop=0.004, slippage=0.0001, fixed_fees=0.5,
                      stop_entry_price="fillprice", stop_exit_price="stopmarket")
    mine, theirs = closed_trades(result.trades), vectorbt_trades(pf)
    assert len(mine) >= 100
    assert_frames_equal(mine, theirs, exact=["entry_bar", "exit_bar", "side", "size"],
                        close=["entry_price", "exit_price"], rtol=1e-12)  # x (1 + s) vs + x s: float rounding
    np.testing.assert_allclose(mine["pnl"], theirs["pnl"], rtol=1e-9, atol=0)
    side = np.where(mine["side"] == "long", 1, -1)
    closes = eurusd["Close"].to_numpy()
    np.testing.assert_allclose(mine["entry_price"], closes[mine["entry_bar"]] * (1 + side * 1e-4), rtol=1e-15)
    assert result.metrics["final_equity"] == pytest.approx(pf.final_value(), rel=1e-12, abs=0)


@pytest.mark.parametrize("short", [False, True], ids=["long", "short"])
def test_vectorbt_gap_beyond_take_profit_differs_by_design(goog, short):
    """As with backtesting.py: a candle opening beyond the take-profit and then reaching the stop-loss.

    candleflow takes the gap at the open as a take-profit; vectorbt checks the stop-loss over the
    whole candle first and fills it at its level.  GOOG daily has such candles; every other exit agrees.
    """
    level = 0.01
    result = candleflow(goog, fill="close", short=short, risk=f"{{stop_loss: {level}, take_profit: {level}}}",
                        sizing="{method: fixed, value: 10}", commission=FX_COMMISSION)
    pf = vectorbt_run(goog, result, short=short, units=10, sl_stop=level, tp_stop=level)
    mine, theirs = closed_trades(result.trades), vectorbt_trades(pf)
    assert_frames_equal(mine, theirs, exact=["entry_bar", "exit_bar", "entry_price", "side", "size"], close=[])

    side = -1 if short else 1
    target, stop = mine["entry_price"] * (1 + side * level), mine["entry_price"] * (1 - side * level)
    bars = goog.iloc[mine["exit_bar"].to_numpy()]
    opened_beyond_target = side * bars["Open"].to_numpy() >= side * target
    reached_stop = side * bars["Low" if side > 0 else "High"].to_numpy() <= side * stop
    by_design = opened_beyond_target & reached_stop
    assert by_design.sum() >= 1
    np.testing.assert_array_equal((mine["exit_price"] != theirs["exit_price"]).to_numpy(), by_design)
    np.testing.assert_array_equal(mine["exit_price"][by_design], bars["Open"].to_numpy()[by_design])
    np.testing.assert_array_equal(theirs["exit_price"][by_design], stop[by_design])


def without_upper_wicks(data: pd.DataFrame, short: bool) -> pd.DataFrame:
    """The candles with no gaps (each opens at the previous close) and, on the trade's favourable side, no
    wick beyond the open and close: then the highest high (a short's lowest low) is a close."""
    out = data.copy()
    out["Open"] = data["Close"].shift(1).fillna(data["Open"])
    body_top, body_bottom = out[["Open", "Close"]].max(axis=1), out[["Open", "Close"]].min(axis=1)
    out["High"] = np.maximum(data["High"], body_top) if short else body_top
    out["Low"] = body_bottom if short else np.minimum(data["Low"], body_bottom)
    return out


@pytest.mark.parametrize("short", [False, True], ids=["long", "short"])
def test_trailing_stop_matches_vectorbt_where_the_extreme_is_a_close(eurusd, short):
    """``trailing_stop: 0.002`` = vectorbt's ``sl_stop=0.002, sl_trail=True`` once the highs are closes.

    vectorbt trails the highest high since the entry (a short: the lowest low), candleflow the
    highest close; on candles whose highs are closes (``without_upper_wicks``) every trade agrees.
    """
    data = without_upper_wicks(eurusd, short)
    result = fx_run(data, short=short, risk="{trailing_stop: 0.002, take_profit: 0.003}")
    pf = vectorbt_run(data, result, short=short, sl_stop=0.002, sl_trail=True, tp_stop=0.003)
    mine = closed_trades(result.trades)
    assert_frames_equal(mine, vectorbt_trades(pf),
                        exact=["entry_bar", "exit_bar", "entry_price", "exit_price", "side", "size"], close=["pnl"])
    reasons = mine["exit_reason"].value_counts()
    assert reasons.get("trailing_stop", 0) >= 30 and reasons.get("take_profit", 0) >= 10


def test_trailing_from_highs_differs_by_design(eurusd):
    """On the real candles vectorbt's trailing stop follows the highs, so it exits no later than candleflow's.

    Entries come from signals only, and both are flat again by the next golden cross, so the
    trades pair up; vectorbt's level is at or above candleflow's at every candle of a trade.
    """
    result = fx_run(eurusd, short=False, risk="{trailing_stop: 0.002}")
    pf = vectorbt_run(eurusd, result, short=False, sl_stop=0.002, sl_trail=True)
    mine, theirs = closed_trades(result.trades), vectorbt_trades(pf)
    assert_frames_equal(mine, theirs, exact=["entry_bar", "entry_price", "size"], close=[])
    assert (theirs["exit_bar"] <= mine["exit_bar"]).all()
    earlier = theirs["exit_bar"] < mine["exit_bar"]
    assert earlier.sum() >= 20
    # where vectorbt exits first, at a level: its highest high since the entry, less 0.2 %
    highs = eurusd["High"].to_numpy()
    for trade in theirs[earlier].itertuples():
        peak = max(trade.entry_price, highs[trade.entry_bar + 1:trade.exit_bar].max(initial=-math.inf))
        level = peak * (1 - 0.002)
        assert trade.exit_price == (min(eurusd["Open"].iloc[trade.exit_bar], level))


# -- risk sizing by hand -------------------------------------------------------------------------------
RISK_CASES = {
    # id: (risk block, the initial stop's distance from the fill (fill, ATR at the signal candle), short)
    "atr_stop": ("{stop_loss: {atr: atr, multiple: 2}}", lambda fill, atr: 2 * atr, False),
    "atr_stop_short": ("{stop_loss: {atr: atr, multiple: 2}}", lambda fill, atr: 2 * atr, True),
    "trailing_tighter": ("{stop_loss: 0.05, trailing_stop: 0.02}", lambda fill, atr: 0.02 * fill, False),
    "stop_loss_tighter": ("{stop_loss: 0.02, trailing_stop: 0.05}", lambda fill, atr: 0.02 * fill, True),
}


@pytest.mark.parametrize("whole_units", [False, True], ids=["fractional", "whole_units"])
@pytest.mark.parametrize("case", list(RISK_CASES))
def test_risk_sizing_by_hand(goog, case, whole_units):
    """``sizing: {method: risk, value: 0.01}``: size = 0.01 x equity / distance from the fill to the initial stop.

    Entries are made flat, so the equity at an entry is the initial cash plus the P&L of the trades
    before it; the stop is the tighter of stop-loss and trailing stop, measured from the fill (the
    entry candle's open) with the ATR of the signal candle before it (TA-Lib's here).
    """
    risk, distance, short = RISK_CASES[case]
    value = 0.01
    result = candleflow(goog, short=short, risk=risk,
                        sizing=f"{{method: risk, value: {value}, whole_units: {str(whole_units).lower()}}}")
    trades = result.trades
    assert len(trades) >= 20
    atr = talib.ATR(*(goog[c].to_numpy() for c in ("High", "Low", "Close")), ATR_PERIOD)
    equity = CASH + np.concatenate([[0.0], np.cumsum(trades["pnl"].to_numpy()[:-1])])
    fill = trades["entry_price"].to_numpy()
    np.testing.assert_array_equal(fill, goog["Open"].to_numpy()[trades["entry_bar"]])
    gap = distance(fill, atr[trades["entry_bar"] - 1])
    expected = value * equity / gap
    if whole_units:
        np.testing.assert_array_equal(trades["size"], np.floor(expected * (1 + 1e-12)))
    else:
        np.testing.assert_allclose(trades["size"], expected, rtol=1e-12, atol=0)
        # an exit at the initial stop's level loses exactly the risked amount before commissions
        side = -1 if short else 1
        at_initial_stop = np.isclose(side * (fill - trades["exit_price"]), gap, rtol=1e-12, atol=0)
        assert at_initial_stop.sum() >= 3
        loss = -(trades["pnl"] + trades["commission"])[at_initial_stop]
        np.testing.assert_allclose(loss, value * equity[at_initial_stop], rtol=1e-9, atol=0)
