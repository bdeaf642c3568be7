"""The portfolio simulation: one symbol, an event loop over the candles where something can happen.

Algorithm: an event loop in plain Python over candles; no pandas per candle.  The state is a
:class:`_Book`: cash, the open trades (:class:`~candleflow.portfolio.orders.Trade`, all of one
side), at most one working entry order per side
(:class:`~candleflow.portfolio.orders.WorkingOrder`) and the log of finished trades.  A candle is
*stepped* (:meth:`_Book.step`) when an action applies on it; between two such candles, while a
trade or an order is live, each object's vectorized scan names the first candle at which it may
fire, the closes before it advance the trailing stops at once, and that candle is stepped.  No other
candle changes cash or position, so these are recorded where they change and forward-filled; the
equity curve is ``cash + position x close``.  The Python work grows with the number of orders and
exits, not with the number of candles.  Every rule below is tested against a plain per-candle
simulator (tests/reference_simulator.py).

How orders fill
---------------
* **Timing.** Actions are decided on a candle's close.  With ``fill: next_open`` (default) an action
  of candle *i* applies at candle *i+1*'s open (the last candle's never do); with ``fill: close`` at
  candle *i*'s close.  A limit, stop or stop-limit entry decided on candle *i* works from candle
  *i+1* (its open included) in both modes, for ``valid_for`` candles (*i+1 .. i+valid_for*) or until
  filled or replaced by a newer entry of its side; its prices are read on candle *i*.
* **One step.** ``next_open``: at the open, signal exits, then time exits (``max_bars``), then the
  entry (a market order fills, another order starts working); then within the candle the open trades'
  exits, then the working orders (older first, a buy before a sell of the same age); then the close
  updates the trailing and break-even stops.  ``close``: within the candle the trades' exits and the
  working orders, then at the close signal exits, time exits, the entry, and the stop updates.
* **Actions.** Exits first, then entries.  An exit closes every trade of its side and cancels that
  side's working order.  ``buy`` while short closes the short and opens a long (exit reason
  ``reversal``); ``sell`` while long closes the long and opens a short if ``risk.allow_short``,
  otherwise it only closes the long (reason ``signal``).  An entry in the direction held is ignored
  unless fewer than ``orders.max_entries`` trades are open (pyramiding: each entry a trade of its
  own, with its own fill, stops and clock); ``sell`` while flat without ``allow_short`` is ignored.
  A working order's fill acts like a market entry at its fill price.
* **Prices and costs.** A buy fills at ``price + spread/2 + slippage``, a sell at ``price - ...``;
  each is ``units`` of price plus ``bps`` x price / 10,000.  Each fill pays
  ``max(minimum, fraction x size x fill + per_unit x size + per_order)`` commission.
* **Sizing**, with equity = cash + open trades marked at the price: ``fraction``: ``f x room`` worth,
  commission included (``room = leverage x equity - open notional``, leverage ``max_leverage`` or 1,
  so cash stays >= 0 for longs without leverage); ``fixed``: ``value`` units; ``risk``: the size whose
  loss at the initial stop (the tighter of stop-loss and trailing stop) is ``value x equity``, skipped
  when the stop is not on the loss side of the fill.  With ``max_leverage``, a ``fixed`` or ``risk``
  size is cut so the open notional stays within ``max_leverage x equity``.  ``whole_units`` floors the
  size; a trade whose size is not positive is skipped.
* **Exits.** Each level is read on the candle whose close decided the entry: a ``fraction`` of the
  entry fill, an ATR ``multiple`` from the entry fill, or a ``price`` node's value.  A trailing stop
  starts at its distance from the entry fill and ratchets, in the trade's favour only, to its distance
  from each close from the fill candle on (ATR read at that close); ``break_even: x`` moves the stop to
  the entry fill after a close ``x`` beyond it.  The trade's stop is the tightest of these.  Checked on
  every candle from the fill candle (market orders at the open) or the next one (``close`` fills and
  working orders, whose place in the candle is unknown): a gap fills at the open, else a touched level
  fills at the level; **the stop wins if one candle touches the stop and the take-profit.**
  ``max_bars: n`` closes a trade ``n`` candles after its fill candle: at that candle's open
  (``next_open``) or close (``close``).
* **End of data.** With ``close_at_end`` open trades are closed at the last close (reason ``end``, costs
  paid); otherwise they stay open, as in backtesting.py: marked at the last close and listed with
  ``exit_reason="open"``, exit price the last close, P&L net of the entry commission only.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from candleflow.config.models import Distance, Execution, Orders, Risk, Sizing
from candleflow.portfolio.metrics import compute_metrics
from candleflow.portfolio.orders import INF, Costs, Trade, Trail, WorkingOrder
from candleflow.portfolio.rules import CLOSE_LONG, CLOSE_SHORT, Actions
from candleflow.vocab import PRICE_COLUMNS

TRADE_COLUMNS = ["side", "size", "entry_bar", "entry_time", "entry_price", "exit_bar", "exit_time",
                 "exit_price", "pnl", "return_pct", "commission", "exit_reason"]
NEVER = 1 << 62  # a candle index after any data


@dataclass(frozen=True)
class Simulation:
    """The result of :func:`simulate`.

    ``trades``: one row per trade (columns ``TRADE_COLUMNS``; ``pnl`` is net of both
    commissions, ``return_pct`` is ``pnl / (size x entry_price)`` as a fraction, like
    backtesting.py's ``ReturnPct``; ``commission`` is both sides' total).
    ``equity``: cash + marked position at each close, indexed by candle time.
    ``position``: signed size held at each bar's close.  ``metrics``: see
    :func:`candleflow.portfolio.metrics.compute_metrics`.  ``notes``: counts of orders that
    did not happen, by reason (``{"entry skipped: size not positive": 3}``), for warnings.
    """

    trades: pd.DataFrame
    equity: pd.Series
    position: np.ndarray
    metrics: dict[str, float]
    notes: dict[str, int] = field(default_factory=dict)


class _Prices:
    """The candles as arrays, and the indicator series the orders read, by reference (``bb.lower``)."""

    def __init__(self, candles: pd.DataFrame, levels: dict[str, np.ndarray] | None) -> None:
        self.opens, self.highs, self.lows, self.closes = (candles[c].to_numpy(dtype=np.float64) for c in PRICE_COLUMNS)
        self.levels = {ref: np.asarray(v, dtype=np.float64) for ref, v in (levels or {}).items()}

    def distance(self, distance: Distance, side: int, price: float, bar: int) -> float:
        """The level ``distance`` beyond ``price`` on ``side``'s favourable side (read at ``bar``)."""
        if distance.price is not None:
            return self.levels[distance.price].item(bar)
        if distance.fraction is not None:
            return price * (1 + side * distance.fraction)
        return price + side * distance.multiple * self.levels[distance.atr].item(bar)


