"""The order model: working entry orders, open trades with their protective exits, and what fills cost.

Each object answers one question with one rule, "does this candle trigger me, and at what price"
(:meth:`WorkingOrder.fill_price`, :meth:`Trade.exit_price`), and a vectorized form of it over a
stretch of candles (:meth:`WorkingOrder.first_trigger`, :meth:`Trade.first_trigger`) that the
simulator uses to skip quiet candles.  The scan may only err early: it returns the first candle at
which the object *may* fire, and the per-candle rule decides; so skipping never changes a result.

Prices are compared in *sign space*: an object of side ``s`` (+1 long/buy, -1 short/sell) compares
``s x price``, so every rule is written once, for a long or a buy; negation is exact and NaN compares
false either way.  For side ``s`` the *adverse* extreme of a candle is its low (``s = 1``) or its
high, the *favourable* one the other.

Every candle is read as: its open first (a level at or beyond the open fills at the open, a gap),
then the rest of the candle (a level within the range fills at the level).

* A **limit** order of side ``s`` at ``L`` fills when ``s x open <= s x L`` (at the open) or the
  adverse extreme reaches ``L`` (at ``L``).  A **stop** order at ``S`` fills when
  ``s x open >= s x S`` (at the open) or the favourable extreme reaches ``S`` (at ``S``).
* A **stop-limit** order (stop ``S``, limit ``L`` with ``s x L >= s x S``) is triggered by its stop;
  triggered at the open, it fills at the open if the open is within its limit, else at ``L`` if the
  rest of the candle comes back to it, else it works on as a limit order at ``L``; triggered within
  the candle, it fills at ``S`` (which is within its limit).
* A **trade** exits at its stop level (the tightest of its stop-loss, trailing stop and break-even
  stop) or its take-profit: a gap through either fills at the open; within the candle the stop wins
  when both are touched.  The trailing stop and the break-even move are updated from closes
  (:meth:`Trade.after_close`), so they act from the next candle on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from candleflow.config.models import Execution

INF = math.inf


class Costs:
    """Spread, slippage and commission of one fill, from the ``execution`` settings."""

    __slots__ = ("units", "bps", "fraction", "per_unit", "per_order", "minimum")

    def __init__(self, execution: Execution) -> None:
        spread, slippage, commission = execution.spread, execution.slippage, execution.commission
        self.units = spread.units / 2 + slippage.units
        self.bps = (spread.bps / 2 + slippage.bps) / 10_000
        self.fraction, self.per_unit = commission.fraction, commission.per_unit
        self.per_order, self.minimum = commission.per_order, commission.minimum

    def fill(self, side: int, price: float) -> float:
        """What a ``side`` (+1 buy, -1 sell) order executed at ``price`` pays or gets per unit."""
        return price + side * (self.units + price * self.bps)

    def commission(self, size: float, fill: float) -> float:
        return max(self.minimum, size * fill * self.fraction + self.per_unit * size + self.per_order)

    def affordable(self, budget: float, fill: float) -> float:
        """Units that ``budget`` buys at ``fill`` with their commission (fixed parts reserved, not the minimum)."""
        return (budget - self.per_order) / (fill * (1 + self.fraction) + self.per_unit)


def mirrored(side: int, low, high):
    """``(sign, adverse, favourable)`` for an object of ``side``: a short is a long in negated prices."""
    return (1.0, low, high) if side > 0 else (-1.0, high, low)


@dataclass(eq=False)
class WorkingOrder:
    """A limit, stop or stop-limit entry order of ``side`` working on candles ``start .. expires``."""

    side: int
    kind: str  # "limit" | "stop" | "stop_limit"
    stop: float  # the stop price (stop, stop_limit), NaN for a limit
    limit: float  # the limit price (limit, stop_limit), NaN for a stop
    decided: int  # the candle whose close placed it (its prices and stops are read there)
    start: int
    expires: int  # the last candle it works on
    triggered: bool = False  # a stop-limit whose stop was hit: now a limit order

    def fill_price(self, open_: float, high: float, low: float) -> float:
        """The price this candle fills the order at, or NaN; a stop-limit's trigger is remembered."""
        sign, adverse, favourable = mirrored(self.side, low, high)
        o, a, f = sign * open_, sign * adverse, sign * favourable
        if self.kind == "limit" or self.triggered:
            limit = sign * self.limit
            return open_ if o <= limit else self.limit if a <= limit else math.nan
        stop = sign * self.stop
        if self.kind == "stop":
            return open_ if o >= stop else self.stop if f >= stop else math.nan
        if o >= stop:  # a stop-limit triggered at the open
            self.triggered = True
            limit = sign * self.limit
            return open_ if o <= limit else self.limit if a <= limit else math.nan
        return self.stop if f >= stop else math.nan

    def first_trigger(self, opens: np.ndarray, highs: np.ndarray, lows: np.ndarray, lo: int, hi: int) -> int:
        """The first candle in ``lo .. hi - 1`` at which :meth:`fill_price` may fill, else ``hi``."""
        sign, adverse, favourable = mirrored(self.side, lows, highs)
        if self.kind == "limit" or self.triggered:
            level, extreme, beyond = sign * self.limit, adverse, False
        else:
            level, extreme, beyond = sign * self.stop, favourable, True
        return _first(opens, extreme, sign, level, beyond, lo, hi)


