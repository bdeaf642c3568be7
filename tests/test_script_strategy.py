"""The seed's script, run as written through the protocol, trades exactly like the in-process strategy."""

from __future__ import annotations

import pandas as pd
import pytest

from candleflow.backtest import load_data, prepare, run_compiled


@pytest.fixture(scope="module")
def both(repo):
    script, _ = prepare(repo / "strategies" / "ma_crossover_script.yaml")
    native, _ = prepare(repo / "strategies" / "ma_crossover.yaml")
    candles = load_data(native).iloc[:1500]
    return run_compiled(script, candles), run_compiled(native, candles)


def test_script_strategy_trades_identically(both):
    script, native = both
    assert len(native.trades) >= 5
    pd.testing.assert_frame_equal(script.trades, native.trades)
    pd.testing.assert_series_equal(script.equity, native.equity)


def test_script_signals_equal_the_in_process_signals(both):
    script, native = both
    events = native.signals()["cross"]
    golden = script.signals()["golden"]
    death = script.signals()["death"]
    assert golden["bar"].tolist() == events.loc[events.signal_type == "golden_cross", "bar"].tolist()
    assert death["bar"].tolist() == events.loc[events.signal_type == "death_cross", "bar"].tolist()
    assert set(golden["signal_type"]) == {"golden_cross"}
    # the seed script's metadata travels with its events
    assert set(golden["metadata"].iloc[0]) == {"fast_ma", "slow_ma"}


def test_script_indicator_values_match_pandas(both):
    script, native = both
    pd.testing.assert_series_equal(script.values["sma_slow"], native.values["sma_slow"], check_names=False,
                                   rtol=1e-12, atol=0)