class _Book:
    """Cash, the open trades, the working entry orders and the finished trades; stepped by :func:`simulate`."""

    def __init__(self, cash: float, prices: _Prices, execution: Execution, orders: Orders, sizing: Sizing,
                 risk: Risk) -> None:
        self.cash = cash
        self.trades: list[Trade] = []  # open, all of one side
        self.working: dict[int, WorkingOrder] = {}  # side -> its working entry order
        self.log: list[tuple] = []
        self.notes: Counter[str] = Counter()
        self.prices, self.costs = prices, Costs(execution)
        self.next_open = execution.fill == "next_open"
        self.orders, self.sizing, self.risk = orders, sizing, risk
        trailing = risk.trailing_stop
        self.trail = None if trailing is None else Trail(
            trailing.fraction, trailing.multiple, prices.levels[trailing.atr] if trailing.atr else None)

    @property
    def side(self) -> int:
        return self.trades[0].side if self.trades else 0

    def position(self) -> float:
        return sum(t.side * t.size for t in self.trades)

    # -- one candle -------------------------------------------------------------------------------
    def step(self, bar: int, entry: int, exits: int) -> None:
        """Candle ``bar``, with the actions that apply on it (see "One step" in the module docstring)."""
        prices = self.prices
        if self.next_open:
            self.act(entry, exits, bar, prices.opens.item(bar), bar - 1)
            self.within(bar)
        else:
            self.within(bar)
            self.act(entry, exits, bar, prices.closes.item(bar), bar)
        close = prices.closes.item(bar)
        for trade in self.trades:
            trade.after_close(close, bar)
        for side in [s for s, order in self.working.items() if order.expires <= bar]:
            del self.working[side]

    def act(self, entry: int, exits: int, bar: int, price: float, decided: int) -> None:
        """Signal exits, time exits, then the entry, at ``price`` (an open or a close)."""
        side = self.side
        if side and exits & (CLOSE_LONG if side > 0 else CLOSE_SHORT):
            self.close_all(bar, price, "signal")
        for flag, order_side in ((CLOSE_LONG, 1), (CLOSE_SHORT, -1)):
            if exits & flag:
                self.working.pop(order_side, None)
        for trade in [t for t in self.trades if t.due == bar]:
            self.close(trade, bar, price, "max_bars")
        if entry:
            order = self.orders.for_side(entry)
            if order.type == "market":
                self.enter(entry, bar, price, decided, first_check=bar if self.next_open else bar + 1)
            elif self.accepts(entry):
                self.place(entry, order, decided)

    def within(self, bar: int) -> None:
        """The open trades' exits, then the working orders, on candle ``bar``'s prices."""
        prices = self.prices
        open_, high, low = prices.opens.item(bar), prices.highs.item(bar), prices.lows.item(bar)
        for trade in list(self.trades):
            if trade.first_check <= bar:
                price, reason = trade.exit_price(open_, high, low)
                if reason:
                    self.close(trade, bar, price, reason)
        for order in sorted(self.working.values(), key=lambda o: (o.decided, -o.side)):
            if order.start <= bar <= order.expires:
                price = order.fill_price(open_, high, low)
                if not math.isnan(price):
                    del self.working[order.side]
                    self.enter(order.side, bar, price, order.decided, first_check=bar + 1)

    # -- entries --------------------------------------------------------------------------------------
    def accepts(self, side: int) -> bool:
        """Whether an entry of ``side`` does anything now (see "Actions")."""
        held = self.side
        if held == side:
            return len(self.trades) < self.orders.max_entries
        return held != 0 or side > 0 or self.risk.allow_short

    def place(self, side: int, spec, decided: int) -> None:
        """Start working a limit/stop/stop-limit order of ``side``, priced on candle ``decided``."""
        prices, close = self.prices, self.prices.closes.item(decided)
        if spec.price is not None:
            level = prices.levels[spec.price].item(decided)
        else:  # a limit below the close for a buy, a stop above it
            level = prices.distance(spec.offset, side if spec.type != "limit" else -side, close, decided)
        stop = level if spec.type != "limit" else math.nan
        limit = level if spec.type == "limit" else math.nan
        if spec.type == "stop_limit":
            limit = prices.distance(spec.limit_offset, side, stop, decided)
        if math.isnan(level) or math.isnan(limit) and spec.type != "stop":
            self.notes["entry order not placed: its price is NaN (indicator warm-up)"] += 1
            return
        expires = decided + spec.valid_for if spec.valid_for else NEVER
        self.working[side] = WorkingOrder(side, spec.type, stop, limit, decided, decided + 1, expires)

    def enter(self, side: int, bar: int, price: float, decided: int, *, first_check: int) -> None:
        """A buy (+1) or sell (-1) at ``price``: reverse or close what is held, then open if it may."""
        if not self.accepts(side):
            return
        held = self.side
        if held and held != side:
            opens = side > 0 or self.risk.allow_short
            self.close_all(bar, price, "reversal" if opens else "signal")
            if not opens:
                return
        self.open(side, bar, price, decided, first_check)

    def open(self, side: int, bar: int, price: float, decided: int, first_check: int) -> None:
        fill = self.costs.fill(side, price)
        risk, prices = self.risk, self.prices
        stop = prices.distance(risk.stop_loss, -side, fill, decided) if risk.stop_loss else -side * INF
        target = prices.distance(risk.take_profit, side, fill, decided) if risk.take_profit else side * INF
        trail = side * self.trail.level(side, fill, decided) if self.trail else -INF
        size = self.size(side, price, fill, max(side * stop, trail))
        if not size > 0:
            return
        commission = self.costs.commission(size, fill)
        self.cash -= side * size * fill + commission
        trade = Trade(side, size, bar, fill, commission, stop, target, trail, self.trail, first_check=first_check)
        if risk.break_even is not None:
            trade.break_even_at = fill * (1 + side * risk.break_even)
        if risk.max_bars is not None:
            trade.due = bar + risk.max_bars
        self.trades.append(trade)

    def size(self, side: int, price: float, fill: float, stop: float) -> float:
        """Units for a new trade (see "Sizing"); ``stop`` is its initial stop in sign space."""
        sizing = self.sizing
        held = sum(t.size for t in self.trades) * price
        equity = self.cash + side * held
        room = (sizing.max_leverage or 1) * equity - held
        if sizing.method == "fraction":
            size = self.costs.affordable(sizing.value * room, fill)
        elif sizing.method == "fixed":
            size = sizing.value
        else:
            distance = side * fill - stop
            if not distance > 0:
                self.notes["entry skipped: risk sizing needs the stop on the loss side of the fill"] += 1
                return 0.0
            size = sizing.value * equity / distance
        if sizing.max_leverage is not None and sizing.method != "fraction" and size * fill > room:
            self.notes["entry size cut to max_leverage"] += 1
            size = max(room, 0.0) / fill
        if sizing.whole_units:
            size = math.floor(size)
        if not size > 0:
            self.notes["entry skipped: size not positive"] += 1
        return size

    # -- exits ---------------------------------------------------------------------------------------
    def close_all(self, bar: int, price: float, reason: str) -> None:
        for trade in list(self.trades):
            self.close(trade, bar, price, reason)

    def close(self, trade: Trade, bar: int, price: float, reason: str) -> None:
        """Close ``trade`` at ``price`` (before costs) and log it."""
        fill = self.costs.fill(-trade.side, price)
        commission = self.costs.commission(trade.size, fill)
        self.cash += trade.side * trade.size * fill - commission
        self.trades.remove(trade)
        self._log(trade, bar, fill, commission, reason)

    def log_open_trades(self, bar: int, price: float) -> None:
        """Report the still-open trades marked at ``price``, without exit costs."""
        for trade in self.trades:
            self._log(trade, bar, price, 0.0, "open")

    def _log(self, trade: Trade, bar: int, exit_price: float, exit_commission: float, reason: str) -> None:
        side, size = trade.side, trade.size
        commission = trade.entry_commission + exit_commission
        pnl = side * size * (exit_price - trade.entry_price) - commission
        self.log.append(("long" if side > 0 else "short", size, trade.entry_bar, trade.entry_price, bar,
                         exit_price, pnl, pnl / (size * trade.entry_price), commission, reason))

    # -- quiet candles -----------------------------------------------------------------------------
    def quiet(self, lo: int, hi: int, record) -> None:
        """Step every candle in ``lo .. hi - 1`` at which a trade or an order may fire (no action applies)."""
        prices = self.prices
        opens, highs, lows, closes = prices.opens, prices.highs, prices.lows, prices.closes
        while lo < hi and (self.trades or self.working):
            first = hi
            for trade in self.trades:
                first = trade.first_trigger(opens, highs, lows, closes, lo, first)
            for order in self.working.values():
                first = min(first, order.first_trigger(opens, highs, lows, max(lo, order.start),
                                                       min(first, order.expires + 1)))
            for trade in self.trades:
                trade.after_closes(closes, lo, first)
            for side in [s for s, order in self.working.items() if order.expires < first]:
                del self.working[side]
            if first >= hi:
                return
            self.step(first, 0, 0)
            record(first)
            lo = first + 1


