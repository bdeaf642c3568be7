"""Built-in indicators.

Conventions follow TA-Lib for SMA, EMA, RSI, ATR and Bollinger bands: EMA is
seeded with the SMA of its first ``period`` values; RSI and ATR use Wilder's
smoothing seeded with a simple mean; Bollinger bands use the population standard
deviation (``ddof=0``).  MACD is built from those EMAs (the fast EMA seeded at its
own first full window), so it differs from ``talib.MACD``, which seeds the fast
EMA at the slow EMA's first bar, during the first ~150 bars.  Values are NaN until enough
candles exist.  Every output at candle ``i`` depends only on candles ``0..i``
(tested by ``tests/test_no_lookahead.py``).

WMA, HMA (``wma(2 wma(n/2) - wma(n), floor(sqrt n))``), STOCH, ADX/+DI/-DI, CCI, OBV, ROC,
STDDEV and highest/lowest (TA-Lib's MAX/MIN) match TA-Lib, warm-up included, except where stated
(RSI and %K are 50, not TA-Lib's 0, when nothing moved; ROC after a zero price is NaN, not 0;
TA-Lib's ``|x| < 1e-8`` zero tests are exact zero tests here).  ``vwap``, ``donchian`` and
``keltner`` have no TA-Lib equivalent; their definitions are in their docstrings.

Windowed values are exact on flat stretches: a window of identical values has mean (SMA, WMA,
middle bands) exactly that value and standard deviation exactly 0, computed from the window's
deviations rather than from running sums.  Recursive smoothings (EMA, Wilder's) only approach a
flat value.

``adx`` and ``atr`` are incremental (one ``update`` per candle); the others are vectorized: the two
execution paths of :mod:`candleflow.components.registry`.  ``rsi`` is vectorized, with its incremental
:class:`RSI` kept as the reference it must equal (and the path for inputs with NaN inside).
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field

from candleflow.components.declare import indicator

Period = Annotated[int, Field(ge=1)]
Period2 = Annotated[int, Field(ge=2)]
Positive = Annotated[float, Field(gt=0)]
_CHUNK = 1 << 20  # window values reduced at once: bounds the memory of per-window arithmetic


def _rolling(values: pd.Series, period: int, reduce) -> pd.Series:
    """``reduce`` applied to every trailing window of ``period`` values; NaN before the first full one.

    ``reduce`` gets a 2-D array, one window per row (oldest first), and returns one value per row.
    A window holding a NaN gives NaN (numpy arithmetic propagates it).
    """
    x = values.to_numpy(dtype="float64")
    out = np.full(len(x), np.nan)
    if len(x) >= period:
        windows = sliding_window_view(x, period)
        step = max(1, _CHUNK // period)
        with np.errstate(invalid="ignore", divide="ignore"):
            for start in range(0, len(windows), step):
                out[period - 1 + start:period - 1 + start + step] = reduce(windows[start:start + step])
    return pd.Series(out, index=values.index)


def _window_mean(windows: np.ndarray) -> np.ndarray:
    """Mean per window; a flat window's mean is exactly its value (a plain sum can be 1 ulp off)."""
    mean = windows.mean(axis=1)
    flat = windows.max(axis=1) == windows.min(axis=1)
    mean[flat] = windows[flat, 0]
    return mean


def _window_std(windows: np.ndarray) -> np.ndarray:
    """Population standard deviation per window, from the deviations: exactly 0 on a flat window."""
    deviations = windows - _window_mean(windows)[:, None]
    return np.sqrt((deviations * deviations).mean(axis=1))


@indicator("sma")
def sma(close: pd.Series, *, period: Period = 20) -> pd.Series:
    """Simple moving average of the last ``period`` values."""
    return _rolling(close, period, _window_mean)


@indicator("ema")
def ema(close: pd.Series, *, period: Period = 20) -> pd.Series:
    """Exponential moving average, alpha = 2 / (period + 1), seeded with an SMA."""
    return _seeded_ewm(close, alpha=2.0 / (period + 1), period=period)


