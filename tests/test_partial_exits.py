"""Partial exits: ``{signal: {close_long: 0.5}}`` closes half of every open trade, by hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from candleflow.config.models import Execution, Orders, Risk, Rules, Sizing
from candleflow.nodes.outputs import make_signal_frame
from candleflow.portfolio import actions_from_signals, simulate

OPENS = [100.0, 100.0, 104.0, 110.0, 112.0, 120.0, 121.0]


def candles() -> pd.DataFrame:
    opens = np.array(OPENS)
    index = pd.date_range("2024-01-01", periods=len(opens), freq="h", tz="UTC")
    return pd.DataFrame({"open": opens, "high": opens + 1, "low": opens - 1, "close": opens + 0.5,
                         "volume": 1.0}, index=index)


def run(exit_rules: dict, *, commission: float = 0.0, whole_units: bool = False, max_entries: int = 1,
        buys=(0,), method: str = "fraction"):
    frames = {"s": make_signal_frame([*buys, 2, 4], ["up"] * len(buys) + ["half", "down"])}
    actions = actions_from_signals(frames, Rules(entry={"up": "buy"}, exit=exit_rules), len(OPENS))
    return simulate(candles(), actions, execution=Execution(commission=commission),
                    orders=Orders(max_entries=max_entries),
                    sizing=Sizing(method=method, value=1.0 if method == "fraction" else 10.0, whole_units=whole_units),
                    risk=Risk(), initial_cash=10_000.0)


def test_half_then_the_rest_with_the_entry_commission_shared():
    trades = run({"half": {"close_long": 0.5}, "down": "close"}, commission=0.001).trades
    size = 10_000 / (100 * 1.001)  # bought at bar 1's open, commission included in the fraction
    entry_commission = size * 100 * 0.001
    assert trades["exit_reason"].tolist() == ["partial", "signal"]
    assert trades["exit_bar"].tolist() == [3, 5]  # decided on bars 2 and 4, filled at the next opens
    assert trades["size"].tolist() == pytest.approx([size / 2, size / 2], rel=1e-12)
    first_pnl = size / 2 * (110 - 100) - (entry_commission / 2 + size / 2 * 110 * 0.001)
    second_pnl = size / 2 * (120 - 100) - (entry_commission / 2 + size / 2 * 120 * 0.001)
    assert trades["pnl"].tolist() == pytest.approx([first_pnl, second_pnl], rel=1e-12)
    assert trades["commission"].sum() == pytest.approx(entry_commission + size / 2 * (110 + 120) * 0.001, rel=1e-12)


def test_whole_units_round_the_part_down_and_a_part_below_one_unit_is_a_note():
    sim = run({"half": {"close_long": 0.5}, "down": "close"}, whole_units=True)
    assert sim.trades["size"].tolist() == [50.0, 50.0]  # 100 units: 50 closed, 50 kept
    tiny = run({"half": {"close_long": 0.001}, "down": "close"}, whole_units=True)
    assert tiny.trades["exit_reason"].tolist() == ["signal"] and tiny.notes == {
        "partial exit skipped: the part is less than one unit (whole_units)": 1}


def test_a_partial_exit_reduces_every_pyramided_trade():
    sim = run({"half": {"close_long": 0.5}, "down": "close"}, max_entries=2, buys=(0, 1), method="fixed")
    trades = sim.trades
    assert trades["exit_reason"].tolist() == ["partial", "partial", "signal", "signal"]
    assert trades["entry_bar"].tolist() == [1, 2, 1, 2]
    assert trades["size"].tolist() == [5.0, 5.0, 5.0, 5.0]
    assert trades["entry_price"].tolist() == [100.0, 104.0, 100.0, 104.0]


def test_a_full_exit_on_the_same_candle_wins():
    frames = {"s": make_signal_frame([0, 2, 2], ["up", "half", "down"])}
    actions = actions_from_signals(frames, Rules(entry={"up": "buy"}, exit={"half": {"close_long": 0.5},
                                                                              "down": "close"}), len(OPENS))
    assert actions.close_fraction is None  # the whole exit covers the only partial one: nothing partial is left
    frames["s"] = make_signal_frame([0, 2, 3], ["up", "half", "down"])
    actions = actions_from_signals(frames, Rules(entry={"up": "buy"}, exit={"half": {"close_long": 0.5},
                                                                              "down": "close"}), len(OPENS))
    assert actions.close_fraction[:, 2:4].tolist() == [[0.5, 1.0], [0.0, 1.0]]
