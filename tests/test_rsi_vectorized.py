"""The vectorized ``rsi`` equals stepping its incremental reference ``RSI`` candle by candle.

Hypothesis series with flat stretches, leading NaN (an indicator input's warm-up) and NaN inside (the
fallback path, which must be exactly the reference).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from candleflow.components.indicators import RSI, rsi

VALUES = st.one_of(st.floats(1, 2, allow_nan=False), st.sampled_from([1.5, 1.5, 1.5]))


def reference(values: list[float], period: int) -> np.ndarray:
    step = RSI(period=period).update
    return np.array([step(v) for v in values], dtype="float64")


@settings(max_examples=150, deadline=None)
@given(values=st.lists(VALUES, min_size=0, max_size=120), lead=st.integers(0, 20), period=st.integers(1, 20),
       hole=st.one_of(st.none(), st.integers(0, 139)))
def test_rsi_equals_its_incremental_reference(values, lead, period, hole):
    series = [math.nan] * lead + values
    if hole is not None and hole < len(series):
        series[hole] = math.nan
    got = rsi(pd.Series(series, dtype="float64"), period=period).to_numpy()
    want = reference(series, period)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-12, atol=1e-10)
    first = next((i for i, v in enumerate(series) if not math.isnan(v)), len(series))
    if any(math.isnan(v) for v in series[first:]):  # a NaN inside: the fallback path is the reference itself
        np.testing.assert_array_equal(got, want)
