"""The order model: the fast simulator (portfolio/simulate.py) against the plain per-candle reference
(tests/reference_simulator.py) on hypothesis-generated candles (gaps, flat stretches, trends, wide candles),
actions (both sides, whole and partial exits) and settings drawn from every option, and hand-computed cases for
each order type and exit rule.

Comparison (:func:`assert_same`): the trade list exactly in count, sides, bars and exit reasons, and the notes
exactly; the numbers (sizes, prices, P&L, commission, spread and slippage, cash and position after every candle)
exactly (``==``)
when the settings have no costs, where both compute the same products of the same inputs, else to 1e-9
relative (the two write the cost arithmetic in different orders).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_simulator import reference_simulate

from candleflow.config.models import Commission, Distance, EntryOrder, Execution, Orders, PriceCost, Risk, Sizing
from candleflow.data import generate_candles
from candleflow.portfolio import Actions, simulate

BROAD = settings(max_examples=300, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
T0 = pd.Timestamp("2024-01-01", tz="UTC")
TICK = 0.25


def frame(rows) -> pd.DataFrame:
    index = pd.date_range(T0, periods=len(rows), freq="1h", name="time")
    candles = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    candles["volume"] = 1.0
    return candles


# -- strategies ----------------------------------------------------------------------------------------------------
@st.composite
def candle_rows(draw):
    """Random walks with gaps at the open, flat stretches (open = high = low = close) and long trending runs,
    on a 0.25 grid so that levels are often touched exactly."""
    kinds = st.sampled_from(["walk", "gap", "flat", "up", "down", "wide"])
    segments = draw(st.lists(st.tuples(kinds, st.integers(1, 12)), min_size=1, max_size=6))
    def ticks(lo: int, hi: int) -> float:
        return draw(st.integers(lo, hi)) * TICK

    close, rows = 100.0, []
    for kind, length in segments:
        for _ in range(length):
            if kind == "flat":
                rows.append((close, close, close, close))
                continue
            open_ = close + (ticks(4, 40) * draw(st.sampled_from([1, -1])) if kind == "gap" else ticks(-1, 1))
            move = {"up": ticks(1, 8), "down": -ticks(1, 8)}.get(kind) or ticks(-8, 8)
            close = open_ + move
            reach = 24 if kind == "wide" else 4  # wide candles touch a stop and a target at once
            rows.append((open_, max(open_, close) + ticks(0, reach), min(open_, close) - ticks(0, reach), close))
    floor = min(row[2] for row in rows)
    shift = 10.0 - floor if floor < 10.0 else 0.0
    return [tuple(p + shift for p in row) for row in rows]


@st.composite
def level_series(draw, closes):
    """``atr``: positive, a NaN warm-up of 0..6 candles; ``band``: near the close, its own warm-up."""
    n = len(closes)
    warm = draw(st.integers(0, 6))
    atr = [math.nan] * min(warm, n) + [draw(st.integers(1, 16)) * TICK for _ in range(n - min(warm, n))]
    warm = draw(st.integers(0, 3))
    band = [math.nan if i < warm else max(1.0, c + draw(st.integers(-24, 24)) * TICK) for i, c in enumerate(closes)]
    return {"atr": np.array(atr), "band": np.array(band)}


@st.composite
def action_arrays(draw, n):
    entry, exits = np.zeros(n, np.int8), np.zeros(n, np.int8)
    for bar, side in draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from([1, -1])), min_size=1,
                                   max_size=n // 2 + 1)):
        entry[bar] = side
    fractions = np.zeros((2, n))  # partial exits: the share each exit closes, per side
    for bar, flags, part in draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from([1, 2, 3]),
                                                    st.sampled_from([1.0, 1.0, 0.5, 0.25, 0.001])), max_size=n // 4)):
        exits[bar] = flags
        for row in (0, 1):
            fractions[row, bar] = part if flags & (1 << row) else 0.0
    partial = bool(((fractions > 0) & (fractions < 1)).any())
    return Actions(entry, exits, close_fraction=fractions if partial else None)


def distances(*, price: bool = True):
    forms = [st.sampled_from([0.005, 0.01, 0.02, 0.025, 0.05, 0.1]).map(lambda f: Distance(fraction=f)),
             st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]).map(lambda m: Distance(atr="atr", multiple=m))]
    if price:
        forms.append(st.just(Distance(price="band")))
    return st.one_of(forms)


@st.composite
def entry_orders(draw):
    kind = draw(st.sampled_from(["market", "limit", "stop", "stop_limit"]))
    if kind == "market":
        return EntryOrder()
    by_price = draw(st.booleans())
    return EntryOrder(type=kind, price="band" if by_price else None,
                      offset=None if by_price else draw(distances(price=False)),
                      limit_offset=draw(distances(price=False)) if kind == "stop_limit" else None,
                      valid_for=draw(st.none() | st.integers(1, 5)))


@st.composite
def executions(draw):
    free = draw(st.booleans())
    def cost() -> PriceCost:
        return PriceCost(units=draw(st.sampled_from([0.0, 0.5])), bps=draw(st.sampled_from([0.0, 5.0, 20.0])))

    return Execution(
        fill=draw(st.sampled_from(["next_open", "close"])), close_at_end=draw(st.booleans()),
        commission=Commission() if free else Commission(
            fraction=draw(st.sampled_from([0.0, 0.001, 0.0025])), per_unit=draw(st.sampled_from([0.0, 0.01])),
            per_order=draw(st.sampled_from([0.0, 1.0, 5.0])), minimum=draw(st.sampled_from([0.0, 2.0, 20.0]))),
        spread=PriceCost() if free else cost(), slippage=PriceCost() if free else cost())


@st.composite
def risks(draw):
    return Risk(stop_loss=draw(st.none() | distances()), take_profit=draw(st.none() | distances()),
                trailing_stop=draw(st.none() | distances(price=False)),
                break_even=draw(st.none() | st.sampled_from([0.005, 0.01, 0.03])),
                max_bars=draw(st.none() | st.integers(1, 8)), allow_short=draw(st.booleans()))


@st.composite
def sizings(draw, risk: Risk):
    methods = ["fraction", "fixed"] + (["risk"] if risk.stop_loss or risk.trailing_stop else [])
    method = draw(st.sampled_from(methods))
    value = draw(st.sampled_from({"fraction": [0.1, 0.5, 1.0], "fixed": [0.5, 1.0, 3.0, 37.5],
                                  "risk": [0.005, 0.01, 0.05]}[method]))
    return Sizing(method=method, value=value, whole_units=draw(st.booleans()),
                  max_leverage=draw(st.none() | st.sampled_from([0.5, 1.0, 2.0, 5.0])))


@st.composite
def cases(draw):
    rows = draw(candle_rows())
    levels = draw(level_series([r[3] for r in rows]))
    actions = draw(action_arrays(len(rows)))
    risk = draw(risks())
    orders = Orders(entry=draw(entry_orders()), buy=draw(st.none() | entry_orders()),
                    sell=draw(st.none() | entry_orders()), max_entries=draw(st.integers(1, 3)))
    return {"candles": frame(rows), "actions": actions, "execution": draw(executions()),
            "sizing": draw(sizings(risk)), "risk": risk, "orders": orders, "levels": levels,
            "initial_cash": draw(st.sampled_from([1_000.0, 10_000.0, 12_345.67]))}


# -- comparison ------------------------------------------------------------------------------------------------------
TEXT, BARS = ("side", "exit_reason"), ("entry_bar", "exit_bar")
NUMBERS = ("size", "entry_price", "exit_price", "pnl", "return_pct", "commission", "spread_slippage")
ROW = ("side", "size", "entry_bar", "entry_price", "exit_bar", "exit_price", "pnl", "return_pct", "commission",
       "spread_slippage", "exit_reason")


def costs_free(execution: Execution) -> bool:
    return execution.commission == Commission() and execution.spread == PriceCost() == execution.slippage


def same_number(a: float, b: float, exact: bool, scale: float) -> bool:
    if exact:
        return a == b or (math.isnan(a) and math.isnan(b))
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), scale)


def assert_same(case: dict) -> None:
    fast = simulate(**case)
    ref = reference_simulate(**case)
    exact = costs_free(case["execution"])
    got = [tuple(r) for r in fast.trades[list(ROW)].itertuples(index=False)]
    assert len(got) == len(ref.trades), (got, ref.trades)
    for g, w in zip(got, ref.trades):
        for name, a, b in zip(ROW, g, w):
            if name in NUMBERS:
                assert same_number(float(a), float(b), exact, 1e-6), (name, g, w)
            else:
                assert a == b, (name, g, w)
    assert dict(fast.notes) == dict(ref.notes), ("notes", dict(fast.notes), dict(ref.notes))
    scale = case["initial_cash"]
    for bar, (a, b) in enumerate(zip(fast.position.tolist(), ref.position)):
        assert same_number(a, b, exact, 1e-9), ("position", bar, a, b)
    closes = case["candles"]["close"].to_numpy()
    ref_equity = np.array(ref.cash) + np.array(ref.position) * closes
    for bar, (a, b) in enumerate(zip(fast.equity.tolist(), ref_equity.tolist())):
        assert same_number(a, b, exact, scale), ("equity", bar, a, b)


@BROAD
@given(case=cases())
def test_fast_simulator_equals_the_reference(case):
    assert_same(case)


# -- hand-computed cases ------------------------------------------------------------------------------------------
# Each runs both simulators (assert_same) and checks the fast one's trades against numbers worked out in the
# comments.  Unless a case says otherwise: next_open fills, no costs, cash 10,000, no exits.
FLAT = (100.0, 100.0, 100.0, 100.0)
FIELDS = ("side", "size", "entry_bar", "entry_price", "exit_bar", "exit_price", "pnl", "exit_reason")


def run(rows, entries: dict[int, int], exits: dict[int, int] | None = None, *, levels=None, cash=10_000.0,
        execution=None, sizing=None, risk=None, orders=None, parts: dict[int, float] | None = None):
    """``parts``: the share of each trade the exit decided on a candle closes (default whole)."""
    entry, exit_ = np.zeros(len(rows), np.int8), np.zeros(len(rows), np.int8)
    for bar, value in entries.items():
        entry[bar] = value
    fractions = np.zeros((2, len(rows)))
    for bar, value in (exits or {}).items():
        exit_[bar] = value
        for row in (0, 1):
            fractions[row, bar] = (parts or {}).get(bar, 1.0) if value & (1 << row) else 0.0
    actions = Actions(entry, exit_, close_fraction=fractions if parts else None)
    case = {"candles": frame(rows), "actions": actions, "execution": execution or Execution(),
            "sizing": sizing or Sizing(), "risk": risk or Risk(), "orders": orders or Orders(), "initial_cash": cash,
            "levels": {name: np.broadcast_to(np.asarray(v, dtype=float), len(rows)).copy()
                       for name, v in (levels or {}).items()}}  # a number: the same value on every candle
    assert_same(case)
    return simulate(**case)


def trades(sim) -> list[tuple]:
    return [tuple(row) for row in sim.trades[list(FIELDS)].itertuples(index=False)]


def assert_trades(sim, expected: list[tuple]) -> None:
    got = trades(sim)
    assert len(got) == len(expected), got
    for g, w in zip(got, expected):
        assert g == tuple(x if isinstance(x, str) else pytest.approx(x, rel=1e-12, abs=1e-12) for x in w), (g, w)


def fixed(units: float) -> Sizing:
    return Sizing(method="fixed", value=units)


ATR2 = {"atr": 2.0}


def buy_order(**fields) -> Orders:
    return Orders(entry=EntryOrder(**fields))


def test_limit_fills_at_the_open_on_a_gap_below_it():
    # buy decided on bar 0's close 100: limit 100 - 1 x ATR 2 = 98, working from bar 1.
    # Bar 1 opens at 97, below the limit: fills at the open 97.  Exit decided on bar 3: bar 4's open 101.
    rows = [FLAT, (97, 99, 96, 98), (98, 99, 97, 99), (99, 100, 98, 100), (101, 101, 101, 101)]
    sim = run(rows, {0: 1}, {3: 1}, levels=ATR2, sizing=fixed(10),
              orders=buy_order(type="limit", offset=Distance(atr="atr", multiple=1)))
    assert_trades(sim, [("long", 10, 1, 97, 4, 101, 10 * (101 - 97), "signal")])


def test_limit_fills_at_its_level_within_the_candle_both_sides():
    # buy limit 98 (0.02 below 100): bar 1 opens 99, low 97.5 -> fills at 98; held to the end (close 101)
    rows = [FLAT, (99, 100, 97.5, 100), (100, 101, 99, 101)]
    sim = run(rows, {0: 1}, sizing=fixed(10), orders=buy_order(type="limit", offset=0.02))
    assert_trades(sim, [("long", 10, 1, 100 * (1 - 0.02), 2, 101, 10 * (101 - 98), "open")])
    # sell limit 102 (0.02 above 100): bar 1 opens 101, high 102.5 -> fills at 102; last close 99
    rows = [FLAT, (101, 102.5, 100, 100), (100, 100, 99, 99)]
    sim = run(rows, {0: -1}, sizing=fixed(10), orders=buy_order(type="limit", offset=0.02))
    assert_trades(sim, [("short", 10, 1, 100 * (1 + 0.02), 2, 99, 10 * (102 - 99), "open")])


def test_stop_fills_at_its_level_or_at_a_gap_beyond_it():
    # buy stop 102: bar 1 (high 101) does not reach it; bar 2's high 103 does: fills at 102
    rows = [FLAT, (100, 101, 99, 100), (101, 103, 100, 102.5), (103, 104, 102, 104)]
    order = buy_order(type="stop", offset=0.02)
    assert_trades(run(rows, {0: 1}, sizing=fixed(1), orders=order), [("long", 1, 2, 102, 3, 104, 2, "open")])
    # bar 2 gaps open to 103, beyond the stop: fills at the open 103
    rows[2] = (103, 103.5, 102.5, 103)
    assert_trades(run(rows, {0: 1}, sizing=fixed(1), orders=order), [("long", 1, 2, 103, 3, 104, 1, "open")])
    # a sell stop 98 below the close: bar 1's low 97.5 reaches it, fills at 98; short to the last close 96
    rows = [FLAT, (99, 99.5, 97.5, 98), (98, 98, 96, 96)]
    assert_trades(run(rows, {0: -1}, sizing=fixed(1), orders=order), [("short", 1, 1, 98, 2, 96, 2, "open")])


def test_stop_limit_triggered_at_the_open_beyond_its_limit_fills_later_as_a_limit():
    # stop 100 + 1 x 2 = 102, limit 102 + 0.5 x 2 = 103.  Bar 1 gaps to 105 (triggered, beyond the limit) and
    # its low 104 never comes back to 103: no fill, the order now works as a limit 103.  Bar 2 opens at 101.5,
    # below the stop and within the limit: fills at the open 101.5 (an untriggered stop-limit would not).
    rows = [FLAT, (105, 106, 104, 104.5), (101.5, 101.75, 101, 101.5), (102, 102, 102, 102)]
    order = buy_order(type="stop_limit", offset=Distance(atr="atr", multiple=1),
                      limit_offset=Distance(atr="atr", multiple=0.5))
    sim = run(rows, {0: 1}, levels=ATR2, sizing=fixed(1), orders=order)
    assert_trades(sim, [("long", 1, 2, 101.5, 3, 102, 0.5, "open")])
    # triggered at the gap open, and bar 1's low 102.5 comes back to the limit: fills at 103 in bar 1
    rows[1] = (105, 106, 102.5, 104)
    sim = run(rows, {0: 1}, levels=ATR2, sizing=fixed(1), orders=order)
    assert_trades(sim, [("long", 1, 1, 103, 3, 102, -1, "open")])
    # triggered within bar 1 (open 100.5 below the stop, high 102.5): fills at the stop 102
    rows[1] = (100.5, 102.5, 100, 102)
    sim = run(rows, {0: 1}, levels=ATR2, sizing=fixed(1), orders=order)
    assert_trades(sim, [("long", 1, 1, 102, 3, 102, 0, "open")])


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_working_order_expires_after_valid_for(fill):
    # buy limit 98 decided on bar 0 with valid_for 2 works on bars 1 and 2 only; bar 3's low 97 is too late
    rows = [FLAT, (100, 100, 99, 99.5), (99.5, 99.5, 98.5, 99), (99, 99, 97, 98), (98, 98, 98, 98)]
    order = buy_order(type="limit", offset=Distance(atr="atr", multiple=1), valid_for=2)
    sim = run(rows, {0: 1}, levels=ATR2, sizing=fixed(1), orders=order, execution=Execution(fill=fill))
    assert sim.trades.empty
    rows[2] = (99.5, 99.5, 97.5, 99)  # within its life: fills at 98 on bar 2
    sim = run(rows, {0: 1}, levels=ATR2, sizing=fixed(1), orders=order, execution=Execution(fill=fill))
    assert_trades(sim, [("long", 1, 2, 98, 4, 98, 0, "open")])


def test_newer_signal_replaces_the_working_order():
    # buy on bar 0 (close 100): limit 98; buy on bar 1 (close 104): limit 102 replaces it from bar 2's open.
    # Bar 2's low 101 fills the new order at 102 (the old one at 98 would not fill).
    rows = [FLAT, (100, 104, 99.5, 104), (104, 104, 101, 103), (103, 103, 103, 103)]
    order = buy_order(type="limit", offset=Distance(atr="atr", multiple=1))
    sim = run(rows, {0: 1, 1: 1}, levels=ATR2, sizing=fixed(1), orders=order)
    assert_trades(sim, [("long", 1, 2, 102, 3, 103, 1, "open")])


def test_exit_cancels_its_sides_working_order_only():
    # buy limit 98 from bar 1; close_long decided on bar 1 cancels it at bar 2's open: bar 3's low 97 fills nothing
    rows = [FLAT, (100, 100, 99, 100), (100, 100, 99, 100), (99, 99, 97, 98), (98, 98, 98, 98)]
    order = buy_order(type="limit", offset=Distance(atr="atr", multiple=1))
    assert run(rows, {0: 1}, {1: 1}, levels=ATR2, sizing=fixed(1), orders=order).trades.empty
    # close_short leaves the buy order working: it fills at 98 on bar 3
    sim = run(rows, {0: 1}, {1: 2}, levels=ATR2, sizing=fixed(1), orders=order)
    assert_trades(sim, [("long", 1, 3, 98, 4, 98, 0, "open")])


def test_trailing_stop_ratchets_only_in_the_trades_favour():
    # long 100 units at bar 1's open 100, trailing 1 x ATR 5: starts at 95; after bar 1's close 104: 99;
    # bar 2's close 110: 105; bar 3's close 106 would give 101, lower: it stays 105.
    # Bar 4's low 104.5 reaches 105: exit at 105, pnl 100 x 5 = 500
    rows = [FLAT, (100, 104, 99.5, 104), (104, 110, 103, 110), (110, 110, 105.5, 106), (106, 107, 104.5, 105),
            (105, 105, 105, 105)]
    sim = run(rows, {0: 1}, levels={"atr": 5.0}, risk=Risk(trailing_stop=Distance(atr="atr", multiple=1)))
    assert_trades(sim, [("long", 100, 1, 100, 4, 105, 500, "trailing_stop")])
    # a short mirrored: sell at 100, trail 105 -> 101 (close 96) -> 95 (close 90) -> stays at 95 (close 94 gives 99)
    rows = [FLAT, (100, 100.5, 96, 96), (96, 97, 90, 90), (90, 94.5, 90, 94), (94, 95.5, 93, 95), FLAT]
    sim = run(rows, {0: -1}, levels={"atr": 5.0}, sizing=fixed(1),
              risk=Risk(trailing_stop=Distance(atr="atr", multiple=1)))
    assert_trades(sim, [("short", 1, 1, 100, 4, 95, 5, "trailing_stop")])


def test_break_even_moves_the_stop_to_the_entry_after_a_close_beyond_it():
    # long at 100, stop-loss 90 (0.1), break_even 0.05: bar 1's close 105.5 >= 105 arms it; bar 2's low 99.5
    # reaches the entry 100: exit at 100, pnl 0
    rows = [FLAT, (100, 106, 99, 105.5), (105, 106, 99.5, 101), FLAT]
    sim = run(rows, {0: 1}, sizing=fixed(1), risk=Risk(stop_loss=0.1, break_even=0.05))
    assert_trades(sim, [("long", 1, 1, 100, 2, 100, 0, "break_even")])
    # bar 1's close 104.5 does not arm it: the stop stays 90 and bar 2 does not exit
    rows[1] = (100, 106, 99, 104.5)
    sim = run(rows, {0: 1}, sizing=fixed(1), risk=Risk(stop_loss=0.1, break_even=0.05))
    assert_trades(sim, [("long", 1, 1, 100, 3, 100, 0, "open")])


def test_max_bars_closes_n_candles_after_the_fill_in_both_fill_modes():
    rows = [(100 + i, 100.5 + i, 99.5 + i, 100.25 + i) for i in range(6)]
    # next_open: buy decided on bar 0 fills at bar 1's open 101; max_bars 2 -> bar 3's open 103
    sim = run(rows, {0: 1}, sizing=fixed(1), risk=Risk(max_bars=2))
    assert_trades(sim, [("long", 1, 1, 101, 3, 103, 2, "max_bars")])
    # close: buy on bar 1 fills at its close 101.25; max_bars 2 -> bar 3's close 103.25
    sim = run(rows, {1: 1}, sizing=fixed(1), risk=Risk(max_bars=2), execution=Execution(fill="close"))
    assert_trades(sim, [("long", 1, 1, 101.25, 3, 103.25, 2, "max_bars")])


def test_risk_sizing_by_hand():
    # risk 1 % of 10,000 = 100 at the stop 100 - 2 x ATR 2.5 = 95: 100 / 5 = 20 units
    rows = [FLAT, FLAT, (100, 100, 94, 95)]
    risk = Risk(stop_loss=Distance(atr="atr", multiple=2))
    sim = run(rows, {0: 1}, levels={"atr": 2.5}, sizing=Sizing(method="risk", value=0.01), risk=risk)
    assert_trades(sim, [("long", 20, 1, 100, 2, 95, -100, "stop_loss")])
    # a tighter trailing stop (100 x 0.98 = 98) sizes it: 100 / 2 = 50 units, stopped at 98: -100
    risk = Risk(stop_loss=Distance(atr="atr", multiple=2), trailing_stop=0.02)
    sim = run(rows, {0: 1}, levels={"atr": 2.5}, sizing=Sizing(method="risk", value=0.01), risk=risk)
    assert_trades(sim, [("long", 100 / (100 - 98), 1, 100, 2, 98, -100, "trailing_stop")])
    # a stop-loss price above the long's fill is not on the loss side: skipped, and noted
    sim = run(rows, {0: 1}, levels={"band": 101.0}, sizing=Sizing(method="risk", value=0.01),
              risk=Risk(stop_loss=Distance(price="band")))
    assert sim.trades.empty
    assert sim.notes == {"entry skipped: risk sizing needs the stop on the loss side of the fill": 1}


def test_leverage_cap():
    # fixed 300 units at 100 is 30,000 of notional; max_leverage 2 x equity 10,000 allows 20,000: 200 units
    sim = run([FLAT] * 3, {0: 1}, sizing=Sizing(method="fixed", value=300, max_leverage=2))
    assert_trades(sim, [("long", 200, 1, 100, 2, 100, 0, "open")])
    assert sim.notes == {"entry size cut to max_leverage": 1}
    assert sim.equity.iloc[1] == 10_000 and sim.position[1] == 200  # cash -10,000 + 200 x 100
    # fraction 1 with max_leverage 2: room 20,000 -> 200 units
    sim = run([FLAT] * 3, {0: 1}, sizing=Sizing(max_leverage=2))
    assert_trades(sim, [("long", 200, 1, 100, 2, 100, 0, "open")])


def test_pyramiding_each_entry_its_own_trade_and_stop():
    # max_entries 2: buys decided on bars 0 and 2 fill at bar 1's open 100 (stop 95) and bar 3's open 110
    # (stop 104.5); the buy on bar 3 is ignored (two open).  Bar 5's low 104 stops the second at 104.5;
    # bar 7's low 94 stops the first at 95.
    rows = [FLAT, (100, 101, 99, 100), (100, 110, 100, 110), (110, 111, 109, 110), (110, 111, 109, 110),
            (110, 110, 104, 106), (106, 106, 100, 100), (100, 100, 94, 95), (95, 95, 95, 95)]
    sim = run(rows, {0: 1, 2: 1, 3: 1}, sizing=fixed(1), risk=Risk(stop_loss=0.05), orders=Orders(max_entries=2))
    assert_trades(sim, [("long", 1, 3, 110, 5, 110 * (1 - 0.05), 110 * (1 - 0.05) - 110, "stop_loss"),
                        ("long", 1, 1, 100, 7, 95, -5, "stop_loss")])
    assert sim.position.tolist() == [0, 1, 1, 2, 2, 1, 1, 0, 0]


def test_partial_exit_keeps_the_rest_and_the_working_order():
    # max_entries 2, buy limits 2 below the close.  Bar 1 gaps to 97 under the first (98): 10 units at 97.  The
    # buy decided on bar 1 works at 96.  Half closed (decided on bar 2) at bar 3's open 98: 5 units, pnl 5.
    # The working order survives the partial exit and fills at 96 on bar 4; both stay open to the last close 96.
    rows = [FLAT, (97, 99, 96.5, 98), (98, 99, 97, 98), (98, 98, 97, 97.5), (97, 97, 95.5, 96), (96, 96, 96, 96)]
    orders = Orders(entry=EntryOrder(type="limit", offset=Distance(atr="atr", multiple=1)), max_entries=2)
    sim = run(rows, {0: 1, 1: 1}, {2: 1}, parts={2: 0.5}, levels=ATR2, sizing=fixed(10), orders=orders)
    assert_trades(sim, [("long", 5, 1, 97, 3, 98, 5, "partial"), ("long", 5, 1, 97, 5, 96, -5, "open"),
                        ("long", 10, 4, 96, 5, 96, 0, "open")])
    # a whole exit closes the trade and cancels the working order
    sim = run(rows, {0: 1, 1: 1}, {2: 1}, levels=ATR2, sizing=fixed(10), orders=orders)
    assert_trades(sim, [("long", 10, 1, 97, 3, 98, 10, "signal")])


def test_close_at_end_pays_the_exit_costs():
    # size 10,010 / (100 x 1.001) = 100, commission 10; closed at the last close 105 with commission 10.5:
    # pnl 100 x 5 - 20.5 = 479.5
    rows = [FLAT, FLAT, (100, 105, 100, 105)]
    sim = run(rows, {0: 1}, cash=10_010.0, execution=Execution(commission=0.001, close_at_end=True))
    assert_trades(sim, [("long", 100, 1, 100, 2, 105, 479.5, "end")])
    assert sim.equity.iloc[-1] == pytest.approx(10_010 + 479.5)


HALF_A_UNIT = Execution(spread=PriceCost(units=0.5), slippage=PriceCost(units=0.25))  # 0.25 + 0.25 a fill


def test_spread_slippage_on_every_fill_path():
    # Each fill 0.5 worse than its price, 10 units.  Bought at bar 1's open 100 (fill 100.5, stop 99.495); half
    # closed at bar 2's open 100 (fill 99.5): 5 x 0.5 + 5 x 0.5 = 5; the rest stopped at its level on bar 3:
    # 5 again.  Bought at bar 4's open, gapped through its stop at bar 5's open 95 (fill 94.5): 10 x 0.5 x 2 = 10.
    # Bought at bar 6's open 95 and still open at the end: its entry only, 10 x 0.5 = 5.
    rows = [FLAT, FLAT, FLAT, (100, 100, 99, 99.5), FLAT, (95, 96, 94, 95), (95, 95, 95, 95)]
    sim = run(rows, {0: 1, 3: 1, 5: 1}, {1: 1}, parts={1: 0.5}, sizing=fixed(10), execution=HALF_A_UNIT,
              risk=Risk(stop_loss=0.01))
    assert_trades(sim, [("long", 5, 1, 100.5, 2, 99.5, -5, "partial"),
                        ("long", 5, 1, 100.5, 3, 99.495 - 0.5, 5 * (98.995 - 100.5), "stop_loss"),
                        ("long", 10, 4, 100.5, 5, 94.5, -60, "stop_loss"),
                        ("long", 10, 6, 95.5, 6, 95, -5, "open")])
    assert sim.trades["spread_slippage"].tolist() == pytest.approx([5, 5, 10, 5], rel=1e-12)
    assert sim.metrics["costs"] == pytest.approx(25, rel=1e-12)
    # a short limit filled at its level (101, fill 100.5) and its take-profit at its level (99.495, fill 99.995)
    rows = [FLAT, (100, 102, 100, 101), (100, 100, 99, 99)]
    orders = Orders(entry=EntryOrder(type="limit", offset=Distance(fraction=0.01)))
    sim = run(rows, {0: -1}, sizing=fixed(10), execution=HALF_A_UNIT, orders=orders,
              risk=Risk(take_profit=0.01, allow_short=True))
    assert_trades(sim, [("short", 10, 1, 100.5, 2, 99.495 + 0.5, 10 * (100.5 - 99.995), "take_profit")])
    assert sim.trades["spread_slippage"].tolist() == pytest.approx([10], rel=1e-12)


# -- cases where a fast engine once disagreed with the reference (the event-skipping one, or the kernel's notes) --
def test_fraction_sizing_reserves_the_commission_minimum():
    # cash 1,000, commission minimum 2: 998 / 100 = 9.98 units and cash 0 (it was 10 units and cash -2)
    sim = run([FLAT] * 3, {0: 1}, cash=1_000.0, execution=Execution(commission=Commission(minimum=2)))
    assert_trades(sim, [("long", 9.98, 1, 100, 2, 100, -2, "open")])
    assert sim.equity.tolist() == pytest.approx([1000, 998, 998])


def test_nan_stop_loss_leaves_the_trailing_stop_working():
    # the stop-loss's ATR is NaN on the decision candle: no stop-loss; the trailing stop 0.05 (95) still exits
    # at 95 on bar 3 (low 90); risk sizing takes its risk from it: 1 % of 1,000 / (100 - 95) = 2 units
    rows = [FLAT, (100, 101, 99, 100), (100, 100, 96, 96), (96, 96, 90, 90), (90, 90, 90, 90)]
    risk = Risk(stop_loss=Distance(atr="atr", multiple=2), trailing_stop=0.05)
    levels = {"atr": [math.nan, 1, 1, 1, 1]}
    sim = run(rows, {0: 1}, levels=levels, risk=risk, cash=1_000.0, sizing=Sizing(method="risk", value=0.01))
    assert_trades(sim, [("long", 1_000 * 0.01 / (100 - 100 * 0.95), 1, 100, 3, 100 * 0.95, -10, "trailing_stop")])


def test_nan_trailing_atr_in_a_quiet_stretch_keeps_the_stop_loss():
    # the trailing ATR is NaN until bar 5; the stop-loss 95 is hit on bar 3 (low 94), a candle the simulator
    # reaches by its scan (no action there): exit at 95
    rows = [FLAT, FLAT, FLAT, (100, 100, 94, 96), (96, 96, 96, 96), (96, 96, 96, 96)]
    risk = Risk(stop_loss=0.05, trailing_stop=Distance(atr="atr", multiple=1))
    sim = run(rows, {0: 1}, levels={"atr": [math.nan] * 5 + [1.0]}, risk=risk, sizing=fixed(1))
    assert_trades(sim, [("long", 1, 1, 100, 3, 95, -5, "stop_loss")])


def test_notes_name_what_happened_when_levels_are_nan():
    # a stop-loss price still NaN, and a size floored to 0: the entry is skipped, so no trade "opened without" it
    sim = run([FLAT] * 3, {0: 1}, levels={"band": math.nan},
              sizing=Sizing(method="fixed", value=0.5, whole_units=True), risk=Risk(stop_loss=Distance(price="band")))
    assert sim.trades.empty
    assert sim.notes == {"entry skipped: size not positive": 1}
    # risk sizing when the only stop (an ATR trailing stop) is NaN: there is no loss side, which the note says
    sim = run([FLAT] * 3, {0: 1}, levels={"atr": math.nan}, sizing=Sizing(method="risk", value=0.01),
              risk=Risk(trailing_stop=Distance(atr="atr", multiple=1)))
    assert sim.notes == {"entry skipped: risk sizing needs the stop on the loss side of the fill": 1}
    # a trade that opens without its NaN stop-loss is noted once
    sim = run([FLAT] * 3, {0: 1}, levels={"band": math.nan}, sizing=fixed(1),
              risk=Risk(stop_loss=Distance(price="band")))
    assert_trades(sim, [("long", 1, 1, 100, 2, 100, 0, "open")])
    assert sim.notes == {"trade opened without a stop-loss or take-profit: its level is NaN (indicator warm-up)": 1}


# -- long series ------------------------------------------------------------------------------------------------------
LONG_SETTINGS = [
    {"orders": Orders(entry=EntryOrder(type="limit", offset=Distance(fraction=0.002), valid_for=8)),
     "risk": Risk(trailing_stop=Distance(fraction=0.01), take_profit=Distance(fraction=0.02), break_even=0.005)},
    {"orders": Orders(entry=EntryOrder(type="stop_limit", offset=Distance(atr="atr", multiple=0.5),
                                       limit_offset=Distance(fraction=0.001)), max_entries=2),
     "risk": Risk(stop_loss=Distance(atr="atr", multiple=2), trailing_stop=Distance(atr="atr", multiple=3),
                  max_bars=60),
     "sizing": Sizing(method="risk", value=0.01, max_leverage=3.0),
     "execution": Execution(commission=Commission(fraction=0.0005, minimum=1.0), spread=PriceCost(bps=1.0))},
    {"orders": Orders(buy=EntryOrder(type="stop", price="band"), sell=EntryOrder(type="limit", price="band")),
     "risk": Risk(stop_loss=Distance(price="band"), take_profit=Distance(atr="atr", multiple=4), allow_short=True),
     "execution": Execution(fill="close", close_at_end=True)},
]


@pytest.mark.parametrize("setting", range(len(LONG_SETTINGS)))
def test_fast_simulator_equals_the_reference_on_20000_candles(setting):
    """Long series, where skipping or state carried over thousands of candles would show: trade for trade."""
    candles = generate_candles(20_000, seed=11 + setting)
    rng = np.random.default_rng(setting)
    entries = rng.choice(np.array([-1, 0, 0, 0, 0, 0, 0, 0, 0, 1], dtype=np.int8), len(candles))
    exits = rng.choice(np.array([0] * 30 + [1, 2, 3], dtype=np.int8), len(candles))
    atr = (candles["high"] - candles["low"]).rolling(14).mean().to_numpy()
    band = candles["close"].rolling(20).mean().to_numpy()
    case = {"candles": candles, "actions": Actions(entries, exits), "execution": Execution(), "sizing": Sizing(),
            "initial_cash": 10_000.0, "levels": {"atr": atr, "band": band}, **LONG_SETTINGS[setting]}
    assert len(simulate(**case).trades) > 300
    assert_same(case)
