"""Hand-computed simulations: every expected number below is worked out in the comments.

All cases use hourly candles starting 2024-01-01 00:00 UTC and, unless a test says
otherwise, the ten BASE candles, fraction sizing with value 1, no costs, and
next_open fills.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from candleflow.config.models import Execution, Risk, Sizing
from candleflow.portfolio import Actions, simulate

BASE = [  # open, high, low, close
    (100, 101, 99, 100),   # 0
    (100, 101, 99, 100),   # 1
    (100, 103, 99, 102),   # 2
    (102, 105, 101, 104),  # 3
    (104, 108, 103, 107),  # 4
    (107, 110, 106, 109),  # 5
    (110, 111, 108, 109),  # 6
    (109, 110, 106, 107),  # 7
    (107, 108, 104, 105),  # 8
    (105, 106, 104, 105),  # 9
]
T0 = pd.Timestamp("2024-01-01", tz="UTC")
BUY, SELL = 1, -1
CLOSE, CLOSE_LONG = 3, 1


def candles(rows=BASE) -> pd.DataFrame:
    index = pd.date_range(T0, periods=len(rows), freq="1h", name="time")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    frame["volume"] = 1.0
    return frame


def run(entries: dict[int, int], exits: dict[int, int] | None = None, *, rows=BASE, cash=10_000.0,
        execution: Execution | None = None, sizing: Sizing | None = None, risk: Risk | None = None):
    entry = np.zeros(len(rows), dtype=np.int8)
    exit_ = np.zeros(len(rows), dtype=np.int8)
    for bar, value in entries.items():
        entry[bar] = value
    for bar, value in (exits or {}).items():
        exit_[bar] = value
    return simulate(candles(rows), Actions(entry, exit_), execution=execution or Execution(),
                    sizing=sizing or Sizing(), risk=risk or Risk(), initial_cash=cash)


TRADE_FIELDS = ["side", "size", "entry_bar", "entry_price", "exit_bar", "exit_price", "pnl", "commission",
                "exit_reason"]


def assert_trades(sim, expected: list[tuple]) -> None:
    """Compare ``sim.trades`` with rows of TRADE_FIELDS: strings exactly, numbers to 1e-9."""
    actual = [tuple(row) for row in sim.trades[TRADE_FIELDS].itertuples(index=False)]
    assert len(actual) == len(expected), actual
    for got, want in zip(actual, expected):
        for field, g, w in zip(TRADE_FIELDS, got, want):
            assert g == (w if isinstance(w, str) else pytest.approx(w, rel=1e-9, abs=1e-9)), (field, got)


def test_next_open_long_round_trip_with_commission():
    # buy decided at bar 1 -> fills at bar 2's open 100; close at bar 5 -> bar 6's open 110.
    # size = 10010 / (100 * 1.001) = 100; entry commission 100*100*0.001 = 10; cash 10010-10000-10 = 0
    # exit: cash 0 + 100*110 - 11 (= 100*110*0.001) = 10989; pnl 100*10 - 10 - 11 = 979
    sim = run({1: BUY}, {5: CLOSE}, cash=10_010.0, execution=Execution(commission=0.001))
    assert_trades(sim, [("long", 100.0, 2, 100.0, 6, 110.0, 979.0, 21.0, "signal")])
    assert sim.trades["return_pct"].tolist() == pytest.approx([979 / 10_000])
    assert sim.trades["entry_time"].tolist() == [T0 + pd.Timedelta(hours=2)]
    assert sim.trades["exit_time"].tolist() == [T0 + pd.Timedelta(hours=6)]
    # equity = cash + 100 * close while held: 0 + 100*102, 100*104, 100*107, 100*109
    assert sim.equity.tolist() == pytest.approx(
        [10010, 10010, 10200, 10400, 10700, 10900, 10989, 10989, 10989, 10989])
    assert sim.position.tolist() == [0, 0, 100, 100, 100, 100, 0, 0, 0, 0]
    assert sim.metrics["final_equity"] == pytest.approx(10989)
    assert sim.metrics["n_trades"] == 1
    assert sim.metrics["exposure"] == pytest.approx(0.4)


def test_fill_at_close():
    # buy at bar 1's close 100: size 10000/100 = 100; close at bar 5's close 109: pnl 100*9 = 900
    sim = run({1: BUY}, {5: CLOSE}, execution=Execution(fill="close"))
    assert_trades(sim, [("long", 100.0, 1, 100.0, 5, 109.0, 900.0, 0.0, "signal")])
    assert sim.position.tolist() == [0, 100, 100, 100, 100, 0, 0, 0, 0, 0]
    assert sim.equity.iloc[-1] == pytest.approx(10900)


def test_spread_and_slippage():
    # cost per side = spread/2 + slippage = 0.1 + 0.05 = 0.15
    # buy at 100 + 0.15 = 100.15: size 10015/100.15 = 100, cash 0
    # sell at 110 - 0.15 = 109.85: cash 10985; pnl 100*(109.85-100.15) = 970
    sim = run({1: BUY}, {5: CLOSE}, cash=10_015.0, execution=Execution(spread=0.2, slippage=0.05))
    assert_trades(sim, [("long", 100.0, 2, 100.15, 6, 109.85, 970.0, 0.0, "signal")])
    assert sim.equity.iloc[-1] == pytest.approx(10985)


def test_reversal_long_to_short():
    # buy (bar 1) fills at bar 2's open 100: size 100, cash 0
    # sell (bar 5) at bar 6's open 110: close long -> cash 11000, pnl 1000 ("reversal");
    #   open short: size 11000/110 = 100, cash 11000 + 100*110 = 22000
    # close (bar 8) at bar 9's open 105: cash 22000 - 100*105 = 11500; short pnl 100*(110-105) = 500
    sim = run({1: BUY, 5: SELL}, {8: CLOSE})
    assert_trades(sim, [
        ("long", 100.0, 2, 100.0, 6, 110.0, 1000.0, 0.0, "reversal"),
        ("short", 100.0, 6, 110.0, 9, 105.0, 500.0, 0.0, "signal"),
    ])
    # bar 6..8 equity = 22000 - 100*close: 22000-10900, 22000-10700, 22000-10500
    assert sim.equity.tolist()[5:] == pytest.approx([10900, 11100, 11300, 11500, 11500])
    assert sim.position.tolist()[5:] == [100, -100, -100, -100, 0]


def test_sell_without_allow_short_only_closes():
    # sell at bar 5 closes the long at bar 6's open 110 (pnl 1000, reason "signal") and opens nothing;
    # the sell at bar 7 while flat is ignored.
    sim = run({1: BUY, 5: SELL, 7: SELL}, risk=Risk(allow_short=False))
    assert_trades(sim, [("long", 100.0, 2, 100.0, 6, 110.0, 1000.0, 0.0, "signal")])
    assert sim.equity.iloc[-1] == pytest.approx(11000)


def test_buy_while_long_is_ignored():
    # second buy at bar 3 does nothing; the position and its entry price stay
    sim = run({1: BUY, 3: BUY}, {5: CLOSE})
    assert_trades(sim, [("long", 100.0, 2, 100.0, 6, 110.0, 1000.0, 0.0, "signal")])


def test_stop_loss_hit_and_fill_bar_counts():
    # buy fills at bar 2's open 100; SL = 100 * (1 - 0.05) = 95.
    # Bar 2 itself is checked (from its open on): low 94 <= 95, open 100 > 95 -> exit at 95.
    # pnl 100 * (95 - 100) = -500
    rows = BASE[:2] + [(100, 101, 94, 96)] + BASE[3:]
    sim = run({1: BUY}, rows=rows, risk=Risk(stop_loss=0.05))
    assert_trades(sim, [("long", 100.0, 2, 100.0, 2, 95.0, -500.0, 0.0, "stop_loss")])
    assert sim.equity.iloc[-1] == pytest.approx(9500)
    assert sim.position.tolist() == [0] * 10


def test_close_fill_stops_start_next_bar():
    # fill at bar 1's close 100 -> SL 95; bar 1's low 90 came before the fill and does not count.
    # Bar 2 (low 94) hits it: exit at 95, pnl -500
    rows = [BASE[0], (100, 101, 90, 100), (100, 101, 94, 96)] + BASE[3:]
    sim = run({1: BUY}, rows=rows, execution=Execution(fill="close"), risk=Risk(stop_loss=0.05))
    assert_trades(sim, [("long", 100.0, 1, 100.0, 2, 95.0, -500.0, 0.0, "stop_loss")])


def test_stop_levels_from_entry_fill_and_exit_pays_costs():
    # slippage 1: buy fills at 101, size 10100/101 = 100; SL = 101 * 0.9 = 90.9
    # bar 3 low 90 touches it: sell at 90.9 - 1 = 89.9; pnl 100 * (89.9 - 101) = -1110
    rows = BASE[:3] + [(102, 103, 90, 95)] + BASE[4:]
    sim = run({1: BUY}, rows=rows, cash=10_100.0, execution=Execution(slippage=1.0), risk=Risk(stop_loss=0.1))
    assert_trades(sim, [("long", 100.0, 2, 101.0, 3, 89.9, -1110.0, 0.0, "stop_loss")])
    assert sim.equity.iloc[-1] == pytest.approx(8990)


def test_short_stop_loss():
    # sell fills at bar 2's open 100 -> short 100; SL = 100 * 1.05 = 105; bar 3's high 106 hits it
    # cover at 105: pnl 100 * (100 - 105) = -500
    rows = BASE[:3] + [(102, 106, 101, 104)] + BASE[4:]
    sim = run({1: SELL}, rows=rows, risk=Risk(stop_loss=0.05))
    assert_trades(sim, [("short", 100.0, 2, 100.0, 3, 105.0, -500.0, 0.0, "stop_loss")])
    assert sim.equity.iloc[-1] == pytest.approx(9500)


def test_take_profit_hit():
    # TP = 100 * 1.25 = 125 (exact in binary floating point); bar 4's high 125 touches it
    # (bar 3's high is 105): exit at 125, pnl 100 * 25 = 2500
    rows = BASE[:4] + [(104, 125, 103, 107)] + BASE[5:]
    sim = run({1: BUY}, rows=rows, risk=Risk(stop_loss=0.05, take_profit=0.25))
    assert_trades(sim, [("long", 100.0, 2, 100.0, 4, 125.0, 2500.0, 0.0, "take_profit")])
    assert sim.equity.iloc[-1] == pytest.approx(12500)


def test_stop_loss_wins_when_both_touched():
    # SL 95 and TP 110 both inside bar 3 (low 94, high 111, open 102): SL wins, exit at 95, pnl -500
    rows = BASE[:3] + [(102, 111, 94, 105)] + BASE[4:]
    sim = run({1: BUY}, rows=rows, risk=Risk(stop_loss=0.05, take_profit=0.1))
    assert_trades(sim, [("long", 100.0, 2, 100.0, 3, 95.0, -500.0, 0.0, "stop_loss")])


def test_gap_through_stop_fills_at_open():
    # SL 95; bar 3 opens at 90, below the stop: exit at the open 90, pnl 100 * (90 - 100) = -1000
    rows = BASE[:3] + [(90, 92, 89, 91)] + BASE[4:]
    sim = run({1: BUY}, rows=rows, risk=Risk(stop_loss=0.05))
    assert_trades(sim, [("long", 100.0, 2, 100.0, 3, 90.0, -1000.0, 0.0, "stop_loss")])
    assert sim.equity.iloc[-1] == pytest.approx(9000)


def test_gap_through_take_profit_fills_at_open():
    # TP 110; bar 3 opens at 112: exit at 112 even though its low 94 is below the SL 95 (the open came first)
    rows = BASE[:3] + [(112, 113, 94, 100)] + BASE[4:]
    sim = run({1: BUY}, rows=rows, risk=Risk(stop_loss=0.05, take_profit=0.1))
    assert_trades(sim, [("long", 100.0, 2, 100.0, 3, 112.0, 1200.0, 0.0, "take_profit")])


def test_fixed_size_whole_units():
    # fixed 2.5 units floored to 2: buy at 100 -> cash 10000 - 200 = 9800; sell at 110 -> 9800 + 220 = 10020
    sim = run({1: BUY}, {5: CLOSE}, sizing=Sizing(method="fixed", value=2.5, whole_units=True))
    assert_trades(sim, [("long", 2.0, 2, 100.0, 6, 110.0, 20.0, 0.0, "signal")])
    assert sim.equity.iloc[-1] == pytest.approx(10020)


def test_whole_units_floor_to_zero_skips_trade():
    sim = run({1: BUY}, {5: CLOSE}, sizing=Sizing(method="fixed", value=0.5, whole_units=True))
    assert sim.trades.empty
    assert sim.equity.tolist() == [10_000.0] * 10


def test_whole_units_reversal_with_commission():
    # long: size 10010/(100*1.001) = 100, commission 10, cash 0
    # sell at bar 6's open 110: cash 11000 - 11 = 10989; long pnl 1000 - 10 - 11 = 979
    #   short size floor(10989 / (110 * 1.001)) = floor(99.80...) = 99
    #   commission 99*110*0.001 = 10.89; cash 10989 + 10890 - 10.89 = 21868.11
    # close at bar 9's open 105: commission 99*105*0.001 = 10.395; cash 21868.11 - 10395 - 10.395 = 11462.715
    #   short pnl 99*(110-105) - 10.89 - 10.395 = 473.715
    sim = run({1: BUY, 5: SELL}, {8: CLOSE}, cash=10_010.0, execution=Execution(commission=0.001),
              sizing=Sizing(whole_units=True))
    assert_trades(sim, [
        ("long", 100.0, 2, 100.0, 6, 110.0, 979.0, 21.0, "reversal"),
        ("short", 99.0, 6, 110.0, 9, 105.0, 473.715, 21.285, "signal"),
    ])
    assert sim.equity.iloc[-1] == pytest.approx(11462.715)


def test_open_position_at_end():
    # buy at 100 with commission 10 (size 100, cash 0) and never closed.
    # Equity marks it at the last close 105: 10500.  Reported as an "open" trade at 105 with
    # the entry commission only: pnl 100*5 - 10 = 490; not counted in n_trades.
    sim = run({1: BUY}, cash=10_010.0, execution=Execution(commission=0.001))
    assert_trades(sim, [("long", 100.0, 2, 100.0, 9, 105.0, 490.0, 10.0, "open")])
    assert sim.equity.iloc[-1] == pytest.approx(10500)
    assert sim.metrics["final_equity"] == pytest.approx(10500)
    assert sim.metrics["n_trades"] == 0
    assert math.isnan(sim.metrics["win_rate"])


def test_action_on_last_bar_never_fills_with_next_open():
    sim = run({9: BUY})
    assert sim.trades.empty
    assert sim.metrics["exposure"] == 0.0


def test_close_and_buy_on_one_bar_while_long_reopens():
    # exits first: close the long at bar 6's open 110 (pnl 1000), then the buy opens a new long
    # with size 11000/110 = 100, which stays open to the last close 105 (pnl -500)
    sim = run({1: BUY, 5: BUY}, {5: CLOSE})
    assert_trades(sim, [
        ("long", 100.0, 2, 100.0, 6, 110.0, 1000.0, 0.0, "signal"),
        ("long", 100.0, 6, 110.0, 9, 105.0, -500.0, 0.0, "open"),
    ])


def test_actions_length_must_match():
    with pytest.raises(ValueError):
        simulate(candles(), Actions(np.zeros(3, np.int8), np.zeros(3, np.int8)), execution=Execution(),
                 sizing=Sizing(), risk=Risk(), initial_cash=1.0)
