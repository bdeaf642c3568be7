"""A plain per-candle reference simulator: the order model of ``portfolio/simulate.py``'s docstring ("How orders
fill", with partial exits as README "How orders fill" says), written again slowly and obviously, for
tests/test_order_model.py.

It visits every candle and does exactly what "One step" says, with lists and small records; it shares no code
with the fast simulator (only the settings models).  Readings of what the docstrings leave open:

* A NaN level (an indicator still warming up) is no level: it never fills, stops or trails; an order priced at
  NaN is not placed; risk sizing with no stop left is skipped like one on the wrong side.
* An entry that does nothing (see "Actions") places no working order and leaves the side's current one working,
  as does an order priced at NaN.  Only exits cancel working orders; a reversal does not.
* A working order whose fill the rules then ignore (a sell once flat without ``allow_short``) is used up.
* Fraction sizing solves ``size x fill + commission(size) = f x room`` exactly, the commission minimum included.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from candleflow.config.models import Distance, Execution, Orders, Risk, Sizing

LONG, SHORT = 1, -1
CLOSE_LONG_FLAG, CLOSE_SHORT_FLAG = 1, 2


@dataclass
class OpenTrade:
    side: int
    size: float
    entry_bar: int
    entry_price: float  # the fill, costs included
    entry_raw: float  # the price the entry filled at before spread and slippage
    entry_commission: float
    stop_loss: float  # NaN: none
    take_profit: float  # NaN: none
    trailing: float  # NaN: none (yet)
    break_even_at: float  # NaN: no break-even rule
    break_even_armed: bool
    first_check: int  # exits are checked from this candle on
    due: int | None  # the candle of the time exit


@dataclass
class PendingOrder:
    side: int
    kind: str  # limit, stop, stop_limit
    stop: float
    limit: float
    decided: int
    last_bar: int | None  # the last candle it works on (None: until filled or replaced)
    triggered: bool = False  # a stop-limit whose stop was hit at an open and did not fill there


@dataclass
class ReferenceResult:
    trades: list[tuple]  # (side, size, entry_bar, entry_price, exit_bar, exit_price, pnl, return_pct,
    #                        commission, spread_slippage, exit_reason), as Simulation.trades
    cash: list[float]  # after each candle
    position: list[float]  # signed units after each candle
    notes: Counter = field(default_factory=Counter)


def beyond(side: int, a: float, b: float) -> bool:
    """``a`` is at or beyond ``b`` in ``side``'s favour (a long's higher, a short's lower).  NaN: False."""
    return a >= b if side == LONG else a <= b


def tighter_stop(side: int, a: float, b: float) -> bool:
    """Stop ``a`` is strictly tighter (closer to the price from the loss side) than stop ``b``."""
    return a > b if side == LONG else a < b


# -- reading a level -------------------------------------------------------------------------------------------
def level_beyond(distance: Distance, direction: int, base: float, bar: int, levels: dict) -> float:
    """The price ``distance`` away from ``base`` upwards (direction +1) or downwards (-1), read at ``bar``."""
    if distance.price is not None:
        return float(levels[distance.price][bar])
    if distance.fraction is not None:
        return base * (1 + distance.fraction) if direction > 0 else base * (1 - distance.fraction)
    atr = float(levels[distance.atr][bar])
    return base + distance.multiple * atr if direction > 0 else base - distance.multiple * atr


def trailing_level(risk: Risk, side: int, price: float, bar: int, levels: dict) -> float:
    """The trailing stop's level for ``price`` (below it for a long), ATR read at ``bar``."""
    return level_beyond(risk.trailing_stop, -side, price, bar, levels)


# -- costs -----------------------------------------------------------------------------------------------------
def fill_price(execution: Execution, side: int, price: float) -> float:
    """A buy pays ``price + spread/2 + slippage``, a sell gets ``price - ...``; each is units + bps x price."""
    half_spread = execution.spread.units / 2 + execution.spread.bps * price / 10_000 / 2
    slippage = execution.slippage.units + execution.slippage.bps * price / 10_000
    return price + side * (half_spread + slippage)


def commission(execution: Execution, size: float, fill: float) -> float:
    c = execution.commission
    return max(c.minimum, c.fraction * size * fill + c.per_unit * size + c.per_order)


def units_for_budget(execution: Execution, budget: float, fill: float) -> float:
    """The size whose cost plus commission is ``budget``: s x fill + commission(s) = budget."""
    c = execution.commission
    size = (budget - c.per_order) / (fill + c.fraction * fill + c.per_unit)
    if c.fraction * size * fill + c.per_unit * size + c.per_order < c.minimum:
        size = (budget - c.minimum) / fill  # the minimum applies
    return size


