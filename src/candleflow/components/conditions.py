"""Built-in condition operators: whole-series, vectorized, causal boolean series.

A condition node's value is a float64 series of 0.0/1.0 per candle (true = 1.0).
Its value at candle ``i`` uses its inputs at ``0..i`` only.

* Comparisons (operands: series, or numbers broadcast to a constant series):
  ``above`` (``a > b``), ``below`` (``a < b``), ``between`` (``lo <= x <= hi``) are
  *states*; ``crosses_above`` (``a[i-1] <= b[i-1]`` and ``a[i] > b[i]``) and
  ``crosses_below`` (``a[i-1] >= b[i-1]`` and ``a[i] < b[i]``) are *events*, the
  rule of the ``ma_crossover`` signal.  A comparison with NaN is false, so nothing
  fires during warm-up (and a cross needs two candles with values).
* Logic over conditions: ``all``, ``any``, ``not``, ``within`` (true on candle ``i``
  when its condition was true on one of candles ``i-n+1..i``).
* ``event``: true on the candles where a signal node emitted a signal type.

:func:`condition_component` wraps an operator as a :class:`Component`, so a
condition node runs through ``nodes.compute.run_node`` like any indicator.

>>> close = pd.Series([1.0, 2.0, float("nan"), 4.0])
>>> comparison(close, operator="above", operands=(("series", 0), ("number", 1.5))).tolist()
[False, True, False, True]
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import numpy as np
import pandas as pd

from candleflow.components.declare import Component
from candleflow.components.signals import crosses_above, crosses_below
from candleflow.vocab import source_hash

COMPARISONS = {"above": 2, "below": 2, "crosses_above": 2, "crosses_below": 2, "between": 3}
LOGIC = ("all", "any", "not", "within")
OPERATORS = (*COMPARISONS, *LOGIC)


def _operand(series: tuple[pd.Series, ...], operand: tuple[str, Any], index: pd.Index) -> pd.Series:
    kind, value = operand
    if kind == "series":
        return series[value].astype("float64")
    return pd.Series(float(value), index=index, dtype="float64")


def comparison(*series: pd.Series, operator: str, operands: tuple[tuple[str, Any], ...]) -> pd.Series:
    """``operator`` over ``operands``: ``("series", i)`` is the i-th input series, ``("number", x)`` a constant."""
    a, b, *rest = (_operand(series, o, series[0].index) for o in operands)
    if operator == "above":
        return a > b
    if operator == "below":
        return a < b
    if operator == "crosses_above":
        return crosses_above(a, b)
    if operator == "crosses_below":
        return crosses_below(a, b)
    if operator == "between":
        return (b <= a) & (a <= rest[0])
    raise ValueError(f"unknown comparison '{operator}'")


def _truth(value: pd.Series) -> pd.Series:
    return value.to_numpy(dtype="float64") > 0.5  # 0.0/1.0 in; NaN is false


def all_of(*conditions: pd.Series) -> pd.Series:
    """True where every condition is true."""
    return pd.Series(np.logical_and.reduce([_truth(c) for c in conditions]), index=conditions[0].index)


def any_of(*conditions: pd.Series) -> pd.Series:
    """True where at least one condition is true."""
    return pd.Series(np.logical_or.reduce([_truth(c) for c in conditions]), index=conditions[0].index)


def negate(condition: pd.Series) -> pd.Series:
    """True where the condition is false (also during its warm-up, where it is false)."""
    return pd.Series(~_truth(condition), index=condition.index)


def within(condition: pd.Series, *, n: int) -> pd.Series:
    """True at ``i`` when the condition was true on one of candles ``i-n+1..i`` (the current one included)."""
    hits = pd.Series(_truth(condition).astype("float64"), index=condition.index)
    return hits.rolling(n, min_periods=1).max() > 0.5


def event(close: pd.Series, *frames: pd.DataFrame, signal_type: str) -> pd.Series:
    """True on the candles where one of the signal frames has an event of ``signal_type`` (``close`` sets the index)."""
    mask = np.zeros(len(close), dtype=bool)
    for frame in frames:
        bars = frame["bar"].to_numpy(dtype=np.int64)[frame["signal_type"].to_numpy(dtype=object) == signal_type]
        mask[bars] = True
    return pd.Series(mask, index=close.index)


TARGETS = {"comparison": comparison, "all": all_of, "any": any_of, "not": negate, "within": within, "event": event}


@functools.lru_cache(maxsize=None)
def condition_component(target: str, n_inputs: int) -> Component:
    """The component computing ``target`` (a key of :data:`TARGETS`) over ``n_inputs`` input series ``x0, x1, ...``."""
    return Component(name=target, kind="condition", mode="vectorized", target=TARGETS[target],
                     inputs=tuple(f"x{i}" for i in range(n_inputs)), params={},
                     source_hash=source_hash(sys.modules[__name__], crosses_above, crosses_below))


__all__ = ["COMPARISONS", "LOGIC", "OPERATORS", "all_of", "any_of", "comparison", "condition_component", "event",
           "negate", "within"]
