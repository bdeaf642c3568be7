"""Built-in indicators.

Conventions follow TA-Lib for SMA, EMA, RSI, ATR and Bollinger bands: EMA is
seeded with the SMA of its first ``period`` values; RSI and ATR use Wilder's
smoothing seeded with a simple mean; Bollinger bands use the population standard
deviation (``ddof=0``).  MACD is built from those EMAs (the fast EMA seeded at its
own first full window), so it differs from ``talib.MACD``, which seeds the fast
EMA at the slow EMA's first bar, during the first ~150 bars.  Values are NaN until enough
candles exist.  Every output at candle ``i`` depends only on candles ``0..i``
(tested by ``tests/test_no_lookahead.py``).

``sma``, ``ema``, ``bollinger`` and ``macd`` are vectorized; ``rsi`` and ``atr``
are incremental (one ``update`` per candle), the two execution paths of
:mod:`candleflow.components.registry`.
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from candleflow.components.declare import indicator

Period = Annotated[int, Field(ge=1)]


@indicator("sma")
def sma(close: pd.Series, *, period: Period = 20) -> pd.Series:
    """Simple moving average of the last ``period`` values."""
    return close.rolling(period, min_periods=period).mean()


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
def bollinger(close: pd.Series, *, period: Period = 20, stddev: Annotated[float, Field(gt=0)] = 2.0) -> pd.DataFrame:
    """Bollinger bands: SMA +- ``stddev`` population standard deviations."""
    middle = close.rolling(period, min_periods=period).mean()
    width = close.rolling(period, min_periods=period).std(ddof=0) * stddev
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
class RSI:
    """Wilder's relative strength index (incremental).

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