def _seeded_ewm(values: pd.Series, *, alpha: float, period: int) -> pd.Series:
    """Recursive EWM whose first value is the mean of the first ``period`` valid inputs.

    Leading NaNs (another indicator's warm-up) are skipped; the result is NaN
    until the seed exists.  ``ewm(adjust=False)`` is the recursion
    ``y[t] = (1 - alpha) * y[t-1] + alpha * x[t]``.
    """
    out = pd.Series(np.nan, index=values.index, dtype="float64")
    valid = np.flatnonzero(~np.isnan(values.to_numpy(dtype="float64")))
    if len(valid) < period:
        return out
    first = valid[0]
    seed_at = first + period - 1
    tail = values.iloc[seed_at:].astype("float64").copy()
    tail.iloc[0] = values.iloc[first:seed_at + 1].mean()
    out.iloc[seed_at:] = tail.ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return out


@indicator("bollinger", outputs=("upper", "middle", "lower"))
def bollinger(close: pd.Series, *, period: Period = 20, stddev: Positive = 2.0) -> pd.DataFrame:
    """Bollinger bands: SMA +- ``stddev`` population standard deviations."""
    middle = _rolling(close, period, _window_mean)
    width = _rolling(close, period, _window_std) * stddev
    return pd.DataFrame({"upper": middle + width, "middle": middle, "lower": middle - width})


@indicator("macd", outputs=("macd", "signal", "hist"))
def macd(close: pd.Series, *, fast: Period = 12, slow: Period = 26, signal: Period = 9) -> pd.DataFrame:
    """MACD line (EMA fast - EMA slow), its signal line (EMA of MACD) and the histogram."""
    if fast >= slow:
        raise ValueError(f"fast ({fast}) must be shorter than slow ({slow})")
    line = ema(close, period=fast) - ema(close, period=slow)
    signal_line = _seeded_ewm(line, alpha=2.0 / (signal + 1), period=signal)
    line = line.where(signal_line.notna())  # TA-Lib starts all three outputs together
    return pd.DataFrame({"macd": line, "signal": signal_line, "hist": line - signal_line})


@indicator("rsi")
def rsi(close: pd.Series, *, period: Period = 14) -> pd.Series:
    """Wilder's relative strength index, vectorized: the recurrence of :class:`RSI` as an exponential mean.

    Wilder's average ``avg = (avg * (period - 1) + x) / period`` is an exponential mean with
    ``alpha = 1 / period``, seeded with the plain mean of the first ``period`` changes; pandas
    computes it in compiled code (24x faster than stepping :class:`RSI` at 1M candles, equal to
    it within 1e-13).  Input with NaN after its first value (a NaN inside an indicator input) is
    stepped through :class:`RSI` instead, whose rule for a NaN is to skip that change.
    """
    values = close.to_numpy(dtype="float64")
    first = int(np.argmax(~np.isnan(values))) if len(values) else 0
    if np.isnan(values[first:]).any():
        step = RSI(period=period).update
        return pd.Series([step(x) for x in values.tolist()], index=close.index, dtype="float64")
    change = np.diff(values[first:])
    out = np.full(len(values), np.nan)
    if len(change) >= period:
        gain = _wilder(np.where(change > 0.0, change, 0.0), period)
        loss = _wilder(np.where(change < 0.0, -change, 0.0), period)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[first + period:] = np.where(loss == 0.0, np.where(gain > 0.0, 100.0, 50.0),
                                            100.0 - 100.0 / (1.0 + gain / loss))
    return pd.Series(out, index=close.index)


def _wilder(x: np.ndarray, period: int) -> np.ndarray:
    """Wilder's smoothing of ``x`` from its ``period``-th value on (seeded with the mean of the first ``period``)."""
    seeded = x[period - 1:].copy()
    seeded[0] = sum((x[:period] / period).tolist())  # the sequential sum RSI.update accumulates
    return pd.Series(seeded).ewm(alpha=1.0 / period, adjust=False).mean().to_numpy()


