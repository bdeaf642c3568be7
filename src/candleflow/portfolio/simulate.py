"""The portfolio simulation: one symbol, at most one position, an event loop over bars.

Algorithm: an event loop in plain Python over the bars where something can happen;
no pandas per candle.  The state is a :class:`_Book` holding cash, the open position
(side, size, entry fill, commission paid, absolute stop-loss and take-profit levels)
and the log of finished trades.  At a bar where orders fill, the loop fills them and
checks the stops; between two such bars, while a position with stops is open, numpy
finds the first bar that touches a level.  No other bar changes cash or position,
so these are recorded where they change and forward-filled to every bar; the
equity curve is ``cash + position * close``.  The result is the same, bar for bar,
as visiting every bar -- but the Python work grows with the number of orders and
stop exits, not with the number of candles.

How orders fill
---------------
* **Timing.** Actions are decided on a bar's close.  With ``fill: next_open``
  (default) an action of bar *i* fills at bar *i+1*'s open; actions on the last
  bar never fill.  With ``fill: close`` it fills at bar *i*'s close.
* **Order at a fill point.** Exits first, then entries.  ``buy`` while short
  closes the short and opens a long (exit reason ``reversal``); ``sell`` while
  long closes the long and opens a short if ``risk.allow_short``, otherwise it only
  closes the long (exit reason ``signal``).  An entry in the direction already
  held is ignored (one position per symbol); ``sell`` while flat with
  ``allow_short: false`` is ignored.  Because exits go first, a bar with
  ``close`` and ``buy`` while long closes the long and opens a new one.
* **Prices and costs.** Buys fill at ``price + spread/2 + slippage``, sells at
  ``price - spread/2 - slippage`` (both in price units).  Each side pays
  ``commission x size x fill price``, taken from cash.
* **Sizing.** ``fraction``: ``size = value x equity / (fill x (1 + commission))``,
  where equity is the cash after closing any reversed position, so ``value: 1``
  never drives cash negative.  ``fixed``: ``size = value`` units (margin is not
  modelled: cash may go negative).  ``whole_units: true`` floors the size; a
  trade whose size is not positive is skipped.
* **Stops.** Stop-loss and take-profit are fractions of the entry fill price:
  long SL at ``entry x (1 - stop_loss)``, TP at ``entry x (1 + take_profit)``;
  mirrored for shorts.  They are checked on every bar the position is held from
  the fill onwards: for ``next_open`` fills the fill bar itself counts, for
  ``close`` fills checking starts at the next bar.  Each bar is read as open first,
  then the rest of the bar: an open at or beyond a level fills at the open (a gap);
  otherwise a low/high touching a level fills at the level.  If both levels are
  touched after the open, the stop-loss wins (conservative).  Stop exits are sells
  (or buys) like any other and pay spread, slippage and commission.  With
  ``next_open`` fills, orders due at a bar's open are filled before that bar's
  stops are checked.
* **End of data.** A position still open after the last bar stays open, as in
  backtesting.py: the equity curve marks it at the last close, and it is reported
  as a trade with ``exit_reason="open"`` whose exit price is the last close and
  whose P&L carries the entry commission only (no exit costs).

Equity is ``cash + signed position x close`` at every bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from candleflow.config.models import Execution, Risk, Sizing
from candleflow.portfolio.metrics import compute_metrics
from candleflow.portfolio.rules import CLOSE_LONG, CLOSE_SHORT, Actions
from candleflow.vocab import PRICE_COLUMNS

TRADE_COLUMNS = ["side", "size", "entry_bar", "entry_time", "entry_price", "exit_bar", "exit_time",
                 "exit_price", "pnl", "return_pct", "commission", "exit_reason"]


@dataclass(frozen=True)
class Simulation:
    """The result of :func:`simulate`.

    ``trades``: one row per trade (columns ``TRADE_COLUMNS``; ``pnl`` is net of both
    commissions, ``return_pct`` is ``pnl / (size x entry_price)`` as a fraction, like
    backtesting.py's ``ReturnPct``; ``commission`` is both sides' total).
    ``equity``: cash + marked position at each close, indexed by candle time.
    ``position``: signed size held at each bar's close.  ``metrics``: see
    :func:`candleflow.portfolio.metrics.compute_metrics`.
    """

    trades: pd.DataFrame
    equity: pd.Series
    position: np.ndarray
    metrics: dict[str, float]


class _Book:
    """Cash, the open position and the finished trades; filled by the event loop."""

    __slots__ = ("cash", "side", "size", "entry_bar", "entry_price", "entry_commission", "stop", "target",
                 "trades", "_cost", "_commission", "_sizing", "_risk")

    def __init__(self, cash: float, execution: Execution, sizing: Sizing, risk: Risk) -> None:
        self.cash = cash
        self.side = 0  # +1 long, -1 short, 0 flat
        self.size = 0.0  # units held, > 0 while side != 0
        self.entry_bar = -1
        self.entry_price = math.nan
        self.entry_commission = 0.0
        self.stop = math.nan  # absolute stop-loss level (+-inf when none)
        self.target = math.nan  # absolute take-profit level (+-inf when none)
        self.trades: list[tuple] = []
        self._cost = execution.spread / 2 + execution.slippage
        self._commission = execution.commission
        self._sizing = sizing
        self._risk = risk

    def act(self, entry: int, exit_flags: int, bar: int, price: float) -> None:
        """Apply one bar's actions at ``price``: exits first, then the entry."""
        if self.side and exit_flags & (CLOSE_LONG if self.side > 0 else CLOSE_SHORT):
            self.close(bar, price, "signal")
        if entry and entry != self.side:
            opens = entry > 0 or self._risk.allow_short
            if self.side:
                self.close(bar, price, "reversal" if opens else "signal")
            if opens:
                self.open(entry, bar, price)

    def open(self, side: int, bar: int, price: float) -> None:
        """Open a position of ``side`` while flat; skipped if the size is not positive."""
        fill = price + side * self._cost
        sizing = self._sizing
        if sizing.method == "fraction":  # flat here, so equity == cash
            size = sizing.value * self.cash / (fill * (1 + self._commission))
        else:
            size = sizing.value
        if sizing.whole_units:
            size = math.floor(size)
        if not size > 0:
            return
        commission = size * fill * self._commission
        self.cash -= side * size * fill + commission
        self.side, self.size = side, size
        self.entry_bar, self.entry_price, self.entry_commission = bar, fill, commission
        stop_loss, take_profit = self._risk.stop_loss, self._risk.take_profit
        self.stop = fill * (1 - side * stop_loss) if stop_loss is not None else -side * math.inf
        self.target = fill * (1 + side * take_profit) if take_profit is not None else side * math.inf

    def close(self, bar: int, price: float, reason: str) -> None:
        """Close the open position at ``price`` (before costs) and log the trade."""
        side, size = self.side, self.size
        fill = price - side * self._cost
        commission = size * fill * self._commission
        self.cash += side * size * fill - commission
        self._log(bar, fill, commission, reason)
        self.side, self.size = 0, 0.0

    def log_open_trade(self, bar: int, price: float) -> None:
        """Report the still-open position marked at ``price``, without exit costs."""
        self._log(bar, price, 0.0, "open")

    def _log(self, bar: int, exit_price: float, exit_commission: float, reason: str) -> None:
        side, size = self.side, self.size
        commission = self.entry_commission + exit_commission
        pnl = side * size * (exit_price - self.entry_price) - commission
        self.trades.append(("long" if side > 0 else "short", size, self.entry_bar, self.entry_price, bar,
                            exit_price, pnl, pnl / (size * self.entry_price), commission, reason))


