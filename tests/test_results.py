"""The results folder's schema: the writer writes it, the reader reads it back, a folder not like it is one error."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from candleflow.backtest import run_backtest
from candleflow.errors import DataError
from candleflow.results import FILES, RESULT_FILES, SCHEMA, read_results


@pytest.fixture(scope="module")
def result(repo):
    return run_backtest(repo / "strategies" / "ma_crossover.yaml", cache=None, scheduler="sync")


@pytest.fixture(scope="module")
def folder(result, tmp_path_factory):
    return result.write(tmp_path_factory.mktemp("run") / "out")


@pytest.fixture(scope="module")
def csv_folder(result, tmp_path_factory):
    return result.write(tmp_path_factory.mktemp("run") / "out", format="csv")


@pytest.fixture(params=["parquet", "csv"])
def any_folder(request, folder, csv_folder):
    return folder if request.param == "parquet" else csv_folder


def copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "out")


def test_the_writer_writes_the_schema(folder, csv_folder):
    names = {path.name for path in folder.iterdir()}
    assert set(FILES) <= names <= {file.name for file in RESULT_FILES}
    assert {"equity.parquet", "indicators.parquet", "candles.parquet"} <= names
    csv_names = {path.name for path in csv_folder.iterdir()}
    assert {"equity.csv", "indicators.csv", "candles.csv"} <= csv_names and not any(n.endswith(".parquet")
                                                                                   for n in csv_names)
    for file in (f.as_format("csv") for f in RESULT_FILES):
        if file.format == "csv":
            header = (csv_folder / file.name).read_text(encoding="utf-8").splitlines()[0].split(",")
            assert header[:1 if file.index else 0] == ([file.index] if file.index else [])
            if file.columns is not None:
                assert header[1 if file.index else 0:] == list(file.columns), file.name


def test_the_reader_gives_back_what_the_run_had(result, any_folder):
    files = read_results(any_folder)
    assert set(files) == set(SCHEMA)
    same = {"check_dtype": False, "check_freq": False, "check_exact": True}  # every float written exactly
    pd.testing.assert_frame_equal(files["trades"], result.trades, **same)
    pd.testing.assert_frame_equal(files["candles"], result.candles, **same)
    pd.testing.assert_series_equal(files["equity"]["equity"], result.equity.rename("equity"), **same)
    indicators = files["indicators"]
    assert indicators.index.equals(result.candles.index)
    pd.testing.assert_series_equal(indicators["sma_fast"], result.indicators()["sma_fast"].rename("sma_fast"),
                                   check_names=False, **same)
    events = sum(len(frame) for frame in result.signals().values())
    assert len(files["signals"]) == events > 0
    assert files["signals"]["time"].tolist() == result.candles.index[files["signals"]["bar"]].tolist()
    assert files["metrics"]["metrics"] == pytest.approx(dict(result.metrics), rel=0, abs=0, nan_ok=True)
    assert files["strategy"] == result.source_text
    assert [row["name"] for row in files["nodes"]] == list(result.stats)


def test_non_finite_metrics_come_back_as_floats(folder, tmp_path):
    out = copy(folder, tmp_path)
    saved = json.loads((out / "metrics.json").read_text())
    saved["metrics"].update(sharpe=None, profit_factor="inf", sortino="-inf")  # how json_safe spells them
    (out / "metrics.json").write_text(json.dumps(saved))
    metrics = read_results(out)["metrics"]["metrics"]
    assert math.isnan(metrics["sharpe"]) and metrics["profit_factor"] == math.inf and metrics["sortino"] == -math.inf


def test_a_folder_written_before_a_column_was_added_still_reads(result, any_folder, tmp_path):
    """trades.csv without ``spread_slippage`` and metrics.json without ``costs``, as an older version wrote them."""
    out = copy(any_folder, tmp_path)
    trades = pd.read_csv(out / "trades.csv")
    assert SCHEMA["trades"].added == ("spread_slippage",)
    trades.drop(columns=["spread_slippage"]).to_csv(out / "trades.csv", index=False)
    saved = json.loads((out / "metrics.json").read_text())
    del saved["metrics"]["costs"]
    (out / "metrics.json").write_text(json.dumps(saved))
    files = read_results(out)
    assert list(files["trades"].columns) == list(SCHEMA["trades"].columns)
    assert files["trades"]["spread_slippage"].isna().all() and len(files["trades"]) == len(result.trades) > 0
    pd.testing.assert_frame_equal(files["trades"].drop(columns=["spread_slippage"]),
                                  result.trades.drop(columns=["spread_slippage"]), check_dtype=False, check_exact=True)
    assert "costs" not in files["metrics"]["metrics"]


def drop_column(name: str, column: str):
    def edit(out):
        path = out / name
        if name.endswith(".parquet"):
            pd.read_parquet(path).drop(columns=[column]).to_parquet(path, index=False)
        else:
            pd.read_csv(path).drop(columns=[column]).to_csv(path, index=False)
    return edit


def replace_text(name: str, old: str, new: str):
    def edit(out):
        path = out / name
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))
    return edit


BROKEN = [
    ("no-trades", lambda out: (out / "trades.csv").unlink(),
     "out: not a candleflow results folder: missing trades.csv"),
    ("trades-without-pnl", drop_column("trades.csv", "pnl"),
     "out/trades.csv: missing column(s): pnl"),
    ("equity-without-time", drop_column("equity.parquet", "time"),
     "out/equity.parquet: missing column(s): time"),
    ("equity-not-parquet", lambda out: (out / "equity.parquet").write_text("not parquet"),
     "out/equity.parquet: cannot read Parquet: "),
    ("equity-as-text", lambda out: pd.read_parquet(out / "equity.parquet").astype({"equity": str}).to_parquet(
        out / "equity.parquet"), "out/equity.parquet: column 'equity' is stored as str, not as numbers"),
    ("no-candles", lambda out: (out / "candles.parquet").unlink(),
     "out: not a candleflow results folder: missing candles.parquet or candles.csv"),
    ("bad-time", replace_text("candles.csv", "2023-01-02T00:00:00Z", "yesterday"),
     "out/candles.csv: row 2: 'time' value 'yesterday' is not a time"),
    ("csv-equity-not-a-number", replace_text("equity.csv", "T00:00:00Z,", "T00:00:00Z,rich"),
     "out/equity.csv: row 2: column 'equity' has a non-numeric value 'rich"),
    ("metrics-not-json", replace_text("metrics.json", "{", "[", ), "out/metrics.json: not valid JSON: "),
    ("metric-not-a-number", replace_text("metrics.json", '"n_trades": ', '"n_trades": "many", "x": '),
     "out/metrics.json: metrics.n_trades: Input should be a valid number"),
]


@pytest.mark.parametrize("edit, expected", [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_a_folder_not_like_the_schema_is_one_data_error(folder, csv_folder, tmp_path, monkeypatch, edit, expected):
    out = copy(csv_folder if ".csv: " in expected and "trades" not in expected else folder, tmp_path)
    edit(out)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as caught:
        read_results("out")
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)


def test_the_report_command_on_a_broken_folder_is_one_line(folder, tmp_path):
    out = copy(folder, tmp_path)
    drop_column("trades.csv", "pnl")(out)
    exe = shutil.which("candleflow")
    command = [exe] if exe else [sys.executable, "-m", "candleflow.cli"]
    proc = subprocess.run(command + ["report", "out", "-o", "report.html"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "CANDLEFLOW_DEBUG": ""})
    expected = "error: out/trades.csv: missing column(s): pnl\n"
    assert (proc.returncode, proc.stderr) == (2, expected)
    assert not (tmp_path / "report.html").exists()
