"""End to end: the example strategy runs real components into real trades; the cache memoizes by content."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from candleflow.backtest import prepare, load_data, run_backtest, run_compiled
from candleflow.cli import main
from candleflow.dag.cache import NodeCache
from candleflow.dag.compiler import compile_strategy
from candleflow.config import parse_strategy


@pytest.fixture(scope="module")
def example(repo):
    return run_backtest(repo / "strategies" / "ma_crossover.yaml", cache=None)


def test_example_trades_follow_its_signals(example):
    trades, signals = example.trades, example.signals()["cross"]
    assert len(trades) >= 10
    golden = set(signals.loc[signals.signal_type == "golden_cross", "bar"])
    # every long entry was decided on the close of a golden-cross candle and filled at the next open
    assert set(trades["entry_bar"] - 1) <= golden
    opens = example.candles["open"].to_numpy()
    spread, slip = 0.00008, 0.00001
    np.testing.assert_allclose(trades["entry_price"], opens[trades["entry_bar"]] + spread / 2 + slip, rtol=0, atol=1e-12)
    assert (trades["side"] == "long").all()
    # the golden crosses are the real crossings of the two SMAs
    close = example.candles.close
    fast, slow = close.rolling(20).mean(), close.rolling(50).mean()
    expected = np.flatnonzero(((fast.shift() <= slow.shift()) & (fast > slow)).to_numpy())
    assert sorted(golden) == expected.tolist()


def test_equity_matches_trades(example):
    pnl = example.trades["pnl"].sum()
    assert example.metrics["final_equity"] == pytest.approx(10_000 + pnl, rel=1e-12)
    assert example.equity.iloc[-1] == pytest.approx(example.metrics["final_equity"], rel=1e-12)


def _strategy(commission: float, fast: int = 5) -> str:
    return f"""
name: cache_test
symbol: EURUSD
timeframe: 1h
data: {{sample: eurusd_1h}}
indicators:
  - {{name: fast, component: sma, params: {{period: {fast}}}}}
  - {{name: slow, component: ema, params: {{period: 30}}}}
  - {{name: rsi, component: rsi, params: {{period: 14}}}}
signals:
  - {{name: cross, component: ma_crossover, inputs: [fast, slow]}}
  - {{name: extremes, component: rsi_threshold, inputs: [rsi]}}
rules:
  entry: {{golden_cross: buy, extremes.overbought: sell}}
  exit: {{death_cross: close_long}}
execution: {{commission: {commission}}}
"""


def _run(text: str, candles, cache):
    compiled = compile_strategy(parse_strategy(text))
    return run_compiled(compiled, candles, cache=cache)


def test_rerun_with_only_fees_changed_recomputes_only_the_evaluator(candles_500):
    cache = NodeCache()
    first = _run(_strategy(0.0001), candles_500, cache)
    assert {s.cache for s in first.stats.values()} == {"miss"}
    again = _run(_strategy(0.0001), candles_500, cache)
    assert {s.cache for s in again.stats.values()} == {"hit"}
    fees = _run(_strategy(0.002), candles_500, cache)
    misses = {name for name, s in fees.stats.items() if s.cache == "miss"}
    assert misses == {"evaluator"}
    assert fees.metrics["final_equity"] != first.metrics["final_equity"]
    params = _run(_strategy(0.002, fast=6), candles_500, cache)
    assert {name for name, s in params.stats.items() if s.cache == "miss"} == {"fast", "cross", "evaluator"}


def test_disk_cache_survives_the_process_memory(tmp_path, candles_500):
    first = _run(_strategy(0.0001), candles_500, NodeCache(tmp_path, memory=False))
    fresh = _run(_strategy(0.0001), candles_500, NodeCache(tmp_path))
    assert {s.cache for s in fresh.stats.values()} == {"hit"}
    pd.testing.assert_frame_equal(first.trades, fresh.trades)
    changed = candles_500.copy()
    changed.iloc[-1, changed.columns.get_loc("volume")] += 1  # any change to the data invalidates every node
    rerun = _run(_strategy(0.0001), changed, NodeCache(tmp_path))
    assert {s.cache for s in rerun.stats.values()} == {"miss"}


def test_threaded_and_sync_schedulers_agree(repo):
    compiled, _ = prepare(repo / "strategies" / "ma_crossover.yaml")
    candles = load_data(compiled)
    threaded = run_compiled(compiled, candles, scheduler="threads")
    sync = run_compiled(compiled, candles, scheduler="sync")
    pd.testing.assert_frame_equal(threaded.trades, sync.trades)


def test_cli_run_writes_results(repo, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    code = main(["run", str(repo / "strategies" / "ma_crossover.yaml"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "Trades" in printed and "Sharpe" in printed
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    trades = pd.read_csv(out / "trades.csv")
    assert metrics["n_trades"] == len(trades) > 0
    equity = pd.read_parquet(out / "equity.parquet")
    assert equity["equity"].iloc[-1] == pytest.approx(metrics["final_equity"])
    assert not list(out.glob(".*.tmp"))
    assert (tmp_path / ".candleflow" / "cache").is_dir()  # the default on-disk cache