def simulate(
    candles: pd.DataFrame,
    actions: Actions,
    *,
    execution: Execution,
    sizing: Sizing,
    risk: Risk,
    initial_cash: float,
) -> Simulation:
    """Run the event loop described in the module docstring over ``candles``.

    ``candles`` is indexed by a UTC ``DatetimeIndex`` and has float columns
    open/high/low/close; ``actions`` has one entry and one exit value per candle.
    """
    n = len(candles)
    if len(actions.entry) != n or len(actions.exit) != n:
        raise ValueError(f"actions cover {len(actions.entry)}/{len(actions.exit)} bars, candles {n}")
    opens, highs, lows, closes = (candles[c].to_numpy(dtype=np.float64) for c in PRICE_COLUMNS)
    entries = np.asarray(actions.entry)
    exits = np.asarray(actions.exit)
    book = _Book(float(initial_cash), execution, sizing, risk)
    has_stops = risk.stop_loss is not None or risk.take_profit is not None
    next_open = execution.fill == "next_open"

    # Visit only the event bars (where orders fill) and, while a position with stops is open,
    # the first bar before the next event that touches a level; see the module docstring.
    decided = np.flatnonzero((entries != 0) | (exits != 0))  # bars whose close decided something
    if next_open:  # bar i's actions fill at bar i+1's open; the last bar's never fill
        decided = decided[decided < n - 1]
        events = decided + 1
        fills = opens[events]
    else:
        events = decided
        fills = closes[events]
    if has_stops:  # the lowest and highest price of each stretch between two event bars
        stretch_low, stretch_high = _stretch_extremes(opens, highs, lows, events)
    changed_at: list[int] = []
    cash_after: list[float] = []
    position_after: list[float] = []
    bar = 0
    rows = _event_rows(n, events, decided, entries, exits, fills, opens, highs, lows)
    for stretch, (event, entry, exit_flags, fill, open_, high, low) in enumerate(rows):
        if has_stops and book.side and bar < event and _touches(book.side, book.stop, book.target,
                                                                stretch_low[stretch], stretch_high[stretch]):
            hit = _first_stop_bar(book.side, book.stop, book.target, opens, highs, lows, bar, event)
            if hit >= 0:
                price, reason = _stop_exit(book.side, book.stop, book.target, opens.item(hit), highs.item(hit),
                                           lows.item(hit))
                book.close(hit, price, reason)
                changed_at.append(hit)
                cash_after.append(book.cash)
                position_after.append(book.side * book.size)
        if event == n:
            break
        bar = event  # the per-bar steps, for an event bar
        if next_open:
            book.act(entry, exit_flags, bar, fill)
        if has_stops and book.side:
            price, reason = _stop_exit(book.side, book.stop, book.target, open_, high, low)
            if reason:
                book.close(bar, price, reason)
        if not next_open:
            book.act(entry, exit_flags, bar, fill)
        changed_at.append(bar)
        cash_after.append(book.cash)
        position_after.append(book.side * book.size)
        bar += 1

    # state after bar b = the last change at or before b (the initial state before any)
    marks = np.zeros(n, dtype=np.int64)
    marks[changed_at] = 1
    which = np.cumsum(marks)
    cash_at = np.array([float(initial_cash), *cash_after], dtype=np.float64)[which]
    position = np.array([0.0, *position_after], dtype=np.float64)[which]

    if book.side:
        book.log_open_trade(n - 1, closes.item(n - 1))
    equity = pd.Series(cash_at + position * closes, index=candles.index, name="equity", dtype=np.float64)
    trades = _trades_frame(book.trades, candles.index)
    metrics = compute_metrics(equity, trades, position, initial_cash=initial_cash)
    return Simulation(trades=trades, equity=equity, position=position, metrics=metrics)


