"""The values that flow along the graph's edges.

* An **indicator** output is a float64 ``pandas.Series`` (one output) or a
  ``DataFrame`` of float64 columns (several outputs, e.g. Bollinger
  ``upper/middle/lower``), indexed exactly like the candles; NaN during warm-up.
* A **signal** output is a *signal frame*: one row per event, columns
  ``bar`` (int64 candle position), ``signal_type`` (str), ``strength`` (float64)
  and ``metadata`` (dict or None), sorted by ``bar``.  An event at bar ``i``
  was decided with candles ``0..i`` and acts, by default, at bar ``i + 1``'s open.

>>> import pandas as pd
>>> frame = signal_frame_from_masks({"golden_cross": pd.Series([False, True, False])})
>>> frame[["bar", "signal_type"]].values.tolist()
[[1, 'golden_cross']]
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

SIGNAL_COLUMNS = ["bar", "signal_type", "strength", "metadata"]


def empty_signal_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "bar": pd.Series([], dtype="int64"),
        "signal_type": pd.Series([], dtype=object),
        "strength": pd.Series([], dtype="float64"),
        "metadata": pd.Series([], dtype=object),
    })


def make_signal_frame(
    bars: Sequence[int] | np.ndarray,
    signal_types: Sequence[str] | np.ndarray,
    strengths: Sequence[float] | np.ndarray | None = None,
    metadata: Sequence[dict | None] | None = None,
) -> pd.DataFrame:
    """Build a signal frame from parallel sequences, sorted stably by bar."""
    bars = np.asarray(bars, dtype="int64")
    n = len(bars)
    frame = pd.DataFrame({
        "bar": bars,
        "signal_type": pd.Series(list(signal_types), dtype=object),
        "strength": np.ones(n) if strengths is None else np.asarray(strengths, dtype="float64"),
        "metadata": pd.Series([None] * n if metadata is None else list(metadata), dtype=object),
    })
    if n == 0:
        return empty_signal_frame()
    return frame.sort_values("bar", kind="stable").reset_index(drop=True)


def signal_frame_from_masks(
    masks: Mapping[str, pd.Series | np.ndarray],
    strengths: Mapping[str, pd.Series | np.ndarray] | None = None,
) -> pd.DataFrame:
    """One event per True of each boolean mask: ``{"golden_cross": cross_up}``."""
    bars, types, values = [], [], []
    for signal_type, mask in masks.items():
        where = np.flatnonzero(np.asarray(mask, dtype=bool))
        bars.append(where)
        types.extend([signal_type] * len(where))
        if strengths and signal_type in strengths:
            values.append(np.asarray(strengths[signal_type], dtype="float64")[where])
        else:
            values.append(np.ones(len(where)))
    if not bars:
        return empty_signal_frame()
    return make_signal_frame(np.concatenate(bars), types, np.concatenate(values))


def as_signal_frame(value: object, n_candles: int, *, component: str) -> pd.DataFrame:
    """Normalise what a signal function returned into a checked signal frame.

    Accepted: a signal frame, or a mapping ``signal_type -> boolean mask``.
    """
    from candleflow.errors import ComponentError

    if isinstance(value, Mapping):
        frame = signal_frame_from_masks(value)
        for signal_type, mask in value.items():
            if len(mask) != n_candles:
                raise ComponentError(f"mask '{signal_type}' has {len(mask)} values for {n_candles} candles",
                                     component=component)
    elif isinstance(value, pd.DataFrame) and {"bar", "signal_type"} <= set(value.columns):
        frame = value.copy()
        if "strength" not in frame:
            frame["strength"] = 1.0
        if "metadata" not in frame:
            frame["metadata"] = None
        frame = make_signal_frame(frame["bar"].to_numpy(), frame["signal_type"].tolist(),
                                  frame["strength"].to_numpy(), frame["metadata"].tolist())
    else:
        raise ComponentError(
            f"a signal must return a mapping of signal type to boolean mask or a signal frame, "
            f"not {type(value).__name__}", component=component)
    if len(frame) and (frame["bar"].min() < 0 or frame["bar"].max() >= n_candles):
        raise ComponentError(f"signal bar outside 0..{n_candles - 1}", component=component)
    if not np.all(np.isfinite(frame["strength"].to_numpy())):
        raise ComponentError("signal strength is NaN or infinite", component=component)
    return frame[SIGNAL_COLUMNS]
