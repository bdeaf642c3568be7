"""The portfolio simulation: one symbol, every candle visited in order by a compiled loop.

Algorithm: the settings become arrays once, here, in numpy: per side, the price of an entry
order decided on each candle, each exit level as ``fill x mult + add[candle]``, the trailing stop's
level from each close.  Then :func:`candleflow.portfolio.kernel.run`, a plain per-candle loop
compiled by numba, applies the rules below: cash, open trades (one or, with pyramiding, several,
all of one side), at most one working entry order per side, and the trade log.  It records cash
and position at every candle; the equity curve is ``cash + position x close``.  Every rule below is
tested against a slow per-candle simulator written in the tests (tests/reference_simulator.py) and
cross-checked against backtesting.py and vectorbt (tests/crosscheck/).

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
  side's working order (a partial exit, ``{close_long: 0.5}``, closes that fraction of each trade, logged
  with reason ``partial``, and cancels nothing; nor does a reversal).  ``buy`` while short closes the short and opens a long (exit reason
  ``reversal``); ``sell`` while long closes the long and opens a short if ``risk.allow_short``,
  otherwise it only closes the long (reason ``signal``).  An entry in the direction held is ignored
  unless fewer than ``orders.max_entries`` trades are open (pyramiding: each entry a trade of its
  own, with its own fill, stops and clock); ``sell`` while flat without ``allow_short`` is ignored.
  A working order's fill acts like a market entry at its fill price.
* **Prices and costs.** A buy fills at ``price + spread/2 + slippage``, a sell at ``price - ...``;
  each is ``units`` of price plus ``bps`` x price / 10,000, on every fill: market and working-order
  entries, and every exit (a stop or target filled at its level or at a gapped open included).  Each
  fill pays ``max(minimum, fraction x size x fill + per_unit x size + per_order)`` commission.  A
  trade's ``spread_slippage`` is ``size x |fill - price|`` summed over its two fills.
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

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from candleflow.config.models import Distance, Execution, Orders, Risk, Sizing
from candleflow.portfolio.metrics import compute_metrics
from candleflow.portfolio.rules import Actions
from candleflow.vocab import PRICE_COLUMNS

TRADE_COLUMNS = ["side", "size", "entry_bar", "entry_time", "entry_price", "exit_bar", "exit_time",
                 "exit_price", "pnl", "return_pct", "commission", "spread_slippage", "exit_reason"]


@dataclass(frozen=True)
class Simulation:
    """The result of :func:`simulate`.

    ``trades``: one row per trade (columns ``TRADE_COLUMNS``; ``pnl`` is net of both
    commissions, ``return_pct`` is ``pnl / (size x entry_price)`` as a fraction, like
    backtesting.py's ``ReturnPct``; ``commission`` is both sides' total; ``spread_slippage`` what both
    fills paid through their prices, ``size x |fill - raw price|`` summed, already inside ``pnl`` through
    ``entry_price`` and ``exit_price``; a trade still open at the end counts its entry only).
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


def _distance_levels(distance: Distance, direction: int, base: np.ndarray, levels: dict[str, np.ndarray]):
    """``distance`` beyond each ``base`` price in ``direction`` (+1 up): ``base x (1 + direction x fraction)``,
    ``base + direction x multiple x atr``, or the ``price`` series itself."""
    if distance.price is not None:
        return levels[distance.price]
    if distance.fraction is not None:
        return base * (1 + direction * distance.fraction)
    return base + direction * distance.multiple * levels[distance.atr]


