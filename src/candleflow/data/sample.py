"""Deterministic sample candles.

``generate_candles`` simulates an FX-like hourly series: a driftless random walk
of 5-minute log returns with London/New York session volatility, aggregated
into OHLC bars, markets closed from Friday 22:00 to Sunday 22:00 UTC.  The same
arguments always give the same candles, on any machine (numpy's PCG64).

The bundled ``eurusd_1h`` sample is this generator's output for 2023 (UTC),
starting at 1.0700; it is *synthetic*, shaped like EURUSD, not market data.

>>> df = generate_candles(48, seed=1)
>>> list(df.columns), len(df), bool((df.high >= df.low).all())
(['open', 'high', 'low', 'close', 'volume'], 48, True)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SAMPLES = {
    "eurusd_1h": dict(symbol="EURUSD", start="2023-01-02T00:00:00Z", end="2024-01-01T00:00:00Z",
                      price=1.07, seed=20230102, fx_hours=True),
}
_STEPS_PER_HOUR = 12


def generate_candles(
    n: int | None = None,
    *,
    start: str = "2023-01-02T00:00:00Z",
    end: str | None = None,
    price: float = 1.10,
    seed: int = 0,
    hourly_vol: float = 0.0011,
    fx_hours: bool = False,
) -> pd.DataFrame:
    """``n`` hourly candles (or all hours from ``start`` to ``end``), UTC-indexed."""
    if (n is None) == (end is None):
        raise ValueError("give exactly one of n or end")
    start_ts = pd.Timestamp(start)
    if n is not None:
        span = n * (2 if fx_hours else 1) + 200
        hours = pd.date_range(start_ts, periods=span, freq="h")
    else:
        hours = pd.date_range(start_ts, pd.Timestamp(end), freq="h", inclusive="left")
    if fx_hours:
        hours = hours[_fx_open(hours)]
    if n is not None:
        hours = hours[:n]
    rng = np.random.default_rng(seed)
    m = len(hours)
    session = _session_scale(hours.hour.to_numpy())
    step_vol = hourly_vol / np.sqrt(_STEPS_PER_HOUR) * session
    steps = rng.standard_normal((m, _STEPS_PER_HOUR)) * step_vol[:, None]
    path = np.cumsum(steps.ravel()).reshape(m, _STEPS_PER_HOUR)
    log_open = np.concatenate([[0.0], path[:-1, -1]])
    log_prices = np.concatenate([log_open[:, None], path], axis=1)
    prices = price * np.exp(log_prices)
    frame = pd.DataFrame({
        "open": prices[:, 0],
        "high": prices.max(axis=1),
        "low": prices.min(axis=1),
        "close": prices[:, -1],
        "volume": np.round(rng.lognormal(7.0, 0.35, m) * session * 100),
    }, index=pd.DatetimeIndex(hours, name="time").as_unit("ns"))
    return frame.round({"open": 5, "high": 5, "low": 5, "close": 5})


def _fx_open(hours: pd.DatetimeIndex) -> np.ndarray:
    """True for hours when the FX market trades (Sunday 22:00 to Friday 22:00 UTC)."""
    day, hour = hours.day_of_week.to_numpy(), hours.hour.to_numpy()
    closed = (day == 5) | ((day == 4) & (hour >= 22)) | ((day == 6) & (hour < 22))
    return ~closed


def _session_scale(hour: np.ndarray) -> np.ndarray:
    """Relative volatility by UTC hour: quiet Asia, busy London and the New York overlap."""
    scale = np.full(hour.shape, 0.6)
    scale[(hour >= 7) & (hour < 16)] = 1.2
    scale[(hour >= 12) & (hour < 16)] = 1.5
    scale[(hour >= 16) & (hour < 21)] = 0.9
    return scale


def sample_candles(name: str) -> pd.DataFrame:
    """A bundled sample by name (``eurusd_1h``)."""
    spec = dict(SAMPLES[name])
    spec.pop("symbol")
    return generate_candles(**spec)
