"""Bad candle files through the real CLI (``run --data FILE``): one exact line naming the file and the row.

Rows are numbered as a spreadsheet shows them: the header is row 1, so the
first candle is row 2.  Each case breaks row 4 (or the header) of ``GOOD_CSV``.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from candleflow.cli import main
from candleflow.data import load_candles, validate_candles
from candleflow.errors import DataError

GOOD_CSV = """\
time,open,high,low,close,volume
2024-01-01T00:00:00Z,1.1000,1.1010,1.0990,1.1005,100
2024-01-01T01:00:00Z,1.1005,1.1020,1.1000,1.1015,120
2024-01-01T02:00:00Z,1.1015,1.1025,1.1010,1.1020,90
2024-01-01T03:00:00Z,1.1020,1.1030,1.1005,1.1010,110
2024-01-01T04:00:00Z,1.1010,1.1015,1.0995,1.1000,95
"""
ROW4 = "2024-01-01T02:00:00Z,1.1015,1.1025,1.1010,1.1020,90"

STRATEGY = """\
name: demo
symbol: EURUSD
timeframe: 1h
data: {path: good.csv}
indicators:
  - {name: fast, component: sma, params: {period: 2}}
  - {name: slow, component: sma, params: {period: 3}}
signals:
  - {name: cross, component: ma_crossover, inputs: [fast, slow]}
rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}
"""


def row4(new: str) -> str:
    return GOOD_CSV.replace(ROW4, new)


# (id, file name, file content or None for "does not exist", expected message after "error: ")
CASES = [
    ("missing", "missing.csv", None, "missing.csv: data file not found"),
    ("zero-bytes", "bad.csv", "", "bad.csv: data file is empty"),
    ("header-only", "bad.csv", GOOD_CSV.splitlines()[0] + "\n", "bad.csv: data file has no rows"),
    ("missing-column", "bad.csv", GOOD_CSV.replace("time,open,high,low,close,volume", "time,open,high,lo,close,volume"),
     "bad.csv: missing column(s): low (need time, open, high, low, close[, volume])"),
    ("missing-time-column", "bad.csv", GOOD_CSV.replace("time,", "when,", 1),
     "bad.csv: missing column(s): time (need time, open, high, low, close[, volume])"),
    ("duplicate-column", "bad.csv", GOOD_CSV.replace("volume", "Close", 1),
     "bad.csv: duplicate column(s): close (column names are case-insensitive)"),
    ("ragged-row", "bad.csv", row4(ROW4 + ",7"), "bad.csv: row 4: expected 6 fields (as in the header), saw 7"),
    ("empty-cell", "bad.csv", row4("2024-01-01T02:00:00Z,1.1015,1.1025,1.1010,,90"),
     "bad.csv: row 4: column 'close' has NaN (an empty or NaN cell)"),
    ("nan", "bad.csv", row4("2024-01-01T02:00:00Z,1.1015,NaN,1.1010,1.1020,90"),
     "bad.csv: row 4: column 'high' has NaN (an empty or NaN cell)"),
    ("nan-volume", "bad.csv", row4("2024-01-01T02:00:00Z,1.1015,1.1025,1.1010,1.1020,nan"),
     "bad.csv: row 4: column 'volume' has NaN (an empty or NaN cell)"),
    ("infinite", "bad.csv", row4("2024-01-01T02:00:00Z,1.1015,inf,1.1010,1.1020,90"),
     "bad.csv: row 4: column 'high' has an infinite value inf"),
    ("non-numeric", "bad.csv", row4("2024-01-01T02:00:00Z,1.1015,1.1025,1.1010,n/a?,90"),
     "bad.csv: row 4: column 'close' has a non-numeric value 'n/a?'"),
    ("high-below-low", "bad.csv", row4("2024-01-01T02:00:00Z,1.1015,1.1010,1.1025,1.1020,90"),
     "bad.csv: row 4: high 1.101 < low 1.1025"),
    ("open-outside-range", "bad.csv", row4("2024-01-01T02:00:00Z,1.2015,1.1025,1.1010,1.1020,90"),
     "bad.csv: row 4: open 1.2015 outside [low 1.101, high 1.1025]"),
    ("close-outside-range", "bad.csv", row4("2024-01-01T02:00:00Z,1.1015,1.1025,1.1010,1.0020,90"),
     "bad.csv: row 4: close 1.002 outside [low 1.101, high 1.1025]"),
    ("non-positive-price", "bad.csv", row4("2024-01-01T02:00:00Z,0,1.1025,0,1.1020,90"),
     "bad.csv: row 4: non-positive price (open 0.0, low 0.0)"),
    ("unsorted", "bad.csv", row4("2024-01-01T00:30:00Z,1.1015,1.1025,1.1010,1.1020,90"),
     "bad.csv: row 4: timestamps not sorted: 2024-01-01T00:30:00+00:00 comes after 2024-01-01T01:00:00+00:00"),
    ("duplicate-timestamp", "bad.csv", row4("2024-01-01T01:00:00Z,1.1015,1.1025,1.1010,1.1020,90"),
     "bad.csv: row 4: duplicate timestamp 2024-01-01T01:00:00+00:00 (same as row 3)"),
    ("missing-timestamp", "bad.csv", row4(",1.1015,1.1025,1.1010,1.1020,90"), "bad.csv: row 4: missing timestamp"),
    ("not-a-timestamp", "bad.csv", row4("yesterday,1.1015,1.1025,1.1010,1.1020,90"),
     "bad.csv: row 4: timestamp 'yesterday' is not an ISO-8601 time (e.g. 2023-01-02T00:00:00Z)"),
    ("us-date-format", "bad.csv", row4("01/01/2024 02:00,1.1015,1.1025,1.1010,1.1020,90"),
     "bad.csv: row 4: timestamp '01/01/2024 02:00' is not an ISO-8601 time (e.g. 2023-01-02T00:00:00Z)"),
    ("mixed-offsets", "bad.csv", row4("2024-01-01T04:00:00+02:00,1.1015,1.1025,1.1010,1.1020,90"),
     "bad.csv: row 4: mixed time zones (+00:00 in row 2, +02:00 here); use one zone, preferably UTC"),
    ("mixed-naive-and-utc", "bad.csv", row4("2024-01-01T02:00:00,1.1015,1.1025,1.1010,1.1020,90"),
     "bad.csv: row 4: mixed time zones (+00:00 in row 2, no zone here); use one zone, preferably UTC"),
    ("epoch-out-of-range", "bad.csv", "time,open,high,low,close\n1e30,1,1,1,1\n",
     "bad.csv: row 2: timestamp 1e+30 is out of range for epoch milliseconds"),
    ("not-parquet", "bad.parquet", "this is not parquet",
     "bad.parquet: cannot read parquet file: Could not open Parquet input source 'bad.parquet': "
     "Parquet magic bytes not found in footer. Either the file is corrupted or this is not a parquet file."),
]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    (tmp_path / "components").mkdir()
    (tmp_path / "good.csv").write_text(GOOD_CSV)
    (tmp_path / "s.yaml").write_text(STRATEGY)
    monkeypatch.delenv("CANDLEFLOW_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(capsys, *args: str):
    code = main(["run", "s.yaml", "--out", "out", "--cache-dir", "cache", "--scheduler", "sync", "-q", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_good_file_runs(capsys, workspace):
    assert len(load_candles(workspace / "good.csv")) == 5
    code, out, err = run_cli(capsys, "--data", "good.csv")
    # five candles are too few for a golden cross: the run says so (tests/test_no_silent_noops.py), and goes on
    assert (code, err) == (0, "warning: s.yaml: rules.entry.golden_cross: 'golden_cross' never fired on the 5 candles "
                              "(fired: death_cross), so this never triggered\n")
    assert (workspace / "out" / "candles.parquet").is_file()


@pytest.mark.parametrize("name, content, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_data_file(capsys, workspace, name, content, expected):
    if content is not None:
        (workspace / name).write_text(content)
    code, out, err = run_cli(capsys, "--data", name)
    assert "Traceback" not in out + err
    assert err == f"error: {expected}\n"
    assert code == 2
    assert not (workspace / "out").exists()


def test_bad_file_named_by_the_strategy(capsys, workspace):
    """Without --data the strategy's data path is read, relative to the workspace; the message shows where."""
    (workspace / "good.csv").write_text(row4("2024-01-01T02:00:00Z,1.1015,1.1010,1.1025,1.1020,90"))
    code, out, err = run_cli(capsys)
    assert (code, err) == (2, f"error: {workspace / 'good.csv'}: row 4: high 1.101 < low 1.1025\n")


