"""Higher timeframes: resample candles into complete higher candles, and map values back without look-ahead.

All times are UTC, in integer nanoseconds.  A *higher* period of ``period`` seconds starts on a grid
anchored at 1970-01-01 00:00 UTC (1970-01-05, a Monday, for whole weeks) shifted by ``offset`` seconds:
``start = anchor + offset + k * period``.  A higher candle (open first, high max, low min, close last,
volume sum over the base candles whose open time lies in ``[start, start + period)``) *closes* at
``start + period``.

The visibility rule: a base candle opened at ``t`` closes at ``t + base``; it sees every higher candle
whose close is ``<= t + base``, and shows the last of them (as-of; an empty higher period, e.g. a weekend,
makes none, so the last closed one stands).  The base candle whose close coincides with the higher
close is the first to see it.  A higher candle that has not closed by the last base candle's close is
*incomplete* and dropped: it is never computed on and never visible.  Base candles must lie on their own
grid (``(t - anchor - offset) % base == 0``), so that every base candle of a closed higher candle
opened at or before the candle that sees it (:func:`off_grid`).

>>> import pandas as pd
>>> idx = pd.date_range("2024-01-01", periods=6, freq="12h", tz="UTC")
>>> c = pd.DataFrame({"open": range(6), "high": range(6), "low": range(6), "close": range(6),
...                   "volume": 1.0}, index=idx, dtype="float64")
>>> resample(c, DAY, 0, 12 * 3600)["close"].tolist()
[1.0, 3.0, 5.0]
>>> visible_positions(idx, 12 * 3600, resample(c, DAY, 0, 12 * 3600).index, DAY).tolist()
[-1, 0, 0, 1, 1, 2]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DAY = 86_400
WEEK = 7 * DAY
_NS = 1_000_000_000
_MONDAY = 4 * DAY  # 1970-01-05 00:00 UTC, in seconds after the epoch (a Thursday)


def anchor(period: int) -> int:
    """The grid's origin in seconds after the epoch: Monday 1970-01-05 for whole weeks, else the epoch."""
    return _MONDAY if period % WEEK == 0 else 0


def _ns(index: pd.DatetimeIndex) -> np.ndarray:
    return index.as_unit("ns").asi8


def period_starts(index: pd.DatetimeIndex, period: int, offset: int = 0) -> np.ndarray:
    """Start (int64 ns) of the higher period each base time falls in."""
    origin = (anchor(period) + offset) * _NS
    step = period * _NS
    return origin + np.floor_divide(_ns(index) - origin, step) * step


def off_grid(index: pd.DatetimeIndex, base: int, period: int, offset: int = 0) -> int | None:
    """Position of the first candle not on the base grid of the higher period's anchor and offset, or None."""
    if not len(index):
        return None
    origin = (anchor(period) + offset) * _NS
    bad = np.flatnonzero((_ns(index) - origin) % (base * _NS))
    return int(bad[0]) if len(bad) else None


def resample(candles: pd.DataFrame, period: int, offset: int, base: int) -> pd.DataFrame:
    """The *complete* higher candles of ``candles`` (indexed by their start), as in the module docstring."""
    starts = period_starts(candles.index, period, offset)
    grouped = candles.groupby(starts, sort=True)
    frame = grouped.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    frame = frame[[c for c in ("open", "high", "low", "close", "volume")]].astype("float64")
    if len(candles):
        last_close = _ns(candles.index)[-1] + base * _NS
        frame = frame[frame.index.to_numpy() + period * _NS <= last_close]
    starts_ns = frame.index.to_numpy(dtype="int64").astype("datetime64[ns]")
    frame.index = pd.DatetimeIndex(starts_ns, name="time").tz_localize("UTC").as_unit(candles.index.unit)
    return frame


def visible_positions(base_index: pd.DatetimeIndex, base: int, higher_index: pd.DatetimeIndex,
                      period: int) -> np.ndarray:
    """For each base candle, the position of the last higher candle closed by its close (-1: none yet)."""
    closes = _ns(higher_index) + period * _NS
    return np.searchsorted(closes, _ns(base_index) + base * _NS, side="right") - 1


def align(values: pd.Series | pd.DataFrame, base_index: pd.DatetimeIndex, base: int,
          period: int) -> pd.Series | pd.DataFrame:
    """Higher-timeframe ``values`` (indexed by higher candle start) as seen by each base candle; NaN before."""
    where = visible_positions(base_index, base, values.index, period)
    array = values.to_numpy(dtype="float64")
    out = np.full((len(base_index), *array.shape[1:]), np.nan)
    seen = where >= 0
    out[seen] = array[where[seen]]
    if isinstance(values, pd.DataFrame):
        return pd.DataFrame(out, index=base_index, columns=values.columns)
    return pd.Series(out, index=base_index, name=values.name)


def first_seen(higher_bars: np.ndarray, higher_index: pd.DatetimeIndex, period: int,
               base_index: pd.DatetimeIndex, base: int) -> np.ndarray:
    """For each higher candle position, the first base candle that sees it (its close <= base close)."""
    closes = _ns(higher_index)[np.asarray(higher_bars, dtype="int64")] + period * _NS
    return np.searchsorted(_ns(base_index) + base * _NS, closes, side="left")


__all__ = ["DAY", "WEEK", "align", "anchor", "first_seen", "off_grid", "period_starts", "resample",
           "visible_positions"]