def _exit_arrays(risk: Risk, levels: dict[str, np.ndarray], n: int):
    """Per exit (stop-loss, take-profit, trailing stop) and side: ``mult`` and ``add[bar]`` such that the
    level of a trade filled at ``fill`` and decided on ``bar`` is ``fill x mult + add[bar]`` (``mult`` NaN:
    no such exit); and per side the trailing stop's level from each close."""
    mults = np.full((3, 2), np.nan)
    adds = np.zeros((3, 2, n))
    exits = ((risk.stop_loss, -1), (risk.take_profit, 1), (risk.trailing_stop, -1))  # -1: on the loss side
    for e, (distance, outward) in enumerate(exits):
        for s, side in enumerate((1, -1) if distance is not None else ()):
            direction = outward * side
            if distance.price is not None:
                mults[e, s], adds[e, s] = 0.0, levels[distance.price]
            elif distance.fraction is not None:
                mults[e, s] = 1 + direction * distance.fraction
            else:
                mults[e, s], adds[e, s] = 1.0, direction * distance.multiple * levels[distance.atr]
    trail_from = np.zeros((2, n))
    if risk.trailing_stop is not None:
        for s, side in enumerate((1, -1)):
            trail_from[s] = _distance_levels(risk.trailing_stop, -side, levels["close"], levels)
    return (mults, adds), trail_from


def _order_arrays(orders: Orders, levels: dict[str, np.ndarray], n: int):
    """Per side: the order type, ``prices[stop|limit, side, bar]`` of an order decided on ``bar``, and
    ``valid_for`` (0: until filled or replaced)."""
    from candleflow.portfolio import kernel  # numba: imported only by a simulation

    kinds = np.zeros(2, np.int64)
    working = any(orders.for_side(side).type != "market" for side in (1, -1))
    prices = np.full((2, 2, n if working else 1), np.nan)  # read only for working orders
    valid_for = np.zeros(2, np.int64)
    for s, side in enumerate((1, -1)):
        spec = orders.for_side(side)
        kinds[s] = {"market": kernel.MARKET, "limit": kernel.LIMIT, "stop": kernel.STOP,
                    "stop_limit": kernel.STOP_LIMIT}[spec.type]
        valid_for[s] = spec.valid_for or 0
        if spec.type == "market":
            continue
        if spec.price is not None:
            level = levels[spec.price]
        else:  # a buy limit below the close, a buy stop above it
            level = _distance_levels(spec.offset, -side if spec.type == "limit" else side, levels["close"], levels)
        if spec.type == "limit":
            prices[1, s] = level
        else:
            prices[0, s] = level
        if spec.type == "stop_limit":
            prices[1, s] = _distance_levels(spec.limit_offset, side, prices[0, s], levels)
    return kinds, prices, valid_for


