"""Replay mode: recorded signals drive the evaluator, only when asked for."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from candleflow.backtest import load_data, prepare, run_compiled
from candleflow.cli import main
from candleflow.errors import DataError
from candleflow.replay import replay_compiled


@pytest.fixture(scope="module")
def recorded(repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("recorded")
    compiled, _ = prepare(repo / "strategies" / "ma_crossover.yaml")
    candles = load_data(compiled)
    result = run_compiled(compiled, candles)
    result.write(out)
    return compiled, candles, result, out


def test_replaying_a_runs_signals_reproduces_its_trades(recorded):
    compiled, candles, result, out = recorded
    replayed = replay_compiled(compiled, candles, out / "signals.csv")
    pd.testing.assert_frame_equal(replayed.trades, result.trades)
    assert replayed.stats["sma_fast"].status == "skipped"
    assert replayed.stats["cross"].status == "replayed"


def test_replay_json_in_the_script_protocols_shape(recorded, tmp_path):
    compiled, candles, result, _ = recorded
    events = result.signals()["cross"]
    first_golden = events[events.signal_type == "golden_cross"].iloc[0]
    stamp = candles.index[first_golden.bar].tz_localize(None).isoformat()  # naive ISO, as the seed prints
    path = tmp_path / "events.json"
    path.write_text(json.dumps([{"timestamp": stamp, "signal_type": "golden_cross", "strength": 0.85}]))
    replayed = replay_compiled(compiled, candles, path)
    assert len(replayed.trades) == 1
    assert replayed.trades.entry_bar.iloc[0] == first_golden.bar + 1


def test_replay_rejects_an_event_off_the_candle_grid(recorded, tmp_path):
    compiled, candles, _, _ = recorded
    path = tmp_path / "events.csv"
    path.write_text("time,signal_type\n2023-01-04T09:30:00Z,golden_cross\n")
    with pytest.raises(DataError, match=r"row 2: event '2023-01-04T09:30:00Z' is not a candle of the data"):
        replay_compiled(compiled, candles, path)


def test_cli_replay_flag(repo, recorded, tmp_path, capsys):
    _, _, result, out = recorded
    code = main(["run", str(repo / "strategies" / "ma_crossover.yaml"), "--replay-signals",
                 str(out / "signals.csv"), "--out", str(tmp_path), "-q", "--no-cache"])
    assert code == 0
    assert len(pd.read_csv(tmp_path / "trades.csv")) == len(result.trades)
