"""Built-in signals.  Each returns ``{signal_type: boolean mask}``; an event at
candle ``i`` uses inputs ``0..i`` only.  A cross at ``i`` compares ``i - 1`` and
``i``; comparisons with NaN are false, so nothing fires during warm-up.
"""

from __future__ import annotations

import pandas as pd

from candleflow.components.declare import signal


def crosses_above(a: pd.Series, b: pd.Series | float) -> pd.Series:
    """True at ``i`` when ``a[i-1] <= b[i-1]`` and ``a[i] > b[i]`` (the seed script's rule)."""
    prev_b = b.shift(1) if isinstance(b, pd.Series) else b
    return (a.shift(1) <= prev_b) & (a > b)


def crosses_below(a: pd.Series, b: pd.Series | float) -> pd.Series:
    """True at ``i`` when ``a[i-1] >= b[i-1]`` and ``a[i] < b[i]``."""
    prev_b = b.shift(1) if isinstance(b, pd.Series) else b
    return (a.shift(1) >= prev_b) & (a < b)


@signal("ma_crossover", signal_types=("golden_cross", "death_cross"))
def ma_crossover(fast: pd.Series, slow: pd.Series) -> dict[str, pd.Series]:
    """``golden_cross`` when fast crosses above slow, ``death_cross`` when below."""
    return {"golden_cross": crosses_above(fast, slow), "death_cross": crosses_below(fast, slow)}


@signal("rsi_threshold", signal_types=("oversold", "overbought"), levels=("lower", "upper"))
def rsi_threshold(rsi: pd.Series, *, lower: float = 30.0, upper: float = 70.0) -> dict[str, pd.Series]:
    """``oversold`` when RSI crosses below ``lower``; ``overbought`` when it crosses above ``upper``."""
    if not lower < upper:
        raise ValueError(f"lower ({lower}) must be below upper ({upper})")
    return {"oversold": crosses_below(rsi, lower), "overbought": crosses_above(rsi, upper)}


@signal("bollinger_breakout", signal_types=("breakout_up", "breakout_down"))
def bollinger_breakout(close: pd.Series, upper: pd.Series, lower: pd.Series) -> dict[str, pd.Series]:
    """``breakout_up`` when close crosses above the upper band, ``breakout_down`` below the lower."""
    return {"breakout_up": crosses_above(close, upper), "breakout_down": crosses_below(close, lower)}
