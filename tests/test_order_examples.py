"""README "How orders fill": every worked example, run through the simulator on the candles it describes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from candleflow.config.models import Execution, Orders, Risk, Rules, Sizing
from candleflow.nodes.outputs import make_signal_frame
from candleflow.portfolio import actions_from_signals, simulate


def candles(*rows: tuple[float, float, float, float]) -> pd.DataFrame:
    """Candles from (open, high, low, close) rows."""
    index = pd.date_range("2024-01-01", periods=len(rows), freq="h", tz="UTC")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    return frame.assign(volume=1.0)


def run(rows, *, signals=((0, "up"),), exit=None, orders=None, risk=None, sizing=None, execution=None,
        levels=None):
    frames = {"s": make_signal_frame([bar for bar, _ in signals], [kind for _, kind in signals])}
    rules = Rules(entry={"up": "buy"}, exit=exit or {})
    actions = actions_from_signals(frames, rules, len(rows), None)
    return simulate(candles(*rows), actions, execution=execution or Execution(), orders=Orders(**(orders or {})),
                    sizing=sizing or Sizing(method="fixed", value=1), risk=Risk(**(risk or {})),
                    initial_cash=10_000.0, levels=levels)


def entry(sim) -> tuple[int, float]:
    trade = sim.trades.iloc[0]
    return int(trade["entry_bar"]), float(trade["entry_price"])


@pytest.mark.parametrize(("bar1", "price"), [((99.8, 100.0, 99.4, 99.9), 99.5), ((99.2, 99.6, 99.0, 99.5), 99.2)])
def test_buy_limit_at_its_level_or_at_a_gap_open(bar1, price):
    sim = run([(100, 100, 100, 100), bar1], orders={"entry": {"type": "limit", "offset": 0.005}})
    assert entry(sim) == (1, pytest.approx(price, abs=1e-9))


@pytest.mark.parametrize(("bar1", "price"), [((100.5, 101.2, 100.4, 101.0), 101.0),
                                              ((101.6, 102, 101.5, 101.8), 101.6)])
def test_buy_stop_at_its_level_or_at_a_gap_open(bar1, price):
    sim = run([(100, 100, 100, 100), bar1], orders={"entry": {"type": "stop", "offset": 0.01}})
    assert entry(sim) == (1, pytest.approx(price, abs=1e-9))


STOP_LIMIT = {"entry": {"type": "stop_limit", "price": "level", "limit_offset": 0.005}}


@pytest.mark.parametrize(("bar1", "filled"), [((101, 101.2, 100.4, 100.6), (1, 100.5)),
                                              ((101, 101.2, 100.8, 101.0), None),
                                              ((99.8, 100.3, 99.7, 100.1), (1, 100.0))])
def test_buy_stop_limit_gap_within_beyond_and_no_gap(bar1, filled):
    rows = [(100, 100, 100, 100), bar1, (101.5, 101.6, 101.4, 101.5)]
    sim = run(rows, orders=STOP_LIMIT, levels={"level": np.full(3, 100.0)})
    if filled is None:
        assert sim.trades.empty  # bar 2 stays above the limit: still working, unfilled
        later = run([*rows[:2], (100.6, 100.7, 100.3, 100.5)], orders=STOP_LIMIT, levels={"level": np.full(3, 100.0)})
        assert entry(later) == (2, pytest.approx(100.5, abs=1e-9))  # now a limit at 100.50
    else:
        assert entry(sim) == (filled[0], pytest.approx(filled[1], abs=1e-9))


@pytest.mark.parametrize(("bar3", "price"), [((101.2, 101.3, 100.90, 101.0), 100.94),
                                              ((100.5, 100.6, 100.4, 100.5), 100.5)])
def test_trailing_stop_ratchets_from_closes_and_exits_at_its_level_or_a_gap(bar3, price):
    rows = [(100, 100, 100, 100), (100, 103.5, 99, 103), (102, 102.5, 100.95, 101), bar3]
    sim = run(rows, risk={"trailing_stop": 0.02})
    trade = sim.trades.iloc[0]
    assert (trade["entry_price"], trade["exit_bar"], trade["exit_reason"]) == (100, 3, "trailing_stop")
    assert trade["exit_price"] == pytest.approx(price, abs=1e-9)


def test_partial_exit_half_at_110():
    rows = [(100, 100, 100, 100), (100, 101, 99, 100), (110, 111, 109, 110), (110, 111, 109, 110)]
    sim = run(rows, signals=((0, "up"), (1, "rsi_high")), exit={"rsi_high": {"close_long": 0.5}},
              sizing=Sizing(method="fixed", value=100))
    partial = sim.trades.iloc[0]
    assert (partial["size"], partial["exit_price"], partial["pnl"], partial["exit_reason"]) == (50, 110, 500, "partial")
    assert (sim.trades.iloc[1]["size"], sim.trades.iloc[1]["exit_reason"]) == (50, "open")


def test_fraction_sizing_includes_the_commission():
    sim = run([(100, 100, 100, 100), (100, 101, 99, 100)], sizing=Sizing(), execution=Execution(commission=0.001))
    assert sim.trades.iloc[0]["size"] == pytest.approx(10_000 / (100 * 1.001), rel=1e-12)


def test_risk_sizing_loses_one_percent_at_the_stop():
    sim = run([(100, 100, 100, 100), (100, 101, 99, 100)], sizing=Sizing(method="risk", value=0.01),
              risk={"stop_loss": 0.02})
    assert sim.trades.iloc[0]["size"] == pytest.approx(50, rel=1e-12)


def test_a_marketable_limit_fills_at_the_next_open_like_backtesting_py():
    rows = [(100, 100, 100, 100), (100.2, 100.8, 99.9, 100.5)]
    sim = run(rows, orders={"entry": {"type": "limit", "price": "level"}}, levels={"level": np.full(2, 105.0)})
    assert entry(sim) == (1, 100.2)