def _event_rows(n: int, events: np.ndarray, decided: np.ndarray, entries: np.ndarray, exits: np.ndarray,
                fills: np.ndarray, opens: np.ndarray, highs: np.ndarray, lows: np.ndarray):
    """Per event bar: (bar, entry, exit flags, fill price, open, high, low) as Python scalars,
    then a sentinel row for bar ``n`` (the end of data)."""
    columns = (events, entries[decided], exits[decided], fills, opens[events], highs[events], lows[events])
    yield from zip(*(column.tolist() for column in columns))
    yield (n, 0, 0, math.nan, math.nan, math.nan, math.nan)


def _stretch_extremes(opens: np.ndarray, highs: np.ndarray, lows: np.ndarray, events: np.ndarray
                      ) -> tuple[list[float], list[float]]:
    """Lowest of open/low and highest of open/high over each stretch of bars between event bars.

    Stretch ``k`` is ``events[k-1] + 1 .. events[k] - 1`` (from bar 0 for the first, to the
    last bar for the one after the last event).  An empty stretch gets a meaningless value;
    the loop never asks for it.  NaN prices are skipped, as ``_stop_exit``'s comparisons do.
    """
    n = len(opens)
    if n == 0:
        return [], []
    starts = np.concatenate([[0], events + 1])
    bounds = np.empty(2 * len(starts) - 1, dtype=np.int64)
    bounds[0::2] = starts  # stretch k runs from bounds[2k] to bounds[2k + 1] (the event bar)
    bounds[1::2] = events
    np.minimum(bounds, n - 1, out=bounds)  # only empty stretches start at n
    low = np.fmin.reduceat(np.fmin(opens, lows), bounds)[0::2]
    high = np.fmax.reduceat(np.fmax(opens, highs), bounds)[0::2]
    return low.tolist(), high.tolist()