class RSI:
    """Wilder's relative strength index (incremental): the reference :func:`rsi` follows.

    State: the previous close, the running average gain and loss, and the
    number of changes seen.  The first averages are plain means of the first
    ``period`` changes; after that ``avg = (avg * (period - 1) + x) / period``.
    """

    def __init__(self, *, period: Period = 14) -> None:
        self.period = period
        self.prev = math.nan
        self.count = 0
        self.gain = 0.0
        self.loss = 0.0

    def update(self, close: float) -> float:
        prev, self.prev = self.prev, close
        if math.isnan(prev) or math.isnan(close):
            return math.nan
        change = close - prev
        gain, loss = max(change, 0.0), max(-change, 0.0)
        n = self.period
        self.count += 1
        if self.count <= n:
            self.gain += gain / n
            self.loss += loss / n
            if self.count < n:
                return math.nan
        else:
            self.gain = (self.gain * (n - 1) + gain) / n
            self.loss = (self.loss * (n - 1) + loss) / n
        if self.loss == 0.0:
            return 100.0 if self.gain > 0 else 50.0
        return 100.0 - 100.0 / (1.0 + self.gain / self.loss)


@indicator("atr")
class ATR:
    """Wilder's average true range (incremental).

    True range needs the previous close, so the first candle has none; the
    first ATR is the mean of the first ``period`` true ranges, then Wilder's
    smoothing.  State: previous close, running ATR, true ranges counted.
    """

    def __init__(self, *, period: Period = 14) -> None:
        self.period = period
        self.prev_close = math.nan
        self.count = 0
        self.value = 0.0

    def update(self, high: float, low: float, close: float) -> float:
        prev_close, self.prev_close = self.prev_close, close
        if math.isnan(prev_close):
            return math.nan
        true_range = max(high - low, abs(high - prev_close), abs(low - prev_close))
        n = self.period
        self.count += 1
        if self.count <= n:
            self.value += true_range / n
            return self.value if self.count == n else math.nan
        self.value = (self.value * (n - 1) + true_range) / n
        return self.value


@indicator("wma")
def wma(close: pd.Series, *, period: Period = 20) -> pd.Series:
    """Linearly weighted moving average: weights 1..period, the newest value weighing most."""
    weights = np.arange(1.0, period + 1)

    def reduce(windows: np.ndarray) -> np.ndarray:
        out = windows @ weights / weights.sum()
        flat = windows.max(axis=1) == windows.min(axis=1)
        out[flat] = windows[flat, 0]
        return out
    return _rolling(close, period, reduce)


