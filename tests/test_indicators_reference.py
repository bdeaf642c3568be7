"""Each built-in indicator against a reference, on real candles (backtesting.py's GOOG daily, EURUSD hourly).

The candleflow values are the node outputs of a real run (``tests/crosscheck/strategies/
all_indicators.yaml``), so the vectorized and the incremental execution paths are both the
ones users get.  References:

* written-out textbook formulas below, plain Python loops over the candles, always run (for
  ``vwap``, ``donchian`` and ``keltner``, which TA-Lib lacks, the only reference);
* TA-Lib's Python wrapper (``talib``) when it is installed (HMA composed from ``talib.WMA``).

Both must agree with candleflow to ``TOLERANCE`` at every candle after warm-up, and the
warm-up (the leading NaNs) must have the same length.  The one TA-Lib function that differs
by design is ``talib.MACD``: it seeds the fast EMA at the slow EMA's first candle (with the
mean of the ``fast`` closes ending there), while candleflow, the textbook and ``talib.EMA``
seed each EMA at its own first candle; the two converge but differ by far more than
``TOLERANCE`` for about 100-150 candles.  candleflow has no option for TA-Lib's seeding, so
the MACD is checked against ``talib.EMA`` composed by the MACD definition, and the
difference from ``talib.MACD`` is pinned by a strict xfail.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from candleflow.backtest import run_backtest

pytestmark = pytest.mark.crosscheck

TEMPLATE = Path(__file__).resolve().parent / "crosscheck" / "strategies" / "all_indicators.yaml"
TOLERANCE = 1e-9  # max abs difference after warm-up

PARAMS = {
    "defaults": dict(sma=20, ema=20, rsi=14, atr=14, bb_period=20, bb_stddev=2.0, macd_fast=12, macd_slow=26,
                     macd_signal=9, wma=20, hma=16, stoch_k=14, stoch_smooth=3, stoch_d=3, adx=14, cci=20,
                     donchian=20, kc_period=20, kc_atr=10, kc_mult=2.0, roc=10, stddev=20, extreme=20),
    "other": dict(sma=7, ema=5, rsi=9, atr=5, bb_period=10, bb_stddev=1.5, macd_fast=5, macd_slow=35,
                  macd_signal=5, wma=9, hma=25, stoch_k=5, stoch_smooth=2, stoch_d=4, adx=7, cci=14,
                  donchian=55, kc_period=10, kc_atr=14, kc_mult=1.5, roc=3, stddev=5, extreme=7),
}


# ----------------------------------------------------------------------------- textbook formulas

def ref_sma(x: list[float], n: int) -> list[float]:
    """Mean of the last ``n`` values."""
    return [sum(x[i + 1 - n:i + 1]) / n if i >= n - 1 else math.nan for i in range(len(x))]


def ref_ema(x: list[float], n: int) -> list[float]:
    """EMA, alpha = 2 / (n + 1), seeded at the n-th valid value with the mean of the first n (leading NaNs skipped)."""
    out = [math.nan] * len(x)
    first = next((i for i, v in enumerate(x) if not math.isnan(v)), len(x))
    start = first + n - 1
    if start >= len(x):
        return out
    alpha = 2.0 / (n + 1)
    value = sum(x[first:start + 1]) / n
    out[start] = value
    for i in range(start + 1, len(x)):
        value = alpha * x[i] + (1 - alpha) * value
        out[i] = value
    return out


def ref_rsi(close: list[float], n: int) -> list[float]:
    """Wilder's RSI: the first averages are means of the first n changes, then avg = (avg*(n-1) + x) / n."""
    out = [math.nan] * len(close)
    gains = [max(close[i] - close[i - 1], 0.0) for i in range(1, len(close))]
    losses = [max(close[i - 1] - close[i], 0.0) for i in range(1, len(close))]
    avg_gain = avg_loss = math.nan
    for k in range(n - 1, len(gains)):  # change k is close[k+1] - close[k]
        if k == n - 1:
            avg_gain, avg_loss = sum(gains[:n]) / n, sum(losses[:n]) / n
        else:
            avg_gain = (avg_gain * (n - 1) + gains[k]) / n
            avg_loss = (avg_loss * (n - 1) + losses[k]) / n
        if avg_loss == 0:
            out[k + 1] = 100.0 if avg_gain > 0 else 50.0
        else:
            out[k + 1] = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return out