def _first(opens: np.ndarray, extreme: np.ndarray, sign: float, level: float, beyond: bool, lo: int, hi: int) -> int:
    """First candle in ``lo .. hi - 1`` whose open or ``extreme`` is at or beyond (``beyond``) or at or
    within ``level`` in sign space, else ``hi``; scanned in growing chunks."""
    chunk = 16
    while lo < hi:
        end = min(hi, lo + chunk)
        o, x = sign * opens[lo:end], sign * extreme[lo:end]
        hit = (o >= level) | (x >= level) if beyond else (o <= level) | (x <= level)
        found = np.flatnonzero(hit)
        if len(found):
            return lo + int(found[0])
        lo, chunk = end, chunk * 4
    return hi


class Trail:
    """How a trailing stop follows closes: ``close x (1 - s x fraction)`` or ``close - s x multiple x atr``."""

    __slots__ = ("fraction", "multiple", "atr")

    def __init__(self, fraction: float | None, multiple: float | None, atr: np.ndarray | None) -> None:
        self.fraction, self.multiple, self.atr = fraction, multiple, atr

    def level(self, side: int, price: float, bar: int) -> float:
        """The stop ``price`` supports for ``side``, with the distance read at ``bar``."""
        if self.fraction is not None:
            return price * (1 - side * self.fraction)
        return price - side * self.multiple * self.atr.item(bar)

    def levels(self, side: int, closes: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """:meth:`level` of each close ``lo .. hi - 1``, vectorized."""
        if self.fraction is not None:
            return closes[lo:hi] * (1 - side * self.fraction)
        return closes[lo:hi] - side * self.multiple * self.atr[lo:hi]


@dataclass(eq=False)
class Trade:
    """An open trade: its fill, its exit levels (absolute prices, +-inf when absent) and its clock."""

    side: int
    size: float
    entry_bar: int
    entry_price: float
    entry_commission: float
    stop: float  # the fixed stop-loss level
    target: float  # the take-profit level
    trail: float = -INF  # the trailing stop's level in sign space (-inf: none)
    trail_rule: Trail | None = None
    break_even_at: float = math.nan  # a close at or beyond this moves the stop to the entry price
    break_even: bool = False
    first_check: int = 0  # exits are checked from this candle on
    due: int = 1 << 62  # the candle at which the time exit (max_bars) closes it

    def stop_level(self) -> tuple[float, str]:
        """The tightest stop now and its exit reason (a tie goes to the stop-loss, then the trailing stop)."""
        sign = self.side
        level, reason = sign * self.stop, "stop_loss"
        if self.trail > level:
            level, reason = self.trail, "trailing_stop"
        if self.break_even and sign * self.entry_price > level:
            level, reason = sign * self.entry_price, "break_even"
        return sign * level, reason

    def exit_price(self, open_: float, high: float, low: float) -> tuple[float, str | None]:
        """The (price, reason) at which this candle exits the trade, or (NaN, None)."""
        stop, stop_reason = self.stop_level()
        sign, adverse, favourable = mirrored(self.side, low, high)
        if sign * open_ <= sign * stop:
            return open_, stop_reason
        if sign * open_ >= sign * self.target:
            return open_, "take_profit"
        if sign * adverse <= sign * stop:
            return stop, stop_reason
        if sign * favourable >= sign * self.target:
            return self.target, "take_profit"
        return math.nan, None

    def after_close(self, close: float, bar: int) -> None:
        """Ratchet the trailing stop and arm the break-even move from ``bar``'s close."""
        if self.trail_rule is not None:
            self.trail = max(self.trail, self.side * self.trail_rule.level(self.side, close, bar))
        if not self.break_even and self.side * close >= self.side * self.break_even_at:
            self.break_even = True

    def after_closes(self, closes: np.ndarray, lo: int, hi: int) -> None:
        """:meth:`after_close` for the closes ``lo .. hi - 1`` at once."""
        if hi <= lo:
            return
        if self.trail_rule is not None:
            self.trail = max(self.trail, float(np.max(self.side * self.trail_rule.levels(self.side, closes, lo, hi))))
        if not self.break_even and bool(np.any(self.side * closes[lo:hi] >= self.side * self.break_even_at)):
            self.break_even = True

    def first_trigger(self, opens: np.ndarray, highs: np.ndarray, lows: np.ndarray, closes: np.ndarray,
                      lo: int, hi: int) -> int:
        """The first candle in ``lo .. hi - 1`` at which :meth:`exit_price` may fire or the time exit is due,
        else ``hi``.  The trade itself is not changed (see :meth:`after_closes`)."""
        hi = min(hi, self.due)  # the time exit is a step of its own
        lo = max(lo, self.first_check)
        trail, armed = self.trail, self.break_even
        chunk = 16
        while lo < hi:
            end = min(hi, lo + chunk)
            hits, trail, armed = self._hits(opens, highs, lows, closes, lo, end, trail, armed)
            found = np.flatnonzero(hits)
            if len(found):
                return lo + int(found[0])
            lo, chunk = end, chunk * 4
        return hi

    def _hits(self, opens, highs, lows, closes, lo: int, hi: int, trail: float, armed: bool):
        """Whether :meth:`exit_price` may fire at each candle ``lo .. hi - 1`` (its levels moving with the
        closes before it), and the trailing level and break-even state after the close of ``hi - 1``."""
        sign, adverse, favourable = mirrored(self.side, lows[lo:hi], highs[lo:hi])
        entry = sign * self.entry_price
        stop = np.full(hi - lo + 1, max(sign * self.stop, trail))  # [k]: the level after k closes
        if self.trail_rule is not None:
            stop[1:] = np.maximum(stop[1:], np.maximum.accumulate(sign * self.trail_rule.levels(
                self.side, closes, lo, hi)))
            trail = float(stop[-1])
        if armed:
            stop = np.maximum(stop, entry)
        elif not math.isnan(self.break_even_at):
            reached = np.logical_or.accumulate(sign * closes[lo:hi] >= sign * self.break_even_at)
            stop[1:] = np.where(reached, np.maximum(stop[1:], entry), stop[1:])
            armed = bool(reached[-1])
        stop = stop[:-1]
        o, target = sign * opens[lo:hi], sign * self.target
        return (o <= stop) | (o >= target) | (sign * adverse <= stop) | (sign * favourable >= target), trail, armed
