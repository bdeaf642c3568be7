"""Candle loading round trips and the bundled sample."""

from __future__ import annotations

import pandas as pd
import pytest

from candleflow.data import generate_candles, load_candles, sample_candles, validate_candles, write_candles


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(tmp_path, suffix):
    candles = generate_candles(300, seed=5)
    path = tmp_path / f"c{suffix}"
    write_candles(candles, path)
    pd.testing.assert_frame_equal(load_candles(path), candles, check_freq=False)


def test_bundled_sample_is_a_year_of_fx_hours(repo):
    candles = sample_candles("eurusd_1h")
    assert candles.index[0] == pd.Timestamp("2023-01-02T00:00Z")
    assert candles.index[-1] < pd.Timestamp("2024-01-01T00:00Z")
    assert len(candles) > 6000
    assert not (candles.index.day_of_week == 5).any()  # FX is closed on Saturdays
    assert str(candles.index.tz) == "UTC"
    # the shipped CSV is this generator's output
    pd.testing.assert_frame_equal(load_candles(repo / "data" / "EURUSD_1h.csv"), candles, check_freq=False)


def test_epoch_seconds_and_offsets_normalise_to_utc():
    raw = pd.DataFrame({"timestamp": ["2024-01-01T01:00:00+01:00", "2024-01-01T02:00:00+01:00"],
                        "Open": [1, 2], "High": [2, 3], "Low": [0.5, 1], "Close": [1.5, 2]})
    candles = validate_candles(raw)
    assert candles.index[0] == pd.Timestamp("2024-01-01T00:00Z")
    assert (candles.volume == 0).all()
    epoch = pd.DataFrame({"time": [1704067200, 1704070800], "open": [1, 2], "high": [2, 3], "low": [0.5, 1],
                          "close": [1.5, 2], "volume": [10, 20]})
    assert validate_candles(epoch).index[1] == pd.Timestamp("2024-01-01T01:00Z")


def test_date_slicing(tmp_path):
    from candleflow.data.loader import slice_candles

    candles = generate_candles(100, seed=2)
    kept = slice_candles(candles, start=str(candles.index[10]), end=str(candles.index[20]), file="x")
    assert len(kept) == 10 and kept.index[0] == candles.index[10]