def ref_atr(high: list[float], low: list[float], close: list[float], n: int) -> list[float]:
    """Wilder's ATR: true range from the second candle on; first ATR = mean of n true ranges, then Wilder."""
    out = [math.nan] * len(close)
    ranges = [max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
              for i in range(1, len(close))]
    atr = math.nan
    for k in range(n - 1, len(ranges)):  # true range k belongs to candle k+1
        atr = sum(ranges[:n]) / n if k == n - 1 else (atr * (n - 1) + ranges[k]) / n
        out[k + 1] = atr
    return out


def ref_bollinger(x: list[float], n: int, k: float) -> tuple[list[float], list[float], list[float]]:
    """SMA +- k population standard deviations of the last n values."""
    upper, middle, lower = [], [], []
    for i in range(len(x)):
        if i < n - 1:
            upper.append(math.nan), middle.append(math.nan), lower.append(math.nan)
            continue
        window = x[i + 1 - n:i + 1]
        mean = sum(window) / n
        sd = math.sqrt(sum((v - mean) ** 2 for v in window) / n)
        upper.append(mean + k * sd), middle.append(mean), lower.append(mean - k * sd)
    return upper, middle, lower


def ref_macd(x: list[float], fast: int, slow: int, signal: int) -> tuple[list[float], list[float], list[float]]:
    """MACD = EMA(fast) - EMA(slow); signal = EMA(signal) of the MACD line; hist = MACD - signal.

    All three start together, where the signal line starts (as TA-Lib lays them out).
    """
    line = [f - s for f, s in zip(ref_ema(x, fast), ref_ema(x, slow))]
    sig = ref_ema(line, signal)
    line = [v if not math.isnan(s) else math.nan for v, s in zip(line, sig)]
    return line, sig, [v - s for v, s in zip(line, sig)]


def ref_vwap(times: pd.DatetimeIndex, high, low, close, volume) -> list[float]:
    """Sum of typical price * volume over sum of volume, both restarted at each UTC midnight."""
    out, day, pv, vol = [], None, 0.0, 0.0
    for t, h, l, c, v in zip(times, high, low, close, volume):
        if t.date() != day:
            day, pv, vol = t.date(), 0.0, 0.0
        pv, vol = pv + (h + l + c) / 3 * v, vol + v
        out.append(pv / vol if vol else math.nan)
    return out


def ref_donchian(high, low, n: int) -> tuple[list[float], list[float], list[float]]:
    """Highest high and lowest low of the last n candles (the current one included), and their mean."""
    upper = [max(high[i + 1 - n:i + 1]) if i >= n - 1 else math.nan for i in range(len(high))]
    lower = [min(low[i + 1 - n:i + 1]) if i >= n - 1 else math.nan for i in range(len(low))]
    return upper, [(u + d) / 2 for u, d in zip(upper, lower)], lower


def ref_keltner(high, low, close, n: int, atr_n: int, k: float) -> tuple[list[float], list[float], list[float]]:
    """EMA(close, n) +- k * Wilder ATR(atr_n); all three from the first candle where both exist."""
    middle, atr = ref_ema(close, n), ref_atr(high, low, close, atr_n)
    middle = [m if not math.isnan(a) else math.nan for m, a in zip(middle, atr)]
    return [m + k * a for m, a in zip(middle, atr)], middle, [m - k * a for m, a in zip(middle, atr)]


# ----------------------------------------------------------------------------- fixtures and checks

@pytest.fixture(scope="module", params=["GOOG", "EURUSD"])
def candles(request) -> pd.DataFrame:
    import backtesting.test

    frame = getattr(backtesting.test, request.param).copy()
    frame.attrs["symbol"] = request.param
    return frame


@pytest.fixture(scope="module", params=list(PARAMS))
def params(request) -> dict:
    return PARAMS[request.param]


@pytest.fixture(scope="module")
def outputs(candles, params) -> dict:
    """candleflow's indicator node outputs for one candle set and one parameter set."""
    symbol = candles.attrs["symbol"]
    result = run_backtest(TEMPLATE, data=candles, cache=None, scheduler="sync",
                          variables=dict(symbol=symbol, timeframe="1d" if symbol == "GOOG" else "1h", **params))
    return result.indicators()