def simulate(
    candles: pd.DataFrame,
    actions: Actions,
    *,
    execution: Execution,
    sizing: Sizing,
    risk: Risk,
    initial_cash: float,
    orders: Orders | None = None,
    levels: dict[str, np.ndarray] | None = None,
) -> Simulation:
    """Run the event loop described in the module docstring over ``candles``.

    ``candles`` is indexed by a UTC ``DatetimeIndex`` and has float columns
    open/high/low/close; ``actions`` has one entry and one exit value per candle;
    ``levels`` holds the indicator series that order prices and exits name.
    """
    n = len(candles)
    if len(actions.entry) != n or len(actions.exit) != n:
        raise ValueError(f"actions cover {len(actions.entry)}/{len(actions.exit)} bars, candles {n}")
    prices = _Prices(candles, levels)
    book = _Book(float(initial_cash), prices, execution, orders or Orders(), sizing, risk)
    entries, exits = np.asarray(actions.entry), np.asarray(actions.exit)
    decided = np.flatnonzero((entries != 0) | (exits != 0))  # candles whose close decided something
    if book.next_open:  # candle i's actions apply at candle i+1's open; the last candle's never do
        decided = decided[decided < n - 1]
    events = decided + 1 if book.next_open else decided
    changed_at: list[int] = []
    cash_after: list[float] = []
    position_after: list[float] = []

    def record(bar: int) -> None:
        changed_at.append(bar)
        cash_after.append(book.cash)
        position_after.append(book.position())

    bar = 0
    for event, entry, exit_flags in zip(events.tolist(), entries[decided].tolist(), exits[decided].tolist()):
        book.quiet(bar, event, record)
        book.step(event, entry, exit_flags)
        record(event)
        bar = event + 1
    book.quiet(bar, n, record)
    if execution.close_at_end and book.trades:
        book.close_all(n - 1, prices.closes.item(n - 1), "end")
        record(n - 1)

    # state after bar b = the last change at or before b (the initial state before any)
    marks = np.zeros(n + 1, dtype=np.int64)
    np.add.at(marks, np.asarray(changed_at, dtype=np.int64), 1)
    which = np.cumsum(marks[:n])
    cash_at = np.array([float(initial_cash), *cash_after], dtype=np.float64)[which]
    position = np.array([0.0, *position_after], dtype=np.float64)[which]

    closes = prices.closes
    if book.trades:
        book.log_open_trades(n - 1, closes.item(n - 1))
    equity = pd.Series(cash_at + position * closes, index=candles.index, name="equity", dtype=np.float64)
    trades = _trades_frame(book.log, candles.index)
    metrics = compute_metrics(equity, trades, position, initial_cash=initial_cash)
    return Simulation(trades=trades, equity=equity, position=position, metrics=metrics, notes=dict(book.notes))


_LOGGED = ("side", "size", "entry_bar", "entry_price", "exit_bar", "exit_price", "pnl", "return_pct",
           "commission", "exit_reason")  # the order of _Book.trades tuples


def _trades_frame(rows: list[tuple], index: pd.DatetimeIndex) -> pd.DataFrame:
    """The trade log as a DataFrame with TRADE_COLUMNS (typed even when empty), built in one go."""
    columns = dict(zip(_LOGGED, zip(*rows))) if rows else dict.fromkeys(_LOGGED, ())
    entry_bar = np.array(columns["entry_bar"], dtype=np.int64)
    exit_bar = np.array(columns["exit_bar"], dtype=np.int64)
    values = {
        "entry_bar": entry_bar, "entry_time": index[entry_bar],
        "exit_bar": exit_bar, "exit_time": index[exit_bar],
        "side": pd.Series(columns["side"], dtype=object),
        "exit_reason": pd.Series(columns["exit_reason"], dtype=object),
    }
    return pd.DataFrame({name: values[name] if name in values else np.array(columns[name], dtype=np.float64)
                         for name in TRADE_COLUMNS}, copy=False)
