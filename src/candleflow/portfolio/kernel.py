"""The simulation's per-candle loop, compiled with numba: every candle visited, in order, once.

:func:`run` is the rules of "How orders fill" (see :mod:`candleflow.portfolio.simulate`) as a plain
loop over candles; numba compiles it to machine code (cached on disk after the first run), so a
million candles cost milliseconds however many orders fill.  Everything the rules read on the
candle whose close decided an order (order prices, stop distances, ATR values) arrives precomputed
as per-side arrays (:class:`candleflow.portfolio.simulate._Plan`); the loop only compares and adds.

State, in small arrays so that the rule functions can change it:

* ``cash[0]``; ``held[0]`` the number of open trades, ``held[1]`` their side (+1, -1, 0 flat);
* ``trades[i]``: the open trades, oldest first, columns ``T_*`` (a level in real prices; the
  trailing stop in *sign space*, ``side x price``, where every comparison is written once for a long;
  ``T_COST`` what the entry fill paid per unit over its raw price, for the trade's spread and slippage);
* ``working[s]``: the working entry order of side slot ``s`` (0 buy, 1 sell), columns ``W_*``;
* ``log[j]``: the finished trades, columns ``L_*``; ``notes[k]``: counts of orders that did not happen.

Each rule is one function: :func:`_order_fill` (does this candle fill a working order, at what
price), :func:`_trade_exit` (does it exit a trade, at what price and why), :func:`_after_close`
(the trailing and break-even stops follow the close).

Spread and slippage move every fill (:func:`_fill`): each entry (market, or a working order's fill at
the open or its level) and each exit (signal, partial, reversal, time, stop or target at a gap's open or
at its level, ``close_at_end``).  A logged trade's ``L_SPREAD_SLIPPAGE`` is what its two fills paid
through those prices, ``size x |fill - raw price|`` summed over them (a part closed early carries its
share of the entry's); a trade still open at the end has made no exit fill, so only its entry's counts.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# trades[i] columns
(T_SIZE, T_ENTRY_BAR, T_ENTRY, T_COMMISSION, T_STOP, T_TARGET, T_TRAIL, T_BE_AT, T_BE, T_FIRST_CHECK, T_DUE,
 T_COST) = range(12)
# working[s] columns
W_ACTIVE, W_KIND, W_STOP, W_LIMIT, W_DECIDED, W_EXPIRES, W_TRIGGERED = range(7)
# log[j] columns
(L_SIDE, L_SIZE, L_ENTRY_BAR, L_ENTRY, L_EXIT_BAR, L_EXIT, L_PNL, L_RETURN, L_COMMISSION, L_SPREAD_SLIPPAGE,
 L_REASON) = range(11)
MARKET, LIMIT, STOP, STOP_LIMIT = range(4)
REASONS = ("signal", "reversal", "max_bars", "stop_loss", "trailing_stop", "break_even", "take_profit", "end",
           "open", "partial")
SIGNAL, REVERSAL, MAX_BARS, STOP_LOSS, TRAILING_STOP, BREAK_EVEN, TAKE_PROFIT, END, OPEN, PARTIAL = range(10)
NOTES = ("entry order not placed: its price is NaN (indicator warm-up)",
         "entry skipped: risk sizing needs the stop on the loss side of the fill",
         "entry size cut to max_leverage", "entry skipped: size not positive",
         "trade opened without a stop-loss or take-profit: its level is NaN (indicator warm-up)",
         "partial exit skipped: the part is less than one unit (whole_units)")
N_NAN_PRICE, N_RISK_SIDE, N_LEVERAGE, N_SIZE, N_NAN_LEVEL, N_PARTIAL = range(6)
# params (float64) indexes
(P_NEXT_OPEN, P_ALLOW_SHORT, P_MAX_ENTRIES, P_UNITS, P_BPS, P_FRACTION, P_PER_UNIT, P_PER_ORDER, P_MINIMUM,
 P_SIZING, P_VALUE, P_WHOLE, P_LEVERAGE, P_BREAK_EVEN, P_MAX_BARS, P_CLOSE_AT_END, P_HAS_TRAIL, P_CASH) = range(18)
FRACTION_SIZING, FIXED_SIZING, RISK_SIZING = range(3)


@njit(cache=True)
def _fill(p, side, price):
    """What a ``side`` order executed at ``price`` pays or gets per unit (spread and slippage)."""
    return price + side * (p[P_UNITS] + price * p[P_BPS])


@njit(cache=True)
def _commission(p, size, fill):
    return max(p[P_MINIMUM], size * fill * p[P_FRACTION] + p[P_PER_UNIT] * size + p[P_PER_ORDER])


@njit(cache=True)
def _order_fill(kind, side, stop, limit, triggered, o, h, low):
    """(price or NaN, whether a stop-limit is triggered now) for a working order on one candle.

    A limit of ``side`` fills at the open if the open is at or within it, else at the limit if the adverse
    extreme reaches it; a stop fills at the open if the open is at or beyond it, else at the stop if the
    favourable extreme reaches it.  A stop-limit triggered at the open is a limit from the open on;
    triggered within the candle it fills at its stop (which is within its limit).
    """
    a, f = (low, h) if side > 0 else (h, low)  # the adverse and favourable extremes for the order's side
    so, sa, sf = side * o, side * a, side * f
    if kind == LIMIT or triggered:
        return (o if so <= side * limit else limit if sa <= side * limit else math.nan), triggered
    if kind == STOP:
        return (o if so >= side * stop else stop if sf >= side * stop else math.nan), False
    if so >= side * stop:  # a stop-limit triggered at the open
        return (o if so <= side * limit else limit if sa <= side * limit else math.nan), True
    return (stop if sf >= side * stop else math.nan), False


@njit(cache=True)
def _stop_level(trades, i, side):
    """The tightest stop of open trade ``i`` (real price) and its exit reason."""
    level, reason = side * trades[i, T_STOP], STOP_LOSS
    if trades[i, T_TRAIL] > level:
        level, reason = trades[i, T_TRAIL], TRAILING_STOP
    if trades[i, T_BE] > 0 and side * trades[i, T_ENTRY] > level:
        level, reason = side * trades[i, T_ENTRY], BREAK_EVEN
    return side * level, reason


@njit(cache=True)
def _trade_exit(trades, i, side, o, h, low):
    """(price, reason) at which a candle exits open trade ``i``, or (NaN, -1)."""
    stop, stop_reason = _stop_level(trades, i, side)
    target = trades[i, T_TARGET]
    a, f = (low, h) if side > 0 else (h, low)
    if side * o <= side * stop:
        return o, stop_reason
    if side * o >= side * target:
        return o, TAKE_PROFIT
    if side * a <= side * stop:
        return stop, stop_reason
    if side * f >= side * target:
        return target, TAKE_PROFIT
    return math.nan, -1


@njit(cache=True)
def _after_close(trades, held, p, trail_from, close, bar):
    """Ratchet each open trade's trailing stop to this close's level; arm its break-even move."""
    side = held[1]
    for i in range(held[0]):
        if p[P_HAS_TRAIL] > 0 and side * trail_from[bar] > trades[i, T_TRAIL]:  # NaN (ATR warm-up) never moves it
            trades[i, T_TRAIL] = side * trail_from[bar]
        if trades[i, T_BE] == 0 and side * close >= side * trades[i, T_BE_AT]:
            trades[i, T_BE] = 1.0


@njit(cache=True)
def _close(trades, held, cash, log, count, p, i, bar, price, reason):
    """Close open trade ``i`` at ``price`` (before costs) and log it."""
    _sell_part(trades, held, cash, log, count, p, i, trades[i, T_SIZE], bar, price, reason)
    for j in range(i, held[0] - 1):
        trades[j] = trades[j + 1]
    held[0] -= 1
    if held[0] == 0:
        held[1] = 0


@njit(cache=True)
def _reduce(trades, held, cash, log, count, p, notes, i, fraction, bar, price):
    """Close ``fraction`` of open trade ``i``: the part is logged as a trade (reason ``partial``) carrying its
    share of the entry commission; the rest stays open with its fill, stops and clock."""
    size = trades[i, T_SIZE]
    part = math.floor(size * fraction) if p[P_WHOLE] > 0 else size * fraction
    if not part > 0:
        notes[N_PARTIAL] += 1
        return False
    if part >= size:
        _close(trades, held, cash, log, count, p, i, bar, price, SIGNAL)
        return True
    _sell_part(trades, held, cash, log, count, p, i, part, bar, price, PARTIAL)
    return False


@njit(cache=True)
def _sell_part(trades, held, cash, log, count, p, i, part, bar, price, reason):
    """Close ``part`` units of open trade ``i`` at ``price`` and log them; the trade keeps the rest."""
    side, size = held[1], trades[i, T_SIZE]
    fill = _fill(p, -side, price)
    commission = _commission(p, part, fill)
    cash[0] += side * part * fill - commission
    entry_commission = trades[i, T_COMMISSION] if part == size else trades[i, T_COMMISSION] * (part / size)
    costs = part * trades[i, T_COST] + part * abs(fill - price)
    _log(log, count, side, part, trades[i, T_ENTRY_BAR], trades[i, T_ENTRY], entry_commission, bar, fill,
         commission, costs, reason)
    trades[i, T_SIZE] = size - part
    trades[i, T_COMMISSION] -= entry_commission


@njit(cache=True)
def _log(log, count, side, size, entry_bar, entry_price, entry_commission, bar, exit_price, exit_commission,
         spread_slippage, reason):
    """Append a finished trade (``spread_slippage``: what both its fills paid through their prices)."""
    row = log[count[0]]
    count[0] += 1
    commission = entry_commission + exit_commission
    pnl = side * size * (exit_price - entry_price) - commission
    row[L_SIDE], row[L_SIZE], row[L_ENTRY_BAR], row[L_ENTRY] = side, size, entry_bar, entry_price
    row[L_EXIT_BAR], row[L_EXIT], row[L_PNL] = bar, exit_price, pnl
    row[L_RETURN], row[L_COMMISSION], row[L_REASON] = pnl / (size * entry_price), commission, reason
    row[L_SPREAD_SLIPPAGE] = spread_slippage


@njit(cache=True)
def _close_all(trades, held, cash, log, count, p, bar, price, reason):
    while held[0] > 0:
        _close(trades, held, cash, log, count, p, 0, bar, price, reason)


@njit(cache=True)
def _accepts(held, p, side):
    """Whether an entry of ``side`` does anything now (see "Actions")."""
    if held[1] == side:
        return held[0] < p[P_MAX_ENTRIES]
    return held[1] != 0 or side > 0 or p[P_ALLOW_SHORT] > 0


@njit(cache=True)
def _size(trades, held, cash, p, notes, side, price, fill, stop):
    """Units for a new trade (see "Sizing"); ``stop`` is its initial stop in sign space."""
    total = 0.0
    for i in range(held[0]):
        total += trades[i, T_SIZE]
    notional = total * price
    equity = cash[0] + side * notional
    leverage = p[P_LEVERAGE] if not math.isnan(p[P_LEVERAGE]) else 1.0
    room = leverage * equity - notional
    method = p[P_SIZING]
    if method == FRACTION_SIZING:  # the commission included: its minimum too, when that is what it comes to
        budget = p[P_VALUE] * room
        size = (budget - p[P_PER_ORDER]) / (fill * (1 + p[P_FRACTION]) + p[P_PER_UNIT])
        if size * fill * p[P_FRACTION] + p[P_PER_UNIT] * size + p[P_PER_ORDER] < p[P_MINIMUM]:
            size = (budget - p[P_MINIMUM]) / fill
    elif method == FIXED_SIZING:
        size = p[P_VALUE]
    else:
        distance = side * fill - stop
        if not 0 < distance < math.inf:  # no stop at all (NaN levels in the warm-up) is no loss side either
            notes[N_RISK_SIDE] += 1
            return 0.0
        size = p[P_VALUE] * equity / distance
    if not math.isnan(p[P_LEVERAGE]) and method != FRACTION_SIZING and size * fill > room:
        notes[N_LEVERAGE] += 1
        size = max(room, 0.0) / fill
    if p[P_WHOLE] > 0:
        size = math.floor(size)
    if not size > 0:
        notes[N_SIZE] += 1
    return size


@njit(cache=True)
def _open(trades, held, cash, p, notes, levels, side, bar, price, decided, first_check):
    """Open a trade of ``side`` at ``price``; its exits from the per-side arrays of candle ``decided``."""
    s = 0 if side > 0 else 1
    fill = _fill(p, side, price)
    mults, adds = levels[0], levels[1]  # [exit, side]: level = fill x mult + add[decided]
    stop = fill * mults[0, s] + adds[0, s, decided] if not math.isnan(mults[0, s]) else -side * math.inf
    target = fill * mults[1, s] + adds[1, s, decided] if not math.isnan(mults[1, s]) else side * math.inf
    trail = side * (fill * mults[2, s] + adds[2, s, decided]) if p[P_HAS_TRAIL] > 0 else -math.inf
    if math.isnan(trail):  # an ATR still in its warm-up: the trailing stop starts with the first close
        trail = -math.inf
    nan_level = math.isnan(stop) or math.isnan(target)
    stop = -side * math.inf if math.isnan(stop) else stop
    target = side * math.inf if math.isnan(target) else target
    initial = side * stop if side * stop >= trail else trail  # the tighter, in sign space
    size = _size(trades, held, cash, p, notes, side, price, fill, initial)
    if not size > 0:
        return
    if nan_level:  # noted for a trade that opens, not for one the sizing skips
        notes[N_NAN_LEVEL] += 1
    commission = _commission(p, size, fill)
    cash[0] -= side * size * fill + commission
    t = trades[held[0]]
    held[0] += 1
    held[1] = side
    t[T_SIZE], t[T_ENTRY_BAR], t[T_ENTRY], t[T_COMMISSION] = size, bar, fill, commission
    t[T_STOP], t[T_TARGET], t[T_TRAIL], t[T_BE] = stop, target, trail, 0.0
    t[T_BE_AT] = fill * (1 + side * p[P_BREAK_EVEN])  # NaN without a break-even move: never reached
    t[T_FIRST_CHECK] = first_check
    t[T_DUE] = bar + p[P_MAX_BARS] if p[P_MAX_BARS] > 0 else math.inf
    t[T_COST] = abs(fill - price)


@njit(cache=True)
def _enter(trades, held, cash, log, count, p, notes, levels, side, bar, price, decided, first_check):
    """A buy (+1) or sell (-1) at ``price``: reverse or close what is held, then open if it may."""
    if not _accepts(held, p, side):
        return
    if held[1] != 0 and held[1] != side:
        opens = side > 0 or p[P_ALLOW_SHORT] > 0
        _close_all(trades, held, cash, log, count, p, bar, price, REVERSAL if opens else SIGNAL)
        if not opens:
            return
    _open(trades, held, cash, p, notes, levels, side, bar, price, decided, first_check)


@njit(cache=True)
def _place(working, p, notes, kinds, prices, valid_for, side, decided):
    """Start working the entry order of ``side`` priced on candle ``decided`` (replacing its last one)."""
    s = 0 if side > 0 else 1
    stop, limit = prices[0, s, decided], prices[1, s, decided]
    kind = kinds[s]
    if (kind != LIMIT and math.isnan(stop)) or (kind != STOP and math.isnan(limit)):
        notes[N_NAN_PRICE] += 1
        return
    w = working[s]
    w[W_ACTIVE], w[W_KIND], w[W_STOP], w[W_LIMIT], w[W_DECIDED] = 1.0, kind, stop, limit, decided
    w[W_EXPIRES] = decided + valid_for[s] if valid_for[s] > 0 else math.inf
    w[W_TRIGGERED] = 0.0


@njit(cache=True)
def _act(state, p, notes, levels, orders, entry, exits, bar, price, decided):
    """Signal exits (whole or partial), time exits, then the entry, at ``price`` (an open or a close)."""
    trades, held, cash, working, log, count = state
    kinds, prices, valid_for, fractions = orders
    for s in range(2):
        if not exits & (1 << s):
            continue
        fraction = fractions[s, decided] if fractions.shape[1] > 0 else 1.0
        if fraction >= 1:
            working[s, W_ACTIVE] = 0.0
        if held[1] != (1 if s == 0 else -1):
            continue
        if fraction >= 1:
            _close_all(trades, held, cash, log, count, p, bar, price, SIGNAL)
        else:
            i = 0
            while i < held[0]:
                if not _reduce(trades, held, cash, log, count, p, notes, i, fraction, bar, price):
                    i += 1
    i = 0
    while i < held[0]:
        if trades[i, T_DUE] == bar:
            _close(trades, held, cash, log, count, p, i, bar, price, MAX_BARS)
        else:
            i += 1
    if entry != 0:
        if kinds[0 if entry > 0 else 1] == MARKET:
            first_check = bar if p[P_NEXT_OPEN] > 0 else bar + 1
            _enter(trades, held, cash, log, count, p, notes, levels, entry, bar, price, decided, first_check)
        elif _accepts(held, p, entry):
            _place(working, p, notes, kinds, prices, valid_for, entry, decided)


@njit(cache=True)
def _within(state, p, notes, levels, bar, o, h, low):
    """The open trades' exits, then the working orders (older first, a buy first at equal age)."""
    trades, held, cash, working, log, count = state
    i = 0
    while i < held[0]:
        if trades[i, T_FIRST_CHECK] <= bar:
            price, reason = _trade_exit(trades, i, held[1], o, h, low)
            if reason >= 0:
                _close(trades, held, cash, log, count, p, i, bar, price, reason)
                continue
        i += 1
    first = 1 if working[1, W_DECIDED] < working[0, W_DECIDED] else 0
    for s in (first, 1 - first):
        w = working[s]
        if w[W_ACTIVE] == 0 or not (w[W_DECIDED] < bar <= w[W_EXPIRES]):
            continue
        side = 1 if s == 0 else -1
        price, triggered = _order_fill(w[W_KIND], side, w[W_STOP], w[W_LIMIT], w[W_TRIGGERED] > 0, o, h, low)
        if math.isnan(price):
            w[W_TRIGGERED] = 1.0 if triggered else 0.0
            continue
        w[W_ACTIVE] = 0.0
        _enter(trades, held, cash, log, count, p, notes, levels, side, bar, price, int(w[W_DECIDED]), bar + 1)