def assert_matches(ours: pd.Series, reference, name: str) -> None:
    ours = ours.to_numpy(dtype=float)
    reference = np.asarray(reference, dtype=float)
    assert ours.shape == reference.shape
    warm_ours, warm_ref = np.flatnonzero(~np.isnan(ours)), np.flatnonzero(~np.isnan(reference))
    assert len(warm_ours) > 100, f"{name}: no values"
    assert warm_ours[0] == warm_ref[0], f"{name}: warm-up ends at {warm_ours[0]} vs reference {warm_ref[0]}"
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference), err_msg=f"{name}: NaN positions")
    valid = ~np.isnan(ours)
    diff = np.abs(ours[valid] - reference[valid])
    assert diff.max() < TOLERANCE, f"{name}: max abs difference {diff.max():.3g} at candle {warm_ours[diff.argmax()]}"


def columns(candles: pd.DataFrame) -> tuple[list[float], list[float], list[float]]:
    return candles["High"].tolist(), candles["Low"].tolist(), candles["Close"].tolist()


# ----------------------------------------------------------------------------- against the textbook

def test_sma_textbook(candles, params, outputs):
    assert_matches(outputs["sma"], ref_sma(candles["Close"].tolist(), params["sma"]), "sma")


def test_ema_textbook(candles, params, outputs):
    assert_matches(outputs["ema"], ref_ema(candles["Close"].tolist(), params["ema"]), "ema")


def test_rsi_textbook(candles, params, outputs):
    assert_matches(outputs["rsi"], ref_rsi(candles["Close"].tolist(), params["rsi"]), "rsi")


def test_atr_textbook(candles, params, outputs):
    assert_matches(outputs["atr"], ref_atr(*columns(candles), params["atr"]), "atr")


def test_bollinger_textbook(candles, params, outputs):
    reference = ref_bollinger(candles["Close"].tolist(), params["bb_period"], params["bb_stddev"])
    for column, values in zip(("upper", "middle", "lower"), reference):
        assert_matches(outputs["bb"][column], values, f"bollinger.{column}")


def test_macd_textbook(candles, params, outputs):
    reference = ref_macd(candles["Close"].tolist(), params["macd_fast"], params["macd_slow"], params["macd_signal"])
    for column, values in zip(("macd", "signal", "hist"), reference):
        assert_matches(outputs["macd"][column], values, f"macd.{column}")


def test_vwap_textbook(candles, outputs):
    times = candles.index.tz_localize("UTC") if candles.index.tz is None else candles.index.tz_convert("UTC")
    reference = ref_vwap(times, *columns(candles), candles["Volume"].tolist())
    assert_matches(outputs["vwap"], reference, "vwap")


def test_donchian_textbook(candles, params, outputs):
    high, low, _ = columns(candles)
    for column, values in zip(("upper", "middle", "lower"), ref_donchian(high, low, params["donchian"])):
        assert_matches(outputs["donchian"][column], values, f"donchian.{column}")


def test_keltner_textbook(candles, params, outputs):
    reference = ref_keltner(*columns(candles), params["kc_period"], params["kc_atr"], params["kc_mult"])
    for column, values in zip(("upper", "middle", "lower"), reference):
        assert_matches(outputs["keltner"][column], values, f"keltner.{column}")


# ----------------------------------------------------------------------------- against TA-Lib


@pytest.fixture(scope="module")
def talib():
    return pytest.importorskip("talib")  # TA-Lib is optional: the textbook checks above always run


def test_sma_ema_talib(talib, candles, params, outputs):
    close = candles["Close"].to_numpy(dtype=float)
    assert_matches(outputs["sma"], talib.SMA(close, params["sma"]), "sma")
    assert_matches(outputs["ema"], talib.EMA(close, params["ema"]), "ema")


def test_rsi_atr_talib(talib, candles, params, outputs):
    high, low, close = (candles[c].to_numpy(dtype=float) for c in ("High", "Low", "Close"))
    assert_matches(outputs["rsi"], talib.RSI(close, params["rsi"]), "rsi")
    assert_matches(outputs["atr"], talib.ATR(high, low, close, params["atr"]), "atr")