# -- one candle's rules --------------------------------------------------------------------------------------------
def order_fill(order: PendingOrder, open_: float, high: float, low: float) -> float | None:
    """The price at which this candle fills the working order, or None (see orders.py's docstring)."""
    side = order.side
    adverse = low if side == LONG else high
    favourable = high if side == LONG else low

    def as_limit() -> float | None:
        if beyond(side, order.limit, open_):  # the open is at or better than the limit
            return open_
        if beyond(side, order.limit, adverse):
            return order.limit
        return None

    if order.kind == "limit" or order.triggered:
        return as_limit()
    if beyond(side, open_, order.stop):  # stop hit at the open
        if order.kind == "stop":
            return open_
        order.triggered = True
        return as_limit()
    if beyond(side, favourable, order.stop):  # hit within the candle
        return order.stop
    return None


def current_stop(trade: OpenTrade) -> tuple[float, str]:
    """The tightest of the stop-loss, the trailing stop and (armed) break-even; ties to the earlier."""
    best, reason = math.nan, ""
    candidates = [(trade.stop_loss, "stop_loss"), (trade.trailing, "trailing_stop")]
    if trade.break_even_armed:
        candidates.append((trade.entry_price, "break_even"))
    for level, name in candidates:
        if not math.isnan(level) and (math.isnan(best) or tighter_stop(trade.side, level, best)):
            best, reason = level, name
    return best, reason


def trade_exit(trade: OpenTrade, open_: float, high: float, low: float) -> tuple[float, str] | None:
    """A gap through the stop or the target fills at the open; else a touched level, the stop first."""
    side = trade.side
    stop, stop_reason = current_stop(trade)
    target = trade.take_profit
    adverse = low if side == LONG else high
    favourable = high if side == LONG else low
    if beyond(side, stop, open_):
        return open_, stop_reason
    if beyond(side, open_, target):
        return open_, "take_profit"
    if beyond(side, stop, adverse):
        return stop, stop_reason
    if beyond(side, favourable, target):
        return target, "take_profit"
    return None


def follow_close(trade: OpenTrade, risk: Risk, close: float, bar: int, levels: dict) -> None:
    """After a close: ratchet the trailing stop (in the trade's favour only), arm the break-even move."""
    if risk.trailing_stop is not None:
        level = trailing_level(risk, trade.side, close, bar, levels)
        if not math.isnan(level) and (math.isnan(trade.trailing) or tighter_stop(trade.side, level, trade.trailing)):
            trade.trailing = level
    if not math.isnan(trade.break_even_at) and beyond(trade.side, close, trade.break_even_at):
        trade.break_even_armed = True


