"""Result files hold every float exactly: what ``read_results`` reads back equals, bit for bit, what was written.

The per-candle series (Parquet by default, CSV with ``format="csv"``) and the trades CSV are written from frames
of arbitrary floats, tiny and huge ones, subnormals, -0.0, NaN and infinities included, and read back through the
checked reader (in CSV a zero may lose its sign: see ``same_bits``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from candleflow.portfolio.simulate import TRADE_COLUMNS
from candleflow.results import SCHEMA, SERIES_FORMATS, TIME_FORMAT, _read, _render, iso_seconds

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from(
    [5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -0.0, 0.1, 1 / 3, 1e22, 123456789.12345678,
     0.000123456789012345, 65432.10987654321])


def same_bits(got: np.ndarray, want: np.ndarray, *, signed_zeros: bool = True) -> bool:
    """Equal floats, NaN equal to NaN and, with ``signed_zeros``, -0.0 told from 0.0 (a CSV column whose every value
    is integral, "-0" among them, is read back as integers, so there a zero may lose its sign)."""
    got, want = np.asarray(got, dtype="float64"), np.asarray(want, dtype="float64")
    same = (got.view("int64") == want.view("int64")) if signed_zeros else (got == want)
    return bool(np.all((np.isnan(got) & np.isnan(want)) | same))


@pytest.mark.parametrize("fmt", SERIES_FORMATS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.tuples(FLOATS, FLOATS), min_size=1, max_size=40))
def test_a_series_file_round_trips_exactly(tmp_path, fmt, values):
    file = SCHEMA["indicators"].as_format(fmt)
    index = pd.date_range("2024-01-01", periods=len(values), freq="h", tz="UTC", name="time")
    frame = pd.DataFrame(np.array(values, dtype="float64").reshape(len(values), 2), columns=["sma", "bb.upper"],
                         index=index)
    path = tmp_path / file.name
    path.write_bytes(_render(file, frame))
    back = _read(file, path)
    assert list(back.columns) == ["sma", "bb.upper"] and back.index.equals(index)
    for column in frame.columns:
        assert same_bits(back[column].to_numpy(), frame[column].to_numpy(), signed_zeros=fmt == "parquet"), (
            column, back[column].tolist())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.tuples(*[FLOATS] * 6), min_size=1, max_size=20))
def test_the_trades_csv_round_trips_exactly(tmp_path, values):
    floats = np.array(values, dtype="float64")
    times = pd.date_range("2024-01-01", periods=len(values), freq="h", tz="UTC")
    trades = pd.DataFrame({"side": "long", "size": floats[:, 0], "entry_bar": 0, "entry_time": times,
                           "entry_price": floats[:, 1], "exit_bar": 1, "exit_time": times, "exit_price": floats[:, 2],
                           "pnl": floats[:, 3], "return_pct": floats[:, 4], "commission": 0.5,
                           "spread_slippage": floats[:, 5], "exit_reason": "signal"})
    path = tmp_path / "trades.csv"
    path.write_bytes(_render(SCHEMA["trades"], trades[TRADE_COLUMNS]))
    back = _read(SCHEMA["trades"], path)
    for column in ("size", "entry_price", "exit_price", "pnl", "return_pct", "spread_slippage"):
        assert same_bits(back[column].to_numpy(dtype="float64"), trades[column].to_numpy(), signed_zeros=False), column


@settings(max_examples=200, deadline=None)
@given(times=st.lists(st.datetimes(min_value=pd.Timestamp.min.to_pydatetime(warn=False),
                                   max_value=pd.Timestamp.max.to_pydatetime(warn=False)), min_size=1, max_size=20))
def test_iso_seconds_writes_what_strftime_writes(times):
    index = pd.DatetimeIndex(times).as_unit("ns").tz_localize("UTC")
    assert iso_seconds(index).to_pylist() == list(index.strftime(TIME_FORMAT))