def test_data_frames_given_directly_are_checked_too():
    frame = pd.read_csv(io.StringIO(GOOD_CSV)).set_index("time")
    frame.index = pd.DatetimeIndex(frame.index)
    assert len(validate_candles(frame)) == 5
    frame.iloc[2, frame.columns.get_loc("low")] = 2.0
    with pytest.raises(DataError) as info:
        validate_candles(frame, file="frame")
    assert str(info.value) == "frame: row 4: high 1.1025 < low 2.0"


def test_a_datetime_index_in_another_zone_is_converted_to_utc():
    frame = pd.read_csv(io.StringIO(GOOD_CSV))
    frame["time"] = pd.to_datetime(frame["time"]).dt.tz_convert("Europe/Paris")
    candles = validate_candles(frame.set_index("time"))
    assert str(candles.index.tz) == "UTC" and candles.index[0] == pd.Timestamp("2024-01-01T00:00Z")


def test_parquet_files_are_validated_like_csv(capsys, workspace: Path):
    frame = pd.read_csv(io.StringIO(GOOD_CSV))
    frame.loc[2, "time"] = frame.loc[1, "time"]
    frame.to_parquet(workspace / "dup.parquet")
    code, out, err = run_cli(capsys, "--data", "dup.parquet")
    assert (code, err) == (2, "error: dup.parquet: row 4: duplicate timestamp 2024-01-01T01:00:00+00:00 "
                              "(same as row 3)\n")


def zoned_csv(zones: list[str]) -> str:
    """One candle per hour of 2024, row i's time written with ``zones[i]`` as its zone suffix (the same instant
    in every zone is not the point here: only the suffix is checked)."""
    times = pd.date_range("2024-01-01", periods=len(zones), freq="h").strftime("%Y-%m-%dT%H:%M:%S")
    rows = [f"{time}{zone},1.1,1.2,1.0,1.1,5" for time, zone in zip(times, zones)]
    return "time,open,high,low,close,volume\n" + "\n".join(rows) + "\n"


@pytest.mark.parametrize("zones, where, message", [
    (["Z"] * 4000 + ["+02:00"] + ["Z"] * 10, "row 4002", "+00:00 in row 2, +02:00 here"),
    (["+0100"] * 3 + ["+01:00"] * 3000 + [""], "row 3005", "+01:00 in row 2, no zone here"),
    ([""] * 2500 + ["Z"], "row 2502", "no zone in row 2, +00:00 here"),
])
def test_the_vectorized_zone_check_still_names_the_first_row_in_another_zone(tmp_path, zones, where, message):
    (tmp_path / "z.csv").write_text(zoned_csv(zones))
    with pytest.raises(DataError) as info:
        load_candles(tmp_path / "z.csv")
    assert str(info.value) == (f"{tmp_path / 'z.csv'}: {where}: mixed time zones ({message}); use one zone, "
                               "preferably UTC")


@pytest.mark.parametrize("zones", [["Z", "+00:00", "+0000"] * 100, ["+0530", "+05:30"] * 100, [""] * 300])
def test_one_zone_however_spelled_loads(tmp_path, zones):
    (tmp_path / "z.csv").write_text(zoned_csv(zones))
    assert len(load_candles(tmp_path / "z.csv")) == len(zones)