def test_bollinger_talib(talib, candles, params, outputs):
    close = candles["Close"].to_numpy(dtype=float)
    k = params["bb_stddev"]
    reference = talib.BBANDS(close, params["bb_period"], k, k, 0)  # matype 0: simple moving average
    for column, values in zip(("upper", "middle", "lower"), reference):
        assert_matches(outputs["bb"][column], values, f"bollinger.{column}")


def test_macd_from_talib_ema(talib, candles, params, outputs):
    close = candles["Close"].to_numpy(dtype=float)
    fast, slow, signal = params["macd_fast"], params["macd_slow"], params["macd_signal"]
    line = talib.EMA(close, fast) - talib.EMA(close, slow)
    signal_line = np.full_like(line, np.nan)
    signal_line[slow - 1:] = talib.EMA(line[slow - 1:], signal)
    line[np.isnan(signal_line)] = np.nan
    for column, values in (("macd", line), ("signal", signal_line), ("hist", line - signal_line)):
        assert_matches(outputs["macd"][column], values, f"macd.{column}")


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="talib.MACD seeds the fast EMA at the slow EMA's first candle; candleflow "
                                       "seeds it at its own (no option for TA-Lib's seeding)")
def test_macd_talib_macd_function(talib, candles, params, outputs):
    close = candles["Close"].to_numpy(dtype=float)
    reference = talib.MACD(close, params["macd_fast"], params["macd_slow"], params["macd_signal"])
    for column, values in zip(("macd", "signal", "hist"), reference):
        assert_matches(outputs["macd"][column], values, f"macd.{column}")


def test_wma_hma_talib(talib, candles, params, outputs):
    close = candles["Close"].to_numpy(dtype=float)
    assert_matches(outputs["wma"], talib.WMA(close, params["wma"]), "wma")
    n = params["hma"]
    hull = talib.WMA(2 * talib.WMA(close, n // 2) - talib.WMA(close, n), math.isqrt(n))
    assert_matches(outputs["hma"], hull, "hma")


def test_stoch_talib(talib, candles, params, outputs):
    high, low, close = (candles[c].to_numpy(dtype=float) for c in ("High", "Low", "Close"))
    k, d = talib.STOCH(high, low, close, params["stoch_k"], params["stoch_smooth"], 0, params["stoch_d"], 0)
    assert_matches(outputs["stoch"]["k"], k, "stoch.k")
    assert_matches(outputs["stoch"]["d"], d, "stoch.d")


def test_adx_talib(talib, candles, params, outputs):
    high, low, close = (candles[c].to_numpy(dtype=float) for c in ("High", "Low", "Close"))
    n = params["adx"]
    assert_matches(outputs["adx"]["adx"], talib.ADX(high, low, close, n), "adx.adx")
    assert_matches(outputs["adx"]["plus_di"], talib.PLUS_DI(high, low, close, n), "adx.plus_di")
    assert_matches(outputs["adx"]["minus_di"], talib.MINUS_DI(high, low, close, n), "adx.minus_di")


def test_cci_obv_roc_talib(talib, candles, params, outputs):
    high, low, close, volume = (candles[c].to_numpy(dtype=float) for c in ("High", "Low", "Close", "Volume"))
    assert_matches(outputs["cci"], talib.CCI(high, low, close, params["cci"]), "cci")
    assert_matches(outputs["obv"], talib.OBV(close, volume), "obv")
    assert_matches(outputs["roc"], talib.ROC(close, params["roc"]), "roc")


def test_stddev_highest_lowest_talib(talib, candles, params, outputs):
    high, low, close = (candles[c].to_numpy(dtype=float) for c in ("High", "Low", "Close"))
    assert_matches(outputs["stddev"], talib.STDDEV(close, params["stddev"], 1.0), "stddev")
    assert_matches(outputs["highest"], talib.MAX(high, params["extreme"]), "highest")
    assert_matches(outputs["lowest"], talib.MIN(low, params["extreme"]), "lowest")
    assert_matches(outputs["highest_close"], talib.MAX(close, params["extreme"]), "highest_close")