@indicator("hma")
def hma(close: pd.Series, *, period: Period2 = 16) -> pd.Series:
    """Hull moving average: ``wma(2 * wma(period // 2) - wma(period), floor(sqrt(period)))``.

    Warm-up: ``period + floor(sqrt(period)) - 2`` candles.
    """
    raw = 2.0 * wma(close, period=period // 2) - wma(close, period=period)
    return wma(raw, period=math.isqrt(period))


@indicator("stoch", outputs=("k", "d"))
def stoch(high: pd.Series, low: pd.Series, close: pd.Series, *, k_period: Period = 14, k_smooth: Period = 3,
          d_period: Period = 3) -> pd.DataFrame:
    """Slow stochastic (TA-Lib's STOCH with SMAs): ``k`` = SMA(``k_smooth``) of the fast %K, ``d`` = SMA of ``k``.

    Fast %K = 100 * (close - lowest low) / (highest high - lowest low) over ``k_period`` candles; 50
    when that range is 0 (TA-Lib: 0).  Both outputs start together, after
    ``k_period + k_smooth + d_period - 3`` candles, as TA-Lib lays them out.
    """
    lowest_low = low.rolling(k_period, min_periods=k_period).min()
    span = high.rolling(k_period, min_periods=k_period).max() - lowest_low
    fast = (100.0 * (close - lowest_low) / span.where(span != 0)).where(span != 0, 50.0).where(span.notna())
    k = _rolling(fast, k_smooth, _window_mean)
    d = _rolling(k, d_period, _window_mean)
    return pd.DataFrame({"k": k.where(d.notna()), "d": d})


@indicator("adx", outputs=("adx", "plus_di", "minus_di"))
class ADX:
    """Wilder's average directional index with its +DI and -DI, as TA-Lib computes them (incremental).

    +DM/-DM and the true range start at the second candle; their Wilder sums start as plain sums of
    the first ``period - 1`` and then go ``s = s - s / period + x``.  +DI = 100 * +DM sum / TR sum
    (0 when the TR sum is 0) from candle ``period``; DX = 100 * |+DI - -DI| / (+DI + -DI); ADX is
    the mean of the first ``period`` DX (from candle ``2 * period - 1``), then Wilder's smoothing.
    A DX with +DI + -DI = 0 is skipped (left out of the sum, the ADX kept), as in TA-Lib.
    """

    def __init__(self, *, period: Period2 = 14) -> None:
        self.period = period
        self.prev: tuple[float, float, float] | None = None
        self.count = 0
        self.plus_dm = self.minus_dm = self.true_range = self.dx_sum = 0.0
        self.adx = math.nan

    def update(self, high: float, low: float, close: float) -> tuple[float, float, float]:
        prev, self.prev = self.prev, (high, low, close)
        if prev is None:
            return math.nan, math.nan, math.nan
        prev_high, prev_low, prev_close = prev
        up, down = high - prev_high, prev_low - low
        plus, minus = (up if up > 0 and up > down else 0.0), (down if down > 0 and down > up else 0.0)
        true_range = max(high - low, abs(high - prev_close), abs(low - prev_close))
        n = self.period
        self.count += 1
        if self.count < n:
            self.plus_dm += plus
            self.minus_dm += minus
            self.true_range += true_range
            return math.nan, math.nan, math.nan
        self.plus_dm = self.plus_dm - self.plus_dm / n + plus
        self.minus_dm = self.minus_dm - self.minus_dm / n + minus
        self.true_range = self.true_range - self.true_range / n + true_range
        plus_di = 100.0 * (self.plus_dm / self.true_range) if self.true_range != 0 else 0.0
        minus_di = 100.0 * (self.minus_dm / self.true_range) if self.true_range != 0 else 0.0
        total = plus_di + minus_di
        dx = 100.0 * (abs(minus_di - plus_di) / total) if total != 0 else None
        seen = self.count - n + 1  # DX values so far
        if seen <= n:
            self.dx_sum += dx or 0.0
            if seen == n:
                self.adx = self.dx_sum / n
        elif dx is not None:
            self.adx = (self.adx * (n - 1) + dx) / n
        return self.adx, plus_di, minus_di


@indicator("cci")
def cci(high: pd.Series, low: pd.Series, close: pd.Series, *, period: Period = 20) -> pd.Series:
    """Commodity channel index: (TP - SMA(TP)) / (0.015 * mean absolute deviation), TP = (high + low + close) / 3.

    0 when the mean deviation is 0 (a flat window), as in TA-Lib.  Warm-up: ``period - 1``.
    """
    def reduce(windows: np.ndarray) -> np.ndarray:
        mean = _window_mean(windows)
        deviation = np.abs(windows - mean[:, None]).mean(axis=1)
        distance = windows[:, -1] - mean
        return np.where((deviation == 0) | (distance == 0), 0.0, distance / (0.015 * deviation))
    return _rolling((high + low + close) / 3.0, period, reduce)


@indicator("obv")
def obv(close: pd.Series, volume: pd.Series) -> pd.Series:
    """On-balance volume: starts at the first candle's volume, then +- volume as the close rises or falls."""
    direction = np.sign(close.diff().fillna(0.0).where(close.notna()))
    flow = direction * volume
    flow.iloc[:1] = volume.iloc[:1]
    return flow.cumsum(skipna=False).astype("float64")


@indicator("vwap")
def vwap(high: pd.Series, low: pd.Series, close: pd.Series, volume: pd.Series) -> pd.Series:
    """Volume-weighted average typical price ((high + low + close) / 3), reset at each UTC midnight.

    The sums run from the day's first candle through the current one; NaN while the day's volume is 0.
    Candle times are the index (UTC; naive times are taken as UTC).
    """
    if not isinstance(close.index, pd.DatetimeIndex):
        raise ValueError("vwap needs candles indexed by time (its sums reset at each UTC midnight)")
    times = close.index.tz_convert("UTC") if close.index.tz is not None else close.index
    day = times.floor("D").asi8  # integer keys: grouping by datetime64 values is ~50x slower
    typical = (high + low + close) / 3.0
    days = typical.groupby(day)
    value = (typical * volume).groupby(day).cumsum() / volume.groupby(day).cumsum()
    flat = days.cummax() == days.cummin()  # one typical price so far today: exactly that price
    return value.where(~flat | value.isna(), typical)


@indicator("donchian", outputs=("upper", "middle", "lower"))
def donchian(high: pd.Series, low: pd.Series, *, period: Period = 20) -> pd.DataFrame:
    """Donchian channel over the last ``period`` candles, the current one included.

    upper = highest high, lower = lowest low, middle = their mean.  Warm-up: ``period - 1``.
    """
    upper = high.rolling(period, min_periods=period).max()
    lower = low.rolling(period, min_periods=period).min()
    return pd.DataFrame({"upper": upper, "middle": (upper + lower) / 2.0, "lower": lower})


@indicator("keltner", outputs=("upper", "middle", "lower"))
def keltner(high: pd.Series, low: pd.Series, close: pd.Series, *, period: Period = 20, atr_period: Period = 10,
            multiplier: Positive = 2.0) -> pd.DataFrame:
    """Keltner channel: middle = EMA(close, ``period``), upper/lower = middle +- ``multiplier`` * ATR(``atr_period``).

    EMA and ATR as the ``ema`` and ``atr`` built-ins; the three outputs start together, when both
    exist (after ``max(period - 1, atr_period)`` candles).
    """
    step = ATR(period=atr_period).update
    atr = pd.Series([step(h, l, c) for h, l, c in zip(high.tolist(), low.tolist(), close.tolist())],
                    index=close.index, dtype="float64")
    middle = ema(close, period=period).where(atr.notna())
    width = multiplier * atr.where(middle.notna())
    return pd.DataFrame({"upper": middle + width, "middle": middle, "lower": middle - width})


@indicator("roc")
def roc(close: pd.Series, *, period: Period = 10) -> pd.Series:
    """Rate of change in percent: ``(close / close[period candles ago] - 1) * 100``; NaN after a 0 price."""
    before = close.shift(period)
    return ((close / before.where(before != 0)) - 1.0) * 100.0


@indicator("stddev")
def stddev(close: pd.Series, *, period: Period = 20) -> pd.Series:
    """Population standard deviation of the last ``period`` values (TA-Lib's STDDEV, nbdev 1); 0 when flat."""
    return _rolling(close, period, _window_std)


@indicator("highest")
def highest(high: pd.Series, *, period: Period = 20) -> pd.Series:
    """Highest value of the last ``period`` candles (TA-Lib's MAX); reads ``high`` unless bound otherwise."""
    return high.rolling(period, min_periods=period).max()


@indicator("lowest")
def lowest(low: pd.Series, *, period: Period = 20) -> pd.Series:
    """Lowest value of the last ``period`` candles (TA-Lib's MIN); reads ``low`` unless bound otherwise."""
    return low.rolling(period, min_periods=period).min()
