"""Rules mapping signal events to per-bar entry/exit actions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from candleflow.config.models import Execution, Risk, Rules, Sizing
from candleflow.nodes.outputs import empty_signal_frame, make_signal_frame
from candleflow.portfolio import actions_from_signals, simulate


def test_bare_key_matches_every_node_qualified_key_only_its_node():
    frames = {
        "fast": make_signal_frame([1, 4], ["cross_up", "cross_down"]),
        "slow": make_signal_frame([2, 5], ["cross_up", "cross_down"]),
    }
    rules = Rules(entry={"cross_up": "buy"}, exit={"slow.cross_down": "close"})
    acts = actions_from_signals(frames, rules, 7)
    assert acts.entry.tolist() == [0, 1, 1, 0, 0, 0, 0]
    assert acts.exit.tolist() == [0, 0, 0, 0, 0, 3, 0]
    assert acts.entry.dtype == np.int8 and acts.exit.dtype == np.int8
    assert acts.unmatched == ("fast.cross_down",)


def test_exit_flags_are_or_ed():
    frames = {"s": make_signal_frame([3, 3, 5], ["a", "b", "b"])}
    acts = actions_from_signals(frames, Rules(exit={"a": "close_long", "b": "close_short"}), 6)
    assert acts.exit.tolist() == [0, 0, 0, 3, 0, 2]
    assert acts.entry.tolist() == [0] * 6


def test_conflicting_entries_on_one_bar_cancel():
    frames = {
        "x": make_signal_frame([1, 2, 2, 3, 3], ["up", "up", "down", "up", "up"]),
        "y": make_signal_frame([4], ["down"]),
    }
    acts = actions_from_signals(frames, Rules(entry={"up": "buy", "down": "sell"}), 5)
    # bar 2: buy and sell cancel; bar 3: two buys count once
    assert acts.entry.tolist() == [0, 1, 0, 1, -1]


def test_bare_and_qualified_rules_both_apply():
    frames = {"a": make_signal_frame([1], ["x"]), "b": make_signal_frame([2], ["x"])}
    acts = actions_from_signals(frames, Rules(entry={"x": "sell", "a.x": "buy"}), 3)
    # node a's x matches both keys (buy and sell cancel); node b's x only the bare key
    assert acts.entry.tolist() == [0, 0, -1]


def test_entry_and_exit_on_one_bar_are_both_kept():
    frames = {"s": make_signal_frame([2, 2], ["flip", "flip_exit"])}
    acts = actions_from_signals(frames, Rules(entry={"flip": "sell"}, exit={"flip_exit": "close_long"}), 4)
    assert acts.entry.tolist() == [0, 0, -1, 0]
    assert acts.exit.tolist() == [0, 0, 1, 0]


def test_no_signals():
    acts = actions_from_signals({"s": empty_signal_frame()}, Rules(entry={"x": "buy"}), 3)
    assert acts.entry.tolist() == [0, 0, 0]
    assert acts.exit.tolist() == [0, 0, 0]
    assert acts.unmatched == ()


def test_simulation_applies_exits_before_entries():
    # long from bar 1 (fills at bar 2's open 100); at bar 3 both close_long and sell:
    # the exit closes the long ("signal") at bar 4's open 104, then the sell opens a short there.
    frames = {"s": make_signal_frame([1, 3, 3], ["up", "down", "stop"])}
    rules = Rules(entry={"up": "buy", "down": "sell"}, exit={"stop": "close_long"})
    closes = [100.0, 100, 102, 104, 104, 106]
    index = pd.date_range("2024-01-01", periods=6, freq="1D", tz="UTC", name="time")
    candles = pd.DataFrame({"open": [100.0, 100, 100, 103, 104, 105], "high": 110.0, "low": 90.0,
                            "close": closes, "volume": 1.0}, index=index)
    sim = simulate(candles, actions_from_signals(frames, rules, 6), execution=Execution(), sizing=Sizing(),
                   risk=Risk(), initial_cash=10_000.0)
    assert sim.trades["side"].tolist() == ["long", "short"]
    assert sim.trades["exit_reason"].tolist() == ["signal", "open"]
    assert sim.trades["entry_bar"].tolist() == [2, 4]
    # long 100 units 100 -> 104: +400; short 10400/104 = 100 units at 104, marked at 106: -200
    assert sim.trades["pnl"].tolist() == [400.0, -200.0]
