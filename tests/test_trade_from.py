"""``execution.trade_from``: candles before it only warm up the indicators; the run then equals one starting there."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_order_model import cases

from candleflow.backtest import run_backtest
from candleflow.portfolio import simulate


def sliced(case: dict, k: int) -> dict:
    """The same case on candles ``k..``: every per-candle array cut the same way."""
    actions = case["actions"]
    fractions = actions.close_fraction[:, k:] if actions.close_fraction is not None else None
    return {**case, "candles": case["candles"].iloc[k:],
            "actions": dataclasses.replace(actions, entry=actions.entry[k:], exit=actions.exit[k:],
                                           close_fraction=fractions),
            "levels": {name: values[k:] for name, values in case["levels"].items()}}


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=cases(), cut=st.floats(0, 1))
def test_a_run_trading_from_candle_k_equals_a_run_on_the_candles_from_k(case, cut):
    n = len(case["candles"])
    k = min(int(cut * n), n - 1)
    whole = simulate(**case, trade_from=k)
    part = simulate(**sliced(case, k))
    columns = ["side", "size", "entry_price", "exit_price", "pnl", "return_pct", "commission", "exit_reason"]
    assert whole.trades[columns].equals(part.trades[columns])
    assert (whole.trades["entry_bar"] - k).tolist() == part.trades["entry_bar"].tolist()
    assert whole.trades["entry_time"].tolist() == part.trades["entry_time"].tolist()
    assert (whole.equity.iloc[:k] == case["initial_cash"]).all()  # nothing happens before k
    assert whole.equity.iloc[k:].tolist() == part.equity.tolist()
    assert whole.metrics.keys() == part.metrics.keys()
    assert all(same(whole.metrics[key], part.metrics[key]) for key in whole.metrics), \
        {key: (whole.metrics[key], part.metrics[key]) for key in whole.metrics
         if not same(whole.metrics[key], part.metrics[key])}
    assert whole.notes == part.notes


def test_warm_up_candles_decide_nothing_and_the_metrics_start_at_trade_from(repo, tmp_path):
    plain = run_backtest(strategy_with(repo, tmp_path, None), cache=None, scheduler="sync")
    warm = run_backtest(strategy_with(repo, tmp_path, "2023-07-01"), cache=None, scheduler="sync")
    start = pd.Timestamp("2023-07-01", tz="UTC")
    k = int(plain.candles.index.searchsorted(start))
    assert len(warm.trades) > 0 and (warm.trades["entry_bar"] > k).all()  # decided on candle >= k, filled after
    first = plain.candles.index[k]  # 2023-07-01 is a Saturday: Monday's first candle
    assert warm.metrics["duration_days"] == (plain.candles.index[-1] - first) / pd.Timedelta(days=1)
    later = plain.trades[plain.trades["entry_bar"] > k + 1]
    assert warm.trades["entry_time"].iloc[-1] == later["entry_time"].iloc[-1]  # the same signals once warm


def strategy_with(repo, tmp_path, trade_from: str | None):
    """The example strategy on the bundled sample, with ``trade_from``."""
    text = (repo / "strategies" / "ma_crossover.yaml").read_text().replace("path: data/EURUSD_1h.csv",
                                                                          "sample: eurusd_1h")
    path = tmp_path / f"s-{trade_from}.yaml"
    if trade_from is not None:
        text = text.replace("execution:\n", f"execution:\n  trade_from: '{trade_from}'\n")
    path.write_text(text)
    assert "sample: eurusd_1h" in text and (trade_from is None or "trade_from" in text)
    return path


def test_trade_from_after_the_last_candle_is_a_one_line_error(repo, tmp_path, capsys):
    from candleflow.cli import main

    code = main(["run", str(strategy_with(repo, tmp_path, "2030-01-01")), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "execution.trade_from: 2030-01-01 is after the last candle (2023-12-31 23:00): nothing would trade" in err


def test_trade_from_at_or_before_the_first_candle_warns_it_changes_nothing(repo, tmp_path):
    with pytest.warns(UserWarning, match=r"execution.trade_from: 2020-01-01 is at or before the first candle "
                                         r"\(2023-01-02 00:00\).*changes nothing"):
        run_backtest(strategy_with(repo, tmp_path, "2020-01-01"), cache=None, scheduler="sync")


@pytest.mark.parametrize("value", ["soon", "2023-13-01"])
def test_trade_from_must_be_a_time(repo, tmp_path, capsys, value):
    from candleflow.cli import main

    code = main(["validate", str(strategy_with(repo, tmp_path, value))])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "execution.trade_from" in err and "is not a time" in err