def _mirrored(side: int, low, high):
    """``(sign, adverse, favourable)``: a short is a long in negated prices, whose high is the adverse extreme.

    Every stop test below is written once, for a long, on ``sign x price``; negation is exact, and NaN
    compares false either way.
    """
    return (1.0, low, high) if side > 0 else (-1.0, high, low)


def _touches(side: int, stop: float, target: float, low: float, high: float) -> bool:
    """Whether a stretch with these extremes has a bar where :func:`_stop_exit` fires."""
    sign, adverse, favourable = _mirrored(side, low, high)
    return sign * adverse <= sign * stop or sign * favourable >= sign * target


_SCAN_IN_PYTHON = 32  # bars; shorter stretches are cheaper to scan without numpy's per-call cost


def _first_stop_bar(side: int, stop: float, target: float, opens: np.ndarray, highs: np.ndarray,
                    lows: np.ndarray, start: int, stop_before: int) -> int:
    """The first bar in ``start .. stop_before - 1`` at which :func:`_stop_exit` fires, or -1.

    The first few bars are checked one by one; after that numpy scans growing chunks,
    so a stop hit soon after the entry costs little even when the next event is far away.
    """
    sign, adverse, favourable = _mirrored(side, lows, highs)
    stop, target = sign * stop, sign * target
    end = min(stop_before, start + _SCAN_IN_PYTHON)
    bars = zip(range(start, end), opens[start:end].tolist(), adverse[start:end].tolist(),
               favourable[start:end].tolist())
    for bar, o, a, f in bars:
        if sign * o <= stop or sign * o >= target or sign * a <= stop or sign * f >= target:
            return bar
    chunk = 64
    lo = start + _SCAN_IN_PYTHON
    while lo < stop_before:
        hi = min(stop_before, lo + chunk)
        o, a, f = sign * opens[lo:hi], sign * adverse[lo:hi], sign * favourable[lo:hi]
        found = np.flatnonzero((o <= stop) | (o >= target) | (a <= stop) | (f >= target))
        if len(found):
            return lo + int(found[0])
        lo = hi
        chunk *= 4
    return -1


def _stop_exit(side: int, stop: float, target: float, open_: float, high: float, low: float
               ) -> tuple[float, str | None]:
    """The (price, reason) at which a bar hits the stop-loss or take-profit, or (nan, None).

    The open is checked first (a gap fills at the open); within the bar the stop-loss
    wins if both levels are touched.
    """
    sign, adverse, favourable = _mirrored(side, low, high)
    if sign * open_ <= sign * stop:
        return open_, "stop_loss"
    if sign * open_ >= sign * target:
        return open_, "take_profit"
    if sign * adverse <= sign * stop:
        return stop, "stop_loss"
    if sign * favourable >= sign * target:
        return target, "take_profit"
    return math.nan, None


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