def _params(execution: Execution, orders: Orders, sizing: Sizing, risk: Risk, initial_cash: float) -> np.ndarray:
    """The kernel's scalar settings, as its ``P_*`` indexes say."""
    from candleflow.portfolio import kernel  # numba: imported only by a simulation

    k = kernel
    p = np.zeros(18)
    commission, spread, slippage = execution.commission, execution.spread, execution.slippage
    p[k.P_NEXT_OPEN] = execution.fill == "next_open"
    p[k.P_ALLOW_SHORT], p[k.P_MAX_ENTRIES] = risk.allow_short, orders.max_entries
    p[k.P_UNITS], p[k.P_BPS] = spread.units / 2 + slippage.units, (spread.bps / 2 + slippage.bps) / 10_000
    p[k.P_FRACTION], p[k.P_PER_UNIT] = commission.fraction, commission.per_unit
    p[k.P_PER_ORDER], p[k.P_MINIMUM] = commission.per_order, commission.minimum
    p[k.P_SIZING] = {"fraction": k.FRACTION_SIZING, "fixed": k.FIXED_SIZING, "risk": k.RISK_SIZING}[sizing.method]
    p[k.P_VALUE], p[k.P_WHOLE] = sizing.value, sizing.whole_units
    p[k.P_LEVERAGE] = sizing.max_leverage if sizing.max_leverage is not None else np.nan
    p[k.P_BREAK_EVEN] = risk.break_even if risk.break_even is not None else np.nan
    p[k.P_MAX_BARS] = risk.max_bars or 0
    p[k.P_CLOSE_AT_END], p[k.P_HAS_TRAIL] = execution.close_at_end, risk.trailing_stop is not None
    p[k.P_CASH] = initial_cash
    return p


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
    trade_from: int = 0,
) -> Simulation:
    """Run the rules described in the module docstring over ``candles``.

    ``candles`` is indexed by a UTC ``DatetimeIndex`` and has float columns
    open/high/low/close; ``actions`` has one entry and one exit value per candle;
    ``levels`` holds the indicator series that order prices and exits name (``{"atr": array}``).
    No entry is decided before candle ``trade_from`` (the candles before it only warm up the
    indicators), and the metrics cover the candles from it: the run then equals one that starts there.
    """
    from candleflow.portfolio import kernel  # numba: imported only by a simulation, not by validate or render

    n = len(candles)
    if len(actions.entry) != n or len(actions.exit) != n:
        raise ValueError(f"actions cover {len(actions.entry)}/{len(actions.exit)} bars, candles {n}")
    orders = orders or Orders()
    opens, highs, lows, closes = (candles[c].to_numpy(dtype=np.float64) for c in PRICE_COLUMNS)
    series = {"open": opens, "high": highs, "low": lows, "close": closes,
              **{ref: np.asarray(v, dtype=np.float64) for ref, v in (levels or {}).items()}}
    entries = np.array(actions.entry, dtype=np.int8)  # a copy: the warm-up's entries are dropped below
    entries[:trade_from] = 0
    exits = np.ascontiguousarray(actions.exit, dtype=np.int8)
    exit_levels, trail_from = _exit_arrays(risk, series, n)
    fractions = actions.close_fraction if actions.close_fraction is not None else np.zeros((2, 0))
    cash_at, position = np.empty(n), np.empty(n)
    partial_exits = int(np.count_nonzero(exits)) if actions.close_fraction is not None else 0
    # a row per trade, and per partial exit one per trade it reduces
    log = np.empty((int(np.count_nonzero(entries)) + partial_exits * orders.max_entries + 1, len(_LOGGED)))
    notes = np.zeros(len(kernel.NOTES), np.int64)
    count = kernel.run(opens, highs, lows, closes, entries, exits,
                       _params(execution, orders, sizing, risk, float(initial_cash)), exit_levels, trail_from,
                       (*_order_arrays(orders, series, n), fractions), cash_at, position, log, notes) if n else 0
    equity = pd.Series(cash_at + position * closes, index=candles.index, name="equity", dtype=np.float64)
    trades = _trades_frame(log[:count], candles.index, kernel.REASONS)
    metrics = compute_metrics(equity.iloc[trade_from:], trades, position[trade_from:], initial_cash=initial_cash,
                              close=closes[trade_from:])
    return Simulation(trades=trades, equity=equity, position=position, metrics=metrics,
                      notes={text: int(k) for text, k in zip(kernel.NOTES, notes) if k})


_LOGGED = ("side", "size", "entry_bar", "entry_price", "exit_bar", "exit_price", "pnl", "return_pct",
           "commission", "spread_slippage", "exit_reason")  # the kernel's log columns (kernel.L_*)


def _trades_frame(log: np.ndarray, index: pd.DatetimeIndex, reasons: tuple[str, ...]) -> pd.DataFrame:
    """The kernel's trade log as a DataFrame with TRADE_COLUMNS (typed even when empty), built in one go."""
    columns = dict(zip(_LOGGED, log.T))
    entry_bar = columns["entry_bar"].astype(np.int64)
    exit_bar = columns["exit_bar"].astype(np.int64)
    values = {
        "entry_bar": entry_bar, "entry_time": index[entry_bar],
        "exit_bar": exit_bar, "exit_time": index[exit_bar],
        "side": pd.Series(np.where(columns["side"] > 0, "long", "short"), dtype=object),
        "exit_reason": pd.Series(np.asarray(reasons, dtype=object)[columns["exit_reason"].astype(np.int64)],
                                 dtype=object),
    }
    return pd.DataFrame({name: values[name] if name in values else np.array(columns[name], dtype=np.float64)
                         for name in TRADE_COLUMNS}, copy=False)