class ReferenceSimulator:
    """Run :meth:`run` once; the state is plain attributes."""

    def __init__(self, candles, entry, exits, close_fraction=None, *, execution: Execution, sizing: Sizing,
                 risk: Risk, initial_cash: float, orders: Orders | None = None, levels: dict | None = None) -> None:
        self.opens = [float(x) for x in candles["open"]]
        self.highs = [float(x) for x in candles["high"]]
        self.lows = [float(x) for x in candles["low"]]
        self.closes = [float(x) for x in candles["close"]]
        self.entry = [int(x) for x in entry]
        self.exits = [int(x) for x in exits]
        # the share of each trade an exit closes, per side (long, short) and candle; None: every exit is whole
        self.close_fraction = None if close_fraction is None else [[float(x) for x in row] for row in close_fraction]
        self.execution, self.sizing, self.risk = execution, sizing, risk
        self.orders = orders or Orders()
        self.levels = {name: np.asarray(values, dtype=float) for name, values in (levels or {}).items()}
        self.cash = float(initial_cash)
        self.open_trades: list[OpenTrade] = []
        self.pending: dict[int, PendingOrder] = {}
        self.log: list[tuple] = []
        self.notes: Counter = Counter()

    def run(self) -> ReferenceResult:
        n = len(self.closes)
        cash, position = [], []
        for bar in range(n):
            if self.execution.fill == "next_open":
                if bar > 0:
                    self.apply_actions(bar, self.opens[bar], bar - 1)
                self.within_candle(bar)
            else:
                self.within_candle(bar)
                self.apply_actions(bar, self.closes[bar], bar)
            for trade in self.open_trades:
                follow_close(trade, self.risk, self.closes[bar], bar, self.levels)
            for side in list(self.pending):
                if self.pending[side].last_bar is not None and self.pending[side].last_bar <= bar:
                    del self.pending[side]
            if bar == n - 1 and self.execution.close_at_end:
                for trade in list(self.open_trades):
                    self.close_trade(trade, bar, self.closes[bar], "end")
            cash.append(self.cash)
            position.append(sum(t.side * t.size for t in self.open_trades))
        for trade in self.open_trades:  # still open: marked at the last close, no exit fill, so no exit costs
            self.record(trade, n - 1, self.closes[-1], self.closes[-1], 0.0, "open")
        return ReferenceResult(self.log, cash, position, self.notes)

    # -- phases ---------------------------------------------------------------------------------------------
    def apply_actions(self, bar: int, price: float, decided: int) -> None:
        """Signal exits, time exits, then the entry decided on candle ``decided``, at ``price``."""
        flags, wanted = self.exits[decided], self.entry[decided]
        for row, (side, flag) in enumerate(((LONG, CLOSE_LONG_FLAG), (SHORT, CLOSE_SHORT_FLAG))):
            if not flags & flag:
                continue
            fraction = 1.0 if self.close_fraction is None else self.close_fraction[row][decided]
            for trade in [t for t in self.open_trades if t.side == side]:
                if fraction >= 1:
                    self.close_trade(trade, bar, price, "signal")
                else:
                    self.close_part(trade, fraction, bar, price)
            if fraction >= 1:  # a partial exit leaves the side's working order alone
                self.pending.pop(side, None)
        for trade in [t for t in self.open_trades if t.due == bar]:
            self.close_trade(trade, bar, price, "max_bars")
        if wanted == 0:
            return
        spec = self.orders.for_side(wanted)
        if spec.type == "market":
            first_check = bar if self.execution.fill == "next_open" else bar + 1
            self.market_entry(wanted, bar, price, decided, first_check)
        elif self.entry_does_something(wanted):
            self.place_order(wanted, spec, decided)

    def within_candle(self, bar: int) -> None:
        o, h, l = self.opens[bar], self.highs[bar], self.lows[bar]
        for trade in list(self.open_trades):
            if trade.first_check <= bar:
                hit = trade_exit(trade, o, h, l)
                if hit is not None:
                    self.close_trade(trade, bar, hit[0], hit[1])
        waiting = sorted(self.pending.values(), key=lambda order: (order.decided, -order.side))
        for order in waiting:
            if order.decided < bar:
                price = order_fill(order, o, h, l)
                if price is not None:
                    del self.pending[order.side]
                    self.market_entry(order.side, bar, price, order.decided, bar + 1)

    # -- entries ---------------------------------------------------------------------------------------------
    def held_side(self) -> int:
        return self.open_trades[0].side if self.open_trades else 0

    def entry_does_something(self, side: int) -> bool:
        held = self.held_side()
        if held == side:
            return len(self.open_trades) < self.orders.max_entries
        return held != 0 or side == LONG or self.risk.allow_short  # a sell while flat needs allow_short

    def place_order(self, side: int, spec, decided: int) -> None:
        close = self.closes[decided]
        if spec.price is not None:
            level = float(self.levels[spec.price][decided])
        elif spec.type == "limit":  # a buy limit below the close, a sell limit above
            level = level_beyond(spec.offset, -side, close, decided, self.levels)
        else:  # a buy stop above the close, a sell stop below
            level = level_beyond(spec.offset, side, close, decided, self.levels)
        if spec.type == "limit":
            stop, limit = math.nan, level
        elif spec.type == "stop":
            stop, limit = level, math.nan
        else:
            stop, limit = level, level_beyond(spec.limit_offset, side, level, decided, self.levels)
        if math.isnan(stop) and spec.type != "limit" or math.isnan(limit) and spec.type != "stop":
            self.notes["entry order not placed: its price is NaN (indicator warm-up)"] += 1
            return
        last = decided + spec.valid_for if spec.valid_for is not None else None
        self.pending[side] = PendingOrder(side, spec.type, stop, limit, decided, last)

    def market_entry(self, side: int, bar: int, price: float, decided: int, first_check: int) -> None:
        if not self.entry_does_something(side):
            return
        held = self.held_side()
        if held == -side:
            reverses = side == LONG or self.risk.allow_short
            for trade in list(self.open_trades):
                self.close_trade(trade, bar, price, "reversal" if reverses else "signal")
            if not reverses:
                return
        self.open_trade(side, bar, price, decided, first_check)

    def open_trade(self, side: int, bar: int, price: float, decided: int, first_check: int) -> None:
        risk, levels = self.risk, self.levels
        fill = fill_price(self.execution, side, price)
        stop_loss = level_beyond(risk.stop_loss, -side, fill, decided, levels) if risk.stop_loss else math.nan
        take_profit = level_beyond(risk.take_profit, side, fill, decided, levels) if risk.take_profit else math.nan
        trailing = trailing_level(risk, side, fill, decided, levels) if risk.trailing_stop else math.nan
        size = self.size_for(side, price, fill, stop_loss, trailing)
        if size is None:
            return
        if risk.stop_loss and math.isnan(stop_loss) or risk.take_profit and math.isnan(take_profit):
            self.notes["trade opened without a stop-loss or take-profit: its level is NaN (indicator warm-up)"] += 1
        paid = commission(self.execution, size, fill)
        self.cash -= side * size * fill + paid
        break_even_at = math.nan
        if risk.break_even is not None:
            break_even_at = fill * (1 + risk.break_even) if side == LONG else fill * (1 - risk.break_even)
        due = bar + risk.max_bars if risk.max_bars is not None else None
        self.open_trades.append(OpenTrade(side, size, bar, fill, price, paid, stop_loss, take_profit, trailing,
                                          break_even_at, False, first_check, due))

    def size_for(self, side: int, price: float, fill: float, stop_loss: float, trailing: float) -> float | None:
        """Units for a new trade of ``side``, or None (skipped, with a note)."""
        sizing = self.sizing
        open_notional = sum(t.size for t in self.open_trades) * price  # all of ``side`` by now
        equity = self.cash + side * open_notional
        leverage = sizing.max_leverage if sizing.max_leverage is not None else 1.0
        room = leverage * equity - open_notional
        if sizing.method == "fraction":
            size = units_for_budget(self.execution, sizing.value * room, fill)
        elif sizing.method == "fixed":
            size = sizing.value
        else:
            stop = stop_loss
            if math.isnan(stop) or (not math.isnan(trailing) and tighter_stop(side, trailing, stop)):
                stop = trailing
            if math.isnan(stop) or not beyond(side, fill, stop) or fill == stop:
                self.notes["entry skipped: risk sizing needs the stop on the loss side of the fill"] += 1
                return None
            size = sizing.value * equity / abs(fill - stop)
        if sizing.max_leverage is not None and sizing.method != "fraction" and size * fill > room:
            self.notes["entry size cut to max_leverage"] += 1
            size = max(room, 0.0) / fill
        if sizing.whole_units:
            size = math.floor(size)
        if not size > 0:
            self.notes["entry skipped: size not positive"] += 1
            return None
        return size

    # -- exits ---------------------------------------------------------------------------------------------------
    def close_trade(self, trade: OpenTrade, bar: int, price: float, reason: str) -> None:
        fill = fill_price(self.execution, -trade.side, price)
        paid = commission(self.execution, trade.size, fill)
        self.cash += trade.side * trade.size * fill - paid
        self.open_trades.remove(trade)
        self.record(trade, bar, fill, price, paid, reason)

    def close_part(self, trade: OpenTrade, fraction: float, bar: int, price: float) -> None:
        """A partial exit: ``fraction`` of the trade (whole units with ``whole_units``) is logged as a trade
        (reason ``partial``) with its share of the entry commission; the rest stays open.  All of it: ``signal``."""
        part = trade.size * fraction
        if self.sizing.whole_units:
            part = math.floor(part)
        if not part > 0:
            self.notes["partial exit skipped: the part is less than one unit (whole_units)"] += 1
            return
        if part >= trade.size:
            self.close_trade(trade, bar, price, "signal")
            return
        fill = fill_price(self.execution, -trade.side, price)
        paid = commission(self.execution, part, fill)
        self.cash += trade.side * part * fill - paid
        share = trade.entry_commission * part / trade.size
        closed = OpenTrade(trade.side, part, trade.entry_bar, trade.entry_price, trade.entry_raw, share, math.nan,
                           math.nan, math.nan, math.nan, False, 0, None)
        self.record(closed, bar, fill, price, paid, "partial")
        trade.size -= part
        trade.entry_commission -= share

    def record(self, trade: OpenTrade, bar: int, exit_price: float, exit_raw: float, exit_commission: float,
               reason: str) -> None:
        """Log ``trade`` left at ``exit_price`` (the fill; ``exit_raw`` before spread and slippage)."""
        total = trade.entry_commission + exit_commission
        pnl = trade.side * trade.size * (exit_price - trade.entry_price) - total
        paid_in_prices = [abs(trade.entry_price - trade.entry_raw), abs(exit_price - exit_raw)]  # per unit, per fill
        spread_slippage = paid_in_prices[0] * trade.size + paid_in_prices[1] * trade.size
        self.log.append(("long" if trade.side == LONG else "short", trade.size, trade.entry_bar, trade.entry_price,
                         bar, exit_price, pnl, pnl / (trade.size * trade.entry_price), total, spread_slippage, reason))


def reference_simulate(candles, actions, **settings) -> ReferenceResult:
    """Same arguments as ``candleflow.portfolio.simulate``."""
    return ReferenceSimulator(candles, actions.entry, actions.exit, actions.close_fraction, **settings).run()
