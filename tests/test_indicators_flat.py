"""Flat stretches and no movement: exact values, and the documented differences from TA-Lib.

A window of identical values has, exactly, that value as its mean (SMA, WMA, HMA, middle bands)
and 0 as its standard deviation (``stddev``, Bollinger width), whatever came before it; pandas'
running-sum rolling std left ~1e-8 x price there.  Elsewhere the results still match TA-Lib to
1e-9.  Where nothing moved, ``rsi`` and the stochastic's %K are 50 (TA-Lib: 0), and ``roc``
after a zero price is NaN (TA-Lib: 0): pinned below.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from candleflow.components import indicators as ind
from candleflow.data import generate_candles
from candleflow.nodes.compute import _run_incremental

prices = st.floats(0.01, 1e5, allow_nan=False, allow_infinity=False)


def _series(values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2024-01-01", periods=len(values), freq="h", tz="UTC"),
                     dtype="float64")


@settings(max_examples=200, deadline=None)
@given(prefix=st.lists(prices, max_size=40), value=prices, period=st.integers(2, 30), extra=st.integers(0, 10))
def test_flat_windows_are_exact(prefix, value, period, extra):
    close = _series(prefix + [value] * (period + math.isqrt(period) + extra))
    flat = slice(len(prefix) + period - 1, None)  # every window here is all `value`
    assert (ind.stddev(close, period=period).iloc[flat] == 0.0).all()
    bands = ind.bollinger(close, period=period, stddev=2.0).iloc[flat]
    assert (bands == value).all().all()  # width exactly 0: upper == middle == lower == value
    assert (ind.sma(close, period=period).iloc[flat] == value).all()
    assert (ind.wma(close, period=period).iloc[flat] == value).all()
    hull_flat = slice(len(prefix) + period + math.isqrt(period) - 2, None)
    assert (ind.hma(close, period=period).iloc[hull_flat] == value).all()
    assert (ind.cci(close, close, close, period=period).iloc[flat] == 0.0).all()
    assert (ind.donchian(close, close, period=period).iloc[flat] == value).all().all()
    stoch = ind.stoch(close, close, close, k_period=period, k_smooth=1, d_period=1).iloc[flat]
    assert (stoch == 50.0).all().all()
    assert (ind.roc(close, period=period).iloc[len(prefix) + period:] == 0.0).all()


@settings(max_examples=100, deadline=None)
@given(value=prices, n=st.integers(1, 30), volumes=st.lists(st.floats(0.5, 1e6), min_size=30, max_size=30))
def test_vwap_of_a_flat_day_is_its_typical_price(value, n, volumes):
    close = _series([value] * n)
    typical = (close + close + close) / 3.0  # the price vwap averages; (3 * value) / 3 may be 1 ulp off value
    assert (ind.vwap(close, close, close, pd.Series(volumes[:n], index=close.index)) == typical).all()


def test_pandas_rolling_std_leaves_a_residual_here():
    """The case the flat-window rule fixes is real: pandas' rolling std is not 0 on this flat window."""
    close = _series([100.3, 1e4, 0.7, 55.1] * 5 + [101.3] * 20)
    assert close.rolling(20).std(ddof=0).iloc[-1] > 1e-6
    assert ind.stddev(close, period=20).iloc[-1] == 0.0


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), period=st.integers(2, 30), at=st.integers(0, 150), length=st.integers(0, 60))
def test_stddev_and_bollinger_match_talib_around_flat_stretches(seed, period, at, length):
    talib = pytest.importorskip("talib")  # TA-Lib is optional; the exactness checks run without it
    close = generate_candles(200, seed=seed).close.to_numpy().copy()
    close[at:at + length] = close[at]  # a flat stretch
    ours_std = ind.stddev(_series(close.tolist()), period=period).to_numpy()
    ours_bands = ind.bollinger(_series(close.tolist()), period=period, stddev=2.0)
    ref_std = talib.STDDEV(close, period, 1.0)
    upper, middle, lower = talib.BBANDS(close, period, 2.0, 2.0, 0)
    np.testing.assert_array_equal(np.isnan(ours_std), np.isnan(ref_std))
    np.testing.assert_allclose(ours_std, ref_std, rtol=0, atol=1e-9)
    for column, reference in (("upper", upper), ("middle", middle), ("lower", lower)):
        np.testing.assert_allclose(ours_bands[column].to_numpy(), reference, rtol=0, atol=1e-9)


def test_rsi_without_movement_is_50_where_talib_gives_0():
    talib = pytest.importorskip("talib")  # TA-Lib is optional; the exactness checks run without it
    close = [1.25] * 40
    ours = _run_incremental(ind.RSI, {"period": 14}, [_series(close)], _series(close).index).to_numpy()
    reference = talib.RSI(np.array(close), 14)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    assert (ours[14:] == 50.0).all() and (reference[14:] == 0.0).all()


def test_stoch_k_of_a_flat_range_is_50_where_talib_gives_0():
    talib = pytest.importorskip("talib")  # TA-Lib is optional; the exactness checks run without it
    close = _series([2.0] * 30)
    ours = ind.stoch(close, close, close, k_period=5, k_smooth=3, d_period=3)
    k, d = talib.STOCH(close.to_numpy(), close.to_numpy(), close.to_numpy(), 5, 3, 0, 3, 0)
    np.testing.assert_array_equal(ours["k"].isna().to_numpy(), np.isnan(k))
    assert (ours["k"].dropna() == 50.0).all() and (ours["d"].dropna() == 50.0).all()
    assert (k[~np.isnan(k)] == 0.0).all() and (d[~np.isnan(d)] == 0.0).all()


def test_roc_after_a_zero_price_is_nan_where_talib_gives_0():
    talib = pytest.importorskip("talib")  # TA-Lib is optional; the exactness checks run without it
    close = [0.0, 1.0, 2.0, 3.0]
    ours = ind.roc(_series(close), period=1).to_numpy()
    reference = talib.ROC(np.array(close), 1)
    assert math.isnan(ours[1]) and reference[1] == 0.0
    np.testing.assert_array_equal(ours[2:], reference[2:])


def test_adx_of_a_flat_market_is_0_like_talib():
    talib = pytest.importorskip("talib")  # TA-Lib is optional; the exactness checks run without it
    close = [3.0] * 40
    series = _series(close)
    ours = _run_incremental(ind.ADX, {"period": 5}, [series, series, series], series.index)
    arrays = [np.array(close)] * 3
    for column, reference in (("adx", talib.ADX(*arrays, 5)), ("plus_di", talib.PLUS_DI(*arrays, 5)),
                              ("minus_di", talib.MINUS_DI(*arrays, 5))):
        np.testing.assert_array_equal(ours[column].to_numpy(), reference)