@njit(cache=True)
def run(opens, highs, lows, closes, entries, exits, p, levels, trail_from, orders, cash_at, position_at, log, notes):
    """Visit every candle (see the module docstring); fill ``cash_at``/``position_at`` per candle, ``log``
    with the trades (the still-open ones last, reason ``OPEN``) and ``notes``; return the number logged."""
    n = len(opens)
    trades = np.zeros((max(1, int(p[P_MAX_ENTRIES])), 12))
    working = np.zeros((2, 7))
    held, cash, count = np.zeros(2, np.int64), np.array([p[P_CASH]]), np.zeros(1, np.int64)
    state = (trades, held, cash, working, log, count)
    timed = p[P_MAX_BARS] > 0
    for bar in range(n):
        o, h, low, c = opens[bar], highs[bar], lows[bar], closes[bar]
        if p[P_NEXT_OPEN] > 0:
            if bar > 0 and (entries[bar - 1] != 0 or exits[bar - 1] != 0 or (timed and held[0] > 0)):
                _act(state, p, notes, levels, orders, entries[bar - 1], exits[bar - 1], bar, o, bar - 1)
            if held[0] > 0 or working[0, W_ACTIVE] > 0 or working[1, W_ACTIVE] > 0:
                _within(state, p, notes, levels, bar, o, h, low)
        else:
            if held[0] > 0 or working[0, W_ACTIVE] > 0 or working[1, W_ACTIVE] > 0:
                _within(state, p, notes, levels, bar, o, h, low)
            if entries[bar] != 0 or exits[bar] != 0 or (timed and held[0] > 0):
                _act(state, p, notes, levels, orders, entries[bar], exits[bar], bar, c, bar)
        if held[0] > 0:
            _after_close(trades, held, p, trail_from[0 if held[1] > 0 else 1], c, bar)
        if working[0, W_EXPIRES] <= bar:
            working[0, W_ACTIVE] = 0.0
        if working[1, W_EXPIRES] <= bar:
            working[1, W_ACTIVE] = 0.0
        if bar == n - 1 and p[P_CLOSE_AT_END] > 0:
            _close_all(trades, held, cash, log, count, p, bar, c, END)
        cash_at[bar] = cash[0]
        total = 0.0
        for i in range(held[0]):
            total += trades[i, T_SIZE]
        position_at[bar] = held[1] * total
    for i in range(held[0]):
        _log(log, count, held[1], trades[i, T_SIZE], trades[i, T_ENTRY_BAR], trades[i, T_ENTRY],
             trades[i, T_COMMISSION], n - 1, closes[n - 1], 0.0, trades[i, T_SIZE] * trades[i, T_COST], OPEN)
    return count[0]
