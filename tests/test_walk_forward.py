"""Walk-forward analysis (sweep.walkforward): windows, the in-sample choice, the out-of-sample run, the stitch."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from candleflow.backtest import run_backtest
from candleflow.errors import ConfigError
from candleflow.sweep import run_sweep
from candleflow.sweep.grid import SweepSpec, WalkForward
from candleflow.sweep.walkforward import run_walk_forward, windows
from candleflow.visualize import write_sweep_report

T = pd.Timestamp


def hours(start: str, end: str) -> pd.DatetimeIndex:
    return pd.date_range(start, end, freq="h", tz="UTC", inclusive="left")


def test_rolling_windows_follow_each_other_and_the_last_ends_after_the_last_candle():
    index = hours("2023-01-01", "2023-07-15")
    found = windows(index, WalkForward(train="3M", test="1M"))
    starts = [w.test_start for w in found]
    assert starts == [T(f"2023-0{m}-01", tz="UTC") for m in (4, 5, 6, 7)]
    assert [w.train_start for w in found] == [T(f"2023-0{m}-01", tz="UTC") for m in (1, 2, 3, 4)]
    assert [w.test_end for w in found[:-1]] == starts[1:]
    assert found[-1].test_end == index[-1] + pd.Timedelta(hours=1)  # shorter: the data ends mid-July


def test_anchored_windows_all_train_from_the_first_candle():
    index = hours("2023-01-01", "2023-06-01")
    found = windows(index, WalkForward(train="2M", test="1M", anchored=True))
    assert {w.train_start for w in found} == {index[0]} and len(found) == 3


def test_a_test_window_without_candles_is_skipped():
    index = hours("2023-01-01", "2023-03-01").append(hours("2023-04-01", "2023-05-01"))  # March missing
    found = windows(index, WalkForward(train="1M", test="1M"))
    assert [w.test_start.month for w in found] == [2, 4]


def test_a_train_window_longer_than_the_data_is_an_error():
    with pytest.raises(ConfigError, match=r"walk_forward: train 1Y leaves no candle to test on"):
        windows(hours("2023-01-01", "2023-03-01"), WalkForward(train="1Y", test="1M"))


@pytest.mark.parametrize("spec, message", [
    ({"train": "6 months", "test": "1M"}, "'6 months' is not a window length"),
    ({"train": "0M", "test": "1M"}, "'0M' is not a window length"),
    ({"train": "6M"}, "walk_forward.test"),
])
def test_bad_window_lengths_are_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        SweepSpec.model_validate({"parameters": {"fast": [5]}, "walk_forward": spec})


def test_walk_forward_runs_on_one_symbol():
    with pytest.raises(ValueError, match="walk_forward runs on one symbol"):
        SweepSpec.model_validate({"parameters": {"fast": [5]}, "walk_forward": {"train": "3M", "test": "1M"},
                                  "symbols": [{"symbol": "A", "sample": "eurusd_1h"}, {"symbol": "B", "sample": "eurusd_1h"}]})


GRID = {"parameters": {"fast": [5, 20], "slow": [40, 60]}, "symbols": [{"symbol": "EURUSD", "sample": "eurusd_1h"}],
        "walk_forward": {"train": "6M", "test": "3M"}}


@pytest.fixture(scope="module")
def analysis(repo):
    return run_walk_forward(repo / "strategies" / "ma_crossover_sweep.yaml", SweepSpec.model_validate(GRID),
                            scheduler="sync")


def test_each_window_trades_the_in_sample_best_out_of_sample(repo, analysis, tmp_path):
    """The slow obvious way: every combination backtested on each train slice, the best Sharpe's parameters
    backtested again on train + test with trading from the test start."""
    template = (repo / "strategies" / "ma_crossover_sweep.yaml").read_text()
    candles = run_backtest(repo / "strategies" / "ma_crossover.yaml", cache=None, scheduler="sync").candles
    assert len(analysis.frame) == 2  # 6 months to train, then 3 + 3 months of tests (the data: 2023)
    level, stitched = 10_000.0, []
    for row in analysis.frame.to_dict("records"):
        train = candles[(candles.index >= row["train_start"]) & (candles.index < row["test_start"])]
        scores = {(fast, slow): run_backtest(repo / "strategies" / "ma_crossover_sweep.yaml", data=train, cache=None,
                                             scheduler="sync", variables={"fast": fast, "slow": slow}).metrics["sharpe"]
                  for fast in (5, 20) for slow in (40, 60)}
        best = max(scores, key=lambda k: scores[k])
        assert (row["fast"], row["slow"]) == best and row["is_sharpe"] == scores[best]
        path = tmp_path / f"w{row['window']}.yaml"
        path.write_text(template.replace("execution:\n", f"execution:\n  trade_from: '{row['test_start'].isoformat()}'\n"))
        assert "trade_from" in path.read_text()
        span = candles[(candles.index >= row["train_start"]) & (candles.index < row["test_end"])]
        out = run_backtest(path, data=span, cache=None, scheduler="sync", variables={"fast": best[0], "slow": best[1]})
        assert row["oos_sharpe"] == out.metrics["sharpe"] and row["oos_total_return"] == out.metrics["total_return"]
        tested = out.equity[out.equity.index >= row["test_start"]]
        stitched.append(tested * level / 10_000.0)  # the account carries on from where the last window ended
        level = float(stitched[-1].iloc[-1])
    expected = pd.concat(stitched)
    assert analysis.equity.index.equals(expected.index)
    np.testing.assert_allclose(analysis.equity.to_numpy(), expected.to_numpy(), rtol=1e-12)


def test_the_stitched_run_has_every_out_of_sample_trade_and_its_metrics(analysis):
    assert analysis.metrics["total_return"] == pytest.approx(analysis.equity.iloc[-1] / 10_000.0 - 1, rel=1e-12)
    assert set(analysis.trades["window"]) == {1, 2}
    assert analysis.trades["entry_time"].min() >= analysis.frame["test_start"].min()
    assert analysis.metrics["n_trades"] == int((analysis.trades["exit_reason"] != "open").sum())
    mean_in_sample = analysis.frame["is_return_ann"].mean()
    if mean_in_sample > 0:
        assert analysis.efficiency == pytest.approx(analysis.metrics["return_ann"] / mean_in_sample)
    else:
        assert math.isnan(analysis.efficiency)


def test_a_plain_sweep_refuses_a_walk_forward_grid(repo):
    with pytest.raises(ConfigError, match="the grid has a walk_forward section"):
        run_sweep(repo / "strategies" / "ma_crossover_sweep.yaml", SweepSpec.model_validate(GRID), scheduler="sync")


def test_report_and_table_of_a_walk_forward(analysis, tmp_path):
    text = write_sweep_report(analysis, tmp_path / "wf.html", title="wf").read_text(encoding="utf-8")
    assert 'data-windows="2"' in text and text.count("Plotly.newPlot(") == 2
    assert len([line for line in text.splitlines() if 'class="window-row"' in line]) == 2
    table = pd.read_csv(analysis.write(tmp_path / "wf.csv"))
    assert list(table["window"]) == [1, 2] and {"fast", "slow", "is_sharpe", "oos_sharpe"} <= set(table.columns)


def test_cli_sweep_on_a_walk_forward_grid(repo, tmp_path, monkeypatch, capsys):
    import yaml

    from candleflow.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(GRID))
    code = main(["sweep", str(repo / "strategies" / "ma_crossover_sweep.yaml"), "--grid", "grid.yaml",
                 "--scheduler", "sync", "--out", "wf.parquet", "--report", "wf.html"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "walk-forward: 2 windows" in out and "out-of-sample, stitched: total_return" in out
    assert (tmp_path / "wf.parquet").exists() and (tmp_path / "wf.html").exists()
